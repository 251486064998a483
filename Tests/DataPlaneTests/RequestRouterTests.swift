import NIOHTTP1
import RouteModel
import Testing
@testable import DataPlane

@Suite struct RequestRouterTests {
    static let web = Cluster(namespace: "default", service: "web", servicePort: .number(80), endpoints: [Endpoint(address: "10.0.0.1", port: 8080)])
    static let idle = Cluster(namespace: "default", service: "idle", servicePort: .number(80), endpoints: [])
    static let table = RouteTable(
        virtualHosts: [
            VirtualHost(
                hostname: .exact("a.test"),
                routes: [
                    Route(match: PathMatch(kind: .prefix, path: "/"), backend: Backend(cluster: web.name, source: RouteSource(namespace: "default", ingress: "a"))),
                    Route(match: PathMatch(kind: .prefix, path: "/idle"), backend: Backend(cluster: idle.name, source: RouteSource(namespace: "default", ingress: "a"))),
                ]),
            VirtualHost(
                hostname: .exact("secure.test"),
                routes: [
                    Route(
                        match: PathMatch(kind: .prefix, path: "/"),
                        backend: Backend(cluster: web.name, source: RouteSource(namespace: "default", ingress: "s"), httpsRedirect: true))
                ], tls: TLSBinding(certificate: nil)),
        ],
        clusters: [web, idle], certificates: [])

    func decide(_ uri: String, headers: [(String, String)] = [("Host", "a.test")], isTLS: Bool = false, httpsPort: Int = 443) -> RouteDecision {
        RequestRouter.decide(
            HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: HTTPHeaders(headers)), table: Self.table, isTLS: isTLS,
            httpsPort: httpsPort)
    }

    @Test func forwardsWithTheNormalisedTarget() {
        let backend = Self.table.virtualHosts[0].routes[0].backend
        #expect(decide("/x/../y//z?q=1") == .forward(cluster: Self.web, backend: backend, target: "/y/z?q=1"))
    }

    @Test func absoluteFormWinsOverTheHostHeader() {
        guard case .forward(_, _, let target, _) = decide("http://a.test:80/p", headers: [("Host", "other.test")]) else {
            Issue.record("not forwarded")
            return
        }
        #expect(target == "/p")
    }

    @Test(arguments: [
        ([("Host", "nowhere.test")], HTTPResponseStatus.notFound),
        ([], .badRequest),
        ([("Host", "a.test"), ("Host", "b.test")], .badRequest),
        ([("Host", "a.test"), ("Content-Length", "3"), ("Transfer-Encoding", "chunked")], .badRequest),
        ([("Host", "a.test"), ("Content-Length", "3"), ("Content-Length", "4")], .badRequest),
    ])
    func answersLocally(_ headers: [(String, String)], _ status: HTTPResponseStatus) {
        guard case .respond(let got, _) = decide("/", headers: headers) else {
            Issue.record("not answered locally")
            return
        }
        #expect(got == status)
    }

    @Test func badEscapeIs400AndNoEndpointsIs503() {
        #expect(decide("/a%zz") == .respond(.badRequest, reason: "the request path has a '%' that is not followed by two hex digits"))
        #expect(decide("/idle/x") == .respond(.serviceUnavailable, reason: "no ready endpoints"))
    }

    @Test func plainHTTPToATLSHostIsRedirected() {
        #expect(decide("/a/../b?x=1", headers: [("Host", "secure.test:8080")]) == .redirect(location: "https://secure.test/b?x=1"))
        #expect(decide("/", headers: [("Host", "secure.test")], httpsPort: 8443) == .redirect(location: "https://secure.test:8443/"))
        let backend = Self.table.virtualHosts[1].routes[0].backend
        #expect(decide("/", headers: [("Host", "secure.test")], isTLS: true) == .forward(cluster: Self.web, backend: backend, target: "/"))
    }
}

@Suite struct ForwardedHeadersTests {
    func upstream(_ headers: [(String, String)], client: String? = "192.0.2.7") -> HTTPHeaders {
        ForwardedHeaders.upstreamRequest(
            HTTPRequestHead(version: .http1_1, method: .POST, uri: "/raw", headers: HTTPHeaders(headers)), target: "/clean",
            clientAddress: client, scheme: "http", serverPort: "8080", requestID: { "generated" }
        ).headers
    }

    @Test func hopByHopFieldsAreRemovedAndHostKept() {
        let headers = upstream([
            ("Host", "a.test"), ("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"), ("X-Secret", "1"),
            ("Proxy-Connection", "keep-alive"), ("TE", "trailers"), ("Upgrade", "h2c"), ("Content-Length", "3"), ("Accept", "*/*"),
        ])
        for name in ["connection", "keep-alive", "x-secret", "proxy-connection", "te", "upgrade"] { #expect(headers[name].isEmpty, "\(name)") }
        #expect(headers["host"] == ["a.test"])
        #expect(headers["content-length"] == ["3"])
        #expect(headers["accept"] == ["*/*"])
    }

    @Test func forwardedFieldsAreSet() {
        let headers = upstream([("Host", "a.test:8080"), ("X-Forwarded-For", "203.0.113.1"), ("X-Forwarded-Proto", "https")])
        #expect(headers["x-forwarded-for"] == ["203.0.113.1, 192.0.2.7"])
        #expect(headers["x-forwarded-proto"] == ["http"], "set by the proxy, not trusted from the client")
        #expect(headers["x-forwarded-host"] == ["a.test:8080"])
        #expect(headers["x-forwarded-port"] == ["8080"])
    }

    @Test func requestIDIsKeptOrGenerated() {
        #expect(upstream([("Host", "a"), ("X-Request-ID", "abc")])["x-request-id"] == ["abc"])
        #expect(upstream([("Host", "a")])["x-request-id"] == ["generated"])
        let id = ForwardedHeaders.newRequestID()
        #expect(id.count == 32 && id.allSatisfy(\.isHexDigit))
        #expect(id != ForwardedHeaders.newRequestID())
        var fast = FastRandom()
        let ids = (0..<100).map { _ in ForwardedHeaders.newRequestID(using: &fast) }
        #expect(Set(ids).count == 100)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy { "0123456789abcdef".contains($0) } })
    }
}
