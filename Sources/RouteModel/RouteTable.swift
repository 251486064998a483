/// One compiled, immutable route table: what a snapshot carries and what a worker routes with.
///
/// Construction sorts every list (so equal content gives equal tables whatever the input order),
/// computes the content hash and builds the lookup index once; `applying(_:)` builds a table from
/// another by patching these for the entries a delta names. After that the table is only read,
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
    private let clustersByName: [String: Cluster]
    private let certificatesByName: [String: TLSCertificate]
    /// The sums of the entries' own hashes, which `contentHash` combines: a delta changes them by the
    /// hashes of the entries it replaces, adds and removes.
    private let sums: EntryHashSums

    struct EntryHashSums: Sendable {
        var hosts: UInt64 = 0
        var clusters: UInt64 = 0
        var certificates: UInt64 = 0
    }

    /// `onEveryCore`: a large table's lookup index and its hashes are built on two cores at once;
    /// off, on the calling thread alone (a relay's decode at low priority, which dispatch's threads
    /// would not keep).
    public init(
        virtualHosts: [VirtualHost], clusters: [Cluster], certificates: [TLSCertificate], defaultCertificate: String? = nil,
        onEveryCore: Bool = true
    ) {
        var hosts = RouteTable.sorted(virtualHosts, keys: virtualHosts.map(\.hostname))
        for index in hosts.indices where !RouteTable.isSorted(hosts[index].routes) { hosts[index].routes.sort() }
        let clusters = RouteTable.sorted(clusters, keys: clusters.map(\.name))
        let certificates = RouteTable.sorted(certificates, keys: certificates.map(\.name))
        // The lookup index on one core, the hashes and by-name maps on another, for a large table:
        // the control plane, the node agent and each worker build one from every whole table.
        let (index, lookups) = PartedWork.pair(
            concurrently: onEveryCore && PartedWork.parts(for: hosts.count) > 1, { [hosts] in RouteIndex(virtualHosts: hosts) },
            { [hosts] in Lookups(hosts, clusters, certificates) })
        self.init(
            virtualHosts: hosts, clusters: clusters, certificates: certificates, defaultCertificate: defaultCertificate, index: index,
            clustersByName: lookups.clustersByName, certificatesByName: lookups.certificatesByName, sums: lookups.sums)
    }

    /// The entries' hash sums and the by-name maps of a table's lists.
    private struct Lookups: Sendable {
        let sums: EntryHashSums
        let clustersByName: [String: Cluster]
        let certificatesByName: [String: TLSCertificate]

        init(_ hosts: [VirtualHost], _ clusters: [Cluster], _ certificates: [TLSCertificate]) {
            var sums = EntryHashSums()
            hosts.withUnsafeBufferPointer { for index in $0.indices { sums.hosts &+= RouteTable.hash($0[index]) } }
            clusters.withUnsafeBufferPointer { for index in $0.indices { sums.clusters &+= RouteTable.hash($0[index]) } }
            for certificate in certificates { sums.certificates &+= RouteTable.hash(certificate) }
            self.sums = sums
            clustersByName = Dictionary(clusters.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            certificatesByName = Dictionary(certificates.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// Everything already sorted, indexed and hashed.
    private init(
        virtualHosts: [VirtualHost], clusters: [Cluster], certificates: [TLSCertificate], defaultCertificate: String?, index: RouteIndex,
        clustersByName: [String: Cluster], certificatesByName: [String: TLSCertificate], sums: EntryHashSums
    ) {
        self.virtualHosts = virtualHosts
        self.clusters = clusters
        self.certificates = certificates
        self.defaultCertificate = defaultCertificate
        self.index = index
        self.clustersByName = clustersByName
        self.certificatesByName = certificatesByName
        self.sums = sums
        var hasher = ContentHasher()
        hasher.combine(virtualHosts.count)
        hasher.combine(Int64(bitPattern: sums.hosts))
        hasher.combine(clusters.count)
        hasher.combine(Int64(bitPattern: sums.clusters))
        hasher.combine(certificates.count)
        hasher.combine(Int64(bitPattern: sums.certificates))
        hasher.combine(defaultCertificate)
        self.contentHash = hasher.value
    }

    /// `base` with the delta's entries (already checked: sorted, no key twice) merged into
    /// `virtualHosts`, `clusters` and `certificates`; everything else is patched from `base`.
    init(
        patching base: RouteTable, delta: RouteTableDelta, virtualHosts: [VirtualHost], clusters: [Cluster], certificates: [TLSCertificate]
    ) {
        var sums = base.sums
        func replace<T, Key: Comparable>(_ sum: inout UInt64, old: [T], removed: [Key], upserted: [T], key: (T) -> Key, hash: (T) -> UInt64) {
            for name in removed {
                let position = old.lowerBound(of: name, key: key)
                if position < old.count, key(old[position]) == name { sum &-= hash(old[position]) }
            }
            for entry in upserted {
                let position = old.lowerBound(of: key(entry), key: key)
                if position < old.count, key(old[position]) == key(entry) { sum &-= hash(old[position]) }
                sum &+= hash(entry)
            }
        }
        replace(&sums.hosts, old: base.virtualHosts, removed: delta.removedHosts, upserted: delta.upsertedHosts, key: \.hostname, hash: Self.hash)
        replace(&sums.clusters, old: base.clusters, removed: delta.removedClusters, upserted: delta.upsertedClusters, key: \.name, hash: Self.hash)
        replace(
            &sums.certificates, old: base.certificates, removed: delta.removedCertificates, upserted: delta.upsertedCertificates, key: \.name,
            hash: Self.hash)
        var clustersByName = base.clustersByName
        for name in delta.removedClusters { clustersByName[name] = nil }
        for cluster in delta.upsertedClusters { clustersByName[cluster.name] = cluster }
        var certificatesByName = base.certificatesByName
        for name in delta.removedCertificates { certificatesByName[name] = nil }
        for certificate in delta.upsertedCertificates { certificatesByName[certificate.name] = certificate }
        let index: RouteIndex
        if delta.removedHosts.isEmpty, delta.upsertedHosts.isEmpty {
            index = base.index
        } else {
            index = base.index.patched(oldHosts: base.virtualHosts, newHosts: virtualHosts, removed: delta.removedHosts, upserted: delta.upsertedHosts)
                ?? RouteIndex(virtualHosts: virtualHosts)
        }
        self.init(
            virtualHosts: virtualHosts, clusters: clusters, certificates: certificates, defaultCertificate: delta.defaultCertificate, index: index,
            clustersByName: clustersByName, certificatesByName: certificatesByName, sums: sums)
    }

    /// Orders elements by their keys, moving each element once (sorting large structs in place
    /// copies them many times), and not at all when they are already in order.
    private static func sorted<T, Key: Comparable>(_ elements: [T], keys: [Key]) -> [T] {
        if isSorted(keys) { return elements }
        return keys.withUnsafeBufferPointer { keys in
            elements.indices.sorted { keys[$0] < keys[$1] }.map { elements[$0] }
        }
    }

    static func isSorted<Key: Comparable>(_ keys: [Key]) -> Bool {
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
        clustersByName[name]
    }

    public func certificate(named name: String) -> TLSCertificate? {
        certificatesByName[name]
    }

    public var routeCount: Int { virtualHosts.reduce(0) { $0 + $1.routes.count } }

    /// One virtual host's hash: everything a worker routes with (routes by index through buffers, as
    /// iterating the arrays copies each element, and those copies' reference counting showed up in
    /// the compile profile).
    static func hash(_ host: borrowing VirtualHost) -> UInt64 {
        var hasher = ContentHasher()
        switch host.hostname {
        case .exact(let name):
            hasher.combine(0)
            hasher.combine(name)
        case .wildcard(let suffix):
            hasher.combine(1)
            hasher.combine(suffix)
        case .any:
            hasher.combine(2)
        }
        if let tls = host.tls {
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
        if host.regexPaths || host.redirectToHost != nil {
            hasher.combine(host.regexPaths)
            hasher.combine(host.redirectToHost)
        }
        if let backend = host.defaultBackend {
            hasher.combine(true)
            combine(backend, into: &hasher)
        } else {
            hasher.combine(false)
        }
        host.routes.withUnsafeBufferPointer { routes in
            hasher.combine(routes.count)
            for r in routes.indices {
                switch routes[r].match.kind {
                case .exact: hasher.combine(0)
                case .prefix: hasher.combine(1)
                case .implementationSpecific: hasher.combine(2)
                }
                hasher.combine(routes[r].match.path)
                combine(routes[r].backend, into: &hasher)
            }
        }
        return hasher.finished
    }

    private static func combine(_ backend: borrowing Backend, into hasher: inout ContentHasher) {
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

    static func hash(_ cluster: borrowing Cluster) -> UInt64 {
        var hasher = ContentHasher()
        hasher.combine(cluster.name)
        hasher.combine(cluster.loadBalancing == .roundRobin ? 0 : 1)
        hasher.combine(cluster.timeouts.connectMilliseconds)
        hasher.combine(cluster.timeouts.responseHeaderMilliseconds)
        hasher.combine(cluster.timeouts.idleMilliseconds)
        cluster.endpoints.withUnsafeBufferPointer { endpoints in
            hasher.combine(endpoints.count)
            for e in endpoints.indices {
                hasher.combine(endpoints[e].address)
                hasher.combine(endpoints[e].port)
            }
        }
        return hasher.finished
    }

    static func hash(_ certificate: borrowing TLSCertificate) -> UInt64 {
        var hasher = ContentHasher()
        hasher.combine(certificate.name)
        hasher.combine(certificate.certificateChainPEM)
        hasher.combine(certificate.privateKeyPEM)
        return hasher.finished
    }
}

extension RouteTable: Equatable {
    public static func == (lhs: RouteTable, rhs: RouteTable) -> Bool {
        lhs.contentHash == rhs.contentHash && lhs.virtualHosts == rhs.virtualHosts && lhs.clusters == rhs.clusters
            && lhs.certificates == rhs.certificates && lhs.defaultCertificate == rhs.defaultCertificate
    }
}
