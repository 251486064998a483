/// Capped exponential backoff with jitter, for reconnecting subscribers.
///
/// Delay n is `min(maximum, initial × multiplier^n)`, then scaled by a random factor in
/// `1 ± jitter` so that many subscribers cut off together do not reconnect together.
public struct Backoff: Sendable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    public var jitter: Double
    private var attempt = 0

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5), multiplier: Double = 2, jitter: Double = 0.2) {
        precondition(jitter >= 0 && jitter < 1, "jitter must be in [0, 1)")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The next delay; each call grows the next one until `maximum`.
    public mutating func next<Random: RandomNumberGenerator>(using random: inout Random) -> Duration {
        let base = min(Self.seconds(maximum), Self.seconds(initial) * pow(multiplier, attempt))
        attempt += 1
        let factor = jitter == 0 ? 1 : Double.random(in: (1 - jitter)...(1 + jitter), using: &random)
        return .nanoseconds(Int64(base * factor * 1e9))
    }

    public mutating func next() -> Duration {
        var random = SystemRandomNumberGenerator()
        return next(using: &random)
    }

    /// After a successful connection the next failure starts from `initial` again.
    public mutating func reset() { attempt = 0 }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private func pow(_ base: Double, _ exponent: Int) -> Double {
        var result = 1.0
        for _ in 0..<min(exponent, 64) { result *= base }
        return result
    }
}
