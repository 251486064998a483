/// The lookup structures behind `RouteTable.resolve`: built once (a delta patches a copy), read lock-free.
///
/// Everything a lookup reads for one virtual host sits together in one byte `arena`: the host key
/// (what `exactHosts` and `wildcardSuffixes` point at), then that host's routes. A request thus touches
/// about two cache lines after hashing its host. Hosts with at most `linearLimit` routes are matched by
/// scanning those route entries; larger hosts use an `Exact` path map and a trie over path segments.
///
/// Route entry layout in the arena: kind (0 exact, 1 prefix), route index (UInt16 LE), key length
/// (UInt16 LE), key bytes. Prefix keys have no trailing slash; the root prefix `/` is the empty key.
struct RouteIndex: Sendable {
    static let linearLimit = 16

    struct HostRoutes {
        /// Offset of the first route entry in the arena.
        var entriesStart: UInt32
        var entryCount: UInt16
        /// Root trie node for large hosts, or -1 when the entries are scanned.
        var trieRoot: Int32
        /// For hosts whose paths are regular expressions: their entries in `regexRoutes`, in the order
        /// they are tried. Such hosts have no scanned entries and no trie.
        var regexStart: Int32 = 0
        var regexCount: Int32 = 0
        /// The scope of this host's paths in `exactPaths` (hosts with a trie only).
        var pathScope: Int32 = 0
    }

    /// A route of a regex host and its compiled path (case-insensitive). A path that does not compile
    /// (the translator refuses those) has no program and never matches.
    struct RegexRoute: @unchecked Sendable {
        let route: Int32
        let regex: PathRegex?
    }

    private(set) var arena: [UInt8] = []
    private(set) var exactHosts: FrozenByteMap
    private(set) var wildcardSuffixes = FrozenByteMap(caseInsensitive: true)
    /// The virtual host for `*` (rules without a host), or -1.
    private(set) var anyHost: Int32 = -1
    private(set) var hosts: [HostRoutes] = []
    private(set) var exactPaths = FrozenByteMap(caseInsensitive: false)
    private(set) var trieEdges = FrozenByteMap(caseInsensitive: false)
    /// Route index of the prefix route ending at each trie node, or -1.
    private(set) var nodeRoute: [Int32] = []
    private(set) var regexRoutes: [RegexRoute] = []
    /// The scope of the next large host's exact paths: each compiled host gets its own, so a host
    /// compiled again never sees its old paths.
    private var nextPathScope: Int32 = 0
    /// What replaced and removed hosts left behind (arena bytes, trie nodes, map and regex entries):
    /// a patched index is built afresh once this outweighs what is in use.
    private(set) var garbage = 0

    /// The compiled path of each route of a regex host, by host and route index, for rewrites.
    func regex(host: Int, route: Int) -> PathRegex? {
        let entries = hosts[host]
        guard entries.regexCount > 0 else { return nil }
        for index in Int(entries.regexStart)..<Int(entries.regexStart + entries.regexCount) where regexRoutes[index].route == Int32(route) {
            return regexRoutes[index].regex
        }
        return nil
    }

    /// ingress-nginx's order for a host's regex locations: longer paths first, equal lengths by
    /// descending path (its two stable sorts), and routes of one path in table order.
    static func regexOrder(_ routes: [Route]) -> [Int] {
        routes.indices.sorted { lhs, rhs in
            let left = routes[lhs].match.path.utf8.count
            let right = routes[rhs].match.path.utf8.count
            if left != right { return left > right }
            if routes[lhs].match.path != routes[rhs].match.path { return routes[lhs].match.path > routes[rhs].match.path }
            return lhs < rhs
        }
    }

    init(virtualHosts: [VirtualHost]) {
        exactHosts = FrozenByteMap(caseInsensitive: true, capacity: virtualHosts.count)
        hosts.reserveCapacity(virtualHosts.count)
        virtualHosts.withUnsafeBufferPointer { virtualHosts in
            for hostIndex in virtualHosts.indices {
                addKey(virtualHosts[hostIndex].hostname, id: Int32(hostIndex))
                hosts.append(compile(virtualHosts[hostIndex]))
            }
        }
    }

