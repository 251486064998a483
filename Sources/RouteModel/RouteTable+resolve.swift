/// The outcome of routing one request.
public enum Resolution: Sendable, Hashable {
    /// `virtualHosts[virtualHost].routes[route]` matched.
    case route(virtualHost: Int, route: Int)
    /// A virtual host matched but none of its routes did: its `defaultBackend` answers.
    case defaultBackend(virtualHost: Int)
    /// 404.
    case notFound
}

extension RouteTable {
    /// Routes a request. Time is linear in the length of host and path; nothing is allocated.
    ///
    /// - host: the Host header or `:authority`; case-insensitive, a `:port` and a trailing dot are ignored.
    /// - path: a normalised request target (see `RequestPath.normalize`); a query string is ignored.
    ///
    /// The virtual host is chosen first (exact host, then one-label wildcard, then `*`); within it,
    /// an `Exact` route equal to the path wins, else the longest prefix route, else the default backend.
    /// On a host whose paths are regular expressions, the first route (in ingress-nginx's order)
    /// whose expression matches at the start of the path wins.
    public func resolve(host: String, path: String) -> Resolution {
        var host = host
        var path = path
        return host.withUTF8 { hostBytes in
            path.withUTF8 { pathBytes in resolve(hostBytes: hostBytes, pathBytes: pathBytes) }
        }
    }

    public func resolve(hostBytes: UnsafeBufferPointer<UInt8>, pathBytes: UnsafeBufferPointer<UInt8>) -> Resolution {
        index.arena.withUnsafeBufferPointer { arena in
            let hostID = virtualHostIndex(hostBytes: hostBytes, arena: arena)
            guard hostID >= 0 else { return .notFound }
            var pathEnd = 0
            while pathEnd < pathBytes.count, pathBytes[pathEnd] != UInt8(ascii: "?") { pathEnd &+= 1 }
            let path = UnsafeBufferPointer(rebasing: pathBytes[0..<pathEnd])
            let routes = index.hosts[Int(hostID)]
            if routes.regexCount > 0 {
                for entry in Int(routes.regexStart)..<Int(routes.regexStart + routes.regexCount) {
                    if let regex = index.regexRoutes[entry].regex, regex.matchesPrefix(path) {
                        return .route(virtualHost: Int(hostID), route: Int(index.regexRoutes[entry].route))
                    }
                }
                if virtualHosts[Int(hostID)].defaultBackend != nil { return .defaultBackend(virtualHost: Int(hostID)) }
                return .notFound
            }
            let route = routes.trieRoot < 0
                ? scan(routes, path: path, arena: arena) : walkTrie(scope: routes.pathScope, root: routes.trieRoot, path: path, arena: arena)
            if route >= 0 { return .route(virtualHost: Int(hostID), route: Int(route)) }
            if virtualHosts[Int(hostID)].defaultBackend != nil { return .defaultBackend(virtualHost: Int(hostID)) }
            return .notFound
        }
    }

    /// Linear match over a small host's route entries: an equal `Exact` key returns at once (nothing
    /// can be longer); otherwise the longest prefix ending at a segment boundary wins.
    @inline(__always)
    private func scan(_ routes: RouteIndex.HostRoutes, path: UnsafeBufferPointer<UInt8>, arena: UnsafeBufferPointer<UInt8>) -> Int32 {
        var position = Int(routes.entriesStart)
        var best: Int32 = -1
        var bestLength = -1
        for _ in 0..<routes.entryCount {
            let isPrefix = arena[position] == 1
            let route = Int32(arena[position &+ 1]) | Int32(arena[position &+ 2]) << 8
            let length = Int(arena[position &+ 3]) | Int(arena[position &+ 4]) << 8
            let key = position &+ 5
            position = key &+ length
            if isPrefix {
                guard length > bestLength, length <= path.count,
                    length == path.count || path[length] == UInt8(ascii: "/"),
                    equal(arena, key, path, length)
                else { continue }
                best = route
                bestLength = length
            } else if length == path.count, equal(arena, key, path, length) {
                return route
            }
        }
        return best
    }

    @inline(__always)
    private func equal(_ arena: UnsafeBufferPointer<UInt8>, _ start: Int, _ path: UnsafeBufferPointer<UInt8>, _ length: Int) -> Bool {
        var i = 0
        while i < length {
            if arena[start &+ i] != path[i] { return false }
            i &+= 1
        }
        return true
    }

    private func walkTrie(scope: Int32, root: Int32, path: UnsafeBufferPointer<UInt8>, arena: UnsafeBufferPointer<UInt8>) -> Int32 {
        if let route = index.exactPaths.lookup(scope: scope, key: path, arena: arena) { return route }
        var node = root
        var best = index.nodeRoute[Int(node)]
        var start = 0
        while start < path.count {
            if path[start] == UInt8(ascii: "/") {
                start &+= 1
                continue
            }
            var end = start
            while end < path.count, path[end] != UInt8(ascii: "/") { end &+= 1 }
            guard let child = index.trieEdges.lookup(scope: node, key: UnsafeBufferPointer(rebasing: path[start..<end]), arena: arena)
            else { break }
            node = child
            let route = index.nodeRoute[Int(node)]
            if route >= 0 { best = route }
            start = end
        }
        return best
    }

    /// The compiled regular expression of a route on a regex host (see `VirtualHost.regexPaths`).
    public func pathRegex(virtualHost: Int, route: Int) -> PathRegex? { index.regex(host: virtualHost, route: route) }

    /// The virtual host serving a Host header value, or nil.
    public func virtualHost(forHost host: String) -> Int? {
        var host = host
        let id = host.withUTF8 { bytes in index.arena.withUnsafeBufferPointer { virtualHostIndex(hostBytes: bytes, arena: $0) } }
        return id >= 0 ? Int(id) : nil
    }

    @inline(__always)
    private func virtualHostIndex(hostBytes: UnsafeBufferPointer<UInt8>, arena: UnsafeBufferPointer<UInt8>) -> Int32 {
        if let first = hostBytes.first, first == UInt8(ascii: "[") {
            // IPv6 literal: never a configured host, so only `*` can serve it.
            return index.anyHost
        }
        var end = 0
        while end < hostBytes.count, hostBytes[end] != UInt8(ascii: ":") { end &+= 1 }
        if end > 0, hostBytes[end - 1] == UInt8(ascii: ".") { end -= 1 }
        let host = UnsafeBufferPointer(rebasing: hostBytes[0..<end])
        if host.isEmpty { return index.anyHost }
        if let id = index.exactHosts.lookup(scope: 0, key: host, arena: arena) { return id }
        if index.wildcardSuffixes.count > 0 {
            var dot = 0
            while dot < host.count, host[dot] != UInt8(ascii: ".") { dot &+= 1 }
            if dot > 0, dot + 1 < host.count,
                let id = index.wildcardSuffixes.lookup(scope: 0, key: UnsafeBufferPointer(rebasing: host[(dot + 1)...]), arena: arena) {
                return id
            }
        }
        return index.anyHost
    }
}
