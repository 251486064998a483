import RouteModel
import SnapshotProtocol
import Synchronization
import Translator

/// When the rebuild loop rebuilds, as a function of when changes came: no clock and no I/O, so
/// that its rules are tested with made-up instants.
///
/// A burst of changes is applied once the source has been quiet for `holdOff`, or `maxHoldOff`
/// after the burst's first change, whichever comes first. With `leadingEdge`, the first change
/// after a quiet spell (no rebuild finished within `holdOff`) is applied at once: a lone change
/// is not delayed, and a burst is still batched after its first change. A `request` (work with
/// no change, such as a due verification) is served at once and leaves the hold-off alone.
public struct HoldOffSchedule: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// Nothing to do until the next change or request.
        case idle
        case rebuild
        /// Ask again at this instant (changes meanwhile never make it sooner).
        case wait(until: ContinuousClock.Instant)
    }

    public let holdOff: Duration
    public let maxHoldOff: Duration
    public let leadingEdge: Bool
    /// The first change not yet taken by a rebuild, and the last one.
    private var burstStart: ContinuousClock.Instant?
    private var lastChange: ContinuousClock.Instant?
    /// When the last rebuild that took changes finished.
    private var lastRebuilt: ContinuousClock.Instant?
    private var rebuilding = false
    private var requested = false

    public init(holdOff: Duration, maxHoldOff: Duration, leadingEdge: Bool) {
        self.holdOff = holdOff
        self.maxHoldOff = max(holdOff, maxHoldOff)
        self.leadingEdge = leadingEdge
    }

    /// Whether changes wait for a rebuild.
    public var hasChanges: Bool { burstStart != nil }

    /// The first change waiting for a rebuild, if any.
    public var firstPendingChange: ContinuousClock.Instant? { burstStart }

    public mutating func changed(at now: ContinuousClock.Instant) {
        if burstStart == nil { burstStart = now }
        lastChange = now
    }

    public mutating func request() { requested = true }

    public func next(at now: ContinuousClock.Instant) -> Action {
        if rebuilding { return .idle }
        if requested { return .rebuild }
        guard let burstStart, let lastChange else { return .idle }
        // The burst's first change came after a quiet spell (not during or just after a rebuild).
        if leadingEdge, lastRebuilt.map({ burstStart - $0 >= holdOff }) ?? true { return .rebuild }
        let due = min(lastChange + holdOff, burstStart + maxHoldOff)
        return now >= due ? .rebuild : .wait(until: due)
    }

    /// A rebuild starts and takes every change so far; returns whether there were any. Changes
    /// from now on belong to the next burst.
    public mutating func start() -> Bool {
        let changed = burstStart != nil
        burstStart = nil
        lastChange = nil
        requested = false
        rebuilding = true
        return changed
    }

    /// The rebuild `start` began has finished; `changed` is what `start` returned.
    public mutating func finish(at now: ContinuousClock.Instant, changed: Bool) {
        rebuilding = false
        if changed { lastRebuilt = now }
    }
}

/// The control plane's one rebuild loop, which every source feeds (Contour's event handler is
/// the model): sources report changes, the loop decides when to rebuild (`HoldOffSchedule`),
/// runs the source's rebuild, and publishes its table as the next version when the table's
/// content hash is new. Each finished rebuild advances `sequence`, which tests and tools await
/// instead of polling.
public final class RebuildLoop: Sendable {
    public struct Options: Sendable {
        public var holdOff: Duration = .milliseconds(100)
        public var maxHoldOff: Duration = .milliseconds(500)
        /// Rebuild a change after a quiet spell at once (else it waits `holdOff` like the rest).
        public var leadingEdge = true
        public init() {}
    }

    /// What the loop has published and done.
    public struct Status: Sendable, Equatable {
        /// The version last published (0: none yet), and its table's content hash.
        public var version: UInt64 = 0
        public var contentHash: UInt64?
        /// Rebuilds finished, published or not.
        public var rebuilds = 0
        /// Time spent in rebuilds, summed.
        public var rebuildSeconds: Double = 0
        /// Rebuilds that found the table's hash unchanged and published nothing.
        public var unchanged = 0
    }

    public let latest: LatestSnapshot
    public let options: Options
    private let schedule: Mutex<HoldOffSchedule>
    private let state = Mutex(State())
    private let wakeups = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

    private struct State {
        var status = Status()
        var waiters: [Int: (after: Int, continuation: CheckedContinuation<Status, Never>)] = [:]
        var nextWaiter = 0
        var observers: [@Sendable (Translation) -> Void] = []
        /// The rebuild in progress: when it started, and the first change it takes (for the
        /// published version's timing).
        var rebuildStarted: ContinuousClock.Instant?
        var firstChange: ContinuousClock.Instant?
    }

    public init(latest: LatestSnapshot = LatestSnapshot(), options: Options = .init()) {
        self.latest = latest
        self.options = options
        schedule = Mutex(HoldOffSchedule(holdOff: options.holdOff, maxHoldOff: options.maxHoldOff, leadingEdge: options.leadingEdge))
    }

