import ArgumentParser
import ControlPlane
import KubeClient
import Foundation
import Logging
import SnapshotProtocol
import Translator

struct ControlPlaneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control-plane",
        abstract: "Compile Ingresses into route tables and serve them as versioned snapshots.",
        discussion: """
            Source: --manifests PATH, a manifest file or directory watched for changes; or the Kubernetes \
            API, through --kubeconfig PATH or, inside a Pod, the service account (--in-cluster, the default \
            when neither is given and KUBERNETES_SERVICE_HOST is set). Every change that alters the compiled \
            table is published as a new version to every subscriber (node agents, \
            workers, porticoctl) on each --listen address: unix:/path/to.sock or HOST:PORT. A Unix \
            socket's directory is created 0700 when missing and the socket is 0600.
            """)

    @Option(help: "A manifest file or directory (YAML or JSON), watched for changes.")
    var manifests: String?

    @Option(help: "Watch a Kubernetes API server, reached with this kubeconfig (its current context).")
    var kubeconfig: String?

    @Option(help: "With --kubeconfig: the context to use instead of the current one.")
    var context: String?

    @Flag(help: "Watch the Kubernetes API server of the cluster this Pod runs in (service account).")
    var inCluster = false

    @Option(help: "With a Kubernetes source: watch only this namespace (IngressClasses are cluster-wide).")
    var watchNamespace: String?

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
        let sources = [manifests != nil, kubeconfig != nil, inCluster].filter { $0 }.count
        guard sources <= 1 else { throw ValidationError("--manifests, --kubeconfig and --in-cluster are alternatives: give one") }
        if sources == 0, ProcessInfo.processInfo.environment["KUBERNETES_SERVICE_HOST"] == nil {
            throw ValidationError("give a source: --manifests PATH, --kubeconfig PATH, or --in-cluster inside a Pod")
        }
        if context != nil, kubeconfig == nil { throw ValidationError("--context goes with --kubeconfig") }
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
        let configuration = TranslatorConfiguration(controllerName: controllerName, ingressClassName: ingressClass)
        let source: @Sendable () async -> Void
        if let manifests {
            let manifestSource = ManifestSource(path: manifests, configuration: configuration, latest: latest, diagnostics: diagnostics)
            do {
                try manifestSource.reload()
            } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode(1)
            }
            source = { await manifestSource.watch() }
        } else {
            let client: KubeClient
            do {
                let config = try kubeconfig.map { path throws(KubeConfigError) in try KubeConfig.load(kubeconfig: path, context: context) }
                    ?? KubeConfig.inCluster()
                client = try KubeClient(config: config)
                logger.info("watching the Kubernetes API", metadata: ["server": "\(config.server)", "namespace": "\(watchNamespace ?? "all")"])
            } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode(1)
            }
            var options = KubeSource.Options()
            options.namespace = watchNamespace
            let kubeSource = KubeSource(client: client, configuration: configuration, latest: latest, diagnostics: diagnostics, options: options)
            source = {
                await kubeSource.run()
                await client.shutdown()
            }
        }
        let server = SnapshotServer(
            service: SnapshotService(latest: latest, diagnostics: diagnostics, maxMessageBytes: maxMessageBytes), addresses: addresses)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            group.addTask { await source() }
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
