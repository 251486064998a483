import Dispatch
import Foundation
import Synchronization

/// Work on a large table split into ordered parts, one per core: the snapshot coding of whole
/// tables (SnapshotProtocol's `PartedCoding`), the translator's validation of many Ingresses, and
/// a large `RouteTable`'s index beside its hashes.
public enum PartedWork {
    /// Below this many entries the work is done in one part: the threads cost more than they save.
    public static let partThreshold = 4096

    /// How many parts `count` entries are worked in.
    public static func parts(for count: Int) -> Int {
        guard count >= partThreshold else { return 1 }
        return min(max(ProcessInfo.processInfo.activeProcessorCount, 1), 8)
    }

    /// The part `part` of `parts` of `0..<count`, in order, sizes differing by one at most.
    public static func range(_ part: Int, of parts: Int, count: Int) -> Range<Int> {
        (count * part / parts)..<(count * (part + 1) / parts)
    }

    /// Runs `body` for each part on the cores and returns the results in part order.
    public static func map<T: Sendable>(parts: Int, _ body: @Sendable (Int) -> T) -> [T] {
        guard parts > 1 else { return [body(0)] }
        let results = PartResults<T>(count: parts)
        DispatchQueue.concurrentPerform(iterations: parts) { part in results.set(part, body(part)) }
        return results.values
    }

    /// `first` and `second`, on two cores when `concurrently`, else one after the other.
    public static func pair<A: Sendable, B: Sendable>(
        concurrently: Bool, _ first: @Sendable () -> A, _ second: @Sendable () -> B
    ) -> (A, B) {
        guard concurrently else { return (first(), second()) }
        let results = map(parts: 2) { part -> (A?, B?) in part == 0 ? (first(), nil) : (nil, second()) }
        return (results[0].0!, results[1].1!)
    }
}

/// Each part's result, written once by the thread that made it.
private final class PartResults<T: Sendable>: Sendable {
    private let slots: Mutex<[T?]>

    init(count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }

    func set(_ index: Int, _ value: T) { slots.withLock { $0[index] = value } }

    var values: [T] { slots.withLock { $0.map { $0! } } }
}
