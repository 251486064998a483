import KubeTypes
import RouteModel

/// Resolves Ingress backends to clusters: Service port → EndpointSlices → ready endpoints.
///
/// Each backend is resolved once per resolver, whatever the number of routes naming it. A
/// resolved cluster is named by the Service port number; an unresolvable one by the reference as
/// written. Several resolvers may share one `Index` (a translation's runs of hosts, on every core).
struct BackendResolver {
    struct Resolution: Sendable {
        let cluster: Cluster
        /// Why the cluster has no endpoints when that is a configuration problem (not just zero ready Pods).
        let problem: (reason: Rejection.Reason, message: String)?
    }

    /// The Services and EndpointSlices by name, read-only.
    struct Index: Sendable {
        // Indices into the input arrays: copying whole Services and slices into dictionaries showed
        // up in the compile profile.
        fileprivate let serviceObjects: [Service]
        fileprivate let sliceObjects: [EndpointSlice]
        fileprivate let services: [NamespacedName: Int]
        fileprivate let slices: [NamespacedName: [Int]]

        init(services: [Service], endpointSlices: [EndpointSlice]) {
            var serviceIndex: [NamespacedName: Int] = [:]
            serviceIndex.reserveCapacity(services.count)
            var sliceIndex: [NamespacedName: [Int]] = [:]
            sliceIndex.reserveCapacity(endpointSlices.count)
            services.withUnsafeBufferPointer { services in
                for index in services.indices {
                    serviceIndex[NamespacedName(services[index].metadata.namespace ?? "default", services[index].metadata.name)] = index
                }
            }
            endpointSlices.withUnsafeBufferPointer { slices in
                for index in slices.indices {
                    guard let serviceName = slices[index].metadata.labels?[EndpointSlice.serviceNameLabel] else { continue }
                    sliceIndex[NamespacedName(slices[index].metadata.namespace ?? "default", serviceName), default: []].append(index)
                }
            }
            self.serviceObjects = services
            self.sliceObjects = endpointSlices
            self.services = serviceIndex
            self.slices = sliceIndex
        }

        var serviceCount: Int { serviceObjects.count }

        /// The Service of that namespace and name.
        func service(_ name: NamespacedName) -> Service? { services[name].map { serviceObjects[$0] } }
    }

    let index: Index
    private var resolved: [Resolution] = []
    private var cache: [BackendReference: Int] = [:]
    /// Problems with EndpointSlices themselves, reported against the slice, each slice once.
    private(set) var sliceRejections: [Rejection] = []
    private var reportedSlices: Set<ObjectRef> = []

    init(services: [Service], endpointSlices: [EndpointSlice]) {
        self.init(index: Index(services: services, endpointSlices: endpointSlices))
    }

    init(index: Index, expectedBackends: Int? = nil) {
        self.index = index
        // Most Services back one reference or a few.
        resolved.reserveCapacity(expectedBackends ?? index.serviceCount)
        cache.reserveCapacity(expectedBackends ?? index.serviceCount)
    }

    /// Every cluster resolved so far, in the order first resolved.
    var resolutions: [Resolution] { resolved }

    /// Every cluster resolved so far, sorted by name, each name once (a port named and the same port
    /// numbered resolve to one cluster).
    var clusters: [Cluster] { Self.clusters(resolved) }

    /// `resolutions`' clusters sorted by name, each name once.
    static func clusters(_ resolutions: [Resolution]) -> [Cluster] {
        let all = resolutions.map(\.cluster)
        let names = all.map(\.name)
        let order = names.withUnsafeBufferPointer { names in names.indices.sorted { names[$0] < names[$1] } }
        var unique: [Cluster] = []
        unique.reserveCapacity(all.count)
        for index in order where unique.last?.name != names[index] { unique.append(all[index]) }
        return unique
    }

    /// Resolves once per distinct reference; returns a handle for `clusterName` and `problem`.
    mutating func resolve(_ backend: BackendReference) -> Int {
        if let cached = cache[backend] { return cached }
        resolved.append(compute(backend))
        cache[backend] = resolved.count - 1
        return resolved.count - 1
    }

    func clusterName(_ handle: Int) -> String { resolved[handle].cluster.name }

    func cluster(_ handle: Int) -> Cluster { resolved[handle].cluster }

    func problem(_ handle: Int) -> (reason: Rejection.Reason, message: String)? { resolved[handle].problem }

