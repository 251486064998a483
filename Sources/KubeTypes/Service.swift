/// core/v1 Service.
public struct Service: KubeObject {
    public static let kind = "Service"
    public static let resource = "services"
    public static let apiVersion = "v1"

    public var metadata: ObjectMeta
    public var spec: ServiceSpec?
    public var status: ServiceStatus?

    public init(metadata: ObjectMeta, spec: ServiceSpec? = nil, status: ServiceStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }
}

public struct ServiceStatus: Codable, Sendable, Hashable {
    public var loadBalancer: LoadBalancerStatus?

    public init(loadBalancer: LoadBalancerStatus? = nil) {
        self.loadBalancer = loadBalancer
    }
}

public struct LoadBalancerStatus: Codable, Sendable, Hashable {
    public var ingress: [LoadBalancerIngress]?

    public init(ingress: [LoadBalancerIngress]? = nil) {
        self.ingress = ingress
    }
}

public struct LoadBalancerIngress: Codable, Sendable, Hashable {
    public var ip: String?
    public var hostname: String?

    public init(ip: String? = nil, hostname: String? = nil) {
        self.ip = ip
        self.hostname = hostname
    }
}

public struct ServiceSpec: Codable, Sendable, Hashable {
    /// `ClusterIP` when absent.
    public var type: String?
    public var externalName: String?
    public var ports: [ServicePort]?
    public var clusterIP: String?
    public var externalIPs: [String]?
    public var selector: [String: String]?

    public init(
        type: String? = nil, externalName: String? = nil, ports: [ServicePort]? = nil, clusterIP: String? = nil,
        externalIPs: [String]? = nil, selector: [String: String]? = nil
    ) {
        self.type = type
        self.externalName = externalName
        self.ports = ports
        self.clusterIP = clusterIP
        self.externalIPs = externalIPs
        self.selector = selector
    }
}

public struct ServicePort: Codable, Sendable, Hashable {
    public var name: String?
    public var port: Int32
    public var targetPort: IntOrString?
    /// `TCP` when absent.
    public var `protocol`: String?
    public var appProtocol: String?

    public init(
        name: String? = nil, port: Int32, targetPort: IntOrString? = nil, protocol: String? = nil,
        appProtocol: String? = nil
    ) {
        self.name = name
        self.port = port
        self.targetPort = targetPort
        self.protocol = `protocol`
        self.appProtocol = appProtocol
    }
}

/// intstr.IntOrString: a port number or a port name.
public enum IntOrString: Codable, Sendable, Hashable, CustomStringConvertible {
    case int(Int32)
    case string(String)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int32.self) {
            self = .int(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else {
            throw DecodingError.typeMismatch(
                IntOrString.self,
                .init(codingPath: decoder.codingPath, debugDescription: "expected an integer or a string"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        }
    }

    public var description: String {
        switch self {
        case .int(let number): String(number)
        case .string(let text): text
        }
    }
}
