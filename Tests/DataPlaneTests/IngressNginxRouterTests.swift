import NIOCore
import NIOHTTP1
import RouteModel
import Testing
@testable import DataPlane

/// What the worker does with ingress-nginx's rewrites and redirects, decided without I/O.
@Suite struct IngressNginxRouterTests {
    static let web = Cluster(namespace: "default", service: "web", servicePort: .number(80), endpoints: [Endpoint(address: "10.0.0.1", port: 8080)])
    static let source = RouteSource(namespace: "default", ingress: "i")

    static func route(_ path: String, _ options: RouteOptions = RouteOptions(), kind: PathMatchKind = .implementationSpecific, httpsRedirect: Bool = false)
        -> Route
    {
        Route(match: PathMatch(kind: kind, path: path), backend: Backend(cluster: web.name, source: source, httpsRedirect: httpsRedirect, options: options))
    }

    static let table = RouteTable(
        virtualHosts: [
            VirtualHost(
                hostname: .exact("rw.test"),
                routes: [
                    route("/something(/|$)(.*)", RouteOptions(rewriteTarget: "/$2")),
                    route("/api/(v[0-9])/(.*)", RouteOptions(rewriteTarget: "/$2?version=$1")),
                    route("/keep(.*)", RouteOptions(rewriteTarget: "/kept$1?")),
                    route("/away(.*)", RouteOptions(rewriteTarget: "https://elsewhere.test$1")),
                    route("/plain", kind: .exact),
                ], regexPaths: true),
            VirtualHost(
                hostname: .exact("redirect.test"),
                routes: [
                    route("/", RouteOptions(appRoot: "/app1"), kind: .prefix),
                    route("/old", RouteOptions(redirect: RedirectRule(status: 301, location: "https://new.test$request_uri")), kind: .prefix),
                    route("/tmp", RouteOptions(redirect: RedirectRule(status: 307, location: "https://$host/elsewhere")), kind: .prefix, httpsRedirect: true),
                    route("/secure", kind: .prefix, httpsRedirect: true),
                    // What the translator adds for ingress-nginx's trailing-slash redirect.
                    route("/dir", RouteOptions(redirect: RedirectRule(status: 301, location: "$scheme://$http_host$uri/$is_args$args")), kind: .exact),
                ]),
            VirtualHost(hostname: .exact("www.example.test"), redirectToHost: "example.test"),
            VirtualHost(hostname: .exact("example.test"), routes: [route("/", kind: .prefix)]),
        ],
        clusters: [web], certificates: [])

    func decide(_ uri: String, host: String, isTLS: Bool = false) -> RouteDecision {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: HTTPHeaders([("Host", host)]))
        switch RequestFacts.inspect(head, maxFields: 100) {
        case .success(let facts): return RequestRouter.decide(facts, table: Self.table, isTLS: isTLS, httpsPort: 443, serverPort: isTLS ? 443 : 80)
        case .failure(let refusal): return .respond(refusal.status, reason: refusal.reason)
        }
    }

    func target(_ uri: String, host: String = "rw.test") -> String? {
        guard case .forward(_, _, let target, _) = decide(uri, host: host) else { return nil }
        return target
    }

    @Test(arguments: [
        // ingress-nginx's documented example: /something(/|$)(.*) with /$2.
        ("/something", "/"), ("/something/", "/"), ("/something/new", "/new"), ("/SOMETHING/New", "/New"),
        // The request's query follows the rewritten path, after the target's own.
        ("/something/new?a=1", "/new?a=1"), ("/api/v2/users?limit=5", "/users?version=v2&limit=5"),
        // A target ending in `?` drops the request's query.
        ("/keep/x?drop=1", "/kept/x"),
        // Routes without a rewrite keep the normalised target.
        ("/plain/x?q", "/plain/x?q"),
    ])
    func rewrites(_ uri: String, _ expected: String) {
        #expect(target(uri) == expected)
    }

    @Test func aRewriteToAURLIsA302() {
        #expect(decide("/away/p", host: "rw.test") == .redirect(status: 302, location: "https://elsewhere.test/p"))
    }

    @Test func redirects() {
        #expect(decide("/", host: "redirect.test") == .redirect(status: 302, location: "http://redirect.test/app1"))
        #expect(decide("/", host: "redirect.test:8080", isTLS: true) == .redirect(status: 302, location: "https://redirect.test:8080/app1"))
        // app-root is only for `/`.
        #expect(target("/other", host: "redirect.test") == "/other")
        #expect(decide("/old/page?x=1", host: "redirect.test") == .redirect(status: 301, location: "https://new.test/old/page?x=1"))
        // An annotation's redirect comes before the HTTPS redirect, as in ingress-nginx.
        #expect(decide("/tmp", host: "redirect.test") == .redirect(status: 307, location: "https://redirect.test/elsewhere"))
        #expect(decide("/secure/x", host: "redirect.test") == .redirect(status: 308, location: "https://redirect.test/secure/x"))
    }

    @Test func trailingSlashRedirectKeepsHostPortAndQuery() {
        #expect(decide("/dir", host: "redirect.test:8080") == .redirect(status: 301, location: "http://redirect.test:8080/dir/"))
        #expect(decide("/dir?a=1", host: "redirect.test", isTLS: true) == .redirect(status: 301, location: "https://redirect.test/dir/?a=1"))
    }

    @Test func fromToWWW() {
        #expect(decide("/shop/", host: "www.example.test") == .redirect(status: 308, location: "http://example.test:80/shop"))
        #expect(decide("/", host: "www.example.test", isTLS: true) == .redirect(status: 308, location: "https://example.test:443"))
        #expect(target("/", host: "example.test") == "/")
    }
}
