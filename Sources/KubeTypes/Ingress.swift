/// networking.k8s.io/v1 Ingress.
public struct Ingress: KubeObject {
    public static let kind = "Ingress"
    public static let resource = "ingresses"
    public static let apiVersion = "networking.k8s.io/v1"

    public var metadata: ObjectMeta
    public var spec: IngressSpec?
    public var status: IngressStatus?

    public init(metadata: ObjectMeta, spec: IngressSpec? = nil, status: IngressStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    public static let legacyClassAnnotation = "kubernetes.io/ingress.class"
}

public struct IngressSpec: Codable, Sendable, Hashable {
    public var ingressClassName: String?
    public var defaultBackend: IngressBackend?
    public var tls: [IngressTLS]?
    public var rules: [IngressRule]?

    public init(
        ingressClassName: String? = nil, defaultBackend: IngressBackend? = nil, tls: [IngressTLS]? = nil,
        rules: [IngressRule]? = nil
    ) {
        self.ingressClassName = ingressClassName
        self.defaultBackend = defaultBackend
        self.tls = tls
        self.rules = rules
    }
}

/// Exactly one of `service` and `resource` is set in a valid backend.
public struct IngressBackend: Codable, Sendable, Hashable {
    public var service: IngressServiceBackend?
    public var resource: TypedLocalObjectReference?

    public init(service: IngressServiceBackend? = nil, resource: TypedLocalObjectReference? = nil) {
        self.service = service
        self.resource = resource
    }
}

public struct IngressServiceBackend: Codable, Sendable, Hashable {
    public var name: String
    public var port: ServiceBackendPort?

    public init(name: String, port: ServiceBackendPort?) {
        self.name = name
        self.port = port
    }
}

/// Exactly one of `name` and `number` is set in a valid port.
public struct ServiceBackendPort: Codable, Sendable, Hashable {
    public var name: String?
    public var number: Int32?

    public init(name: String? = nil, number: Int32? = nil) {
        self.name = name
        self.number = number
    }
}

public struct TypedLocalObjectReference: Codable, Sendable, Hashable {
    public var apiGroup: String?
    public var kind: String
    public var name: String

    public init(apiGroup: String? = nil, kind: String, name: String) {
        self.apiGroup = apiGroup
        self.kind = kind
        self.name = name
    }
}

public struct IngressTLS: Codable, Sendable, Hashable {
    public var hosts: [String]?
    public var secretName: String?

    public init(hosts: [String]? = nil, secretName: String? = nil) {
        self.hosts = hosts
        self.secretName = secretName
    }
}

public struct IngressRule: Codable, Sendable, Hashable {
    public var host: String?
    public var http: HTTPIngressRuleValue?

    public init(host: String? = nil, http: HTTPIngressRuleValue? = nil) {
        self.host = host
        self.http = http
    }
}

public struct HTTPIngressRuleValue: Codable, Sendable, Hashable {
    public var paths: [HTTPIngressPath]

    public init(paths: [HTTPIngressPath]) {
        self.paths = paths
    }
}

public struct HTTPIngressPath: Codable, Sendable, Hashable {
    public var path: String?
    /// `Exact`, `Prefix` or `ImplementationSpecific`; kept as text so that an unknown value is
    /// reported against the Ingress rather than failing the whole document.
    public var pathType: String?
    public var backend: IngressBackend

    public init(path: String? = nil, pathType: String? = nil, backend: IngressBackend) {
        self.path = path
        self.pathType = pathType
        self.backend = backend
    }
}

public struct IngressStatus: Codable, Sendable, Hashable {
    public var loadBalancer: IngressLoadBalancerStatus?

    public init(loadBalancer: IngressLoadBalancerStatus? = nil) {
        self.loadBalancer = loadBalancer
    }
}

public struct IngressLoadBalancerStatus: Codable, Sendable, Hashable {
    public var ingress: [IngressLoadBalancerIngress]?

    public init(ingress: [IngressLoadBalancerIngress]? = nil) {
        self.ingress = ingress
    }
}

public struct IngressLoadBalancerIngress: Codable, Sendable, Hashable {
    public var ip: String?
    public var hostname: String?
    public var ports: [IngressPortStatus]?

    public init(ip: String? = nil, hostname: String? = nil, ports: [IngressPortStatus]? = nil) {
        self.ip = ip
        self.hostname = hostname
        self.ports = ports
    }
}

public struct IngressPortStatus: Codable, Sendable, Hashable {
    public var port: Int32
    public var `protocol`: String
    public var error: String?

    public init(port: Int32, protocol: String, error: String? = nil) {
        self.port = port
        self.protocol = `protocol`
        self.error = error
    }
}

/// networking.k8s.io/v1 IngressClass (cluster-scoped).
public struct IngressClass: KubeObject {
    public static let kind = "IngressClass"
    public static let resource = "ingressclasses"
    public static let isNamespaced = false
    public static let apiVersion = "networking.k8s.io/v1"
    public static let isDefaultClassAnnotation = "ingressclass.kubernetes.io/is-default-class"

    public var metadata: ObjectMeta
    public var spec: IngressClassSpec?

    public init(metadata: ObjectMeta, spec: IngressClassSpec? = nil) {
        self.metadata = metadata
        self.spec = spec
    }

    public var ref: ObjectRef { ObjectRef(kind: Self.kind, namespace: "", name: metadata.name) }

    public var isDefaultClass: Bool { metadata.annotation(Self.isDefaultClassAnnotation) == "true" }
}

public struct IngressClassSpec: Codable, Sendable, Hashable {
    public var controller: String?
    public var parameters: IngressClassParametersReference?

    public init(controller: String? = nil, parameters: IngressClassParametersReference? = nil) {
        self.controller = controller
        self.parameters = parameters
    }
}

public struct IngressClassParametersReference: Codable, Sendable, Hashable {
    public var apiGroup: String?
    public var kind: String
    public var name: String
    public var namespace: String?
    public var scope: String?
}
