import Dispatch
import RouteModel
import Synchronization

/// One published version: the table, its change from the version published before it, and their
/// wire forms, each encoded at most once for every subscriber.
public struct PublishedSnapshot: Sendable {
    public let version: UInt64
    /// The table; for a relay's snapshot passed on before it was decoded (`LatestSnapshot.publish(
    /// version:undecoded:)`), reading it waits for the decode.
    public var table: RouteTable { tableSource.table }
    private let tableSource: TableHolder
    /// What changed since `base`, the version published just before this one; nil for the first.
    public let delta: (base: UInt64, changes: RouteTableDelta)?
    /// How the publisher made this version (`Dump` shows it); nil when it did not say.
    public let timing: Portico_V1_PublishTiming?
    private let wire: WireForms

    init(
        version: UInt64, table: RouteTable, encoded: EncodedSnapshot?, delta: (base: UInt64, changes: RouteTableDelta)?,
        timing: Portico_V1_PublishTiming? = nil
    ) {
        self.version = version
        self.tableSource = .ready(table)
        self.delta = delta
        self.timing = timing
        self.wire = WireForms(version: version, table: .ready(table), encoded: encoded, delta: delta)
    }

    /// `encoded` at its own version, whose table `pending` will hold once decoded; no delta.
    init(undecoded encoded: EncodedSnapshot, pending: PendingTable) {
        version = encoded.version
        tableSource = .decoding(pending)
        delta = nil
        timing = nil
        wire = WireForms(version: encoded.version, table: .decoding(pending), encoded: encoded, delta: nil)
    }

    /// The table, waiting without blocking a thread while it is being decoded.
    public func decodedTable() async -> RouteTable {
        switch tableSource {
        case .ready(let table): return table
        case .decoding(let pending): return await pending.decoded()
        }
    }

    /// The same version with `timing`.
    func with(timing: Portico_V1_PublishTiming) -> PublishedSnapshot {
        PublishedSnapshot(copying: self, timing: timing)
    }

    private init(copying other: PublishedSnapshot, timing: Portico_V1_PublishTiming) {
        version = other.version
        tableSource = other.tableSource
        delta = other.delta
        wire = other.wire
        self.timing = timing
    }

    /// A serialised `WatchResponse` with `version` and `snapshot` (private keys included) but no
    /// nonce. Protobuf fields may come in any order, so each subscriber's response is these bytes
    /// followed by its own nonce field: encoding a 10k-Ingress table once instead of once per
    /// subscriber took fan-out to 100 subscribers from seconds to milliseconds of server time.
    /// Encoded on first use (65 ms for 10k Ingresses): when every subscriber takes the delta, never.
    var encodedResponse: [UInt8] { wire.full() }

    /// The response with `delta` instead of `snapshot` when the delta starts from `base`, else the
    /// whole snapshot.
    func encodedResponse(orDeltaFrom base: UInt64?) -> (bytes: [UInt8], isDelta: Bool) {
        if let base, let delta, delta.base == base, let bytes = wire.delta { return (bytes, true) }
        return (wire.full(), false)
    }
}

/// A published version's table: at hand, or still being decoded by a relay that passed its bytes on.
private enum TableHolder: Sendable {
    case ready(RouteTable)
    case decoding(PendingTable)

    var table: RouteTable {
        switch self {
        case .ready(let table): return table
        case .decoding(let pending): return pending.table
        }
    }
}

/// The table of a snapshot published before it was decoded: set once, by whoever decodes it.
public final class PendingTable: Sendable {
    private struct State {
        var table: RouteTable?
        var waiters: [CheckedContinuation<RouteTable, Never>] = []
    }

    private let state = Mutex(State())
    /// Signalled once the table is set; each blocking reader passes the signal on.
    private let ready = DispatchSemaphore(value: 0)

    init() {}

    /// Sets the table (once) and wakes whoever waits for it.
    public func fulfil(_ table: RouteTable) {
        let waiters = state.withLock { state -> [CheckedContinuation<RouteTable, Never>] in
            precondition(state.table == nil, "a pending table is set once")
            state.table = table
            defer { state.waiters = [] }
            return state.waiters
        }
        ready.signal()
        for waiter in waiters { waiter.resume(returning: table) }
    }

    /// The table, blocking the calling thread until it is set.
    var table: RouteTable {
        if let table = state.withLock({ $0.table }) { return table }
        ready.wait()
        ready.signal()
        return state.withLock { $0.table! }
    }

    /// The table, suspending until it is set.
    func decoded() async -> RouteTable {
        await withCheckedContinuation { continuation in
            let table = state.withLock { state -> RouteTable? in
                if state.table == nil { state.waiters.append(continuation) }
                return state.table
            }
            if let table { continuation.resume(returning: table) }
        }
    }
}

/// The encoded responses of one version.
private final class WireForms: Sendable {
    let delta: [UInt8]?
    private let source: Mutex<(version: UInt64, table: TableHolder, encoded: EncodedSnapshot?)?>
    private let encoded = Mutex<[UInt8]?>(nil)

