/// The lookup structures behind `RouteTable.resolve`: built once, read lock-free.
///
/// - `exactHosts` and `wildcardSuffixes` map a lowercased host (or the part after its first label)
///   to a virtual host.
/// - Per virtual host, `exactPaths` maps a whole path to an `Exact` route, and a trie over path
///   segments holds the prefix routes: `trieEdges` maps (node, segment) to a child node and
///   `nodeRoute` gives the prefix route ending at a node.
struct RouteIndex: Sendable {
    let exactHosts: FrozenByteMap
    let wildcardSuffixes: FrozenByteMap
    /// The virtual host for `*` (rules without a host), or -1.
    let anyHost: Int32
    let exactPaths: FrozenByteMap
    let trieEdges: FrozenByteMap
    /// Root trie node of each virtual host.
    let rootNode: [Int32]
    /// Route index (within its virtual host) of the prefix route at each node, or -1.
    let nodeRoute: [Int32]

    init(virtualHosts: [VirtualHost]) {
        var exactHosts = FrozenByteMapBuilder(caseInsensitive: true)
        var wildcards = FrozenByteMapBuilder(caseInsensitive: true)
        var exactPaths = FrozenByteMapBuilder(caseInsensitive: false)
        var edges = FrozenByteMapBuilder(caseInsensitive: false)
        var anyHost: Int32 = -1
        var rootNode: [Int32] = []
        var nodeRoute: [Int32] = []

        for (hostIndex, host) in virtualHosts.enumerated() {
            let hostID = Int32(hostIndex)
            switch host.hostname {
            case .exact(let name): _ = exactHosts.insert(scope: 0, key: name.utf8, value: hostID)
            case .wildcard(let suffix): _ = wildcards.insert(scope: 0, key: suffix.utf8, value: hostID)
            case .any: if anyHost < 0 { anyHost = hostID }
            }
            let root = Int32(nodeRoute.count)
            rootNode.append(root)
            nodeRoute.append(-1)
            for (routeIndex, route) in host.routes.enumerated() {
                let routeID = Int32(routeIndex)
                guard route.match.kind.matchesAsPrefix else {
                    _ = exactPaths.insert(scope: hostID, key: route.match.path.utf8, value: routeID)
                    continue
                }
                var node = root
                for segment in route.match.path.utf8.split(separator: UInt8(ascii: "/")) {
                    let next = Int32(nodeRoute.count)
                    let child = edges.insert(scope: node, key: segment, value: next)
                    if child == next { nodeRoute.append(-1) }
                    node = child
                }
                // The first route for a key wins; the translator never emits two.
                if nodeRoute[Int(node)] < 0 { nodeRoute[Int(node)] = routeID }
            }
        }
        self.exactHosts = exactHosts.build()
        self.wildcardSuffixes = wildcards.build()
        self.anyHost = anyHost
        self.exactPaths = exactPaths.build()
        self.trieEdges = edges.build()
        self.rootNode = rootNode
        self.nodeRoute = nodeRoute
    }
}
