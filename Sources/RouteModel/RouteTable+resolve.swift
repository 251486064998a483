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
    public func resolve(host: String, path: String) -> Resolution {
        var host = host
        var path = path
        return host.withUTF8 { hostBytes in
            path.withUTF8 { pathBytes in resolve(hostBytes: hostBytes, pathBytes: pathBytes) }
        }
    }

    public func resolve(hostBytes: UnsafeBufferPointer<UInt8>, pathBytes: UnsafeBufferPointer<UInt8>) -> Resolution {
        let hostID = virtualHostIndex(hostBytes: hostBytes)
        guard hostID >= 0 else { return .notFound }

        var pathEnd = 0
        while pathEnd < pathBytes.count, pathBytes[pathEnd] != UInt8(ascii: "?") { pathEnd += 1 }
        let path = UnsafeBufferPointer(rebasing: pathBytes[0..<pathEnd])

        if let route = index.exactPaths.lookup(scope: hostID, key: path) {
            return .route(virtualHost: Int(hostID), route: Int(route))
        }
        var node = index.rootNode[Int(hostID)]
        var best = index.nodeRoute[Int(node)]
        var start = 0
        while start < path.count {
            if path[start] == UInt8(ascii: "/") {
                start += 1
                continue
            }
            var end = start
            while end < path.count, path[end] != UInt8(ascii: "/") { end += 1 }
            guard let child = index.trieEdges.lookup(scope: node, key: UnsafeBufferPointer(rebasing: path[start..<end])) else {
                break
            }
            node = child
            let route = index.nodeRoute[Int(node)]
            if route >= 0 { best = route }
            start = end
        }
        if best >= 0 { return .route(virtualHost: Int(hostID), route: Int(best)) }
        if virtualHosts[Int(hostID)].defaultBackend != nil { return .defaultBackend(virtualHost: Int(hostID)) }
        return .notFound
    }

    /// The virtual host serving a Host header value, or nil.
    public func virtualHost(forHost host: String) -> Int? {
        var host = host
        let id = host.withUTF8 { virtualHostIndex(hostBytes: $0) }
        return id >= 0 ? Int(id) : nil
    }

    private func virtualHostIndex(hostBytes: UnsafeBufferPointer<UInt8>) -> Int32 {
        var end = hostBytes.count
        if let first = hostBytes.first, first == UInt8(ascii: "[") {
            // IPv6 literal: never a configured host, so only `*` can serve it.
            return index.anyHost
        }
        for i in 0..<hostBytes.count where hostBytes[i] == UInt8(ascii: ":") {
            end = i
            break
        }
        if end > 0, hostBytes[end - 1] == UInt8(ascii: ".") { end -= 1 }
        let host = UnsafeBufferPointer(rebasing: hostBytes[0..<end])
        if host.isEmpty { return index.anyHost }
        if let id = index.exactHosts.lookup(scope: 0, key: host) { return id }
        var dot = 0
        while dot < host.count, host[dot] != UInt8(ascii: ".") { dot += 1 }
        if dot > 0, dot + 1 < host.count,
            let id = index.wildcardSuffixes.lookup(scope: 0, key: UnsafeBufferPointer(rebasing: host[(dot + 1)...])) {
            return id
        }
        return index.anyHost
    }
}
