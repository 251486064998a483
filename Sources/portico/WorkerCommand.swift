import AdminHTTP
import ArgumentParser
import Foundation
import DataPlane
import Logging
import SnapshotProtocol

#if canImport(Glibc)
import Glibc
#endif

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Proxy HTTP traffic with the route table the control plane (or node agent) sends.",
        discussion: """
            One event loop per process, like an nginx worker. Several workers may share --http-port: the \
            listener uses SO_REUSEPORT and the kernel spreads connections between them. Normally started \
            by the node agent; run by hand for development.
            """)

    @Option(help: "Where to subscribe for snapshots: unix:/path or HOST:PORT.")
    var controlPlane: String

    @Option(help: "The plain-HTTP port (0: any free port, logged at start).")
    var httpPort: Int = 80

    @Option(help: "The address to bind.")
    var bind: String = "0.0.0.0"

    @Option(help: "Listen for TLS on this port (0: any free port, logged at start); plain-HTTP requests for TLS hosts are redirected to it. Without it: no TLS listener, redirects go to 443.")
    var httpsPort: Int?

    @OptionGroup var traffic: WorkerTrafficOptions

    @Option(help: "nio, or native: the experimental epoll engine (plain HTTP/1.1 only: no TLS listener, HTTP/2, upgrades, timeouts, draining, metrics or access log).")
    var engine: Worker.Configuration.Engine = .nio

    @Option(help: "This worker's id, shown by porticoctl.")
    var id: String = "0"

    @Option(help: "The node name, shown by porticoctl.")
    var node: String = "local"

    @Option(help: "Serve Prometheus metrics on this Unix socket (GET /metrics); the node agent scrapes it.")
    var metricsSocket: String?

    @Option(help: .hidden)
    var parentPid: Int32?

    @Option(help: "Once its node agent is gone, seconds to serve on without one before draining (a new agent adopts the worker).")
    var orphanTimeout: Double = 10

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        do { _ = try ServerAddress(parsing: controlPlane) } catch { throw ValidationError(error.description) }
        guard (0...65535).contains(httpPort) else { throw ValidationError("--http-port must be from 0 to 65535") }
        if let httpsPort, !(0...65535).contains(httpsPort) { throw ValidationError("--https-port must be from 0 to 65535") }
        if engine == .native, httpsPort != nil { throw ValidationError("--engine native serves plain HTTP only: leave out --https-port") }
    }

    func run() async throws {
        bootstrapLogging(level: logLevel)
        keepFreedMemoryForReuse()
        var configuration = Worker.Configuration(controlPlane: try ServerAddress(parsing: controlPlane))
        configuration.httpPort = httpPort
        configuration.bindHost = bind
        if let httpsPort {
            configuration.httpsListenPort = httpsPort
            if httpsPort != 0 { configuration.httpsPort = httpsPort }
        }
        try traffic.apply(to: &configuration)
        configuration.workerID = id
        configuration.node = node
        configuration.engine = engine
        configuration.releaseFreedMemory = releaseFreedMemory
        let worker = Worker(configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            if let metricsSocket {
                let server = AdminServer(unixSocket: metricsSocket, owner: "worker \(id) metrics", routes: [
                    "/metrics": { .init(.ok, await worker.exposition(), contentType: "text/plain; version=0.0.4; charset=utf-8") },
                ])
                group.addTask { try await server.run() }
            }
            group.addTask { _ = await waitForSignal([SIGINT, SIGTERM]) }
            if let parentPid {
                group.addTask { [orphanTimeout] in
                    guard await waitForParentExit(parentPid) else { return }
                    // The node agent that started this worker is gone. Serving goes on: a new agent
                    // in the same place adopts the worker, which resubscribes to its socket. With no
                    // agent for `orphanTimeout`, the worker drains and exits.
                    let logger = Logger(label: "portico.worker")
                    logger.warning("the node agent is gone; serving on until a new one takes over", metadata: ["worker": "\(id)"])
                    var lastSubscribed = ContinuousClock.now
                    while true {
                        if worker.isSubscribed { lastSubscribed = ContinuousClock.now }
                        if ContinuousClock.now - lastSubscribed > .seconds(orphanTimeout) { break }
                        do { try await Task.sleep(for: .milliseconds(100)) } catch { return }
                    }
                    logger.warning("no node agent took this worker over; draining", metadata: ["worker": "\(id)"])
                }
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}

extension Worker.Configuration.Engine: ExpressibleByArgument {}
