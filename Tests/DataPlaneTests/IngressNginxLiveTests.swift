import KubeTypes
import NIOHTTP1
import RouteModel
import Testing
import TestSupport
import Translator
@testable import DataPlane

/// ingress-nginx Ingresses, translated and served by a live worker: what the client and the Pod see.
@Suite(.serialized) struct IngressNginxLiveTests {
    static let n = "nginx.ingress.kubernetes.io/"

    /// Ingresses routing to one backend listening on `port` (Service `app`, port 80).
    static func table(port: Int, _ ingresses: Ingress...) -> RouteTable {
        let objects = KubeObjects(
            ingresses: ingresses, ingressClasses: [],
            services: [Fixture.service("app", ports: [ServicePort(name: "http", port: 80, targetPort: .int(Int32(port)))])],
            endpointSlices: [Fixture.slice("app-1", service: "app", port: Int32(port), endpoints: [("127.0.0.1", true)])], secrets: [])
        let translation = Translator.translate(objects)
        #expect(translation.rejections.isEmpty, "\(translation.rejections)")
        return translation.table
    }

    static func path(_ path: String, _ type: String = "ImplementationSpecific") -> HTTPIngressPath {
        Fixture.path(path, type, Fixture.backend("app", 80))
    }

    @Test(arguments: Worker.Configuration.Engine.allCases)
    func rewritesAndHostHeadersReachThePod(engine: Worker.Configuration.Engine) async throws {
        let app = try await TestBackend.start(name: "app")
        let table = Self.table(
            port: app.port,
            Fixture.ingress(
                "rewrite", created: 1,
                annotations: [
                    Self.n + "rewrite-target": "/$2", Self.n + "x-forwarded-prefix": "/something", Self.n + "upstream-vhost": "internal.app",
                ],
                rules: [Fixture.rule("rw.test", Self.path("/something(/|$)(.*)"))]),
            // Another Ingress of the host: its Exact path is now a case-insensitive prefix regex.
            Fixture.ingress("exact", created: 2, rules: [Fixture.rule("rw.test", Self.path("/exact", "Exact"))]))
        let proxy = try await LiveProxy.start(table) { $0.engine = engine }
        try await TestHTTPConnection.with(port: proxy.port) { client in
            let rewritten = try await client.request(.GET, "/something/new/page?x=1", host: "rw.test", headers: [("X-Forwarded-Prefix", "/forged")])
            #expect(rewritten.status == .ok)
            #expect(rewritten.echoed["target"] == "/new/page?x=1")
            #expect(rewritten.echoed["host"] == "internal.app")
            #expect(rewritten.echoed["x-forwarded-host"] == "rw.test")
            #expect(rewritten.echoed["x-forwarded-prefix"] == "/something")
            let prefixed = try await client.request(.GET, "/EXACT/more", host: "rw.test")
            #expect(prefixed.status == .ok)
            #expect(prefixed.echoed["target"] == "/EXACT/more")
            #expect(prefixed.echoed["x-forwarded-prefix"] == nil)
            #expect(try await client.request(.GET, "/other", host: "rw.test").status == .notFound)
        }
        await proxy.stop()
        await app.stop()
    }

