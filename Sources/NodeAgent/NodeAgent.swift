import AdminHTTP
import Logging
import RouteModel
import SnapshotProtocol
import Synchronization

/// The node agent (`portico data-plane`): one subscription to the control plane, the last good
/// snapshot on disk, N supervised worker processes, and the same Snapshots service relayed to them
/// on a node-local Unix socket.
///
/// Static stability: the saved snapshot is served at start, before and without the control plane.
/// Upstream, the agent reports each worker's state, so the control plane's `Dump` shows the whole
/// fleet. On cancellation it stops its workers (they drain) and returns once they have exited.
public final class NodeAgent: Sendable {
    public struct Configuration: Sendable {
        public var controlPlane: ServerAddress
        public var node: String
        public var stateDirectory: String
        /// Holds `data-plane.sock`; created 0700, the socket is 0600.
        public var socketDirectory: String
        public var adminHost = "0.0.0.0"
        public var adminPort = 10254
        public var workers: WorkerSupervisor.Configuration
        public var upstreamBackoff = Backoff()
        /// Mutual TLS to a TCP control plane.
        public var tls: SnapshotTLS?
        /// Called after each save of the state file, on the saving thread (nice 19): the save
        /// encodes the whole table, and by then a whole snapshot's decode is garbage too; each
        /// leaves several times the table's size free in malloc's arenas. `portico data-plane`
        /// hands the memory back here.
        public var releaseFreedMemory: (@Sendable () -> Void)?

        public init(
            controlPlane: ServerAddress, node: String, stateDirectory: String, socketDirectory: String,
            workers: WorkerSupervisor.Configuration
        ) {
            self.controlPlane = controlPlane
            self.node = node
            self.stateDirectory = stateDirectory
            self.socketDirectory = socketDirectory
            self.workers = workers
        }

        public var socketPath: String { Self.socketPath(in: socketDirectory) }

        /// Where worker `slot` serves its metrics (`portico worker --metrics-socket`).
        public func metricsSocket(slot: Int) -> String { Self.metricsSocketPath(in: socketDirectory, slot: slot) }

        public static func metricsSocketPath(in directory: String, slot: Int) -> String {
            (directory.hasSuffix("/") ? directory : directory + "/") + "worker-\(slot).metrics.sock"
        }

        public static func socketPath(in directory: String) -> String {
            directory.hasSuffix("/") ? directory + "data-plane.sock" : directory + "/data-plane.sock"
        }
    }

    public let configuration: Configuration
    public let relay: SnapshotRelay
    public let registry = SubscriberRegistry()
    public let supervisor: WorkerSupervisor
    public let upstream: SnapshotSubscriber
    private let logger: Logger
    private let adminPortBox = Atomic<Int>(0)

    public init(configuration: Configuration, logger: Logger = Logger(label: "portico.data-plane")) {
        var logger = logger
        logger[metadataKey: "node"] = "\(configuration.node)"
        self.configuration = configuration
        self.logger = logger
        self.relay = SnapshotRelay(
            stateFile: SnapshotStateFile(directory: configuration.stateDirectory), logger: logger, afterSave: configuration.releaseFreedMemory)
        self.supervisor = WorkerSupervisor(configuration: configuration.workers, logger: logger)
        self.upstream = SnapshotSubscriber(
            address: configuration.controlPlane, identity: SubscriberIdentity(node: configuration.node, kind: .nodeAgent),
            backoff: configuration.upstreamBackoff, tls: configuration.tls, keepsEncodedSnapshots: true, logger: logger)
    }

    /// The bound admin port once listening.
    public var adminPort: Int { adminPortBox.load(ordering: .relaxed) }

    /// Ready when every worker slot has a connected worker that applied a snapshot.
    public var readiness: (ready: Bool, detail: String) {
        let workers = workerReports()
        let serving = workers.filter { $0.ackedVersion > 0 || $0.localAckedVersion > 0 }
        let version = relay.latest.current?.version ?? 0
        let summary = "\(serving.count)/\(workers.count) workers have applied a snapshot; the agent holds version \(version)"
        return (serving.count == workers.count, summary)
    }

    public func run(onAdminListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        try makePrivateDirectory(configuration.stateDirectory)
        relay.restore()
        // The newest table is on disk when the agent stops, whatever stops it.
        defer { relay.finishSaving() }
        let server = SnapshotServer(
            service: SnapshotService(latest: relay.latest, registry: registry, logger: logger),
            addresses: [.unix(path: configuration.socketPath)], owner: "node agent", logger: logger)
        let admin = AdminServer(
            host: configuration.adminHost, port: configuration.adminPort, owner: "node agent admin server",
            routes: [
                "/healthz": { .init(.ok, "ok\n") },
                "/readyz": { [self] in
                    let (ready, detail) = readiness
                    return .init(ready ? .ok : .serviceUnavailable, (ready ? "ready: " : "not ready: ") + detail + "\n")
                },
                "/metrics": { [self] in
                    .init(.ok, await metrics(), contentType: "text/plain; version=0.0.4; charset=utf-8")
                },
            ])
        let supervisor = self.supervisor
        let logger = self.logger
        try await withThrowingTaskGroup(of: Void.self) { services in
            // A service that fails stops the workers, which ends the agent with that error.
            func service(_ name: String, _ body: @escaping @Sendable () async throws -> Void) {
                services.addTask {
                    do {
                        try await body()
                    } catch where !Task.isCancelled {
                        logger.error("\(name) failed; stopping", metadata: ["error": "\(error)"])
                        supervisor.stop()
                        throw error
                    } catch {
                        // Cancelled: the agent is stopping.
                    }
                }
            }
            service("snapshot server") { try await server.run() }
            service("admin server") {
                try await admin.run { port in
                    self.adminPortBox.store(port, ordering: .relaxed)
                    logger.info("admin listening", metadata: ["address": "\(self.configuration.adminHost):\(port)"])
                    onAdminListening(port)
                }
            }
            service("upstream subscription") { await self.upstream.run(forward: { self.relay.forward($0) }) { self.relay.accept($0) } }
            service("worker reports") { try await self.reportWorkers() }
            await supervisor.run()
            services.cancelAll()
            try await services.waitForAll()
        }
        logger.info("node agent stopped")
    }

