import ArgumentParser
import ControlPlane
import Foundation
import Logging
import SnapshotProtocol
import Translator

struct ControlPlaneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control-plane",
        abstract: "Compile Ingresses into route tables and serve them as versioned snapshots.",
        discussion: """
            Source: --manifests PATH, a manifest file or directory watched for changes. Every change that \
            alters the compiled table is published as a new version to every subscriber (node agents, \
            workers, porticoctl) on each --listen address: unix:/path/to.sock or HOST:PORT. A Unix \
            socket's directory is created 0700 when missing and the socket is 0600.
            """)

    @Option(help: "A manifest file or directory (YAML or JSON), watched for changes.")
    var manifests: String

    @Option(name: .customLong("listen"), help: "Where to serve snapshots: unix:/path or HOST:PORT. Repeatable.")
    var listen: [String] = ["unix:/run/portico/control-plane.sock"]

    @Option(help: "The IngressClass name Portico serves.")
    var ingressClass: String = TranslatorConfiguration().ingressClassName

    @Option(help: "The controller name matched against IngressClass spec.controller.")
    var controllerName: String = TranslatorConfiguration().controllerName

    @Option(help: "The largest message accepted from a subscriber, in bytes.")
    var maxMessageBytes: Int = 64 << 20

    @Option(help: .hidden)
    var parentPid: Int32?

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        for address in listen {
            do { _ = try ServerAddress(parsing: address) } catch { throw ValidationError(error.description) }
        }
        guard maxMessageBytes >= 1024 else { throw ValidationError("--max-message-bytes must be at least 1024") }
    }

    func run() async throws {
        bootstrapLogging(level: logLevel)
        let logger = Logger(label: "portico.control-plane")
        let addresses = try listen.map { try ServerAddress(parsing: $0) }
        let latest = LatestSnapshot()
        let diagnostics = DiagnosticsBoard()
        let source = ManifestSource(
            path: manifests, configuration: TranslatorConfiguration(controllerName: controllerName, ingressClassName: ingressClass),
            latest: latest, diagnostics: diagnostics)
        do {
            try source.reload()
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let server = SnapshotServer(
            service: SnapshotService(latest: latest, diagnostics: diagnostics, maxMessageBytes: maxMessageBytes), addresses: addresses)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            group.addTask { await source.watch() }
            group.addTask {
                let signal = await waitForSignal([SIGINT, SIGTERM])
                logger.info("stopping", metadata: ["signal": "\(signal ?? 0)"])
            }
            if let parentPid {
                group.addTask {
                    if await waitForParentExit(parentPid) { logger.warning("the parent process is gone; stopping") }
                }
            }
            // The first task to finish (a signal, or the server failing) stops the others.
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}
