import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import Translator

/// ingress-nginx's path semantics (the Kubernetes blog's "Before You Migrate", behaviours 1-3 and 5):
/// what routes where once `use-regex` or `rewrite-target` is on a host.
@Suite struct IngressNginxPathTests {
    static let useRegex = ["nginx.ingress.kubernetes.io/use-regex": "true"]

    static let cases: [RoutingCase] = [
        RoutingCase(
            "1: regex paths match as case-insensitive prefixes",
            objects(F.ingress("regex", annotations: useRegex, rules: [F.rule("h", p("/[A-Z]{3}", "ImplementationSpecific"))])),
            [("h", "/ABC", "a:80 ImplementationSpecific /[A-Z]{3}"), ("h", "/uuid", "a:80 ImplementationSpecific /[A-Z]{3}"),
             ("h", "/abc/def", "a:80 ImplementationSpecific /[A-Z]{3}"), ("h", "/12", "404"), ("h", "/ab", "404")]),
        RoutingCase(
            "2: use-regex on one Ingress makes every path of the host a regex, other Ingresses' too",
            objects(
                F.ingress("regex", created: 1, annotations: useRegex, rules: [F.rule("h", p("/api/v[0-9]+", "ImplementationSpecific"))]),
                F.ingress("plain", created: 2, rules: [F.rule("h", p("/Static", "Exact", "b"))]),
                F.ingress("other-host", created: 3, rules: [F.rule("o", p("/Static", "Exact", "c"))])),
            [("h", "/API/v2/users", "a:80 ImplementationSpecific /api/v[0-9]+"), ("h", "/static/app.js", "b:80 Exact /Static"),
             ("h", "/STATIC", "b:80 Exact /Static"), ("h", "/api/vx", "404"),
             // A host without the annotation keeps the Ingress API's semantics.
             ("o", "/Static", "c:80 Exact /Static"), ("o", "/static", "404"), ("o", "/Static/app.js", "404")]),
        RoutingCase(
            "3: rewrite-target makes the host's paths regular expressions",
            objects(
                F.ingress(
                    "rewrite", created: 1, annotations: ["nginx.ingress.kubernetes.io/rewrite-target": "/$2"],
                    rules: [F.rule("h", p("/something(/|$)(.*)", "ImplementationSpecific"))]),
                F.ingress("exact", created: 2, rules: [F.rule("h", p("/exact", "Exact", "b"))])),
            [("h", "/something/new", "a:80 ImplementationSpecific /something(/|$)(.*)"), ("h", "/exact/more", "b:80 Exact /exact"),
             ("h", "/EXACT", "b:80 Exact /exact")]),
        RoutingCase(
            "a rewrite-target equal to the path changes nothing",
            objects(F.ingress("same", annotations: ["nginx.ingress.kubernetes.io/rewrite-target": "/app"], rules: [F.rule("h", p("/app", "Exact"))])),
            [("h", "/app", "a:80 Exact /app"), ("h", "/APP", "404"), ("h", "/app/x", "404")]),
        RoutingCase(
            "ingress-nginx's order: longer paths first, then the greater path",
            objects(
                F.ingress(
                    "order", annotations: useRegex,
                    rules: [
                        F.rule(
                            "h", p("/a", "ImplementationSpecific", "a"), p("/a/b.*", "ImplementationSpecific", "b"),
                            p("/x.c", "ImplementationSpecific", "c"), p("/xab", "ImplementationSpecific", "d"))
                    ])),
            [("h", "/a/bc", "b:80 ImplementationSpecific /a/b.*"), ("h", "/a/x", "a:80 ImplementationSpecific /a"),
             ("h", "/xabc", "d:80 ImplementationSpecific /xab"), ("h", "/x_c", "c:80 ImplementationSpecific /x.c")]),
        RoutingCase(
            "5: requests are normalised before regex matching",
            objects(F.ingress("regex", annotations: useRegex, rules: [F.rule("h", p("/admin$", "ImplementationSpecific"))])),
            [("h", "/api/../admin", "a:80 ImplementationSpecific /admin$"), ("h", "//admin", "a:80 ImplementationSpecific /admin$"),
             ("h", "/%61dmin", "a:80 ImplementationSpecific /admin$"), ("h", "/admin/x", "404")]),
        RoutingCase(
            "an invalid regex rejects its own Ingress alone",
            objects(
                F.ingress("bad", created: 1, annotations: useRegex, rules: [F.rule("h", p("/(unclosed", "ImplementationSpecific"))]),
                F.ingress("good", created: 2, rules: [F.rule("g", p("/", "Prefix", "b"))])),
            rejections: [.invalidPath],
            [("h", "/(unclosed", "404"), ("g", "/", "b:80 Prefix /")]),
        RoutingCase(
            "lookaround is not RE2: refused, never served with another meaning",
            objects(F.ingress("pcre", annotations: useRegex, rules: [F.rule("h", p("/(?!admin).*", "ImplementationSpecific"))])),
            rejections: [.invalidPath],
            [("h", "/x", "404")]),
        RoutingCase(
            "a path another Ingress's use-regex cannot read as a regex is dropped, the rest stays",
            objects(
                F.ingress("regex", created: 1, annotations: useRegex, rules: [F.rule("h", p("/r.*", "ImplementationSpecific"))]),
                F.ingress("plain", created: 2, rules: [F.rule("h", p("/a(b", "Exact", "b"), p("/ok", "Prefix", "c"))])),
            rejections: [.invalidPath],
            [("h", "/rest", "a:80 ImplementationSpecific /r.*"), ("h", "/ok/x", "c:80 Prefix /ok"), ("h", "/a(b", "404")]),
    ]

