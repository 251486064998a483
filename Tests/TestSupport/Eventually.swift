/// Waiting in tests: a condition polled against a deadline, never a fixed sleep.

/// Thrown when `eventually` runs out of time; Swift Testing records it as the test's failure,
/// with what was awaited.
public struct TimedOut: Error, CustomStringConvertible {
    public let what: String
    public let timeout: Duration

    public init(what: String, timeout: Duration) {
        self.what = what
        self.timeout = timeout
    }

    public var description: String { "timed out after \(timeout) waiting until \(what)" }
}

/// Polls `condition` every `interval` until it holds; throws `TimedOut` after `timeout`.
///
/// For state another process or connection reaches (an ACK, a socket closing, a file appearing).
/// In-process rebuilds are awaited through `RebuildLoop.rebuilt(after:)` instead.
public func eventually(
    _ what: String, timeout: Duration = .seconds(60), every interval: Duration = .milliseconds(10),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    // One last look: the deadline may have passed while the process was descheduled.
    if try await condition() { return }
    throw TimedOut(what: what, timeout: timeout)
}
