/// The changes that turn one route table into another, keyed by hostname, cluster name and
/// certificate name: an upserted entry replaces the whole entry of its key.
///
/// One changed Ingress among 10k changes one virtual host; sending that host instead of the table
/// spares every hop the encoding, decoding and conversion of the other 9,999.
public struct RouteTableDelta: Sendable, Equatable {
    /// Sorted by key.
    public var upsertedHosts: [VirtualHost] = []
    public var removedHosts: [HostPattern] = []
    public var upsertedClusters: [Cluster] = []
    public var removedClusters: [String] = []
    public var upsertedCertificates: [TLSCertificate] = []
    public var removedCertificates: [String] = []
    /// The resulting table's default certificate (always carried, changed or not).
    public var defaultCertificate: String?

    public init(
        upsertedHosts: [VirtualHost] = [], removedHosts: [HostPattern] = [], upsertedClusters: [Cluster] = [],
        removedClusters: [String] = [], upsertedCertificates: [TLSCertificate] = [], removedCertificates: [String] = [],
        defaultCertificate: String? = nil
    ) {
        self.upsertedHosts = upsertedHosts
        self.removedHosts = removedHosts
        self.upsertedClusters = upsertedClusters
        self.removedClusters = removedClusters
        self.upsertedCertificates = upsertedCertificates
        self.removedCertificates = removedCertificates
        self.defaultCertificate = defaultCertificate
    }

    /// Entries upserted or removed.
    public var changeCount: Int {
        upsertedHosts.count + removedHosts.count + upsertedClusters.count + removedClusters.count + upsertedCertificates.count
            + removedCertificates.count
    }
}

/// Why a delta does not apply to a table: it was computed against another one.
public struct RouteTableDeltaError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension RouteTable {
    /// What changed from this table to `newer`. Entries equal in both are skipped cheaply when the two
    /// tables share storage (a table built by `applying` shares every untouched entry with its base).
    public func delta(to newer: RouteTable) -> RouteTableDelta {
        let hosts = Self.difference(virtualHosts, newer.virtualHosts, key: \.hostname)
        let clusters = Self.difference(self.clusters, newer.clusters, key: \.name)
        let certificates = Self.difference(self.certificates, newer.certificates, key: \.name)
        return RouteTableDelta(
            upsertedHosts: hosts.upserted, removedHosts: hosts.removed, upsertedClusters: clusters.upserted,
            removedClusters: clusters.removed, upsertedCertificates: certificates.upserted, removedCertificates: certificates.removed,
            defaultCertificate: newer.defaultCertificate)
    }

    /// What changed from this table to `newer`, looking only at the named entries: the caller knows
    /// every other one is the same in both (an incremental rebuild knows what it touched). Names may
    /// include unchanged entries; they cost a comparison each.
    public func delta(to newer: RouteTable, hosts: Set<HostPattern>, clusters: Set<String>, certificates: Set<String>) -> RouteTableDelta {
        func changes<T: Equatable, Key: Comparable>(_ keys: Set<Key>, _ old: [T], _ new: [T], key: (T) -> Key) -> (upserted: [T], removed: [Key]) {
            var upserted: [T] = []
            var removed: [Key] = []
            for name in keys.sorted() {
                let oldPosition = old.lowerBound(of: name, key: key)
                let before = oldPosition < old.count && key(old[oldPosition]) == name ? old[oldPosition] : nil
                let newPosition = new.lowerBound(of: name, key: key)
                let after = newPosition < new.count && key(new[newPosition]) == name ? new[newPosition] : nil
                if let after {
                    if before != after { upserted.append(after) }
                } else if before != nil {
                    removed.append(name)
                }
            }
            return (upserted, removed)
        }
        let hostChanges = changes(hosts, virtualHosts, newer.virtualHosts, key: \.hostname)
        let clusterChanges = changes(clusters, self.clusters, newer.clusters, key: \.name)
        let certificateChanges = changes(certificates, self.certificates, newer.certificates, key: \.name)
        return RouteTableDelta(
            upsertedHosts: hostChanges.upserted, removedHosts: hostChanges.removed, upsertedClusters: clusterChanges.upserted,
            removedClusters: clusterChanges.removed, upsertedCertificates: certificateChanges.upserted,
            removedCertificates: certificateChanges.removed, defaultCertificate: newer.defaultCertificate)
    }

