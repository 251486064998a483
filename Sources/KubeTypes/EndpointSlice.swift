/// discovery.k8s.io/v1 EndpointSlice.
public struct EndpointSlice: KubeObject {
    public static let kind = "EndpointSlice"
    public static let resource = "endpointslices"
    public static let apiVersion = "discovery.k8s.io/v1"
    /// The label naming the Service a slice belongs to.
    public static let serviceNameLabel = "kubernetes.io/service-name"

    public var metadata: ObjectMeta
    /// `IPv4`, `IPv6` or `FQDN`.
    public var addressType: String
    public var endpoints: [EndpointSliceEndpoint]?
    public var ports: [EndpointSlicePort]?

    public init(
        metadata: ObjectMeta, addressType: String, endpoints: [EndpointSliceEndpoint]? = nil,
        ports: [EndpointSlicePort]? = nil
    ) {
        self.metadata = metadata
        self.addressType = addressType
        self.endpoints = endpoints
        self.ports = ports
    }

    public var serviceName: String? { metadata.label(Self.serviceNameLabel) }
}

public struct EndpointSliceEndpoint: Codable, Sendable, Hashable {
    public var addresses: [String]
    public var conditions: EndpointConditions?
    public var hostname: String?
    public var nodeName: String?
    public var zone: String?
    public var targetRef: ObjectReference?

    public init(
        addresses: [String], conditions: EndpointConditions? = nil, hostname: String? = nil, nodeName: String? = nil,
        zone: String? = nil, targetRef: ObjectReference? = nil
    ) {
        self.addresses = addresses
        self.conditions = conditions
        self.hostname = hostname
        self.nodeName = nodeName
        self.zone = zone
        self.targetRef = targetRef
    }
}

public struct EndpointConditions: Codable, Sendable, Hashable {
    /// Nil means unknown, which consumers treat as ready (API documentation).
    public var ready: Bool?
    public var serving: Bool?
    public var terminating: Bool?

    public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
        self.ready = ready
        self.serving = serving
        self.terminating = terminating
    }
}

public struct EndpointSlicePort: Codable, Sendable, Hashable {
    /// Matches the Service port's name; empty or nil for an unnamed port.
    public var name: String?
    public var port: Int32?
    public var `protocol`: String?
    public var appProtocol: String?

    public init(name: String? = nil, port: Int32? = nil, protocol: String? = nil, appProtocol: String? = nil) {
        self.name = name
        self.port = port
        self.protocol = `protocol`
        self.appProtocol = appProtocol
    }
}

public struct ObjectReference: Codable, Sendable, Hashable {
    public var kind: String?
    public var namespace: String?
    public var name: String?
    public var uid: String?
}
