import NIOHTTP1
import RouteModel

/// What to do with a request, decided from its head and the current table alone.
enum RouteDecision: Equatable {
    /// Proxy to one of `cluster`'s endpoints with the normalised target.
    /// `hsts` is set on HTTPS requests to hosts that ask for Strict-Transport-Security.
    case forward(cluster: Cluster, backend: Backend, target: String, hsts: HSTSPolicy? = nil)
    /// Answer here: 400, 404 or 503.
    case respond(HTTPResponseStatus, reason: String)
    /// 308 to the https URL.
    case redirect(location: String)
}

/// Routing without I/O: request facts + table → decision. Kept pure so that every case is a unit test.
enum RequestRouter {
    /// Routes a request whose head passed `RequestFacts.inspect`: on its authority and target.
    static func decide(_ facts: RequestFacts, table: RouteTable, isTLS: Bool, httpsPort: Int = 443) -> RouteDecision {
        let host = facts.authority
        let normalised: String
        if facts.target == "*" {
            // OPTIONS *: routed as the host's root, and sent upstream as it came.
            normalised = "/"
        } else {
            do {
                normalised = try RequestPath.normalize(facts.target)
            } catch {
                return .respond(.badRequest, reason: error.description)
            }
        }
        let backend: Backend
        let hostIndex: Int
        switch table.resolve(host: host, path: normalised) {
        case .notFound:
            return .respond(.notFound, reason: "no route")
        case .route(let index, let routeIndex):
            hostIndex = index
            backend = table.virtualHosts[index].routes[routeIndex].backend
        case .defaultBackend(let index):
            hostIndex = index
            backend = table.virtualHosts[index].defaultBackend!
        }
        if backend.httpsRedirect, !isTLS {
            let name = HTTPSyntax.hostWithoutPort(host)
            let authority = httpsPort == 443 ? name : "\(name):\(httpsPort)"
            return .redirect(location: "https://\(authority)\(normalised)")
        }
        guard let cluster = table.cluster(named: backend.cluster), !cluster.endpoints.isEmpty else {
            return .respond(.serviceUnavailable, reason: "no ready endpoints")
        }
        let hsts = isTLS ? table.virtualHosts[hostIndex].tls?.hsts : nil
        return .forward(cluster: cluster, backend: backend, target: facts.target == "*" ? "*" : normalised, hsts: hsts)
    }
}
