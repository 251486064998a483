import NIOHTTP1
import Testing
@testable import DataPlane

/// Every way a request head names its host, target and body framing, read strictly.
@Suite struct RequestFactsTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let method: HTTPMethod
        let version: HTTPVersion
        let uri: String
        let headers: [(String, String)]
        /// The facts, or the status of the refusal.
        let expected: Result<RequestFacts, HTTPResponseStatusBox>

        init(
            _ name: String, _ uri: String = "/", _ headers: [(String, String)], method: HTTPMethod = .GET, version: HTTPVersion = .http1_1,
            _ expected: RequestFacts
        ) {
            self.init(name, uri, headers, method, version, .success(expected))
        }

        init(
            _ name: String, _ uri: String = "/", _ headers: [(String, String)], method: HTTPMethod = .GET, version: HTTPVersion = .http1_1,
            refused status: HTTPResponseStatus
        ) {
            self.init(name, uri, headers, method, version, .failure(HTTPResponseStatusBox(status: status)))
        }

        private init(
            _ name: String, _ uri: String, _ headers: [(String, String)], _ method: HTTPMethod, _ version: HTTPVersion,
            _ expected: Result<RequestFacts, HTTPResponseStatusBox>
        ) {
            self.name = name
            self.method = method
            self.version = version
            self.uri = uri
            self.headers = headers
            self.expected = expected
        }

        var testDescription: String { name }
    }

    struct HTTPResponseStatusBox: Error, Equatable { let status: HTTPResponseStatus }

    static func facts(_ authority: String, _ target: String = "/", _ body: RequestFacts.Body = .none) -> RequestFacts {
        RequestFacts(authority: authority, target: target, body: body)
    }

    static let cases: [Case] = [
        // Target forms and Host (RFC 9112 §3.2).
        Case("origin form", "/p?q", [("Host", "a.test")], facts("a.test", "/p?q")),
        Case("absolute form: its authority replaces Host", "http://b.test:8080/p", [("Host", "a.test")], facts("b.test:8080", "/p")),
        Case("absolute form, scheme in capitals", "HTTPS://b.test", [("Host", "a.test")], facts("b.test", "/")),
        Case("absolute form with only a query", "http://b.test?x=1", [("Host", "b.test")], facts("b.test", "/?x=1")),
        Case("absolute form without Host on HTTP/1.1", "http://b.test/", [], refused: .badRequest),
        Case("absolute form without Host on HTTP/1.0", "http://b.test/", [], version: .http1_0, facts("b.test", "/")),
        Case("absolute form with two Hosts", "http://b.test/", [("Host", "a.test"), ("Host", "a.test")], refused: .badRequest),
        Case("absolute form with an invalid Host", "http://b.test/", [("Host", "a test")], refused: .badRequest),
        Case("scheme other than http(s)", "ftp://b.test/", [("Host", "b.test")], refused: .badRequest),
        Case("absolute form without //", "http:b.test/", [("Host", "b.test")], refused: .badRequest),
        Case("absolute form with an empty authority", "http:///p", [("Host", "b.test")], refused: .badRequest),
        Case("absolute form with userinfo", "http://u:p@b.test/", [("Host", "b.test")], refused: .badRequest),
        Case("absolute form with a fragment", "http://b.test#frag", [("Host", "b.test")], refused: .badRequest),
        Case("a target that is no form", "b.test/p", [("Host", "b.test")], refused: .badRequest),
        Case("authority form outside CONNECT", "b.test:443", [("Host", "b.test")], refused: .badRequest),
        Case("asterisk for OPTIONS", "*", [("Host", "b.test")], method: .OPTIONS, facts("b.test", "*")),
        Case("asterisk for GET", "*", [("Host", "b.test")], refused: .badRequest),
        Case("no Host", "/", [], refused: .badRequest),
        Case("two Hosts", "/", [("Host", "a.test"), ("Host", "a.test")], refused: .badRequest),
        // Host syntax (RFC 3986 §3.2.2).
        Case("Host with a port", "/", [("Host", "a.test:8080")], facts("a.test:8080")),
        Case("Host IPv4", "/", [("Host", "192.0.2.1:80")], facts("192.0.2.1:80")),
        Case("Host IPv6 literal", "/", [("Host", "[2001:db8::1]:8443")], facts("[2001:db8::1]:8443")),
        Case("Host with a trailing dot", "/", [("Host", "a.test.")], facts("a.test.")),
        Case("Host with a %-escape", "/", [("Host", "a%41.test")], facts("a%41.test")),
        Case("Host empty", "/", [("Host", "")], refused: .badRequest),
        Case("Host with userinfo", "/", [("Host", "evil@a.test")], refused: .badRequest),
        Case("Host with a slash", "/", [("Host", "a.test/x")], refused: .badRequest),
        Case("Host with a backslash", "/", [("Host", "a.test\\x")], refused: .badRequest),
        Case("Host with a space", "/", [("Host", "a.test x")], refused: .badRequest),
        Case("Host with a control byte", "/", [("Host", "a.test\u{1}")], refused: .badRequest),
        Case("Host with a non-ASCII letter", "/", [("Host", "ä.test")], refused: .badRequest),
        Case("Host with an empty label", "/", [("Host", "a..test")], refused: .badRequest),
        Case("Host starting with a dot", "/", [("Host", ".a.test")], refused: .badRequest),
        Case("Host with letters in the port", "/", [("Host", "a.test:80a")], refused: .badRequest),
        Case("Host with an empty port", "/", [("Host", "a.test:")], refused: .badRequest),
        Case("Host with a signed port", "/", [("Host", "a.test:+80")], refused: .badRequest),
        Case("Host with a long port", "/", [("Host", "a.test:080800")], refused: .badRequest),
        Case("Host with two ports", "/", [("Host", "a.test:80:81")], refused: .badRequest),
        Case("Host bare IPv6", "/", [("Host", "2001:db8::1")], refused: .badRequest),
        Case("Host IPv6 unclosed", "/", [("Host", "[2001:db8::1")], refused: .badRequest),
        Case("Host IPv6 with junk", "/", [("Host", "[2001:db8::g]")], refused: .badRequest),
        Case("Host IPv6 then junk", "/", [("Host", "[::1]x")], refused: .badRequest),
        Case("Host with a bad escape", "/", [("Host", "a%4.test")], refused: .badRequest),
        // Transfer-Encoding (RFC 9112 §6).
        Case("chunked", "/", [("Host", "a"), ("Transfer-Encoding", "chunked")], method: .POST, facts("a", "/", .chunked)),
        Case("Chunked, any case, spaces", "/", [("Host", "a"), ("Transfer-Encoding", "  CHUNKED ")], method: .POST, facts("a", "/", .chunked)),
        Case("empty list elements", "/", [("Host", "a"), ("Transfer-Encoding", ", chunked,")], method: .POST, facts("a", "/", .chunked)),
        Case("gzip, chunked", "/", [("Host", "a"), ("Transfer-Encoding", "gzip, chunked")], method: .POST, refused: .notImplemented),
        Case("gzip then chunked in two fields", "/", [("Host", "a"), ("Transfer-Encoding", "gzip"), ("Transfer-Encoding", "chunked")], method: .POST, refused: .notImplemented),
        Case("gzip alone", "/", [("Host", "a"), ("Transfer-Encoding", "gzip")], method: .POST, refused: .badRequest),
        Case("chunked, gzip", "/", [("Host", "a"), ("Transfer-Encoding", "chunked, gzip")], method: .POST, refused: .badRequest),
        Case("chunked twice", "/", [("Host", "a"), ("Transfer-Encoding", "chunked, chunked")], method: .POST, refused: .badRequest),
        Case("chunked in two fields", "/", [("Host", "a"), ("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")], method: .POST, refused: .badRequest),
        Case("chunked with a parameter", "/", [("Host", "a"), ("Transfer-Encoding", "chunked;q=1")], method: .POST, refused: .badRequest),
        Case("empty Transfer-Encoding", "/", [("Host", "a"), ("Transfer-Encoding", "")], method: .POST, refused: .badRequest),
        Case("Transfer-Encoding not a token", "/", [("Host", "a"), ("Transfer-Encoding", "chun\"ked\"")], method: .POST, refused: .badRequest),
        Case("chunked on HTTP/1.0", "/", [("Host", "a"), ("Transfer-Encoding", "chunked")], method: .POST, version: .http1_0, refused: .badRequest),
        Case("chunked and Content-Length", "/", [("Host", "a"), ("Transfer-Encoding", "chunked"), ("Content-Length", "3")], method: .POST, refused: .badRequest),
        // Content-Length (RFC 9110 §8.6).
        Case("Content-Length", "/", [("Host", "a"), ("Content-Length", "12")], method: .POST, facts("a", "/", .length(12))),
        Case("Content-Length with leading zeros", "/", [("Host", "a"), ("Content-Length", "0012")], method: .POST, facts("a", "/", .length(12))),
        Case("Content-Length 0", "/", [("Host", "a"), ("Content-Length", "0")], method: .POST, facts("a", "/", .none)),
        Case("Content-Length twice, equal", "/", [("Host", "a"), ("Content-Length", "3"), ("Content-Length", "3")], method: .POST, refused: .badRequest),
        Case("Content-Length twice, different", "/", [("Host", "a"), ("Content-Length", "3"), ("Content-Length", "4")], method: .POST, refused: .badRequest),
        Case("Content-Length list", "/", [("Host", "a"), ("Content-Length", "3, 3")], method: .POST, refused: .badRequest),
        Case("Content-Length signed", "/", [("Host", "a"), ("Content-Length", "+3")], method: .POST, refused: .badRequest),
        Case("Content-Length negative", "/", [("Host", "a"), ("Content-Length", "-1")], method: .POST, refused: .badRequest),
        Case("Content-Length hex", "/", [("Host", "a"), ("Content-Length", "0x10")], method: .POST, refused: .badRequest),
        Case("Content-Length empty", "/", [("Host", "a"), ("Content-Length", "")], method: .POST, refused: .badRequest),
        Case("Content-Length huge", "/", [("Host", "a"), ("Content-Length", "99999999999999999999")], method: .POST, refused: .badRequest),
    ]

    @Test(arguments: cases)
    func inspect(_ test: Case) {
        let head = HTTPRequestHead(version: test.version, method: test.method, uri: test.uri, headers: HTTPHeaders(test.headers))
        switch (RequestFacts.inspect(head, maxFields: 100), test.expected) {
        case (.success(let got), .success(let want)):
            #expect(got == want)
        case (.failure(let refusal), .failure(let want)):
            #expect(refusal.status == want.status, "\(refusal.reason)")
        case (let got, let want):
            Issue.record("got \(got), expected \(want)")
        }
    }

    @Test func theFieldCountIsLimited() {
        let fields = [("Host", "a")] + (1...99).map { ("X-\($0)", "v") }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: HTTPHeaders(fields))
        #expect((try? RequestFacts.inspect(head, maxFields: 100).get()) != nil, "100 fields pass")
        var over = head
        over.headers.add(name: "X-101", value: "v")
        #expect(RequestFacts.inspect(over, maxFields: 100) == .failure(RequestFacts.Refusal(.requestHeaderFieldsTooLarge, "more than 100 header fields")))
    }
}