    /// This index for `newHosts`, the table's hosts after `removed` went and `upserted` were put in
    /// (both sorted by hostname, as `oldHosts` and `newHosts` are). Only those hosts are compiled;
    /// the others keep their entries, their positions shifted. Nil when building afresh is better:
    /// many edits, or more garbage than live entries.
    func patched(oldHosts: [VirtualHost], newHosts: [VirtualHost], removed: [HostPattern], upserted: [VirtualHost]) -> RouteIndex? {
        guard removed.count + upserted.count <= 64, garbage <= arena.count / 2 + 4096 else { return nil }
        var index = self
        // Old positions of removed hosts, and where inserted ones fall among the old hosts.
        let removedPositions = removed.map { oldHosts.lowerBound(of: $0, key: \.hostname) }
        var insertedBounds: [Int] = []
        var replaces: [Bool] = []
        for host in upserted {
            let position = oldHosts.lowerBound(of: host.hostname, key: \.hostname)
            let replacing = position < oldHosts.count && oldHosts[position].hostname == host.hostname
            replaces.append(replacing)
            if replacing {
                index.garbage += Self.weight(oldHosts[position])
            } else {
                insertedBounds.append(position)
            }
        }
        for position in removedPositions { index.garbage += Self.weight(oldHosts[position]) }

        let keys = index.arena
        keys.withUnsafeBufferPointer { arena in
            for (name, position) in zip(removed, removedPositions) {
                switch name {
                case .exact(let host):
                    var host = host
                    host.withUTF8 { _ = index.exactHosts.remove(scope: 0, key: $0, arena: arena) }
                case .wildcard(let suffix):
                    var suffix = suffix
                    suffix.withUTF8 { _ = index.wildcardSuffixes.remove(scope: 0, key: $0, arena: arena) }
                case .any:
                    if index.anyHost == Int32(position) { index.anyHost = -1 }
                }
            }
        }
        if !removedPositions.isEmpty || !insertedBounds.isEmpty {
            // Both sorted: a kept host moves back one per removed host before it and forward one per
            // inserted host placed before it.
            let shift = { (old: Int32) -> Int32 in
                let value = Int(old)
                return Int32(value - removedPositions.lowerBound(of: value) { $0 } + insertedBounds.lowerBound(of: value + 1) { $0 })
            }
            index.exactHosts.mapValues(shift)
            index.wildcardSuffixes.mapValues(shift)
            if index.anyHost >= 0 { index.anyHost = shift(index.anyHost) }
        }
        for position in removedPositions.reversed() { index.hosts.remove(at: position) }
        // In ascending order, each host goes to its final position: all before it are in place.
        for (host, replacing) in zip(upserted, replaces) {
            let position = newHosts.lowerBound(of: host.hostname, key: \.hostname)
            let compiled = index.compile(newHosts[position])
            if replacing {
                index.hosts[position] = compiled
            } else {
                index.hosts.insert(compiled, at: position)
                index.addKey(host.hostname, id: Int32(position))
            }
        }
        return index
    }

    /// Roughly what a compiled host holds, in arena bytes.
    private static func weight(_ host: VirtualHost) -> Int {
        var bytes = 0
        for route in host.routes { bytes += route.match.path.utf8.count + 8 }
        return bytes
    }

    /// Adds a host's name, mapped to `id`.
    private mutating func addKey(_ hostname: HostPattern, id: Int32) {
        switch hostname {
        case .exact(let name):
            let key = append(name.utf8)
            _ = exactHosts.insert(scope: 0, keyStart: key.start, keyLength: key.length, value: id, arena: arena)
        case .wildcard(let suffix):
            let key = append(suffix.utf8)
            _ = wildcardSuffixes.insert(scope: 0, keyStart: key.start, keyLength: key.length, value: id, arena: arena)
        case .any:
            if anyHost < 0 || id < anyHost { anyHost = id }
        }
    }

    private mutating func append(_ bytes: some Sequence<UInt8>) -> (start: Int, length: Int) {
        let start = arena.count
        arena.append(contentsOf: bytes)
        return (start, arena.count - start)
    }

    /// Compiles one host's routes into the arena, trie and maps.
    private mutating func compile(_ host: VirtualHost) -> HostRoutes {
        let routes = host.routes
        if host.regexPaths {
            let start = Int32(regexRoutes.count)
            for routeIndex in Self.regexOrder(routes) {
                let regex = try? PathRegex.compile(routes[routeIndex].match.path, caseInsensitive: true)
                regexRoutes.append(RegexRoute(route: Int32(routeIndex), regex: regex))
            }
            return HostRoutes(entriesStart: 0, entryCount: 0, trieRoot: -1, regexStart: start, regexCount: Int32(regexRoutes.count) - start)
        }
        let linear = routes.count <= Self.linearLimit && routes.allSatisfy { $0.match.path.utf8.count < 65_536 }
        if linear {
            let start = arena.count
            for routeIndex in routes.indices {
                let isPrefix = routes[routeIndex].match.kind.matchesAsPrefix
                var key = Substring(routes[routeIndex].match.path).utf8
                if isPrefix, key.last == UInt8(ascii: "/") { key = key.dropLast() }
                arena.append(isPrefix ? 1 : 0)
                arena.append(UInt8(truncatingIfNeeded: routeIndex))
                arena.append(UInt8(truncatingIfNeeded: routeIndex >> 8))
                arena.append(UInt8(truncatingIfNeeded: key.count))
                arena.append(UInt8(truncatingIfNeeded: key.count >> 8))
                arena.append(contentsOf: key)
            }
            return HostRoutes(entriesStart: UInt32(start), entryCount: UInt16(routes.count), trieRoot: -1)
        }
        let scope = nextPathScope
        nextPathScope += 1
        let root = Int32(nodeRoute.count)
        nodeRoute.append(-1)
        for (routeIndex, route) in routes.enumerated() {
            let routeID = Int32(routeIndex)
            guard route.match.kind.matchesAsPrefix else {
                let key = append(route.match.path.utf8)
                _ = exactPaths.insert(scope: scope, keyStart: key.start, keyLength: key.length, value: routeID, arena: arena)
                continue
            }
            var node = root
            for segment in route.match.path.utf8.split(separator: UInt8(ascii: "/")) {
                let next = Int32(nodeRoute.count)
                let key = append(segment)
                let child = trieEdges.insert(scope: node, keyStart: key.start, keyLength: key.length, value: next, arena: arena)
                if child == next { nodeRoute.append(-1) } else { arena.removeLast(key.length) }
                node = child
            }
            // The first route for a key wins; the translator never emits two.
            if nodeRoute[Int(node)] < 0 { nodeRoute[Int(node)] = routeID }
        }
        return HostRoutes(entriesStart: 0, entryCount: 0, trieRoot: root, pathScope: scope)
    }
}