    @Test(arguments: Worker.Configuration.Engine.allCases)
    func redirectsAreAnsweredByTheWorker(engine: Worker.Configuration.Engine) async throws {
        let app = try await TestBackend.start(name: "app")
        let table = Self.table(
            port: app.port,
            Fixture.ingress("root", created: 1, annotations: [Self.n + "app-root": "/app1"], rules: [Fixture.rule("root.test", Self.path("/", "Prefix"))]),
            Fixture.ingress(
                "moved", created: 2, annotations: [Self.n + "permanent-redirect": "https://new.test$request_uri", Self.n + "permanent-redirect-code": "308"],
                rules: [Fixture.rule("old.test", Self.path("/", "Prefix"))]),
            Fixture.ingress(
                "www", created: 3, annotations: [Self.n + "from-to-www-redirect": "true", Self.n + "force-ssl-redirect": "false"],
                rules: [Fixture.rule("shop.test", Self.path("/", "Prefix"))]),
            Fixture.ingress("forced", created: 4, annotations: [Self.n + "force-ssl-redirect": "true"], rules: [Fixture.rule("forced.test", Self.path("/", "Prefix"))]))
        let proxy = try await LiveProxy.start(table) { $0.engine = engine }
        try await TestHTTPConnection.with(port: proxy.port) { client in
            let root = try await client.request(.GET, "/", host: "root.test")
            #expect(root.status == .found)
            #expect(root.headers["location"] == ["http://root.test/app1"])
            #expect(try await client.request(.GET, "/app1", host: "root.test").echoed["target"] == "/app1")
            let moved = try await client.request(.GET, "/a/b?c=d", host: "old.test")
            #expect(moved.status == .permanentRedirect)
            #expect(moved.headers["location"] == ["https://new.test/a/b?c=d"])
            let www = try await client.request(.GET, "/cart/", host: "www.shop.test")
            #expect(www.status == .permanentRedirect)
            #expect(www.headers["location"] == ["http://shop.test:\(proxy.port)/cart"])
            let forced = try await client.request(.GET, "/x", host: "forced.test")
            #expect(forced.status == .permanentRedirect)
            #expect(forced.headers["location"] == ["https://forced.test/x"])
        }
        #expect(app.receivedRequests == 1, "only /app1 reached the Pod")
        await proxy.stop()
        await app.stop()
    }

    /// proxy-read-timeout bounds the wait for the response head (here 1 s against a Pod that takes 3),
    /// for that Ingress only; proxy-next-upstream off answers a failed connect without retrying.
    @Test func perIngressTimeoutsAndRetries() async throws {
        let slow = try await TestBackend.start(name: "slow")
        let dead = try closedPort()
        let objects = KubeObjects(
            ingresses: [
                Fixture.ingress("fast", created: 1, annotations: [Self.n + "proxy-read-timeout": "1"], rules: [Fixture.rule("fast.test", Self.path("/", "Prefix"))]),
                Fixture.ingress("patient", created: 2, rules: [Fixture.rule("patient.test", Self.path("/", "Prefix"))]),
                Fixture.ingress(
                    "once", created: 3, annotations: [Self.n + "proxy-next-upstream": "off"],
                    rules: [Fixture.rule("once.test", Fixture.path("/", "Prefix", Fixture.backend("pair", 80)))]),
            ],
            ingressClasses: [],
            services: [
                Fixture.service("app", ports: [ServicePort(name: "http", port: 80, targetPort: .int(Int32(slow.port)))]),
                Fixture.service("pair", ports: [ServicePort(name: "http", port: 80, targetPort: .int(Int32(dead)))]),
            ],
            endpointSlices: [
                Fixture.slice("app-1", service: "app", port: Int32(slow.port), endpoints: [("127.0.0.1", true)]),
                Fixture.slice("pair-1", service: "pair", port: Int32(dead), endpoints: [("127.0.0.1", true), ("127.0.0.2", true)]),
            ], secrets: [])
        let proxy = try await LiveProxy.start(Translator.translate(objects).table)
        try await TestHTTPConnection.with(port: proxy.port) { client in
            let timedOut = try await client.request(.GET, "/sleep/3000", host: "fast.test")
            #expect(timedOut.status == .gatewayTimeout)
            #expect(try await client.request(.GET, "/sleep/1200", host: "patient.test").status == .ok, "the worker's 60 s elsewhere")
            #expect(try await client.request(.GET, "/", host: "once.test").status == .badGateway)
        }
        #expect(await proxy.worker.counters().connectFailures == 1, "no second endpoint was tried")
        await proxy.stop()
        await slow.stop()
    }

