import Foundation
import Logging
import RouteModel
import SnapshotProtocol
import Synchronization

/// The node agent's copy of the route table: what it accepted from the control plane (or restored
/// from disk), persisted, and published to its workers.
///
/// Workers get the agent's own versions, which only grow, because the control plane's may not: a
/// restarted control plane or another replica starts again from 1. The agent keeps the control
/// plane's numbers whenever they are ahead of its own (the usual case, so versions read the same on
/// every hop), and otherwise counts on from its own. A table whose content hash equals the one
/// served already is not republished, so a control plane coming back with the same content costs
/// the workers nothing.
public final class SnapshotRelay: Sendable {
    public let latest = LatestSnapshot()
    public let stateFile: SnapshotStateFile
    private let logger: Logger

    private struct State {
        var contentHash: UInt64?
        /// Local version → the upstream version it carries, in this agent's current life.
        var upstreamByLocal: [UInt64: UInt64] = [:]
    }

    private let state = Mutex(State())
    /// The newest snapshot not yet on disk, and whether a writer is at work.
    private typealias PendingSave = (version: UInt64, table: RouteTable, encoded: EncodedSnapshot?)
    private let pendingSave = Mutex<(snapshot: PendingSave?, writing: Bool)>((nil, false))
    private let writeLock = Mutex(())

    /// Saves start at most this often: converting and encoding a 10k-Ingress table takes about
    /// 150 ms of CPU, which endpoint churn would otherwise spend back to back on every node.
    private let minimumSaveInterval: Duration
    /// Called on the saving thread after each background save, whose encoding of the whole table
    /// leaves its size and more free in malloc's arenas.
    private let afterSave: (@Sendable () -> Void)?

    public init(
        stateFile: SnapshotStateFile, minimumSaveInterval: Duration = .seconds(1), logger: Logger = Logger(label: "portico.data-plane"),
        afterSave: (@Sendable () -> Void)? = nil
    ) {
        self.stateFile = stateFile
        self.minimumSaveInterval = minimumSaveInterval
        self.logger = logger
        self.afterSave = afterSave
    }

    /// Publishes the snapshot saved on disk, if there is a usable one. Returns the problem with the
    /// file when there is one, so the caller can report it; the agent then waits for the control plane.
    @discardableResult
    public func restore() -> String? {
        switch stateFile.load() {
        case .missing:
            logger.info("no saved snapshot; waiting for the control plane", metadata: ["file": "\(stateFile.path)"])
            return nil
        case .unusable(let problem):
            logger.error("\(problem); ignoring it and waiting for the control plane")
            return problem
        case .snapshot(let version, let table):
            state.withLock { $0.contentHash = table.contentHash }
            latest.publish(version: version, table: table)
            logger.info(
                "serving the saved snapshot until the control plane answers",
                metadata: ["file": "\(stateFile.path)", "version": "\(version)", "hash": "\(table.contentHashHex)"])
            return nil
        }
    }

    /// Accepts a snapshot from upstream and publishes it when its content is new; it is saved to
    /// disk right after, off the path to the workers (encoding and fsync of a 10k-Ingress table took
    /// 100 ms). A failure to save is logged, not thrown: serving the new table matters more.
    public func accept(_ received: ReceivedSnapshot) {
        let table = received.table
        let decision = state.withLock { state -> (local: UInt64, isNew: Bool, relaysDelta: Bool) in
            let current = latest.current?.version ?? 0
            if state.contentHash == table.contentHash {
                state.upstreamByLocal[current] = received.version
                return (current, false, false)
            }
            // The delta came from the upstream version the current local one carries: it turns the
            // current table into this one, and is passed on as it is.
            let relaysDelta = received.delta.map { current > 0 && state.upstreamByLocal[current] == $0.base } ?? false
            let local = received.version > current ? received.version : current + 1
            state.contentHash = table.contentHash
            state.upstreamByLocal[local] = received.version
            if state.upstreamByLocal.count > 64, let oldest = state.upstreamByLocal.keys.min() {
                state.upstreamByLocal[oldest] = nil
            }
            return (local, true, relaysDelta)
        }
        guard decision.isNew else { return }
        // A delta arrives without the whole message: the workers get a delta too (the one received,
        // when it starts from the table they have), and the whole message is encoded only for the
        // disk (in the background) and for a worker that needs the whole table. A whole snapshot's
        // bytes go on as they came.
        if decision.relaysDelta, let delta = received.delta {
            latest.publish(version: decision.local, table: table, changes: delta.changes)
        } else {
            latest.publish(version: decision.local, table: table, encoded: received.encoded)
        }
        save(version: decision.local, table: table, encoded: received.encoded)
        logger.info(
            "relaying snapshot",
            metadata: ["version": "\(decision.local)", "upstream-version": "\(received.version)", "hash": "\(table.contentHashHex)"])
    }