    /// This table with `delta` applied. Throws when the delta removes an entry this table does not
    /// hold, names a key twice, or leaves a route, host or the default certificate naming an entry
    /// that is not there. The caller compares the result's content hash with the sender's.
    public func applying(_ delta: RouteTableDelta) throws(RouteTableDeltaError) -> RouteTable {
        var delta = delta
        for index in delta.upsertedHosts.indices where !Self.isSorted(delta.upsertedHosts[index].routes) { delta.upsertedHosts[index].routes.sort() }
        delta.upsertedHosts = try Self.sortedUnique(delta.upsertedHosts, key: \.hostname, kind: "virtual host", verb: "upserted")
        delta.removedHosts = try Self.sortedUnique(delta.removedHosts, key: { $0 }, kind: "virtual host", verb: "removed")
        delta.upsertedClusters = try Self.sortedUnique(delta.upsertedClusters, key: \.name, kind: "cluster", verb: "upserted")
        delta.removedClusters = try Self.sortedUnique(delta.removedClusters, key: { $0 }, kind: "cluster", verb: "removed")
        delta.upsertedCertificates = try Self.sortedUnique(delta.upsertedCertificates, key: \.name, kind: "certificate", verb: "upserted")
        delta.removedCertificates = try Self.sortedUnique(delta.removedCertificates, key: { $0 }, kind: "certificate", verb: "removed")
        let table = RouteTable(
            patching: self, delta: delta,
            virtualHosts: try Self.merge(virtualHosts, upserted: delta.upsertedHosts, removed: delta.removedHosts, key: \.hostname, kind: "virtual host"),
            clusters: try Self.merge(clusters, upserted: delta.upsertedClusters, removed: delta.removedClusters, key: \.name, kind: "cluster"),
            certificates: try Self.merge(
                certificates, upserted: delta.upsertedCertificates, removed: delta.removedCertificates, key: \.name, kind: "certificate"))
        // Hosts kept from this table name only entries it held: the upserted hosts are checked in
        // full, the others only for the names the delta removed (at 10k hosts a full check took
        // 22 ms, the delta's whole work otherwise about 1 ms).
        if let problem = table.danglingReference(in: delta.upsertedHosts) ?? table.reference(toRemovedClusters: delta.removedClusters, certificates: delta.removedCertificates) {
            throw RouteTableDeltaError(problem)
        }
        return table
    }

    /// The first host still naming one of these removed clusters or certificates, described.
    func reference(toRemovedClusters clusters: [String], certificates: [String]) -> String? {
        guard !clusters.isEmpty || !certificates.isEmpty else { return nil }
        // A few names: comparing strings beats hashing each name a host uses.
        let clusterSet = clusters.count > 8 ? Set(clusters) : nil
        let certificateSet = certificates.count > 8 ? Set(certificates) : nil
        func removedCluster(_ name: String) -> Bool { clusterSet?.contains(name) ?? clusters.contains(name) }
        func removedCertificate(_ name: String) -> Bool { certificateSet?.contains(name) ?? certificates.contains(name) }
        // By index, not `for … in`: that copies each host and route (a route's options alone hold
        // a dozen references), which made this scan 15 ms at 10k hosts.
        return virtualHosts.withUnsafeBufferPointer { hosts -> String? in
            for index in hosts.indices {
                if !clusters.isEmpty {
                    let route = hosts[index].routes.withUnsafeBufferPointer { routes -> Int? in
                        routes.indices.first { position in
                            removedCluster(routes[position].backend.cluster)
                                || routes[position].backend.options.defaultBackend.map { removedCluster($0.cluster) } == true
                        }
                    }
                    if let route {
                        let host = hosts[index]
                        let backend = host.routes[route].backend
                        let name = removedCluster(backend.cluster) ? backend.cluster : backend.options.defaultBackend?.cluster ?? ""
                        return "host \(host.hostname) route \(host.routes[route].match.path): no cluster named \(name)"
                    }
                    if let backend = hosts[index].defaultBackend, removedCluster(backend.cluster) {
                        return "host \(hosts[index].hostname) default backend: no cluster named \(backend.cluster)"
                    }
                }
                if !certificates.isEmpty, let name = hosts[index].tls?.certificate, removedCertificate(name) {
                    return "host \(hosts[index].hostname): no certificate named \(name)"
                }
            }
            return nil
        }
    }

    /// The first name a host uses that the table does not hold, described; nil when all resolve.
    public var danglingReference: String? { danglingReference(in: virtualHosts) }

    /// The same for `hosts` only (and the default certificate).
    func danglingReference(in hosts: [VirtualHost]) -> String? {
        if let name = defaultCertificate, certificate(named: name) == nil { return "default certificate \(name) is not in the table" }
        for host in hosts {
            for route in host.routes where cluster(named: route.backend.cluster) == nil {
                return "host \(host.hostname) route \(route.match.path): no cluster named \(route.backend.cluster)"
            }
            if let backend = host.defaultBackend, cluster(named: backend.cluster) == nil {
                return "host \(host.hostname) default backend: no cluster named \(backend.cluster)"
            }
            if let name = host.tls?.certificate, certificate(named: name) == nil {
                return "host \(host.hostname): no certificate named \(name)"
            }
        }
        return nil
    }