    public var status: Status { state.withLock { $0.status } }

    /// Rebuilds finished so far; `rebuilt(after:)` awaits the next.
    public var sequence: Int { status.rebuilds }

    /// A source saw a change: a rebuild follows, after the hold-off.
    public func changed() {
        schedule.withLock { $0.changed(at: .now) }
        wakeups.continuation.yield()
    }

    /// A rebuild with no change (a due verification): run at once, outside the hold-off.
    public func request() {
        schedule.withLock { $0.request() }
        wakeups.continuation.yield()
    }

    /// Rebuilds with `rebuild` as `HoldOffSchedule` says until cancelled; `ready` holds back
    /// every rebuild until the source has all its inputs (informers listed), and changes until
    /// then are one burst.
    public func run(ready: @Sendable () -> Bool = { true }, rebuild: @Sendable () -> Void) async {
        var pending = wakeups.stream.makeAsyncIterator()
        while !Task.isCancelled {
            switch schedule.withLock({ $0.next(at: .now) }) {
            case .idle:
                guard await pending.next() != nil else { return }
            case .wait(let deadline):
                do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return }
            case .rebuild:
                guard ready() else {
                    guard await pending.next() != nil else { return }
                    continue
                }
                let (changed, firstChange) = schedule.withLock { schedule in
                    let first = schedule.firstPendingChange
                    return (schedule.start(), first)
                }
                state.withLock { $0.firstChange = firstChange }
                rebuilding { rebuild() }
                schedule.withLock { $0.finish(at: .now, changed: changed) }
            }
        }
    }

    /// Counts `body` as one rebuild: its time, and the sequence number waiters see advance.
    public func rebuilding<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let started = ContinuousClock.now
        state.withLock { $0.rebuildStarted = started }
        defer {
            let elapsed = ContinuousClock.now - started
            let (status, woken) = state.withLock { state in
                state.rebuildStarted = nil
                state.firstChange = nil
                state.status.rebuilds += 1
                state.status.rebuildSeconds += Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                let sequence = state.status.rebuilds
                let ready = state.waiters.filter { $0.value.after < sequence }
                for key in ready.keys { state.waiters[key] = nil }
                return (state.status, ready.values.map(\.continuation))
            }
            for continuation in woken { continuation.resume(returning: status) }
        }
        return try body()
    }

    /// Publishes `table` as the next version when its content hash differs from the last one
    /// published; returns the status after it. `changes`, when given, turn the table hashing to
    /// `base` into `table`: passed on as the delta when that is the current table, instead of
    /// comparing the whole tables. Inside a rebuild, the version's `PublishTiming` says how long
    /// its changes waited, the translation took (the rebuild so far) and publishing took.
    @discardableResult
    public func publish(_ table: RouteTable, base: UInt64? = nil, changes: (() -> RouteTableDelta)? = nil) -> Status {
        let publishing = ContinuousClock.now
        return state.withLock { state -> Status in
            guard table.contentHash != state.status.contentHash else {
                state.status.unchanged += 1
                return state.status
            }
            state.status.version += 1
            state.status.contentHash = table.contentHash
            if let changes, let base, latest.current?.table.contentHash == base {
                latest.publish(version: state.status.version, table: table, changes: changes())
            } else {
                latest.publish(version: state.status.version, table: table)
            }
            if let started = state.rebuildStarted {
                var timing = Portico_V1_PublishTiming()
                timing.waitedMicros = state.firstChange.map { (started - $0).microseconds } ?? 0
                timing.translatedMicros = (publishing - started).microseconds
                timing.publishedMicros = (ContinuousClock.now - publishing).microseconds
                latest.record(timing, for: state.status.version)
            }
            return state.status
        }
    }

    /// The status once more than `sequence` rebuilds have finished (at once if they have). A
    /// cancelled wait returns the status as it is.
    public func rebuilt(after sequence: Int) async -> Status {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // Decided under the lock, which the cancellation handler also takes.
                let ready = state.withLock { state -> Status? in
                    if state.status.rebuilds > sequence || Task.isCancelled { return state.status }
                    state.waiters[id] = (sequence, continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let (waiter, status) = state.withLock { ($0.waiters.removeValue(forKey: id), $0.status) }
            waiter?.continuation.resume(returning: status)
        }
    }

    /// Called with every full translation a source reports (the status writer reconciles
    /// Ingress status and Events against it).
    public func observe(_ observer: @escaping @Sendable (Translation) -> Void) {
        state.withLock { $0.observers.append(observer) }
    }

    /// Hands a full translation to the observers.
    public func report(_ translation: Translation) {
        for observer in state.withLock({ $0.observers }) { observer(translation) }
    }
}

/// A source's status that carries its rebuild loop's: the loop's figures read as the source's own.
public protocol RebuildLoopStatusReporting {
    var loop: RebuildLoop.Status { get }
}

extension RebuildLoopStatusReporting {
    public var version: UInt64 { loop.version }
    public var contentHash: UInt64? { loop.contentHash }
    public var rebuilds: Int { loop.rebuilds }
    public var rebuildSeconds: Double { loop.rebuildSeconds }
}
