import Foundation
import Testing
import TestSupport
@testable import DataPlane

/// Hostile request heads over a real socket: what the client is answered, and exactly what reached
/// the upstream (nothing, or the request as the worker normalised it).
@Suite(.serialized) struct HardeningTests {
    struct Case: CustomTestStringConvertible {
        let name: String
        let request: String
        /// The status line's start the client gets.
        let answer: String
        /// What the upstream receives, with `PORT` for the proxy's port; nil: nothing at all.
        let upstream: String?

        init(_ name: String, _ request: String, _ answer: String, upstream: String? = nil) {
            self.name = name
            self.request = request
            self.answer = answer
            self.upstream = upstream
        }

        var testDescription: String { name }
    }

    /// The fields every forwarded request ends with, after the client's own.
    static func forwarded(_ host: String) -> String {
        "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: \(host)\r\nX-Forwarded-Port: PORT\r\n"
    }

    static let cases: [Case] = [
        Case(
            "absolute form: the target's authority is the host, and the client's Host is replaced",
            "GET http://b.test/p?q HTTP/1.1\r\nHost: a.test\r\nX-Request-ID: t\r\nConnection: close\r\n\r\n", "HTTP/1.1 200",
            upstream: "GET /p?q HTTP/1.1\r\nHost: b.test\r\nX-Request-ID: t\r\n" + forwarded("b.test") + "\r\n"),
        Case(
            "absolute form with a port", "GET HTTP://B.test:8080 HTTP/1.1\r\nHost: a.test\r\nX-Request-ID: t\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 200", upstream: "GET / HTTP/1.1\r\nHost: B.test:8080\r\nX-Request-ID: t\r\n" + forwarded("B.test:8080") + "\r\n"),
        Case("absolute form without Host", "GET http://b.test/p HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
        Case("absolute form with two Hosts", "GET http://b.test/p HTTP/1.1\r\nHost: b.test\r\nHost: b.test\r\n\r\n", "HTTP/1.1 400"),
        Case("a scheme other than http(s)", "GET ftp://b.test/p HTTP/1.1\r\nHost: b.test\r\n\r\n", "HTTP/1.1 400"),
        Case("absolute form with userinfo", "GET http://x@b.test/p HTTP/1.1\r\nHost: b.test\r\n\r\n", "HTTP/1.1 400"),
        Case("Host with userinfo", "GET / HTTP/1.1\r\nHost: evil.test@b.test\r\n\r\n", "HTTP/1.1 400"),
        Case("Host with a slash", "GET / HTTP/1.1\r\nHost: b.test/x\r\n\r\n", "HTTP/1.1 400"),
        Case("Host with a bad port", "GET / HTTP/1.1\r\nHost: b.test:80a\r\n\r\n", "HTTP/1.1 400"),
        Case("Host empty", "GET / HTTP/1.1\r\nHost: \r\n\r\n", "HTTP/1.1 400"),
        Case("Host with a control byte", "GET / HTTP/1.1\r\nHost: b.te\u{7}st\r\n\r\n", "HTTP/1.1 400"),
        Case(
            "an unknown transfer coding before chunked",
            "POST / HTTP/1.1\r\nHost: b.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "HTTP/1.1 501"),
        Case("chunked not last", "POST / HTTP/1.1\r\nHost: b.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "HTTP/1.1 400"),
        Case("chunked twice", "POST / HTTP/1.1\r\nHost: b.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"),
        Case("chunked on HTTP/1.0", "POST / HTTP/1.0\r\nHost: b.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"),
        Case(
            "chunked in any case: the worker frames the body and writes its own field",
            "POST /u HTTP/1.1\r\nHost: b.test\r\nX-Request-ID: t\r\nTransfer-Encoding: CHUNKED\r\nConnection: close\r\n\r\n3;ext=1\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 200",
            upstream: "POST /u HTTP/1.1\r\nHost: b.test\r\nX-Request-ID: t\r\n" + forwarded("b.test") + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        Case(
            "Content-Length with leading zeros goes upstream as the number parsed",
            "POST /u HTTP/1.1\r\nHost: b.test\r\nX-Request-ID: t\r\nContent-Length: 003\r\nConnection: close\r\n\r\nabc", "HTTP/1.1 200",
            upstream: "POST /u HTTP/1.1\r\nHost: b.test\r\nX-Request-ID: t\r\n" + forwarded("b.test") + "Content-Length: 3\r\n\r\nabc"),
        Case("Content-Length as a list", "POST / HTTP/1.1\r\nHost: b.test\r\nContent-Length: 3, 3\r\n\r\nabc", "HTTP/1.1 400"),
        Case("Content-Length twice", "POST / HTTP/1.1\r\nHost: b.test\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 400"),
        Case("Content-Length signed", "POST / HTTP/1.1\r\nHost: b.test\r\nContent-Length: +3\r\n\r\nabc", "HTTP/1.1 400"),
        Case(
            "more than 100 header fields", "GET / HTTP/1.1\r\nHost: b.test\r\n" + (1...100).map { "X-F\($0): v\r\n" }.joined() + "\r\n",
            "HTTP/1.1 431"),
    ]

    @Test func hostileHeadsAreRefusedOrNormalisedBeforeAnythingGoesUpstream() async throws {
        let backend = try await RecordingBackend.start()
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [backend.port]), ("b.test", "/", [backend.port])]))
        for test in Self.cases {
            let before = backend.received.utf8.count
            // A valid request after the refused one must never be served on that connection.
            let follow = test.upstream == nil ? "GET /after HTTP/1.1\r\nHost: b.test\r\n\r\n" : ""
            let answer = try await RawConnection.exchange(port: proxy.port, send: [test.request + follow])
            #expect(answer.hasPrefix(test.answer), "\(test.name): \(answer.prefix(120))")
            let received = String(backend.received.utf8.dropFirst(before))!
            if let upstream = test.upstream {
                #expect(received == upstream.replacingOccurrences(of: "PORT", with: String(proxy.port)), "\(test.name)")
            } else {
                #expect(received.isEmpty, "\(test.name): nothing reaches the upstream, got \(received)")
                #expect(answer.components(separatedBy: "HTTP/1.1 ").count == 2, "\(test.name): one answer, then the connection closes")
            }
        }
        await proxy.stop()
        await backend.stop()
    }
}