    /// Both inputs sorted by key (as a table keeps them).
    private static func difference<T: Equatable, Key: Comparable>(_ old: [T], _ new: [T], key: (T) -> Key) -> (upserted: [T], removed: [Key]) {
        var upserted: [T] = []
        var removed: [Key] = []
        old.withUnsafeBufferPointer { old in
            new.withUnsafeBufferPointer { new in
                var i = 0
                var j = 0
                while i < old.count || j < new.count {
                    if j == new.count {
                        removed.append(key(old[i]))
                        i += 1
                        continue
                    }
                    if i == old.count {
                        upserted.append(new[j])
                        j += 1
                        continue
                    }
                    let oldKey = key(old[i])
                    let newKey = key(new[j])
                    if oldKey < newKey {
                        removed.append(oldKey)
                        i += 1
                    } else if newKey < oldKey {
                        upserted.append(new[j])
                        j += 1
                    } else {
                        if old[i] != new[j] { upserted.append(new[j]) }
                        i += 1
                        j += 1
                    }
                }
            }
        }
        return (upserted, removed)
    }

    /// `elements` sorted by key; throws when a key comes twice.
    private static func sortedUnique<T, Key: Comparable>(
        _ elements: [T], key: (T) -> Key, kind: String, verb: String
    ) throws(RouteTableDeltaError) -> [T] {
        let sorted = elements.sorted { key($0) < key($1) }
        for index in sorted.indices.dropFirst() where !(key(sorted[index - 1]) < key(sorted[index])) {
            throw RouteTableDeltaError("\(kind) \(key(sorted[index])) is \(verb) twice")
        }
        return sorted
    }

    /// `base` without `removed` and with `upserted` in place or inserted; all sorted by key.
    private static func merge<T, Key: Comparable>(
        _ base: [T], upserted: [T], removed: [Key], key: (T) -> Key, kind: String
    ) throws(RouteTableDeltaError) -> [T] {
        if upserted.isEmpty, removed.isEmpty { return base }
        if upserted.count + removed.count > 64 {
            return try linearMerge(base, upserted: upserted, removed: removed, key: key, kind: kind)
        }
        // A few edits: binary search and move, instead of walking every entry.
        var result = base
        for name in removed {
            let position = result.lowerBound(of: name, key: key)
            guard position < result.count, key(result[position]) == name else {
                throw RouteTableDeltaError("removes \(kind) \(name), which the table does not hold")
            }
            result.remove(at: position)
        }
        for entry in upserted {
            let name = key(entry)
            if removed.binarySearchContains(name) { throw RouteTableDeltaError("\(kind) \(name) is both upserted and removed") }
            let position = result.lowerBound(of: name, key: key)
            if position < result.count, key(result[position]) == name {
                result[position] = entry
            } else {
                result.insert(entry, at: position)
            }
        }
        return result
    }

    /// One pass over `base`, for deltas too large to apply edit by edit. Both inputs sorted.
    private static func linearMerge<T, Key: Comparable>(
        _ base: [T], upserted: [T], removed: [Key], key: (T) -> Key, kind: String
    ) throws(RouteTableDeltaError) -> [T] {
        var result: [T] = []
        result.reserveCapacity(base.count + upserted.count)
        var i = 0
        var j = 0
        var r = 0
        while i < base.count || j < upserted.count {
            let baseKey = i < base.count ? key(base[i]) : nil
            if j < upserted.count, baseKey.map({ !($0 < key(upserted[j])) }) ?? true {
                let upsertKey = key(upserted[j])
                if r < removed.count, removed[r] == upsertKey {
                    throw RouteTableDeltaError("\(kind) \(upsertKey) is both upserted and removed")
                }
                // Replaces the base entry of the same key, or is inserted before the next one.
                if baseKey == upsertKey { i += 1 }
                result.append(upserted[j])
                j += 1
                continue
            }
            let current = baseKey!
            if r < removed.count, removed[r] < current {
                throw RouteTableDeltaError("removes \(kind) \(removed[r]), which the table does not hold")
            }
            if r < removed.count, removed[r] == current {
                r += 1
            } else {
                result.append(base[i])
            }
            i += 1
        }
        if r < removed.count { throw RouteTableDeltaError("removes \(kind) \(removed[r]), which the table does not hold") }
        return result
    }
}

extension Array {
    /// The first index whose element's key is not less than `target`, in an array sorted by key.
    @inlinable
    public func lowerBound<Key: Comparable>(of target: Key, key: (Element) -> Key) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if key(self[middle]) < target { low = middle + 1 } else { high = middle }
        }
        return low
    }
}

extension Array where Element: Comparable {
    /// Whether a sorted array holds `element`.
    func binarySearchContains(_ element: Element) -> Bool {
        let position = lowerBound(of: element) { $0 }
        return position < count && self[position] == element
    }
}
