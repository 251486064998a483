import NIOHTTP1
import RouteModel

/// What to do with a request, decided from its head and the current table alone.
enum RouteDecision: Equatable {
    /// Proxy to one of `cluster`'s endpoints with the normalised target.
    case forward(cluster: Cluster, backend: Backend, target: String)
    /// Answer here: 400, 404 or 503.
    case respond(HTTPResponseStatus, reason: String)
    /// 308 to the https URL.
    case redirect(location: String)
}

/// Routing without I/O: request head + table → decision. Kept pure so that every case is a unit test.
enum RequestRouter {
    static func decide(_ head: HTTPRequestHead, table: RouteTable, isTLS: Bool, httpsPort: Int = 443) -> RouteDecision {
        // Message framing that could be read two ways is refused outright (request smuggling).
        let contentLengths = head.headers["content-length"]
        let transferEncodings = head.headers["transfer-encoding"]
        if !transferEncodings.isEmpty, !contentLengths.isEmpty {
            return .respond(.badRequest, reason: "both Content-Length and Transfer-Encoding")
        }
        if Set(contentLengths).count > 1 { return .respond(.badRequest, reason: "conflicting Content-Length") }
        let hosts = head.headers["host"]
        var host: String
        var target = head.uri
        if target.hasPrefix("http://") || target.hasPrefix("https://") {
            // Absolute form: its authority wins over the Host header (RFC 9112 §3.2.2).
            let rest = target.drop { $0 != "/" }.dropFirst(2)
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            host = String(rest[..<slash])
            target = slash == rest.endIndex ? "/" : String(rest[slash...])
        } else {
            guard hosts.count == 1 else {
                return .respond(.badRequest, reason: hosts.isEmpty ? "missing Host header" : "more than one Host header")
            }
            host = hosts[0]
        }
        if let at = host.lastIndex(of: "@") { host = String(host[host.index(after: at)...]) }
        let normalised: String
        do {
            normalised = try RequestPath.normalize(target)
        } catch {
            return .respond(.badRequest, reason: error.description)
        }
        let backend: Backend
        switch table.resolve(host: host, path: normalised) {
        case .notFound:
            return .respond(.notFound, reason: "no route")
        case .route(let hostIndex, let routeIndex):
            backend = table.virtualHosts[hostIndex].routes[routeIndex].backend
        case .defaultBackend(let hostIndex):
            backend = table.virtualHosts[hostIndex].defaultBackend!
        }
        if backend.httpsRedirect, !isTLS {
            let name = host.split(separator: ":", maxSplits: 1).first.map(String.init) ?? host
            let authority = httpsPort == 443 ? name : "\(name):\(httpsPort)"
            return .redirect(location: "https://\(authority)\(normalised)")
        }
        guard let cluster = table.cluster(named: backend.cluster), !cluster.endpoints.isEmpty else {
            return .respond(.serviceUnavailable, reason: "no ready endpoints")
        }
        return .forward(cluster: cluster, backend: backend, target: normalised)
    }
}
