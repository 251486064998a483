import Synchronization

/// What the server knows about each connected subscriber: who it is, what it was sent, what it
/// ACKed, and its last NACK. Shown by `Dump`.
public final class SubscriberRegistry: Sendable {
    public struct Record: Sendable, Equatable {
        public var id: String
        public var identity: SubscriberIdentity
        public var peer: String
        public var connectedSinceMilliseconds: Int64
        public var sentVersion: UInt64 = 0
        public var ackedVersion: UInt64 = 0
        /// Versions published while this subscriber was still busy with an older one.
        public var skippedVersions: UInt64 = 0
        /// Versions sent as deltas rather than whole snapshots.
        public var deltasSent: UInt64 = 0
        public var lastNack: Nack?
        /// For `ackedVersion`: the subscriber's own timing, and the time from handing the response to
        /// the transport to the ACK arriving.
        public var ackedTiming: Portico_V1_ApplyTiming?
        public var ackRoundTrip: Duration?
        /// When `sentVersion` was handed to the transport (for the round trip of its ACK).
        var sentAt: ContinuousClock.Instant?
        /// For a node agent: its workers, as it last reported them.
        public var relayedWorkers: [Portico_V1_SubscriberStatus] = []

        public struct Nack: Sendable, Equatable {
            public var nonce: String
            public var version: UInt64
            public var errorDetail: String
            public var atMilliseconds: Int64
        }
    }

    private let records = Mutex<[String: Record]>([:])
    private let counter = Atomic<Int>(0)
    private let nacks = Atomic<Int>(0)
    private let changes = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))

    /// Yields (coalesced) whenever a subscriber connects, leaves, ACKs or NACKs: a node agent reports
    /// its workers upstream on it instead of polling.
    public var changed: AsyncStream<Void> { changes.stream }

    /// NACKs received since start, from all subscribers.
    public var nacksTotal: Int { nacks.load(ordering: .relaxed) }

    public init() {}

    public func add(identity: SubscriberIdentity, peer: String) -> String {
        let id = "s\(counter.add(1, ordering: .relaxed).newValue)"
        let record = Record(id: id, identity: identity, peer: peer, connectedSinceMilliseconds: Self.nowMilliseconds())
        records.withLock { $0[id] = record }
        changes.continuation.yield()
        return id
    }

    public func remove(_ id: String) {
        _ = records.withLock { $0.removeValue(forKey: id) }
        changes.continuation.yield()
    }

    func sent(_ id: String, version: UInt64, asDelta: Bool = false, at instant: ContinuousClock.Instant = .now) {
        records.withLock { records in
            guard var record = records[id] else { return }
            if record.sentVersion > 0, version > record.sentVersion + 1 { record.skippedVersions += version - record.sentVersion - 1 }
            record.sentVersion = version
            record.sentAt = instant
            if asDelta { record.deltasSent += 1 }
            records[id] = record
        }
    }

    /// The newest version `id` ACKed; 0 before its first ACK.
    func ackedVersion(_ id: String) -> UInt64 {
        records.withLock { $0[id]?.ackedVersion ?? 0 }
    }

    func acked(_ id: String, version: UInt64, timing: Portico_V1_ApplyTiming? = nil, at instant: ContinuousClock.Instant = .now) {
        records.withLock { records in
            guard var record = records[id], version > record.ackedVersion else { return }
            record.ackedVersion = version
            record.ackedTiming = timing
            record.ackRoundTrip = version == record.sentVersion ? record.sentAt.map { instant - $0 } : nil
            records[id] = record
        }
        changes.continuation.yield()
    }

    func nacked(_ id: String, nonce: String, version: UInt64, errorDetail: String) {
        nacks.add(1, ordering: .relaxed)
        let nack = Record.Nack(nonce: nonce, version: version, errorDetail: errorDetail, atMilliseconds: Self.nowMilliseconds())
        records.withLock { $0[id]?.lastNack = nack }
        changes.continuation.yield()
    }

    func reported(_ id: String, workers: [Portico_V1_SubscriberStatus]) {
        records.withLock { $0[id]?.relayedWorkers = workers }
    }

    /// Every subscriber for `Dump`, each node agent followed by the workers it reported (their ids
    /// prefixed with the agent's, `relayedBy` set).
    public var statuses: [Portico_V1_SubscriberStatus] {
        all.flatMap { record -> [Portico_V1_SubscriberStatus] in
            var status = Portico_V1_SubscriberStatus()
            status.id = record.id
            status.node = record.identity.node
            status.workerID = record.identity.workerID
            status.kind = record.identity.kind
            status.peer = record.peer
            status.connectedSinceUnixMs = record.connectedSinceMilliseconds
            status.sentVersion = record.sentVersion
            status.ackedVersion = record.ackedVersion
            status.deltasSent = record.deltasSent
            if let timing = record.ackedTiming { status.ackedTiming = timing }
            if let roundTrip = record.ackRoundTrip { status.ackRoundTripMicros = roundTrip.microseconds }
            if let nack = record.lastNack {
                status.lastNack.nonce = nack.nonce
                status.lastNack.version = nack.version
                status.lastNack.errorDetail = nack.errorDetail
                status.lastNack.atUnixMs = nack.atMilliseconds
            }
            let workers = record.relayedWorkers.map { worker in
                var worker = worker
                worker.id = "\(record.id)/\(worker.id)"
                worker.relayedBy = record.id
                if worker.node.isEmpty { worker.node = record.identity.node }
                return worker
            }
            return [status] + workers
        }
    }

    /// Sorted by node, worker and id.
    public var all: [Record] {
        records.withLock { Array($0.values) }.sorted {
            ($0.identity.node, $0.identity.workerID, $0.id) < ($1.identity.node, $1.identity.workerID, $1.id)
        }
    }

    static func nowMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}

extension Duration {
    /// Whole microseconds, 0 for a negative duration: for the protocol's timing fields.
    public var microseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000 + UInt64(attoseconds / 1_000_000_000_000)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
