import SnapshotProtocol
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
        public var lastNack: Nack?

        public struct Nack: Sendable, Equatable {
            public var nonce: String
            public var version: UInt64
            public var errorDetail: String
            public var atMilliseconds: Int64
        }
    }

    private let records = Mutex<[String: Record]>([:])
    private let counter = Atomic<Int>(0)

    public init() {}

    public func add(identity: SubscriberIdentity, peer: String) -> String {
        let id = "s\(counter.add(1, ordering: .relaxed).newValue)"
        let record = Record(id: id, identity: identity, peer: peer, connectedSinceMilliseconds: Self.nowMilliseconds())
        records.withLock { $0[id] = record }
        return id
    }

    public func remove(_ id: String) {
        _ = records.withLock { $0.removeValue(forKey: id) }
    }

    func sent(_ id: String, version: UInt64) {
        records.withLock { records in
            guard var record = records[id] else { return }
            if record.sentVersion > 0, version > record.sentVersion + 1 { record.skippedVersions += version - record.sentVersion - 1 }
            record.sentVersion = version
            records[id] = record
        }
    }

    func acked(_ id: String, version: UInt64) {
        records.withLock { records in
            guard let current = records[id]?.ackedVersion, version > current else { return }
            records[id]?.ackedVersion = version
        }
    }

    func nacked(_ id: String, nonce: String, version: UInt64, errorDetail: String) {
        let nack = Record.Nack(nonce: nonce, version: version, errorDetail: errorDetail, atMilliseconds: Self.nowMilliseconds())
        records.withLock { $0[id]?.lastNack = nack }
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
