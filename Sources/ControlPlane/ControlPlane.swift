import AdminHTTP
import Foundation
import KubeClient
import KubeTypes
import Logging
import SnapshotProtocol
import Translator

/// The control plane, assembled: a source (manifest files or the Kubernetes API) feeding the rebuild
/// loop, the snapshot server its versions go out on, and the admin port (/healthz, /readyz,
/// /metrics); with the Kubernetes API also leader election and the status writer. `portico
/// control-plane` (and through it `portico run`) only configures and starts it.
public final class ControlPlane: Sendable {
    public enum Source: Sendable {
        /// A manifest file or directory, watched for changes.
        case manifests(path: String)
        /// A Kubernetes API server. `namespace`: watch only it (nil: all).
        case kubernetes(KubeClient, Kubernetes)
    }

    /// What a control plane watching a cluster does besides translating.
    public struct Kubernetes: Sendable {
        public var namespace: String?
        /// Namespace and name of the leader-election Lease, and this replica's identity in it.
        public var leaseNamespace: String
        public var leaseName = "portico-leader"
        public var identity: String
        /// Where accepted Ingresses' status.loadBalancer points.
        public var addresses: PublishedAddresses = .none
        /// Keep a CA and the node agents' client certificate in Secrets of `leaseNamespace`, and
        /// serve TCP with mutual TLS.
        public var tlsBootstrap = false

        public init(namespace: String?, leaseNamespace: String, identity: String) {
            self.namespace = namespace
            self.leaseNamespace = leaseNamespace
            self.identity = identity
        }
    }

    /// Where Ingress status points, as `--publish-service` and `--publish-address` say.
    public enum PublishedAddresses: Sendable {
        case none
        case service(namespace: String, name: String)
        case fixed([String])
    }

    public struct Configuration: Sendable {
        public var source: Source
        public var translator = TranslatorConfiguration()
        public var listen: [ServerAddress] = [.unix(path: "/run/portico/control-plane.sock")]
        /// Mutual TLS on TCP listen addresses (unless `Kubernetes.tlsBootstrap` makes it).
        public var tls: SnapshotTLS?
        public var adminHost = "0.0.0.0"
        /// 0: any free port (logged).
        public var adminPort = 10252
        public var maxMessageBytes = 64 << 20
        /// Called after each full translation of a cluster's objects (see
        /// `KubeSource.Options.afterFullTranslation`).
        public var afterFullTranslation: (@Sendable () -> Void)?

        public init(source: Source) { self.source = source }
    }

    /// Why a control plane could not start.
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    public let configuration: Configuration
    public let latest = LatestSnapshot()
    public let diagnostics = DiagnosticsBoard()
    private let logger: Logger

