/// What a worker answered and what went wrong upstream, counted on its event loop. The metrics
/// endpoint exports these; tests read them through `Worker.counters()`.
public struct ProxyCounters: Sendable, Equatable {
    /// Answers the worker made itself (404, 502, 431, ...), by status code.
    public var localAnswers: [Int: Int] = [:]
    /// Responses relayed from upstreams, by status code (101 for each tunnel opened).
    public var upstreamAnswers: [Int: Int] = [:]
    /// Failed connection attempts to endpoints, retries on another endpoint, and ejections.
    public var connectFailures = 0
    public var retries = 0
    public var ejections = 0

    public init() {}
}

/// The loop's counters, shared by reference between the handlers of one worker loop.
final class CounterBox {
    var value = ProxyCounters()

    func local(_ status: Int) { value.localAnswers[status, default: 0] += 1 }
    func upstream(_ status: Int) { value.upstreamAnswers[status, default: 0] += 1 }
}
