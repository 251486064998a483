/// The lookup structures behind `RouteTable.resolve`: built once, read lock-free.
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
    }

    /// A route of a regex host and its compiled path (case-insensitive). A path that does not compile
    /// (the translator refuses those) has no program and never matches.
    struct RegexRoute: @unchecked Sendable {
        let route: Int32
        let regex: PathRegex?
    }

    let arena: [UInt8]
    let exactHosts: FrozenByteMap
    let wildcardSuffixes: FrozenByteMap
    /// The virtual host for `*` (rules without a host), or -1.
    let anyHost: Int32
    let hosts: [HostRoutes]
    let exactPaths: FrozenByteMap
    let trieEdges: FrozenByteMap
    /// Route index of the prefix route ending at each trie node, or -1.
    let nodeRoute: [Int32]
    let regexRoutes: [RegexRoute]
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
        var arena: [UInt8] = []
        var exactHosts = FrozenByteMap(caseInsensitive: true, capacity: virtualHosts.count)
        var wildcards = FrozenByteMap(caseInsensitive: true)
        var exactPaths = FrozenByteMap(caseInsensitive: false)
        var edges = FrozenByteMap(caseInsensitive: false)
        var anyHost: Int32 = -1
        var hosts: [HostRoutes] = []
        hosts.reserveCapacity(virtualHosts.count)
        var nodeRoute: [Int32] = []
        var regexRoutes: [RegexRoute] = []

        func append(_ bytes: some Sequence<UInt8>) -> (start: Int, length: Int) {
            let start = arena.count
            arena.append(contentsOf: bytes)
            return (start, arena.count - start)
        }

        virtualHosts.withUnsafeBufferPointer { virtualHosts in
        for hostIndex in virtualHosts.indices {
            let hostID = Int32(hostIndex)
            switch virtualHosts[hostIndex].hostname {
            case .exact(let name):
                let key = append(name.utf8)
                _ = exactHosts.insert(scope: 0, keyStart: key.start, keyLength: key.length, value: hostID, arena: arena)
            case .wildcard(let suffix):
                let key = append(suffix.utf8)
                _ = wildcards.insert(scope: 0, keyStart: key.start, keyLength: key.length, value: hostID, arena: arena)
            case .any:
                if anyHost < 0 { anyHost = hostID }
            }
            let routes = virtualHosts[hostIndex].routes
            if virtualHosts[hostIndex].regexPaths {
                let start = Int32(regexRoutes.count)
                for routeIndex in Self.regexOrder(routes) {
                    let regex = try? PathRegex.compile(routes[routeIndex].match.path, caseInsensitive: true)
                    regexRoutes.append(RegexRoute(route: Int32(routeIndex), regex: regex))
                }
                hosts.append(
                    HostRoutes(entriesStart: 0, entryCount: 0, trieRoot: -1, regexStart: start, regexCount: Int32(regexRoutes.count) - start))
                continue
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
                hosts.append(HostRoutes(entriesStart: UInt32(start), entryCount: UInt16(routes.count), trieRoot: -1))
                continue
            }
            let root = Int32(nodeRoute.count)
            nodeRoute.append(-1)
            for (routeIndex, route) in routes.enumerated() {
                let routeID = Int32(routeIndex)
                guard route.match.kind.matchesAsPrefix else {
                    let key = append(route.match.path.utf8)
                    _ = exactPaths.insert(scope: hostID, keyStart: key.start, keyLength: key.length, value: routeID, arena: arena)
                    continue
                }
                var node = root
                for segment in route.match.path.utf8.split(separator: UInt8(ascii: "/")) {
                    let next = Int32(nodeRoute.count)
                    let key = append(segment)
                    let child = edges.insert(scope: node, keyStart: key.start, keyLength: key.length, value: next, arena: arena)
                    if child == next { nodeRoute.append(-1) } else { arena.removeLast(key.length) }
                    node = child
                }
                // The first route for a key wins; the translator never emits two.
                if nodeRoute[Int(node)] < 0 { nodeRoute[Int(node)] = routeID }
            }
            hosts.append(HostRoutes(entriesStart: 0, entryCount: 0, trieRoot: root))
        }
        }
        self.arena = arena
        self.exactHosts = exactHosts
        self.wildcardSuffixes = wildcards
        self.anyHost = anyHost
        self.hosts = hosts
        self.exactPaths = exactPaths
        self.trieEdges = edges
        self.nodeRoute = nodeRoute
        self.regexRoutes = regexRoutes
    }
}
