import ArgumentParser
import ControlPlane
import KubeTypes
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

    @Option(help: "Namespace of the leader-election Lease and the --tls-bootstrap Secrets (default: the Pod's or context's namespace, else default).")
    var leaderElectionNamespace: String?

    @Option(help: "Name of the leader-election Lease.")
    var leaderElectionId: String = "portico-leader"

    @Option(help: "This replica's identity in the Lease (default: $POD_NAME, else the host name).")
    var identity: String = ProcessInfo.processInfo.environment["POD_NAME"] ?? ProcessInfo.processInfo.hostName

    @OptionGroup var ingresses: IngressOptions

    @Option(name: .customLong("listen"), help: "Where to serve snapshots: unix:/path or HOST:PORT. Repeatable.")
    var listen: [String] = ["unix:/run/portico/control-plane.sock"]

    @Option(help: "PEM certificate for mutual TLS on TCP --listen addresses (with --tls-key and --tls-client-ca).")
    var tlsCertificate: String?

    @Option(help: "PEM private key of --tls-certificate.")
    var tlsKey: String?

    @Option(help: "PEM CA whose client certificates (node agents') are accepted.")
    var tlsClientCa: String?

    @Flag(help: "In a cluster: keep a CA and the node agents' client certificate in Secrets of this namespace (portico-ca, portico-data-plane-tls), made when missing, and serve TCP with mutual TLS.")
    var tlsBootstrap = false

    @Option(help: "The admin port: /healthz, and /readyz once a first table is published (0: any free port, logged).")
    var adminPort: Int = 10252

    @Option(help: "The address the admin port binds.")
    var adminBind: String = "0.0.0.0"

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
        if manifests != nil { try ingresses.validateWithoutCluster() }
        for address in listen {
            do { _ = try ServerAddress(parsing: address) } catch { throw ValidationError(error.description) }
        }
        let tlsFiles = [tlsCertificate, tlsKey, tlsClientCa].compactMap { $0 }.count
        guard tlsFiles == 0 || tlsFiles == 3 else { throw ValidationError("--tls-certificate, --tls-key and --tls-client-ca go together") }
        if tlsBootstrap, tlsFiles > 0 { throw ValidationError("--tls-bootstrap and the --tls-* files are alternatives") }
        if tlsBootstrap, manifests != nil { throw ValidationError("--tls-bootstrap keeps its certificates in the cluster: it needs --kubeconfig or --in-cluster") }
        guard (0...65535).contains(adminPort) else { throw ValidationError("--admin-port must be from 0 to 65535") }
        guard maxMessageBytes >= 1024 else { throw ValidationError("--max-message-bytes must be at least 1024") }
    }

    func run() async throws {
        bootstrapLogging(level: logLevel)
        keepFreedMemoryForReuse(largeBlocksFromArenas: true)
        let logger = Logger(label: "portico.control-plane")
        var configuration: ControlPlane.Configuration
        if let manifests {
            configuration = ControlPlane.Configuration(source: .manifests(path: manifests))
        } else {
            let client: KubeClient
            do {
                let config = try kubeconfig.map { path throws(KubeConfigError) in try KubeConfig.load(kubeconfig: path, context: context) }
                    ?? KubeConfig.inCluster()
                client = try KubeClient(config: config)
            } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode(1)
            }
            var cluster = ControlPlane.Kubernetes(
                namespace: ingresses.watchNamespace, leaseNamespace: leaderElectionNamespace ?? client.config.namespace ?? "default",
                identity: identity)
            cluster.leaseName = leaderElectionId
            cluster.tlsBootstrap = tlsBootstrap
            if let publishService = ingresses.publishService {
                let parts = publishService.split(separator: "/").map(String.init)
                cluster.addresses = .service(namespace: parts[0], name: parts[1])
            } else if let publishAddress = ingresses.publishAddress {
                cluster.addresses = .fixed(publishAddress.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
            }
            configuration = ControlPlane.Configuration(source: .kubernetes(client, cluster))
        }
        configuration.translator = TranslatorConfiguration(controllerName: ingresses.controllerName, ingressClassName: ingresses.ingressClass)
        configuration.listen = try listen.map { try ServerAddress(parsing: $0) }
        if let tlsCertificate, let tlsKey, let tlsClientCa {
            do {
                configuration.tls = try SnapshotTLS.load(certificate: tlsCertificate, key: tlsKey, certificateAuthority: tlsClientCa)
            } catch {
                throw ValidationError("\(error)")
            }
        }
        configuration.adminHost = adminBind
        configuration.adminPort = adminPort
        configuration.maxMessageBytes = maxMessageBytes
        configuration.afterFullTranslation = releaseFreedMemory
        let controlPlane = ControlPlane(configuration, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await controlPlane.run()
                } catch let error as ControlPlane.StartError {
                    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                    throw ExitCode(1)
                }
            }
            group.addTask {
                // nil: cancelled, because the control plane ended first.
                if let signal = await waitForSignal([SIGINT, SIGTERM]) { logger.info("stopping", metadata: ["signal": "\(signal)"]) }
            }
            if let parentPid {
                group.addTask {
                    if await waitForParentExit(parentPid) { logger.warning("the parent process is gone; stopping") }
                }
            }
            // The first task to finish (a signal, the parent gone, or the control plane failing) stops the others.
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}

/// Which Ingresses are Portico's and where their status points: taken by `portico control-plane`,
/// and by `portico run`, which passes them on to the control plane it starts (as ingress
/// controller test harnesses start controllers).
struct IngressOptions: ParsableArguments {
    @Option(help: "The IngressClass name Portico serves.")
    var ingressClass: String = TranslatorConfiguration().ingressClassName

    @Option(help: "The controller name matched against IngressClass spec.controller.")
    var controllerName: String = TranslatorConfiguration().controllerName

    @Option(help: "With a Kubernetes source: watch only this namespace (IngressClasses are cluster-wide).")
    var watchNamespace: String?

    @Option(help: "Set accepted Ingresses' status.loadBalancer from this Service (NAMESPACE/NAME): its load balancer, external IPs or cluster IP.")
    var publishService: String?

    @Option(help: "Set accepted Ingresses' status.loadBalancer to these IPs or host names (comma-separated).")
    var publishAddress: String?

    func validate() throws {
        guard publishService == nil || publishAddress == nil else { throw ValidationError("--publish-service and --publish-address are alternatives") }
        if let publishService, publishService.split(separator: "/").count != 2 {
            throw ValidationError("--publish-service takes NAMESPACE/NAME, not \"\(publishService)\"")
        }
    }

    /// With manifest files there is no cluster to watch a namespace of or write status to.
    func validateWithoutCluster() throws {
        if publishService != nil || publishAddress != nil {
            throw ValidationError("--publish-service and --publish-address write Ingress status in a cluster; they need --kubeconfig or --in-cluster")
        }
    }

    /// As the control plane's arguments.
    var arguments: [String] {
        ["--ingress-class", ingressClass, "--controller-name", controllerName]
            + (watchNamespace.map { ["--watch-namespace", $0] } ?? [])
            + (publishService.map { ["--publish-service", $0] } ?? [])
            + (publishAddress.map { ["--publish-address", $0] } ?? [])
    }
}
