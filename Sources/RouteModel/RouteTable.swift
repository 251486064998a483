/// One compiled, immutable route table: what a snapshot carries and what a worker routes with.
///
/// Construction sorts every list (so equal content gives equal tables whatever the input order),
/// computes the content hash and builds the lookup index once. After that the table is only read,
/// from any thread, without locks.
public struct RouteTable: Sendable {
    public let virtualHosts: [VirtualHost]
    public let clusters: [Cluster]
    public let certificates: [TLSCertificate]
    /// Name of the certificate served when SNI matches no TLS host; nil for the worker's own.
    public let defaultCertificate: String?
    /// Stable across processes; equal content gives an equal hash.
    public let contentHash: UInt64

    let index: RouteIndex
    private let clustersByName: [String: Int]
    private let certificatesByName: [String: Int]

    public init(virtualHosts: [VirtualHost], clusters: [Cluster], certificates: [TLSCertificate], defaultCertificate: String? = nil) {
        self.defaultCertificate = defaultCertificate
        var hosts = RouteTable.sorted(virtualHosts, keys: virtualHosts.map(\.hostname))
        for index in hosts.indices where !RouteTable.isSorted(hosts[index].routes) { hosts[index].routes.sort() }
        self.virtualHosts = hosts
        self.clusters = RouteTable.sorted(clusters, keys: clusters.map(\.name))
        self.certificates = RouteTable.sorted(certificates, keys: certificates.map(\.name))
        self.clustersByName = Dictionary(self.clusters.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.certificatesByName = Dictionary(
            self.certificates.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.index = RouteIndex(virtualHosts: hosts)
        self.contentHash = RouteTable.hash(
            virtualHosts: hosts, clusters: self.clusters, certificates: self.certificates, defaultCertificate: defaultCertificate)
    }

    /// Orders elements by their keys, moving each element once (sorting large structs in place
    /// copies them many times), and not at all when they are already in order.
    private static func sorted<T, Key: Comparable>(_ elements: [T], keys: [Key]) -> [T] {
        if isSorted(keys) { return elements }
        return keys.withUnsafeBufferPointer { keys in
            elements.indices.sorted { keys[$0] < keys[$1] }.map { elements[$0] }
        }
    }

    private static func isSorted<Key: Comparable>(_ keys: [Key]) -> Bool {
        keys.withUnsafeBufferPointer { keys in
            keys.count < 2 || (1..<keys.count).allSatisfy { !(keys[$0] < keys[$0 - 1]) }
        }
    }

    public static let empty = RouteTable(virtualHosts: [], clusters: [], certificates: [])

    /// The hash as 16 lowercase hex digits.
    public var contentHashHex: String {
        let hex = String(contentHash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    public func cluster(named name: String) -> Cluster? {
        clustersByName[name].map { clusters[$0] }
    }

    public func certificate(named name: String) -> TLSCertificate? {
        certificatesByName[name].map { certificates[$0] }
    }

    public var routeCount: Int { virtualHosts.reduce(0) { $0 + $1.routes.count } }

    /// Walks everything by index through buffers: iterating the arrays directly copies each element,
    /// and those copies' reference counting showed up in the compile profile.
    private static func hash(
        virtualHosts: [VirtualHost], clusters: [Cluster], certificates: [TLSCertificate], defaultCertificate: String?
    ) -> UInt64 {
        var hasher = ContentHasher()
        func combine(_ backend: borrowing Backend) {
            hasher.combine(backend.cluster)
            hasher.combine(backend.source.namespace)
            hasher.combine(backend.source.ingress)
            hasher.combine(backend.httpsRedirect)
            hasher.combine(backend.options.maxRequestBodyBytes.map(Int.init) ?? -1)
            let options = backend.options
            if let upstream = options.upstream {
                hasher.combine(upstream.connectTimeoutMilliseconds ?? -1)
                hasher.combine(upstream.readTimeoutMilliseconds ?? -1)
                hasher.combine(upstream.sendTimeoutMilliseconds ?? -1)
                hasher.combine(upstream.maxAttempts ?? -1)
                hasher.combine(upstream.retryOnConnectError)
                hasher.combine(upstream.retryOnConnectTimeout)
                hasher.combine(upstream.requestBufferBytes ?? -1)
                hasher.combine(upstream.retryAfterSending)
                hasher.combine(upstream.retryNonIdempotent)
                hasher.combine(upstream.retryStatuses.count)
                for status in upstream.retryStatuses { hasher.combine(status) }
            }
            if options.upstreamProtocol != .http || options.upstreamTLS != nil {
                hasher.combine(options.upstreamProtocol.rawValue)
                if let tls = options.upstreamTLS {
                    hasher.combine(tls.serverName)
                    hasher.combine(tls.sendsServerName)
                    hasher.combine(tls.verify)
                    hasher.combine(tls.trustedCertificatesPEM ?? "-")
                    hasher.combine(tls.clientCertificatePEM ?? "-")
                    hasher.combine(tls.clientKeyPEM ?? "-")
                }
            }
            if let rule = options.defaultBackend {
                hasher.combine(rule.cluster)
                hasher.combine(rule.interceptedStatuses.count)
                for status in rule.interceptedStatuses { hasher.combine(status) }
                hasher.combine(rule.interceptsPodAnswers)
                hasher.combine(rule.servesWithoutEndpoints)
            }
            for edits in [options.requestHeaders, options.responseHeaders] {
                guard let edits else { continue }
                hasher.combine(edits.remove.joined(separator: "\n"))
                for field in edits.set + [HeaderField(name: "", value: "")] + edits.add {
                    hasher.combine(field.name)
                    hasher.combine(field.value)
                    hasher.combine(field.onlySuccess)
                }
            }
            if options.rewriteTarget != nil || options.redirect != nil || options.appRoot != nil || options.forwardedPrefix != nil
                || options.upstreamHost != nil {
                hasher.combine(options.rewriteTarget)
                hasher.combine(options.redirect.map { "\($0.status) \($0.location)" })
                hasher.combine(options.appRoot)
                hasher.combine(options.forwardedPrefix)
                hasher.combine(options.upstreamHost)
            }
        }
        hasher.combine(virtualHosts.count)
        virtualHosts.withUnsafeBufferPointer { hosts in
            for h in hosts.indices {
                switch hosts[h].hostname {
                case .exact(let name):
                    hasher.combine(0)
                    hasher.combine(name)
                case .wildcard(let suffix):
                    hasher.combine(1)
                    hasher.combine(suffix)
                case .any:
                    hasher.combine(2)
                }
                if let tls = hosts[h].tls {
                    hasher.combine(true)
                    hasher.combine(tls.certificate)
                    if let hsts = tls.hsts {
                        hasher.combine(hsts.maxAgeSeconds)
                        hasher.combine(hsts.includeSubdomains)
                        hasher.combine(hsts.preload)
                    } else {
                        hasher.combine(-1)
                    }
                } else {
                    hasher.combine(false)
                }
                if hosts[h].regexPaths || hosts[h].redirectToHost != nil {
                    hasher.combine(hosts[h].regexPaths)
                    hasher.combine(hosts[h].redirectToHost)
                }
                if let backend = hosts[h].defaultBackend {
                    hasher.combine(true)
                    combine(backend)
                } else {
                    hasher.combine(false)
                }
                hosts[h].routes.withUnsafeBufferPointer { routes in
                    hasher.combine(routes.count)
                    for r in routes.indices {
                        switch routes[r].match.kind {
                        case .exact: hasher.combine(0)
                        case .prefix: hasher.combine(1)
                        case .implementationSpecific: hasher.combine(2)
                        }
                        hasher.combine(routes[r].match.path)
                        combine(routes[r].backend)
                    }
                }
            }
        }
        hasher.combine(clusters.count)
        clusters.withUnsafeBufferPointer { clusters in
            for c in clusters.indices {
                hasher.combine(clusters[c].name)
                hasher.combine(clusters[c].loadBalancing == .roundRobin ? 0 : 1)
                hasher.combine(clusters[c].timeouts.connectMilliseconds)
                hasher.combine(clusters[c].timeouts.responseHeaderMilliseconds)
                hasher.combine(clusters[c].timeouts.idleMilliseconds)
                clusters[c].endpoints.withUnsafeBufferPointer { endpoints in
                    hasher.combine(endpoints.count)
                    for e in endpoints.indices {
                        hasher.combine(endpoints[e].address)
                        hasher.combine(endpoints[e].port)
                    }
                }
            }
        }
        hasher.combine(defaultCertificate)
        hasher.combine(certificates.count)
        for certificate in certificates {
            hasher.combine(certificate.name)
            hasher.combine(certificate.certificateChainPEM)
            hasher.combine(certificate.privateKeyPEM)
        }
        return hasher.value
    }
}

extension RouteTable: Equatable {
    public static func == (lhs: RouteTable, rhs: RouteTable) -> Bool {
        lhs.contentHash == rhs.contentHash && lhs.virtualHosts == rhs.virtualHosts && lhs.clusters == rhs.clusters
            && lhs.certificates == rhs.certificates && lhs.defaultCertificate == rhs.defaultCertificate
    }
}