    /// Every worker's metrics (scraped over its Unix socket, labelled `worker`), then the agent's own.
    /// A worker that does not answer (restarting) is left out of this scrape.
    public func metrics() async -> String {
        let slots = supervisor.workers.map(\.slot)
        let scraped = await withTaskGroup(of: (Int, String?).self) { group in
            for slot in slots {
                let socket = configuration.metricsSocket(slot: slot)
                group.addTask { (slot, try? await AdminClient.get(unixSocket: socket, path: "/metrics")) }
            }
            var results: [(Int, String?)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }
        }
        var sources = scraped.compactMap { slot, text in text.map { (label: (name: "worker", value: String(slot)), text: $0) } }
        let reports = workerReports()
        var own = "# HELP portico_agent_snapshot_version Version the node agent relays to its workers.\n"
        own += "# TYPE portico_agent_snapshot_version gauge\nportico_agent_snapshot_version \(relay.latest.current?.version ?? 0)\n"
        own += "# HELP portico_agent_workers_ready Workers that applied a snapshot.\n# TYPE portico_agent_workers_ready gauge\n"
        own += "portico_agent_workers_ready \(reports.filter { $0.localAckedVersion > 0 }.count)\n"
        own += "# HELP portico_agent_worker_restarts_total Restarts of each worker slot.\n# TYPE portico_agent_worker_restarts_total counter\n"
        for report in reports { own += "portico_agent_worker_restarts_total{worker=\"\(report.status.workerID)\"} \(report.status.restarts)\n" }
        sources.append((label: (name: "node", value: configuration.node), text: own))
        return MetricsMerger.merge(sources)
    }

    /// A worker slot's state: the supervisor's view joined with the relay server's.
    public struct WorkerReport: Sendable, Equatable {
        public var status: Portico_V1_SubscriberStatus
        /// The version in the agent's own numbering (`status` carries upstream versions).
        public var localAckedVersion: UInt64
        public var ackedVersion: UInt64 { status.ackedVersion }
    }

    public func workerReports() -> [WorkerReport] {
        let records = registry.all.filter { $0.identity.kind == .worker }
        return supervisor.workers.map { slot in
            var status = Portico_V1_SubscriberStatus()
            status.id = "w\(slot.slot)"
            status.node = configuration.node
            status.workerID = String(slot.slot)
            status.kind = .worker
            status.pid = UInt32(max(slot.pid, 0))
            status.restarts = UInt32(slot.restarts)
            var local: UInt64 = 0
            // The newest connection of this slot's worker (an old one may linger for a moment).
            if let record = records.filter({ $0.identity.workerID == String(slot.slot) }).max(by: { $0.connectedSinceMilliseconds < $1.connectedSinceMilliseconds }) {
                status.peer = record.peer
                status.connectedSinceUnixMs = record.connectedSinceMilliseconds
                status.sentVersion = relay.upstreamVersion(forLocal: record.sentVersion)
                status.ackedVersion = relay.upstreamVersion(forLocal: record.ackedVersion)
                status.deltasSent = record.deltasSent
                if let timing = record.ackedTiming { status.ackedTiming = timing }
                if let roundTrip = record.ackRoundTrip { status.ackRoundTripMicros = roundTrip.microseconds }
                local = record.ackedVersion
                if let nack = record.lastNack {
                    status.lastNack.nonce = nack.nonce
                    status.lastNack.version = relay.upstreamVersion(forLocal: nack.version)
                    status.lastNack.errorDetail = nack.errorDetail
                    status.lastNack.atUnixMs = nack.atMilliseconds
                }
            }
            return WorkerReport(status: status, localAckedVersion: local)
        }
    }

    /// Sends the workers' state upstream whenever it changes: at once when a worker connects, ACKs,
    /// NACKs or leaves, and at least every second for what the supervisor alone knows (pids, restarts).
    private func reportWorkers() async throws {
        var last: [Portico_V1_SubscriberStatus] = []
        await withThrowingTaskGroup(of: Void.self) { group in
            let (ticks, tick) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            group.addTask { [registry] in
                for await _ in registry.changed { tick.yield() }
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: .seconds(1))
                    tick.yield()
                }
            }
            tick.yield()
            for await _ in ticks {
                let current = workerReports().map(\.status)
                if current != last {
                    upstream.report(workers: current)
                    last = current
                }
            }
        }
    }
}
