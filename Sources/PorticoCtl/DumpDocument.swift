import KubeTypes
import Manifests
import RouteModel
import SnapshotProtocol
import Translator

/// What `porticoctl dump` shows: the route table, with certificate metadata only (never keys),
/// plus the rejections and manifest errors that explain what is missing from it.
public struct DumpDocument: Codable, Sendable, Equatable {
    /// Where the table came from: `manifests:PATH`, or a server address.
    public var source: String
    /// The snapshot version; absent offline.
    public var version: UInt64?
    public var contentHash: String
    public var summary: Summary
    public var virtualHosts: [VirtualHostEntry]
    public var clusters: [ClusterEntry]
    public var certificates: [CertificateEntry]
    public var rejections: [RejectionEntry]
    /// Each `nginx.ingress.kubernetes.io/` and `portico.io/` annotation of our Ingresses and its status.
    public var annotations: [AnnotationEntry] = []
    public var manifestErrors: [String]
    /// Who is subscribed and what each has applied; only from a live server.
    public var subscribers: [SubscriberEntry]?

    public struct Summary: Codable, Sendable, Equatable {
        public var virtualHosts: Int
        public var routes: Int
        public var clusters: Int
        public var endpoints: Int
        public var certificates: Int
        public var acceptedIngresses: Int
        public var rejectedIngresses: Int
        public var ignoredIngresses: Int
    }

    public struct VirtualHostEntry: Codable, Sendable, Equatable {
        public var host: String
        /// `namespace/secret`, or `default` for the default certificate; absent without TLS.
        public var certificate: String?
        public var routes: [RouteEntry]
        public var defaultBackend: BackendEntry?
    }

    public struct RouteEntry: Codable, Sendable, Equatable {
        public var pathType: String
        public var path: String
        public var backend: BackendEntry
    }

    public struct BackendEntry: Codable, Sendable, Equatable {
        public var namespace: String
        public var ingress: String
        public var service: String
        public var servicePort: PortValue
        public var cluster: String
        public var httpsRedirect: Bool
        public var endpoints: [String]
    }

    public struct ClusterEntry: Codable, Sendable, Equatable {
        public var name: String
        public var namespace: String
        public var service: String
        public var servicePort: PortValue
        public var endpoints: [String]
    }

    public struct CertificateEntry: Codable, Sendable, Equatable {
        public var name: String
        public var subject: String
        public var issuer: String
        public var dnsNames: [String]
        public var serialNumber: String
        public var notBefore: String
        public var notAfter: String
        public var hosts: [String]
    }

    public struct SubscriberEntry: Codable, Sendable, Equatable {
        public var id: String
        public var node: String
        public var worker: String
        /// node-agent, worker or debugger.
        public var kind: String
        public var peer: String
        public var connectedSince: String
        public var sentVersion: UInt64
        public var ackedVersion: UInt64
        /// Versions sent as deltas rather than whole tables.
        public var deltasSent: UInt64
        /// Versions behind the server's current one (0 when up to date).
        public var lag: UInt64
        public var lastNack: NackEntry?
        /// For a worker a node agent reported: the agent's subscriber id, the process and its restarts.
        public var relayedBy: String?
        public var pid: UInt32?
        public var restarts: UInt32?
    }

    public struct NackEntry: Codable, Sendable, Equatable {
        public var version: UInt64
        public var nonce: String
        public var error: String
        public var at: String
    }

    public struct AnnotationEntry: Codable, Sendable, Equatable {
        public var object: String
        public var key: String
        /// supported, supported-with-difference, unsupported, invalid, unknown or shadowed.
        public var status: String
        public var message: String
    }

    public struct RejectionEntry: Codable, Sendable, Equatable {
        public var object: String
        public var reason: String
        public var effect: String
        public var field: String?
        public var message: String
        /// `file: document N (line L)` for objects loaded from manifests.
        public var location: String?
    }
}

/// A Service port as JSON shows it: a number, or a name.
public enum PortValue: Codable, Sendable, Equatable, CustomStringConvertible {
    case number(Int)
    case name(String)