    public init(_ configuration: Configuration, logger: Logger = Logger(label: "portico.control-plane")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs until cancelled or until the snapshot server or the admin port fails (which throws).
    /// A manifest path that cannot be read, or a failed mutual-TLS bootstrap, throws `StartError`
    /// before anything listens.
    public func run() async throws {
        let configuration = configuration
        let logger = logger
        var tls = configuration.tls
        let source: @Sendable () async -> Void
        let sampleSource: @Sendable (inout ControlPlaneMetrics.Sample) -> Void
        switch configuration.source {
        case .manifests(let path):
            let manifests = ManifestSource(path: path, configuration: configuration.translator, latest: latest, diagnostics: diagnostics)
            do {
                try manifests.reload()
            } catch {
                throw StartError(description: "\(error)")
            }
            source = { await manifests.watch() }
            sampleSource = { sample in
                let status = manifests.status
                sample.rebuilds = status.rebuilds
                sample.rebuildSeconds = status.rebuildSeconds
            }
        case .kubernetes(let client, let cluster):
            logger.info("watching the Kubernetes API", metadata: ["server": "\(client.config.server)", "namespace": "\(cluster.namespace ?? "all")"])
            var options = KubeSource.Options()
            options.namespace = cluster.namespace
            options.afterFullTranslation = configuration.afterFullTranslation
            let kube = KubeSource(client: client, configuration: configuration.translator, latest: latest, diagnostics: diagnostics, options: options)
            let elector = LeaderElector(client: client, namespace: cluster.leaseNamespace, name: cluster.leaseName, identity: cluster.identity)
            let addresses: StatusWriter.Addresses
            switch cluster.addresses {
            case .none: addresses = .none
            case .fixed(let list): addresses = .fixed(list)
            case .service(let namespace, let name):
                addresses = .service(Informer<Service>(client: client, namespace: namespace, fieldSelector: "metadata.name=\(name)"))
            }
            if cluster.tlsBootstrap {
                do {
                    tls = try await MTLSBootstrap.run(client: client, namespace: cluster.leaseNamespace)
                } catch {
                    throw StartError(description: "mutual TLS bootstrap failed: \(error)")
                }
            }
            let writer = StatusWriter(client: client, ingresses: kube.ingresses, addresses: addresses, elector: elector, instance: cluster.identity)
            kube.observe { writer.translated($0) }
            sampleSource = { sample in
                let status = kube.status
                sample.rebuilds = status.rebuilds
                sample.rebuildSeconds = status.rebuildSeconds
                let watching = kube.watchStatistics
                sample.watches = watching.watches
                sample.relists = watching.relists
                sample.watchErrors = watching.errors
                sample.leader = elector.isLeader
                sample.incrementalRebuilds = status.incrementalRebuilds
                sample.incrementalMismatches = status.incrementalMismatches
                sample.verifications = status.verifications
                sample.verificationSeconds = status.verificationSeconds
            }
            source = {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await kube.run() }
                    group.addTask { await elector.run { _ in writer.poke() } }
                    group.addTask { await writer.run() }
                }
                await client.shutdown()
            }
        }
        let registry = SubscriberRegistry()
        let server = SnapshotServer(
            service: SnapshotService(latest: latest, registry: registry, diagnostics: diagnostics, maxMessageBytes: configuration.maxMessageBytes),
            addresses: configuration.listen, tls: tls, owner: "control plane")
        if tls == nil, configuration.listen.contains(where: { if case .tcp = $0 { true } else { false } }) {
            logger.warning("snapshots on TCP are served in plaintext, private keys included; use --tls-bootstrap or the --tls-* files")
        }
        let admin = adminServer(registry: registry, sampleSource: sampleSource)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            group.addTask { await source() }
            group.addTask {
                try await admin.run { port in logger.info("admin listening", metadata: ["address": "\(configuration.adminHost):\(port)"]) }
            }
            // The first task to finish (cancellation, or the server failing) stops the others.
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    private func adminServer(registry: SubscriberRegistry, sampleSource: @escaping @Sendable (inout ControlPlaneMetrics.Sample) -> Void) -> AdminServer {
        let latest = latest
        let diagnostics = diagnostics
        return AdminServer(
            host: configuration.adminHost, port: configuration.adminPort, owner: "control plane admin server",
            routes: [
                "/healthz": { .init(.ok, "ok\n") },
                "/readyz": {
                    guard let current = latest.current else { return .init(.serviceUnavailable, "not ready: no table published yet\n") }
                    return .init(.ok, "ready: serving version \(current.version)\n")
                },
                "/metrics": {
                    var sample = ControlPlaneMetrics.Sample()
                    sample.version = latest.current?.version ?? 0
                    for record in registry.all { sample.subscribers[record.identity.kind, default: 0] += 1 }
                    sample.nacks = registry.nacksTotal
                    let current = diagnostics.diagnostics
                    for rejection in current.rejections { sample.rejections[rejection.reason, default: 0] += 1 }
                    for use in current.annotations { sample.annotations[use.status, default: 0] += 1 }
                    sampleSource(&sample)
                    return .init(.ok, ControlPlaneMetrics.render(sample), contentType: "text/plain; version=0.0.4; charset=utf-8")
                },
            ])
    }
}
