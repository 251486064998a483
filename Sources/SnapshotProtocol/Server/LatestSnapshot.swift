import RouteModel
import Synchronization

/// One published version: the table, and its wire form encoded once for every subscriber.
public struct PublishedSnapshot: Sendable {
    public let version: UInt64
    public let table: RouteTable
    /// A serialised `WatchResponse` with `version` and `snapshot` (private keys included) but no
    /// nonce. Protobuf fields may come in any order, so each subscriber's response is these bytes
    /// followed by its own nonce field: encoding a 10k-Ingress table once instead of once per
    /// subscriber took fan-out to 100 subscribers from seconds to milliseconds of server time.
    let encodedResponse: [UInt8]

    init(version: UInt64, table: RouteTable, snapshot: Portico_V1_Snapshot) {
        self.version = version
        self.table = table
        var response = Portico_V1_WatchResponse()
        response.version = version
        response.snapshot = snapshot
        // Serialising a message that holds only set, valid fields cannot fail.
        self.encodedResponse = (try? response.serializedBytes()) ?? []
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

    /// Publishes `table` as `version`, which must be newer than the current one.
    public func publish(version: UInt64, table: RouteTable) {
        publish(PublishedSnapshot(version: version, table: table, snapshot: Portico_V1_Snapshot(version: version, table: table)))
    }

    /// Publishes `table` as `version` from the message it was decoded from (a relay's case), which
    /// must carry that table: converting 10k Ingresses back to protobuf took 80 ms.
    public func publish(version: UInt64, table: RouteTable, message: Portico_V1_Snapshot) {
        var snapshot = message
        snapshot.version = version
        publish(PublishedSnapshot(version: version, table: table, snapshot: snapshot))
    }

    /// For tests of subscribers' checks: a snapshot whose content hash does not match its table.
    package func publishCorrupted(version: UInt64, table: RouteTable) {
        var snapshot = Portico_V1_Snapshot(version: version, table: table)
        snapshot.contentHash &+= 1
        publish(PublishedSnapshot(version: version, table: table, snapshot: snapshot))
    }

    private func publish(_ published: PublishedSnapshot) {
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