    /// proxy-next-upstream http_502 and error: a GET the first Pod answers 502 (or drops) goes to the
    /// next one; a POST is not sent twice.
    @Test func aSentRequestGoesToTheNextPodWhereTheIngressAsks() async throws {
        let good = try await TestBackend.start(name: "good")
        let bad = try await ScriptedBackend.start { head in
            head.hasPrefix("GET /drop") ? .init("", close: true) : .init("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad")
        }
        let objects = KubeObjects(
            ingresses: [
                Fixture.ingress(
                    "retry", annotations: [Self.n + "proxy-next-upstream": "error timeout http_502"],
                    rules: [Fixture.rule("retry.test", Fixture.path("/", "Prefix", Fixture.backend("pair", 80)))]),
            ],
            ingressClasses: [],
            services: [Fixture.service("pair", ports: [ServicePort(name: "http", port: 80, targetPort: .int(Int32(good.port)))])],
            endpointSlices: [
                Fixture.slice("pair-1", service: "pair", port: Int32(good.port), endpoints: [("127.0.0.1", true)]),
                Fixture.slice("pair-2", service: "pair", port: Int32(bad.port), endpoints: [("127.0.0.1", true)]),
            ], secrets: [])
        let table = Translator.translate(objects).table
        #expect(table.clusters.first?.endpoints.count == 2)
        let proxy = try await LiveProxy.start(table)
        try await TestHTTPConnection.with(port: proxy.port) { client in
            for path in ["/a", "/b", "/drop/c", "/drop/d"] {
                let answer = try await client.request(.GET, path, host: "retry.test")
                #expect(answer.status == .ok, "\(path)")
                #expect(answer.echoed["backend"] == "good")
            }
            var statuses: [HTTPResponseStatus] = []
            for _ in 0..<2 { statuses.append(try await client.request(.POST, "/form", host: "retry.test").status) }
            #expect(statuses.contains(.badGateway), "POST is not idempotent: \(statuses)")
        }
        #expect(bad.acceptedConnections >= 2, "the bad Pod had its turns")
        #expect(await proxy.worker.counters().retries >= 2)
        await proxy.stop()
        await good.stop()
        await bad.stop()
    }

    /// Header lines of a configuration-snippet and Portico's header annotations, as the Pod and the
    /// client see them. (The native engine does not apply header edits yet.)
    @Test func headerEditsReachThePodAndTheClient() async throws {
        let app = try await TestBackend.start(name: "app")
        let table = Self.table(
            port: app.port,
            Fixture.ingress(
                "headers", created: 1,
                annotations: [
                    Self.n + "configuration-snippet": """
                        more_set_headers "X-Frame-Options: DENY";
                        more_clear_headers X-Backend;
                        add_header Cache-Control no-store;
                        proxy_set_header X-Tenant acme;
                        """,
                    "portico.io/request-headers": "remove: [X-Debug]\nadd: {X-Added: one}",
                ],
                rules: [Fixture.rule("h.test", Self.path("/", "Prefix"))]))
        let proxy = try await LiveProxy.start(table)
        try await TestHTTPConnection.with(port: proxy.port) { client in
            let echo = try await client.request(.GET, "/echo", host: "h.test", headers: [("X-Debug", "1"), ("X-Tenant", "forged")])
            #expect(echo.status == .ok)
            #expect(echo.echoed["x-tenant"] == "acme", "proxy_set_header replaces the client's field")
            #expect(echo.echoed["x-debug"] == nil)
            #expect(echo.echoed["x-added"] == "one")
            #expect(echo.headers["x-frame-options"] == ["DENY"])
            #expect(echo.headers["x-backend"] == [])
            #expect(echo.headers["cache-control"] == ["no-store"])
            let missing = try await client.request(.GET, "/status/404", host: "h.test")
            #expect(missing.status == .notFound)
            #expect(missing.headers["x-frame-options"] == ["DENY"], "more_set_headers applies to every status")
            #expect(missing.headers["cache-control"] == [], "add_header without always: 2xx and 3xx only")
        }
        await proxy.stop()
        await app.stop()
    }
}