    /// Passes a whole snapshot on before it is decoded, when it is the agent's first table (nothing
    /// restored from disk, nothing received yet): the workers decode it while the agent does, at low
    /// priority, instead of after it (at 100k Ingresses the agent's decode took half a second on
    /// the first table's way). Later snapshots are decoded first, so that workers holding a table
    /// get the delta to the new one. Returns what to call with the decoded table, or nil when the
    /// snapshot is to be decoded and `accept`ed as usual.
    ///
    /// A snapshot the decode refuses was passed on all the same; the workers refuse it too (they
    /// decode with the same checks) and keep serving nothing, as they would have without it. The
    /// agent's version then holds an empty table, and the next snapshot is published as new.
    public func forward(_ undecoded: UndecodedSnapshot) -> (@Sendable (RouteTable?) -> Void)? {
        let encoded = undecoded.encoded
        // The bytes carry their own version: passed on as they are, they must be the local one too.
        guard encoded.version == undecoded.version, encoded.version > 0 else { return nil }
        let pending = state.withLock { state -> PendingTable? in
            guard latest.current == nil, state.contentHash == nil else { return nil }
            state.contentHash = undecoded.contentHash
            state.upstreamByLocal[encoded.version] = undecoded.version
            return latest.publish(undecoded: encoded)
        }
        guard let pending else { return nil }
        logger.info(
            "relaying the first snapshot before decoding it",
            metadata: ["version": "\(encoded.version)", "hash": "\(String(undecoded.contentHash, radix: 16))"])
        return { [self] table in
            guard let table else {
                state.withLock { $0.contentHash = nil }
                pending.fulfil(.empty)
                return
            }
            pending.fulfil(table)
            save(version: encoded.version, table: table, encoded: encoded)
        }
    }

    /// Saves the table in the background; while a save runs or the interval since the last one has
    /// not passed, only the newest one waits.
    private func save(version: UInt64, table: RouteTable, encoded: EncodedSnapshot?) {
        let start = pendingSave.withLock { pending -> Bool in
            pending.snapshot = (version, table, encoded)
            guard !pending.writing else { return false }
            pending.writing = true
            return true
        }
        guard start else { return }
        Task.detached { [self] in
            var lastStart: ContinuousClock.Instant?
            while true {
                // Taken after the wait, so that the newest table is the one saved.
                if let lastStart { try? await Task.sleep(until: lastStart + minimumSaveInterval, clock: .continuous) }
                lastStart = ContinuousClock.now
                // Taken under the write lock, so that `finishSaving` never finds nothing pending
                // while this write has yet to happen.
                // At nice 19: saving encodes the whole table (about 150 ms of CPU at 10k Ingresses,
                // once a second at most); at normal priority it competed with relaying the next
                // change and with the workers applying it.
                let wrote = await LowPriorityThread.run {
                    let wrote = self.writeLock.withLock { _ -> Bool in
                        guard let next = self.takePendingSave(finishingWhenNone: true) else { return false }
                        self.write(next)
                        return true
                    }
                    if wrote { self.afterSave?() }
                    return wrote
                }
                guard wrote else { return }
            }
        }
    }

    /// Writes the snapshot still waiting for its turn, if any, at once, and returns once every
    /// snapshot accepted so far is on disk (a write in progress is waited for): when the agent stops.
    public func finishSaving() {
        writeLock.withLock { _ in
            if let pending = takePendingSave(finishingWhenNone: false) { write(pending) }
        }
    }

    /// The snapshot waiting to be saved, taken; with none waiting, the background saver may be
    /// marked done (`finishingWhenNone`).
    private func takePendingSave(finishingWhenNone: Bool) -> PendingSave? {
        pendingSave.withLock { pending in
            defer { pending.snapshot = nil }
            if pending.snapshot == nil, finishingWhenNone { pending.writing = false }
            return pending.snapshot
        }
    }

    /// Called under `writeLock`: one writer at a time, as the background saver and `finishSaving`
    /// share the temporary file.
    private func write(_ next: PendingSave) {
        do {
            if let encoded = next.encoded, encoded.version == next.version {
                try stateFile.save(encoded: encoded.bytes)
            } else {
                try stateFile.save(version: next.version, table: next.table)
            }
        } catch {
            logger.error("cannot save the snapshot; a restart without the control plane would serve an older one", metadata: ["error": "\(error)"])
        }
    }

    /// The upstream version that local `version` carries; 0 when unknown (a table from disk, before
    /// the control plane sent the same content).
    public func upstreamVersion(forLocal version: UInt64) -> UInt64 {
        guard version > 0 else { return 0 }
        return state.withLock { $0.upstreamByLocal[version] ?? 0 }
    }
}
