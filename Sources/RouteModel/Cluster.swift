/// A Service port and the ready endpoints behind it.
///
/// Stored behind one reference, copied on write: a table holds its clusters twice (sorted, and by
/// name), and every delta that changes one copies both. Inline, a cluster was 112 bytes with four
/// references to retain on each copy; boxed, 8 bytes and one.
public struct Cluster: Sendable, Hashable, Comparable {
    private struct Fields: Sendable, Hashable {
        var name: String
        var namespace: String
        var service: String
        var servicePort: ServicePortReference
        var endpoints: [Endpoint]
        var loadBalancing: LoadBalancingPolicy
        var timeouts: ClusterTimeouts
    }

    private var fields: CopyOnWrite<Fields>

    /// `namespace/service:port`, unique in a table.
    public var name: String {
        get { fields.value.name }
        set { fields.set(\.name, newValue) }
    }
    public var namespace: String {
        get { fields.value.namespace }
        set { fields.set(\.namespace, newValue) }
    }
    public var service: String {
        get { fields.value.service }
        set { fields.set(\.service, newValue) }
    }
    public var servicePort: ServicePortReference {
        get { fields.value.servicePort }
        set { fields.set(\.servicePort, newValue) }
    }
    /// Ready endpoints, sorted. Empty means requests get 503.
    public var endpoints: [Endpoint] {
        get { fields.value.endpoints }
        set { fields.set(\.endpoints, newValue) }
    }
    public var loadBalancing: LoadBalancingPolicy {
        get { fields.value.loadBalancing }
        set { fields.set(\.loadBalancing, newValue) }
    }
    public var timeouts: ClusterTimeouts {
        get { fields.value.timeouts }
        set { fields.set(\.timeouts, newValue) }
    }

    public init(
        namespace: String, service: String, servicePort: ServicePortReference, endpoints: [Endpoint],
        loadBalancing: LoadBalancingPolicy = .roundRobin, timeouts: ClusterTimeouts = .standard
    ) {
        fields = CopyOnWrite(
            Fields(
                name: Cluster.name(namespace: namespace, service: service, port: servicePort), namespace: namespace, service: service,
                servicePort: servicePort, endpoints: endpoints, loadBalancing: loadBalancing, timeouts: timeouts))
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
