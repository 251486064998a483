import ArgumentParser
import DemoBackend
import Logging

#if canImport(Glibc)
import Glibc
#endif

struct DemoBackendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-backend",
        abstract: "Answer HTTP requests with a Service's name and what arrived: the quickstart's stand-in for Pods.",
        discussion: "`portico run --demo-backends` starts one for the loopback endpoints its manifests name.")

    @Option(name: .customLong("listen"), help: "NAME=HOST:PORT, e.g. default/blog=127.0.0.1:9003. Repeatable.")
    var listeners: [String]

    @Option(help: .hidden)
    var parentPid: Int32?

    func validate() throws {
        guard !listeners.isEmpty else { throw ValidationError("at least one --listen NAME=HOST:PORT") }
        for listener in listeners {
            do { _ = try DemoBackend.Listener(parsing: listener) } catch { throw ValidationError(error.description) }
        }
    }

    func run() async throws {
        bootstrapLogging(level: .info)
        let logger = Logger(label: "portico.demo-backend")
        let backend = DemoBackend(listeners: try listeners.map { try DemoBackend.Listener(parsing: $0) })
        let parentPid = self.parentPid
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await backend.run { bound in
                    for listener in bound { logger.info("demo backend listening", metadata: ["name": "\(listener.name)", "address": "\(listener.host):\(listener.port)"]) }
                }
            }
            group.addTask { _ = await waitForSignal([SIGINT, SIGTERM]) }
            if let parentPid { group.addTask { await waitForParentExit(parentPid) } }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}