    @Test(arguments: cases) func routes(_ testCase: RoutingCase) { check(testCase) }

    func backend(_ translation: Translation, host: String = "h", path: String? = nil) throws -> Backend {
        let virtualHost = try #require(translation.table.virtualHosts.first { $0.hostname.text == host })
        if let path { return try #require(virtualHost.routes.first { $0.match.path == path }).backend }
        return try #require(virtualHost.routes.first).backend
    }

    @Test func rewriteOptionsAreCarriedOnlyWhereTheyApply() throws {
        let translation = Translator.translate(
            objects(
                F.ingress(
                    "rw", annotations: ["nginx.ingress.kubernetes.io/rewrite-target": "/$2", "nginx.ingress.kubernetes.io/x-forwarded-prefix": "/api"],
                    rules: [F.rule("h", p("/api(/|$)(.*)", "ImplementationSpecific"), p("/$2", "ImplementationSpecific", "b"))])))
        #expect(translation.rejections.isEmpty, "\(translation.rejections)")
        #expect(translation.table.virtualHosts.first?.regexPaths == true)
        let rewritten = try backend(translation, path: "/api(/|$)(.*)")
        #expect(rewritten.options.rewriteTarget == "/$2")
        #expect(rewritten.options.forwardedPrefix == "/api")
        // The path equal to the target is not rewritten, so it gets no prefix header either.
        let same = try backend(translation, path: "/$2")
        #expect(same.options.rewriteTarget == nil)
        #expect(same.options.forwardedPrefix == nil)
    }

    @Test func xForwardedPrefixAloneDoesNothing() throws {
        let translation = Translator.translate(
            objects(F.ingress("p", annotations: ["nginx.ingress.kubernetes.io/x-forwarded-prefix": "/api"], rules: [F.rule("h", p("/"))])))
        #expect(try backend(translation).options.forwardedPrefix == nil)
        #expect(translation.table.virtualHosts.first?.regexPaths == false)
    }

    struct OptionCase: CustomTestStringConvertible, Sendable {
        let annotations: [String: String]
        let expect: RouteOptions
        let httpsRedirect: Bool
        let reasons: [Rejection.Reason]
        var testDescription: String { annotations.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ") }
    }

    static let n = "nginx.ingress.kubernetes.io/"
    static let optionCases: [OptionCase] = [
        OptionCase(annotations: [n + "upstream-vhost": "internal.svc"], expect: RouteOptions(upstreamHost: "internal.svc"), httpsRedirect: false, reasons: []),
        OptionCase(
            annotations: [n + "upstream-vhost": "evil\r\nX: y"], expect: RouteOptions(), httpsRedirect: false, reasons: [.invalidAnnotation]),
        OptionCase(annotations: [n + "app-root": "/app1"], expect: RouteOptions(appRoot: "/app1"), httpsRedirect: false, reasons: []),
        OptionCase(annotations: [n + "app-root": "app1"], expect: RouteOptions(), httpsRedirect: false, reasons: [.invalidAnnotation]),
        OptionCase(
            annotations: [n + "permanent-redirect": "https://example.com$request_uri"],
            expect: RouteOptions(redirect: RedirectRule(status: 301, location: "https://example.com$request_uri")), httpsRedirect: false, reasons: []),
        OptionCase(
            annotations: [n + "permanent-redirect": "https://example.com", n + "permanent-redirect-code": "308"],
            expect: RouteOptions(redirect: RedirectRule(status: 308, location: "https://example.com")), httpsRedirect: false, reasons: []),
        OptionCase(
            annotations: [n + "permanent-redirect": "https://example.com", n + "permanent-redirect-code": "200"],
            expect: RouteOptions(redirect: RedirectRule(status: 301, location: "https://example.com")), httpsRedirect: false,
            reasons: [.invalidAnnotation]),
        OptionCase(
            annotations: [n + "temporal-redirect": "http://example.com/tmp", n + "permanent-redirect": "https://example.com"],
            expect: RouteOptions(redirect: RedirectRule(status: 302, location: "http://example.com/tmp")), httpsRedirect: false, reasons: []),
        OptionCase(
            annotations: [n + "temporal-redirect": "http://example.com", n + "temporal-redirect-code": "307"],
            expect: RouteOptions(redirect: RedirectRule(status: 307, location: "http://example.com")), httpsRedirect: false, reasons: []),
        OptionCase(
            annotations: [n + "permanent-redirect": "ftp://example.com"], expect: RouteOptions(), httpsRedirect: false,
            reasons: [.invalidAnnotation]),
        OptionCase(
            annotations: [n + "permanent-redirect": "https://example.com$cookie_x"], expect: RouteOptions(), httpsRedirect: false,
            reasons: [.invalidAnnotation]),
        OptionCase(annotations: [n + "force-ssl-redirect": "true"], expect: RouteOptions(), httpsRedirect: true, reasons: []),
        OptionCase(annotations: [n + "force-ssl-redirect": "maybe"], expect: RouteOptions(), httpsRedirect: false, reasons: [.invalidAnnotation]),
        // Timeouts, retries and buffering (item 4): nginx's units, ingress-nginx's defaults otherwise.
        OptionCase(
            annotations: [n + "proxy-connect-timeout": "10", n + "proxy-read-timeout": "500ms", n + "proxy-send-timeout": "2m"],
            expect: RouteOptions(
                upstream: UpstreamOptions(connectTimeoutMilliseconds: 10_000, readTimeoutMilliseconds: 500, sendTimeoutMilliseconds: 120_000)),
            httpsRedirect: false, reasons: []),
        OptionCase(annotations: [n + "proxy-read-timeout": "soon"], expect: RouteOptions(), httpsRedirect: false, reasons: [.invalidAnnotation]),
        OptionCase(annotations: [n + "proxy-connect-timeout": "0"], expect: RouteOptions(), httpsRedirect: false, reasons: [.invalidAnnotation]),
        OptionCase(
            annotations: [n + "proxy-next-upstream": "off", n + "proxy-next-upstream-tries": "5"],
            expect: RouteOptions(upstream: UpstreamOptions(maxAttempts: 5, retryOnConnectError: false, retryOnConnectTimeout: false)),
            httpsRedirect: false, reasons: []),
        OptionCase(
            annotations: [n + "proxy-next-upstream": "error http_502"],
            expect: RouteOptions(
                upstream: UpstreamOptions(retryOnConnectError: true, retryOnConnectTimeout: false, retryAfterSending: true, retryStatuses: [502])),
            httpsRedirect: false, reasons: []),
        OptionCase(
            annotations: [n + "proxy-next-upstream": "timeout http_503 http_429 non_idempotent"],
            expect: RouteOptions(
                upstream: UpstreamOptions(
                    retryOnConnectError: false, retryOnConnectTimeout: true, retryAfterSending: true, retryStatuses: [429, 503],
                    retryNonIdempotent: true)),
            httpsRedirect: false, reasons: []),
        OptionCase(
            annotations: [n + "proxy-next-upstream": "error sometimes"], expect: RouteOptions(), httpsRedirect: false, reasons: [.invalidAnnotation]),
        OptionCase(
            annotations: [n + "proxy-request-buffering": "on", n + "client-body-buffer-size": "64k"],
            expect: RouteOptions(upstream: UpstreamOptions(requestBufferBytes: 65536)), httpsRedirect: false, reasons: []),
        OptionCase(
            annotations: [n + "proxy-request-buffering": "on"], expect: RouteOptions(upstream: UpstreamOptions(requestBufferBytes: 1 << 20)),
            httpsRedirect: false, reasons: []),
        OptionCase(annotations: [n + "proxy-request-buffering": "off"], expect: RouteOptions(), httpsRedirect: false, reasons: []),
    ]

    @Test(arguments: optionCases) func options(_ testCase: OptionCase) throws {
        let translation = Translator.translate(objects(F.ingress("i", annotations: testCase.annotations, rules: [F.rule("h", p("/"))])))
        #expect(translation.rejections.map(\.reason) == testCase.reasons, "\(translation.rejections)")
        let backend = try backend(translation)
        #expect(backend.options == testCase.expect)
        #expect(backend.httpsRedirect == testCase.httpsRedirect)
    }

    @Test func aBadRewriteTargetRejectsTheIngress() {
        let translation = Translator.translate(
            objects(
                F.ingress(
                    "i", annotations: [Self.n + "rewrite-target": "/$cookie_session"], rules: [F.rule("h", p("/x(.*)", "ImplementationSpecific"))])))
        #expect(translation.rejections.map(\.reason) == [.invalidAnnotation])
        #expect(translation.rejectedIngresses.map(\.name) == ["i"])
    }

    @Test func serverAliasServesTheSameRoutesUnlessTheAliasIsTaken() throws {
        let translation = Translator.translate(
            objects(
                F.ingress("main", created: 1, annotations: [Self.n + "server-alias": "alias.test, taken.test"], rules: [F.rule("h", p("/app"))]),
                F.ingress("other", created: 2, rules: [F.rule("taken.test", p("/", "Prefix", "b"))])))
        #expect(route(translation.table, "alias.test", "/app/x") == "a:80 Prefix /app")
        #expect(route(translation.table, "taken.test", "/app/x") == "b:80 Prefix /")
        #expect(translation.rejections.map(\.reason) == [.invalidAnnotation])
    }

    @Test func fromToWWWAddsTheOtherNameAsARedirect() throws {
        let translation = Translator.translate(
            objects(
                F.ingress("apex", created: 1, annotations: [Self.n + "from-to-www-redirect": "true"], rules: [F.rule("example.com", p("/"))]),
                F.ingress("www", created: 2, annotations: [Self.n + "from-to-www-redirect": "true"], rules: [F.rule("www.shop.test", p("/"))]),
                // Defined by an Ingress of its own: no redirect.
                F.ingress("taken", created: 3, annotations: [Self.n + "from-to-www-redirect": "true"], rules: [F.rule("a.test", p("/"))]),
                F.ingress("taken-www", created: 4, rules: [F.rule("www.a.test", p("/", "Prefix", "b"))])))
        let hosts = Dictionary(uniqueKeysWithValues: translation.table.virtualHosts.map { ($0.hostname.text, $0) })
        #expect(hosts["www.example.com"]?.redirectToHost == "example.com")
        #expect(hosts["shop.test"]?.redirectToHost == "www.shop.test")
        #expect(hosts["www.a.test"]?.redirectToHost == nil)
        #expect(route(translation.table, "www.a.test", "/") == "b:80 Prefix /")
    }
}

/// "Before You Migrate" behaviour 4, for classes that ask for it: a request for a path ending in `/`,
/// without the `/`, is answered 301 to the path with it, where ingress-nginx (nginx) does.
@Suite struct TrailingSlashRedirectTests {
    static let nginxClass = IngressClass(
        metadata: ObjectMeta(name: "nginx", annotations: ["portico.io/ingress-nginx-paths": "true"]),
        spec: IngressClassSpec(controller: "portico.io/ingress-controller"))

    func table(_ ingresses: Ingress...) -> RouteTable {
        let translation = Translator.translate(
            KubeObjects(
                ingresses: ingresses, ingressClasses: [Self.nginxClass], services: standardServices, endpointSlices: standardSlices, secrets: []))
        #expect(translation.rejections.isEmpty, "\(translation.rejections)")
        return translation.table
    }

    func redirect(_ table: RouteTable, _ path: String, host: String = "h") -> RedirectRule? {
        guard case .route(let hostIndex, let routeIndex) = table.resolve(host: host, path: path) else { return nil }
        return table.virtualHosts[hostIndex].routes[routeIndex].backend.options.redirect
    }

    static let slash = RedirectRule(status: 301, location: "$scheme://$http_host$uri/$is_args$args")

    @Test func pathsEndingInASlashRedirectTheBarePath() {
        let table = table(
            F.ingress("i", className: "nginx", rules: [F.rule("h", p("/prefix/", "Prefix"), p("/exact/", "Exact", "b"), p("/plain", "Prefix", "c"))]))
        #expect(redirect(table, "/prefix") == Self.slash)
        #expect(redirect(table, "/exact") == Self.slash)
        #expect(route(table, "h", "/prefix/x") == "a:80 Prefix /prefix/")
        #expect(route(table, "h", "/exact/") == "b:80 Exact /exact/")
        // ingress-nginx serves Prefix /plain as /plain/ and = /plain: no redirect.
        #expect(redirect(table, "/plain") == nil)
        #expect(route(table, "h", "/plain") == "c:80 Prefix /plain")
    }

    @Test func aRouteForTheBarePathWins() {
        let table = table(
            F.ingress("i", className: "nginx", rules: [F.rule("h", p("/a/", "Prefix"), p("/a", "Exact", "b"))]))
        #expect(redirect(table, "/a") == nil)
        #expect(route(table, "h", "/a") == "b:80 Exact /a")
    }

    @Test func otherClassesKeepTheIngressAPISemantics() {
        let table = table(F.ingress("i", className: "portico", rules: [F.rule("h", p("/prefix/", "Prefix"))]))
        #expect(redirect(table, "/prefix") == nil)
        #expect(route(table, "h", "/prefix") == "a:80 Prefix /prefix/")
    }
}