    init(version: UInt64, table: TableHolder, encoded: EncodedSnapshot?, delta: (base: UInt64, changes: RouteTableDelta)?) {
        source = Mutex((version, table, encoded))
        if let delta {
            var response = Portico_V1_WatchResponse()
            response.version = version
            response.delta = Portico_V1_SnapshotDelta(base: delta.base, contentHash: table.table.contentHash, changes: delta.changes)
            // Serialising a message that holds only set, valid fields cannot fail.
            self.delta = (try? response.serializedBytes()) ?? nil
        } else {
            self.delta = nil
        }
    }

    /// Encodes once; callers arriving meanwhile wait for that encoding instead of repeating it.
    func full() -> [UInt8] {
        encoded.withLock { encoded in
            if let encoded { return encoded }
            guard let (version, table, received) = source.withLock({ $0 }) else { return [] }
            let bytes: [UInt8]
            if let relayed = received?.watchResponse(version: version) {
                bytes = relayed
            } else {
                // Encoded in parts on every core for a large table; as a relay passes one on.
                bytes = EncodedSnapshot(version: version, encoding: table.table).watchResponse(version: version) ?? []
            }
            encoded = bytes
            source.withLock { $0 = nil }
            return bytes
        }
    }
}

/// Holds the newest snapshot and wakes whoever waits for a newer one.
///
/// This is the whole latest-wins mechanism: a subscriber asks for "anything newer than what I was
/// sent" only after its previous write finished, so a subscriber that does not read is simply not
/// asking; nothing queues behind it, and it gets the newest version when it reads again.
public final class LatestSnapshot: Sendable {
    private struct State {
        var current: PublishedSnapshot?
        var waiters: [Int: (after: UInt64, continuation: CheckedContinuation<PublishedSnapshot, any Error>)] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var current: PublishedSnapshot? { state.withLock { $0.current } }

    /// Publishes `table` as `version`, which must be newer than the current one, together with its
    /// delta from the current one. `encoded`, when given, is the serialised message the table was
    /// decoded from (a relay's case) and must carry that table; it is sent as it is when its version
    /// is `version` (converting and encoding 100k Ingresses took a second).
    public func publish(version: UInt64, table: RouteTable, encoded: EncodedSnapshot? = nil) {
        publish(PublishedSnapshot(version: version, table: table, encoded: encoded, delta: deltaFromCurrent(to: table)))
    }

    /// Publishes a whole snapshot's bytes at their own version before they are decoded (a relay's
    /// first table: its subscribers decode it meanwhile, instead of after it); the caller sets the
    /// table on the returned `PendingTable` once decoded. Readers of the version's `table` wait
    /// until then. `encoded.version` must be newer than the current one.
    public func publish(undecoded encoded: EncodedSnapshot) -> PendingTable {
        let pending = PendingTable()
        publish(PublishedSnapshot(undecoded: encoded, pending: pending))
        return pending
    }

    /// Publishes `table` as `version` with `changes`, which the caller knows turn the current
    /// version's table into it (a relay passing on the delta it received): no comparison of the
    /// whole tables. Without a current version it is published whole.
    public func publish(version: UInt64, table: RouteTable, changes: RouteTableDelta) {
        publish(PublishedSnapshot(version: version, table: table, encoded: nil, delta: current.map { (base: $0.version, changes: changes) }))
    }

    /// The change from the current version to `table`; nil before the first version.
    private func deltaFromCurrent(to table: RouteTable) -> (base: UInt64, changes: RouteTableDelta)? {
        current.map { (base: $0.version, changes: $0.table.delta(to: table)) }
    }

    /// Records how the current version was made, once it is published (the time publishing took
    /// is part of it); ignored when `version` is no longer the current one.
    public func record(_ timing: Portico_V1_PublishTiming, for version: UInt64) {
        state.withLock { state in
            guard let current = state.current, current.version == version else { return }
            state.current = current.with(timing: timing)
        }
    }

    /// Publishes `published` as it is: its forms are the caller's to make consistent.
    func publish(_ published: PublishedSnapshot) {
        let version = published.version
        let woken = state.withLock { state -> [CheckedContinuation<PublishedSnapshot, any Error>] in
            precondition(version > (state.current?.version ?? 0), "versions only grow")
            state.current = published
            let ready = state.waiters.filter { $0.value.after < version }
            for key in ready.keys { state.waiters[key] = nil }
            return ready.values.map(\.continuation)
        }
        for continuation in woken { continuation.resume(returning: published) }
    }

    /// The current snapshot if it is newer than `version`, else the next one published. Throws
    /// `CancellationError` when the waiting task is cancelled.
    public func next(after version: UInt64) async throws -> PublishedSnapshot {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                enum Decision { case ready(PublishedSnapshot), cancelled, waiting }
                // Decided under the lock, so that the cancellation handler (which also takes it) and
                // this body never both resume the continuation.
                let decision = state.withLock { state -> Decision in
                    if let current = state.current, current.version > version { return .ready(current) }
                    if Task.isCancelled { return .cancelled }
                    state.waiters[id] = (version, continuation)
                    return .waiting
                }
                switch decision {
                case .ready(let snapshot): continuation.resume(returning: snapshot)
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .waiting: break
                }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }
}
