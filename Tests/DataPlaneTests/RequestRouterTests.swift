import NIOCore
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
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: HTTPHeaders(headers))
        switch RequestFacts.inspect(head, maxFields: 100) {
        case .success(let facts): return RequestRouter.decide(facts, table: Self.table, isTLS: isTLS, httpsPort: httpsPort)
        case .failure(let refusal): return .respond(refusal.status, reason: refusal.reason)
        }
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

    /// Userinfo (deprecated, RFC 9110 §4.2.4) makes a Host or authority invalid: which part an
    /// upstream would route on is anyone's guess.
    @Test func userinfoIsRefused() {
        #expect(decide("http://user:pw@a.test/p", headers: [("Host", "other.test")]) == .respond(.badRequest, reason: "the request target's authority is not host[:port]"))
        #expect(decide("/p", headers: [("Host", "u@v@a.test")]) == .respond(.badRequest, reason: "the Host header is not host[:port]"))
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
    /// The fields of the head written for the upstream, parsed back.
    func upstream(_ headers: [(String, String)], client: String? = "192.0.2.7", method: HTTPMethod = .POST) -> HTTPHeaders {
        written(headers, client: client, method: method).headers
    }

    func written(_ headers: [(String, String)], client: String? = "192.0.2.7", method: HTTPMethod = .POST) -> (text: String, headers: HTTPHeaders, chunked: Bool) {
        var buffer = ByteBuffer()
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: "/raw", headers: HTTPHeaders(headers))
        guard case .success(let facts) = RequestFacts.inspect(head, maxFields: 100) else { fatalError("refused: \(headers)") }
        _ = ForwardedHeaders.writeUpstreamRequest(
            head, authority: facts.authority, target: "/clean", body: facts.body, clientAddress: client, scheme: "http", serverPort: "8080",
            requestID: { RequestID(high: 0x0123_4567_89ab_cdef, low: 0xfedc_ba98_7654_3210) }, into: &buffer)
        let text = String(buffer: buffer)
        var fields = HTTPHeaders()
        for line in text.components(separatedBy: "\r\n").dropFirst() where !line.isEmpty {
            let colon = line.firstIndex(of: ":")!
            fields.add(name: String(line[..<colon]), value: String(line[line.index(after: colon)...].dropFirst()))
        }
        return (text, fields, fields["transfer-encoding"] == ["chunked"])
    }

    @Test func requestLineAndFraming() {
        let post = written([("Host", "a.test"), ("Content-Length", "3")])
        #expect(post.text.hasPrefix("POST /clean HTTP/1.1\r\nHost: a.test\r\n") && post.text.hasSuffix("\r\nContent-Length: 3\r\n\r\n"))
        #expect(!post.chunked && post.headers["transfer-encoding"].isEmpty)
        let empty = written([("Host", "a.test")])
        #expect(!empty.chunked && empty.headers["content-length"] == ["0"], "a POST without a body says so")
        let chunked = written([("Host", "a.test"), ("Transfer-Encoding", "chunked")])
        #expect(chunked.chunked && chunked.headers["transfer-encoding"] == ["chunked"])
        let get = written([("Host", "a.test")], method: .GET)
        #expect(!get.chunked && get.headers["transfer-encoding"].isEmpty && get.headers["content-length"].isEmpty && get.text.hasPrefix("GET /clean HTTP/1.1\r\n"))
    }

    /// The framing the upstream reads is the worker's: the client's own fields never reach it.
    @Test func framingFieldsAreTheWorkersOwn() {
        let padded = written([("Host", "a.test"), ("Content-Length", "007")])
        #expect(padded.headers["content-length"] == ["7"])
        let chunked = written([("Host", "a.test"), ("Transfer-Encoding", " Chunked ")])
        #expect(chunked.headers["transfer-encoding"] == ["chunked"])
        #expect(!chunked.text.contains("Chunked"))
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
        // Empty list elements and spaces around the names (RFC 9110 §5.6.1).
        let listed = upstream([("Host", "a.test"), ("Connection", " ,X-A ,, x-b,"), ("X-A", "1"), ("X-B", "2"), ("X-C", "3")])
        #expect(listed["x-a"].isEmpty && listed["x-b"].isEmpty && listed["x-c"] == ["3"])
    }

    @Test func forwardedFieldsAreSet() {
        let headers = upstream([("Host", "a.test:8080"), ("X-Forwarded-For", "203.0.113.1"), ("X-Forwarded-Proto", "https")])
        #expect(headers["x-forwarded-for"] == ["203.0.113.1, 192.0.2.7"])
        #expect(headers["x-forwarded-proto"] == ["http"], "set by the proxy, not trusted from the client")
        #expect(headers["x-forwarded-host"] == ["a.test:8080"])
        #expect(headers["x-forwarded-port"] == ["8080"])
    }

    @Test func forwardedForWithoutAClientAddressAndSeveralPreviousFields() {
        let kept = upstream([("Host", "a"), ("X-Forwarded-For", "203.0.113.1")], client: nil)
        #expect(kept["x-forwarded-for"] == ["203.0.113.1"], "nothing to append: the client's field stays")
        let joined = upstream([("Host", "a"), ("X-Forwarded-For", "203.0.113.1"), ("x-forwarded-for", "198.51.100.2")])
        #expect(joined["x-forwarded-for"] == ["203.0.113.1, 198.51.100.2, 192.0.2.7"])
    }

    @Test func anUpgradeRequestKeepsItsUpgradeFields() {
        var buffer = ByteBuffer()
        _ = ForwardedHeaders.writeUpstreamRequest(
            HTTPRequestHead(version: .http1_1, method: .GET, uri: "/ws", headers: ["Host": "a", "Connection": "Upgrade", "Upgrade": "websocket"]),
            authority: "a", target: "/ws", body: .none, clientAddress: nil, scheme: "http", serverPort: "80", upgrade: "websocket", requestID: { RequestID(high: 1, low: 2) }, into: &buffer)
        let text = String(buffer: buffer)
        #expect(text.contains("\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"))
        #expect(text.components(separatedBy: "pgrade:").count == 2, "the client's own Upgrade field is not copied as well")
    }

    @Test func requestIDIsKeptOrGenerated() {
        let generated = "0123456789abcdeffedcba9876543210"
        #expect(upstream([("Host", "a"), ("X-Request-ID", "")])["x-request-id"] == [generated], "an empty one is replaced")
        #expect(upstream([("Host", "a"), ("X-Request-ID", "abc")])["x-request-id"] == ["abc"])
        #expect(upstream([("Host", "a")])["x-request-id"] == [generated])
        var system = SystemRandomNumberGenerator()
        let id = RequestID(using: &system).text
        #expect(id.count == 32 && id.allSatisfy(\.isHexDigit))
        #expect(id != RequestID(using: &system).text)
        var fast = FastRandom()
        let ids = (0..<100).map { _ in RequestID(using: &fast).text }
        #expect(Set(ids).count == 100)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy { "0123456789abcdef".contains($0) } })
    }
}

@Suite struct MisdirectedRequestTests {
    /// The fast path of the 421 check: a Host field naming the SNI name needs no certificate lookup.
    @Test func aHostFieldNamingTheServerNameIsRecognised() {
        #expect(HTTP2Stream.names("a.test", "a.test"))
        #expect(HTTP2Stream.names("A.Test:8443", "a.test"))
        #expect(!HTTP2Stream.names("a.test.evil", "a.test"))
        #expect(!HTTP2Stream.names("a.tes", "a.test"))
        #expect(!HTTP2Stream.names("b.test", "a.test"))
        #expect(!HTTP2Stream.names("a.test", nil), "no SNI: the certificate lookup decides")
    }
}
