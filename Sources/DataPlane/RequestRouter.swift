import NIOHTTP1
import RouteModel

/// What to do with a request, decided from its head and the current table alone.
enum RouteDecision: Equatable {
    /// Proxy to one of `cluster`'s endpoints with `target`: the normalised target, or what the
    /// route's rewrite made of it. `hsts` is set on HTTPS requests to hosts that ask for
    /// Strict-Transport-Security.
    case forward(cluster: Cluster, backend: Backend, target: String, hsts: HSTSPolicy? = nil)
    /// Answer here: 400, 404 or 503.
    case respond(HTTPResponseStatus, reason: String)
    /// A redirect answered here: 308 to the https URL, or what an annotation asks for.
    case redirect(status: Int = 308, location: String)
}

/// Routing without I/O: request facts + table → decision. Kept pure so that every case is a unit test.
enum RequestRouter {
    /// Routes a request whose head passed `RequestFacts.inspect`: on its authority and target.
    ///
    /// In ingress-nginx's order: a host that redirects to its www twin (or back) answers first; then,
    /// for the matched route, `app-root` (for `/`), a `permanent-redirect` or `temporal-redirect`,
    /// the HTTPS redirect, and the `rewrite-target`, whose result is the target sent upstream (or,
    /// when it is an http:// or https:// URL, a 302 to it, as nginx's `rewrite` does).
    static func decide(_ facts: RequestFacts, table: RouteTable, isTLS: Bool, httpsPort: Int = 443, serverPort: Int = 80) -> RouteDecision {
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
        var routeIndex: Int?
        switch table.resolve(host: host, path: normalised) {
        case .notFound:
            if let index = table.virtualHost(forHost: host), let target = table.virtualHosts[index].redirectToHost {
                return wwwRedirect(to: target, path: normalised, isTLS: isTLS, serverPort: serverPort)
            }
            return .respond(.notFound, reason: "no route")
        case .route(let index, let route):
            hostIndex = index
            routeIndex = route
            backend = table.virtualHosts[index].routes[route].backend
        case .defaultBackend(let index):
            hostIndex = index
            backend = table.virtualHosts[index].defaultBackend!
        }
        let options = backend.options
        var target = facts.target == "*" ? "*" : normalised
        if options.appRoot != nil || options.redirect != nil || options.rewriteTarget != nil {
            let (path, query) = split(normalised)
            var context: PathTemplate.Context {
                var groups: [Range<Int>?] = []
                if let routeIndex, let regex = table.pathRegex(virtualHost: hostIndex, route: routeIndex) {
                    groups = regex.firstMatch(in: path) ?? []
                }
                return PathTemplate.Context(
                    path: path, query: query, groups: groups, scheme: isTLS ? "https" : "http", host: String(HTTPSyntax.hostWithoutPort(host)),
                    httpHost: host, serverPort: String(serverPort))
            }
            if let appRoot = options.appRoot, path == "/" {
                return .redirect(status: 302, location: "\(isTLS ? "https" : "http")://\(host)\(appRoot)")
            }
            if let redirect = options.redirect, let template = try? PathTemplate(parsing: redirect.location) {
                return .redirect(status: redirect.status, location: template.expand(context))
            }
            if let rewrite = options.rewriteTarget, let template = try? PathTemplate(parsing: rewrite), !backend.httpsRedirect || isTLS {
                let rewritten = template.expand(context)
                if rewritten.hasPrefix("http://") || rewritten.hasPrefix("https://") { return .redirect(status: 302, location: rewritten) }
                target = appendingQuery(query, to: rewritten)
            }
        }
        if backend.httpsRedirect, !isTLS {
            let name = HTTPSyntax.hostWithoutPort(host)
            let authority = httpsPort == 443 ? name : "\(name):\(httpsPort)"
            return .redirect(location: "https://\(authority)\(normalised)")
        }
        let hsts = isTLS ? table.virtualHosts[hostIndex].tls?.hsts : nil
        guard let cluster = table.cluster(named: backend.cluster), !cluster.endpoints.isEmpty else {
            if let rule = options.defaultBackend {
                // default-backend serves the route meanwhile, as ingress-nginx does.
                if rule.servesWithoutEndpoints, let fallback = table.cluster(named: rule.cluster), !fallback.endpoints.isEmpty {
                    return .forward(cluster: fallback, backend: backend, target: target, hsts: hsts)
                }
                // custom-http-errors replaces the 503: the exchange finds no endpoint and sends the error request.
                if rule.interceptedStatuses.contains(503), let cluster = table.cluster(named: backend.cluster) {
                    return .forward(cluster: cluster, backend: backend, target: target, hsts: hsts)
                }
            }
            return .respond(.serviceUnavailable, reason: "no ready endpoints")
        }
        return .forward(cluster: cluster, backend: backend, target: target, hsts: hsts)
    }

    /// `from-to-www-redirect`, as ingress-nginx's Lua does it: the scheme and port of this request,
    /// and the path without a trailing slash (so `/` becomes nothing).
    private static func wwwRedirect(to host: String, path: String, isTLS: Bool, serverPort: Int) -> RouteDecision {
        var uri = path
        if uri.hasSuffix("/") { uri.removeLast() }
        return .redirect(location: "\(isTLS ? "https" : "http")://\(host):\(serverPort)\(uri)")
    }

    private static func split(_ target: String) -> (path: String, query: String?) {
        guard let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (target, nil) }
        return (String(target[..<mark]), String(target[target.utf8.index(after: mark)...]))
    }

    /// nginx's `rewrite`: the request's arguments follow the new URI's own (after `&`), unless the
    /// replacement ends with `?`.
    private static func appendingQuery(_ query: String?, to rewritten: String) -> String {
        if rewritten.hasSuffix("?") { return String(rewritten.dropLast()) }
        guard let query, !query.isEmpty else { return rewritten.isEmpty ? "/" : rewritten }
        return rewritten + (rewritten.contains("?") ? "&" : "?") + query
    }
}
