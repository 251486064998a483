/// Small helpers shared by the benchmark executables.
public enum Measure {
    public static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// `value` with `digits` decimals, without Foundation.
    public static func format(_ value: Double, _ digits: Int) -> String {
        let scale = (0..<digits).reduce(1.0) { value, _ in value * 10 }
        var text = String(Int((value * scale).rounded()))
        while text.count <= digits { text = "0" + text }
        return digits == 0 ? text : String(text.dropLast(digits)) + "." + String(text.suffix(digits))
    }

    /// Runs `body` `runs` times after `warmUp` runs and returns each run's milliseconds.
    public static func milliseconds(runs: Int, warmUp: Int = 2, _ body: () throws -> Void) rethrows -> [Double] {
        var times: [Double] = []
        for run in 0..<(runs + warmUp) {
            let start = ContinuousClock.now
            try body()
            let elapsed = seconds(ContinuousClock.now - start) * 1000
            if run >= warmUp { times.append(elapsed) }
        }
        return times
    }
}
