/// A Service port and the ready endpoints behind it.
public struct Cluster: Sendable, Hashable, Comparable {
    /// `namespace/service:port`, unique in a table.
    public var name: String
    public var namespace: String
    public var service: String
    public var servicePort: ServicePortReference
    /// Ready endpoints, sorted. Empty means requests get 503.
    public var endpoints: [Endpoint]
    public var loadBalancing: LoadBalancingPolicy
    public var timeouts: ClusterTimeouts

    public init(
        namespace: String, service: String, servicePort: ServicePortReference, endpoints: [Endpoint],
        loadBalancing: LoadBalancingPolicy = .roundRobin, timeouts: ClusterTimeouts = .standard
    ) {
        self.name = Cluster.name(namespace: namespace, service: service, port: servicePort)
        self.namespace = namespace
        self.service = service
        self.servicePort = servicePort
        self.endpoints = endpoints
        self.loadBalancing = loadBalancing
        self.timeouts = timeouts
    }

    public static func name(namespace: String, service: String, port: ServicePortReference) -> String {
        "\(namespace)/\(service):\(port)"
    }

    public static func < (lhs: Cluster, rhs: Cluster) -> Bool { lhs.name < rhs.name }
}

public enum LoadBalancingPolicy: String, Sendable, Hashable, CaseIterable {
    case roundRobin = "round-robin"
    /// Power of two random choices, fewer outstanding requests wins.
    case leastRequest = "least-request"
}

/// Upstream timeouts, in milliseconds; 0 disables one.
public struct ClusterTimeouts: Sendable, Hashable {
    public var connectMilliseconds: Int
    public var responseHeaderMilliseconds: Int
    public var idleMilliseconds: Int

    public init(connectMilliseconds: Int, responseHeaderMilliseconds: Int, idleMilliseconds: Int) {
        self.connectMilliseconds = connectMilliseconds
        self.responseHeaderMilliseconds = responseHeaderMilliseconds
        self.idleMilliseconds = idleMilliseconds
    }

    /// ingress-nginx's defaults: 5 s to connect, 60 s for the response header, 60 s idle.
    public static let standard = ClusterTimeouts(connectMilliseconds: 5_000, responseHeaderMilliseconds: 60_000, idleMilliseconds: 60_000)
}

/// How an Ingress names a Service port: by number or by name.
public enum ServicePortReference: Sendable, Hashable, CustomStringConvertible {
    case number(Int)
    case name(String)

    public var description: String {
        switch self {
        case .number(let number): String(number)
        case .name(let name): name
        }
    }
}

/// One Pod address and target port.
public struct Endpoint: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// An IPv4 or IPv6 literal.
    public var address: String
    public var port: Int

    public init(address: String, port: Int) {
        self.address = address
        self.port = port
    }

    /// `ip:port`, with brackets around IPv6 addresses.
    public var description: String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    public static func < (lhs: Endpoint, rhs: Endpoint) -> Bool {
        (lhs.address, lhs.port) < (rhs.address, rhs.port)
    }
}