    public init(_ reference: ServicePortReference) {
        switch reference {
        case .number(let number): self = .number(number)
        case .name(let name): self = .name(name)
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) { self = .number(number) } else { self = .name(try container.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .number(let number): try container.encode(number)
        case .name(let name): try container.encode(name)
        }
    }

    public var description: String {
        switch self {
        case .number(let number): String(number)
        case .name(let name): name
        }
    }
}

extension DumpDocument {
    public init(
        source: String, version: UInt64? = nil, table: RouteTable, rejections: [Rejection] = [], annotations: [AnnotationUse] = [],
        accepted: Int = 0, rejected: Int = 0, ignored: Int = 0,
        locations: [ObjectRef: ManifestLocation] = [:], manifestErrors: [ManifestError] = []
    ) {
        func backend(_ backend: Backend) -> BackendEntry {
            let cluster = table.cluster(named: backend.cluster)
            return BackendEntry(
                namespace: backend.source.namespace, ingress: backend.source.ingress, service: cluster?.service ?? "",
                servicePort: cluster.map { PortValue($0.servicePort) } ?? .name(""), cluster: backend.cluster,
                httpsRedirect: backend.httpsRedirect, endpoints: cluster?.endpoints.map(\.description) ?? [])
        }
        var hostsByCertificate: [String: [String]] = [:]
        let virtualHosts = table.virtualHosts.map { host in
            if let certificate = host.tls?.certificate { hostsByCertificate[certificate, default: []].append(host.hostname.text) }
            return VirtualHostEntry(
                host: host.hostname.text, certificate: host.tls.map { $0.certificate ?? "default" },
                routes: host.routes.map { RouteEntry(pathType: $0.match.kind.rawValue, path: $0.match.path, backend: backend($0.backend)) },
                defaultBackend: host.defaultBackend.map(backend))
        }
        self.init(
            source: source, version: version, contentHash: table.contentHashHex,
            summary: Summary(
                virtualHosts: table.virtualHosts.count, routes: table.routeCount, clusters: table.clusters.count,
                endpoints: table.clusters.reduce(0) { $0 + $1.endpoints.count }, certificates: table.certificates.count,
                acceptedIngresses: accepted, rejectedIngresses: rejected, ignoredIngresses: ignored),
            virtualHosts: virtualHosts,
            clusters: table.clusters.map {
                ClusterEntry(
                    name: $0.name, namespace: $0.namespace, service: $0.service, servicePort: PortValue($0.servicePort),
                    endpoints: $0.endpoints.map(\.description))
            },
            certificates: table.certificates.map {
                CertificateEntry(
                    name: $0.name, subject: $0.metadata.subject, issuer: $0.metadata.issuer, dnsNames: $0.metadata.dnsNames,
                    serialNumber: $0.metadata.serialNumber,
                    notBefore: KubeTime(secondsSinceEpoch: $0.metadata.notBefore).text,
                    notAfter: KubeTime(secondsSinceEpoch: $0.metadata.notAfter).text,
                    hosts: hostsByCertificate[$0.name] ?? [])
            },
            rejections: rejections.map {
                RejectionEntry(
                    object: $0.object.description, reason: $0.reason.rawValue, effect: $0.effect.rawValue, field: $0.field,
                    message: $0.message, location: locations[$0.object]?.description)
            },
            annotations: annotations.map {
                AnnotationEntry(object: $0.object.description, key: $0.key, status: $0.status.rawValue, message: $0.message)
            },
            manifestErrors: manifestErrors.map(\.description), subscribers: nil)
    }

    /// An offline dump of a translated manifest set.
    public init(manifests path: String, set: ManifestSet, translation: Translation) {
        self.init(
            source: "manifests:\(path)", table: translation.table, rejections: translation.rejections, annotations: translation.annotations,
            accepted: translation.acceptedIngresses.count, rejected: translation.rejectedIngresses.count,
            ignored: translation.ignoredIngresses.count, locations: set.locations, manifestErrors: set.errors)
    }

    /// A live server's dump. The hash is the server's (its table still had its keys).
    public init(server: ServerAddress, response: Portico_V1_DumpResponse, table: RouteTable) {
        let diagnostics = response.diagnostics
        self.init(
            source: "\(server)", version: response.snapshot.version, table: table,
            accepted: Int(diagnostics.acceptedIngresses), rejected: Int(diagnostics.rejectedIngresses),
            ignored: Int(diagnostics.ignoredIngresses))
        rejections = diagnostics.rejections.map {
            RejectionEntry(
                object: $0.object, reason: $0.reason, effect: $0.effect, field: $0.field.isEmpty ? nil : $0.field, message: $0.message,
                location: $0.location.isEmpty ? nil : $0.location)
        }
        annotations = diagnostics.annotations.map {
            AnnotationEntry(object: $0.object, key: $0.key, status: $0.status, message: $0.message)
        }
        manifestErrors = diagnostics.sourceErrors
        let hash = String(response.snapshot.contentHash, radix: 16)
        contentHash = String(repeating: "0", count: max(0, 16 - hash.count)) + hash
        let version = response.snapshot.version
        subscribers = response.subscribers.map { status in
            SubscriberEntry(
                id: status.id, node: status.node, worker: status.workerID, kind: Self.kindName(status.kind), peer: status.peer,
                connectedSince: Self.time(milliseconds: status.connectedSinceUnixMs), sentVersion: status.sentVersion,
                ackedVersion: status.ackedVersion, deltasSent: status.deltasSent,
                lag: version > status.ackedVersion ? version - status.ackedVersion : 0,
                lastNack: status.hasLastNack
                    ? NackEntry(
                        version: status.lastNack.version, nonce: status.lastNack.nonce, error: status.lastNack.errorDetail,
                        at: Self.time(milliseconds: status.lastNack.atUnixMs)) : nil,
                relayedBy: status.relayedBy.isEmpty ? nil : status.relayedBy, pid: status.pid == 0 ? nil : status.pid,
                restarts: status.relayedBy.isEmpty ? nil : status.restarts)
        }
    }

    static func kindName(_ kind: Portico_V1_SubscriberKind) -> String {
        switch kind {
        case .nodeAgent: "node-agent"
        case .worker: "worker"
        case .debugger: "debugger"
        case .unspecified, .UNRECOGNIZED: "unknown"
        }
    }

    static func time(milliseconds: Int64) -> String {
        KubeTime(secondsSinceEpoch: milliseconds / 1000).text
    }
}
