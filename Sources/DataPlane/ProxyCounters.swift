/// What a worker answered and what went wrong upstream, counted once, on its event loop: the
/// metrics endpoint renders them (`Worker.exposition()`), and `Worker.counters()` reads them.
public struct ProxyCounters: Sendable, Equatable {
    /// Answers the worker made itself (404, 502, 431, ...), by status code.
    public var localAnswers: [Int: Int] = [:]
    /// Responses relayed from upstreams, by status code (101 for each tunnel opened).
    public var upstreamAnswers: [Int: Int] = [:]
    /// Failed connection attempts to endpoints, retries on another endpoint, and ejections.
    public var connectFailures = 0
    public var retries = 0
    public var ejections = 0
    /// Connections or exchanges cut by a timeout, by kind.
    public var timeouts: [TimeoutKind: Int] = [:]

    public init() {}
}

/// The timeouts a worker enforces, as counted (`portico_timeouts_total{kind}`).
public enum TimeoutKind: String, CaseIterable, Sendable {
    /// From accept until the TLS handshake completes (`--tls-handshake-timeout`).
    case tlsHandshake = "tls_handshake"
    /// A request head that does not complete (`--request-header-timeout`).
    case requestHeader = "request_header"
    /// A keep-alive HTTP/1.1 connection, or an HTTP/2 connection without streams (`--idle-timeout`).
    case idle
    /// The longest gap between two reads of a request body (`--request-body-timeout`).
    case requestBody = "request_body"
    /// The longest gap between two reads of an upstream response body (`--upstream-read-timeout`).
    case upstreamRead = "upstream_read"
    /// The longest the upstream may take none of the request (`--upstream-send-timeout`, `proxy-send-timeout`).
    case upstreamSend = "upstream_send"
}

/// The loop's counters, shared by reference between the handlers of one worker loop.
final class CounterBox {
    var value = ProxyCounters()

    init() {}

    func local(_ status: Int) { value.localAnswers[status, default: 0] += 1 }
    func upstream(_ status: Int) { value.upstreamAnswers[status, default: 0] += 1 }
    func timedOut(_ kind: TimeoutKind) { value.timeouts[kind, default: 0] += 1 }
}

extension ProxyCounters {
    /// The counters that are not per route, in the Prometheus text format: connect errors,
    /// retries, ejections, and timeouts by kind (every kind, zeros included).
    var exposition: String {
        var text = ""
        func counter(_ name: String, _ help: String, _ samples: [(labels: String, value: Int)]) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
            for sample in samples { text += "\(name)\(sample.labels) \(sample.value)\n" }
        }
        counter("portico_upstream_connect_errors_total", "Failed connection attempts to endpoints.", [("", connectFailures)])
        counter("portico_upstream_retries_total", "Requests retried on another endpoint after a failed connect.", [("", retries)])
        counter("portico_upstream_ejections_total", "Endpoints ejected after consecutive connect failures.", [("", ejections)])
        counter(
            "portico_timeouts_total", "Connections and exchanges cut by a timeout, by kind.",
            TimeoutKind.allCases.map { ("{kind=\"\($0.rawValue)\"}", timeouts[$0, default: 0]) })
        return text
    }
}