    private mutating func compute(_ backend: BackendReference) -> Resolution {
        func unavailable(_ reason: Rejection.Reason, _ message: String) -> Resolution {
            Resolution(
                cluster: Cluster(namespace: backend.namespace, service: backend.service, servicePort: backend.port, endpoints: []),
                problem: (reason, message))
        }
        var serviceName: String { "\(backend.namespace)/\(backend.service)" }
        guard let serviceIndex = index.services[NamespacedName(backend.namespace, backend.service)] else {
            return unavailable(.serviceNotFound, "Service \(serviceName) does not exist; the route answers 503")
        }
        if index.serviceObjects[serviceIndex].spec?.type == "ExternalName" {
            return unavailable(
                .unsupportedServiceType,
                "Service \(serviceName) is of type ExternalName, which Portico does not proxy to "
                    + "(it would let an Ingress author reach any host); the route answers 503")
        }
        let ports = index.serviceObjects[serviceIndex].spec?.ports ?? []
        let servicePort: ServicePort?
        switch backend.port {
        case .number(let number): servicePort = ports.first { Int($0.port) == number }
        case .name(let name): servicePort = ports.first { $0.name == name }
        }
        guard let servicePort else {
            let known = ports.map { port in port.name.map { "\($0) (\(port.port))" } ?? String(port.port) }
            let list = known.isEmpty ? "it has no ports" : "it has \(known.joined(separator: ", "))"
            return unavailable(
                .servicePortNotFound, "Service \(serviceName) has no port \(backend.port); \(list); the route answers 503")
        }
        let portName = servicePort.name ?? ""
        var endpoints: [Endpoint] = []
        let sliceObjects = index.sliceObjects
        for sliceIndex in index.slices[NamespacedName(backend.namespace, backend.service)] ?? [] {
            let addressType = sliceObjects[sliceIndex].addressType
            guard addressType == "IPv4" || addressType == "IPv6" else { continue }
            guard let port = sliceObjects[sliceIndex].ports?.first(where: { ($0.name ?? "") == portName })?.port else { continue }
            guard (1...65535).contains(port) else {
                reportSlice(sliceObjects[sliceIndex].ref, "ports", "port \(port) is not in 1-65535")
                continue
            }
            let sliceEndpoints = sliceObjects[sliceIndex].endpoints ?? []
            for index in sliceEndpoints.indices where sliceEndpoints[index].conditions?.ready ?? true {
                for address in sliceEndpoints[index].addresses {
                    guard IPAddressSyntax.isValid(address, family: addressType) else {
                        reportSlice(
                            sliceObjects[sliceIndex].ref, "endpoints[\(index)].addresses", "\"\(address)\" is not an \(addressType) address")
                        continue
                    }
                    endpoints.append(Endpoint(address: address, port: Int(port)))
                }
            }
        }
        endpoints.sort()
        // The same Pod may be listed by two slices while they are being rebalanced.
        var unique: [Endpoint] = []
        unique.reserveCapacity(endpoints.count)
        for endpoint in endpoints where unique.last != endpoint { unique.append(endpoint) }
        // Named by the resolved port number, so `port: {name: http}` and `port: {number: 80}` share a cluster.
        return Resolution(
            cluster: Cluster(
                namespace: backend.namespace, service: backend.service, servicePort: .number(Int(servicePort.port)),
                endpoints: unique),
            problem: nil)
    }

    private mutating func reportSlice(_ slice: ObjectRef, _ field: String, _ message: String) {
        guard reportedSlices.insert(slice).inserted else { return }
        sliceRejections.append(
            Rejection(object: slice, reason: .invalidEndpoint, effect: .partiallyIgnored, field: field, message: message + "; it is skipped"))
    }
}

struct NamespacedName: Hashable {
    let namespace: String
    let name: String
    init(_ namespace: String, _ name: String) {
        self.namespace = namespace
        self.name = name
    }
}

/// Syntax checks for endpoint addresses; the API server validates these, manifests may not.
enum IPAddressSyntax {
    static func isValid(_ address: String, family: String) -> Bool {
        family == "IPv4" ? isIPv4(address) : isIPv6(address)
    }

    /// Dotted quad, each part 0-255 without leading zeros.
    static func isIPv4(_ address: some StringProtocol) -> Bool {
        var parts = 0
        var value = 0
        var digits = 0
        var leadingZero = false
        for byte in address.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0 else { return false }
                parts += 1
                value = 0
                digits = 0
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return false }
            if digits == 0 { leadingZero = byte == UInt8(ascii: "0") } else if leadingZero { return false }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
            guard value <= 255 else { return false }
        }
        return parts == 3 && digits > 0
    }

    static func isIPv6(_ address: String) -> Bool {
        guard address.contains(":"), address.count <= 45 else { return false }
        var groups = address.split(separator: ":", omittingEmptySubsequences: false)
        var hasEmbeddedIPv4 = false
        if let last = groups.last, last.contains(".") {
            guard isIPv4(last) else { return false }
            hasEmbeddedIPv4 = true
            groups.removeLast()
        }
        let bytes = Array(address.utf8)
        let doubleColons = zip(bytes, bytes.dropFirst()).filter { $0 == UInt8(ascii: ":") && $1 == UInt8(ascii: ":") }.count
        guard doubleColons <= 1 else { return false }
        let hexGroups = groups.filter { !$0.isEmpty }
        guard hexGroups.allSatisfy({ $0.count <= 4 && $0.allSatisfy(\.isHexDigit) }) else { return false }
        let total = hexGroups.count + (hasEmbeddedIPv4 ? 2 : 0)
        return doubleColons == 1 ? total < 8 : total == 8 && groups.count == hexGroups.count
    }
}
