import NIOHTTP1
import Testing
import TestSupport
@testable import DataPlane

/// Upstream responses of every framing, relayed to HTTP/1.1 clients as bytes.
@Suite(.serialized, .timeLimit(.minutes(1))) struct UpstreamResponseTests {
    static func request(_ path: String, version: String = "HTTP/1.1", close: Bool = true) -> String {
        "GET \(path) \(version)\r\nHost: up.test\r\n" + (close ? "Connection: close\r\n" : "") + "\r\n"
    }

    /// The response head and the body the client received, split at the first empty line.
    static func split(_ response: String) -> (head: String, body: String) {
        guard let end = response.range(of: "\r\n\r\n") else { return (response, "") }
        return (String(response[..<end.lowerBound]), String(response[end.upperBound...]))
    }

    @Test func chunkedAndCloseDelimitedBodiesReachTheClientChunked() async throws {
        let upstream = try await ScriptedBackend.start { head in
            if head.hasPrefix("GET /chunked ") {
                return .init("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n")
            }
            return .init("HTTP/1.0 200 OK\r\nX-B: 2\r\n\r\nuntil the end", close: true)
        }
        let proxy = try await LiveProxy.start(proxyTable([("up.test", "/", [upstream.port])]))
        let chunked = Self.split(try await RawConnection.exchange(port: proxy.port, send: [Self.request("/chunked")]))
        #expect(chunked.head.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(chunked.head.contains("\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n"))
        #expect(chunked.body == "3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n", "re-chunked, trailers kept, extensions dropped")
        let untilClose = Self.split(try await RawConnection.exchange(port: proxy.port, send: [Self.request("/close")]))
        #expect(untilClose.head.contains("\r\nX-B: 2\r\nTransfer-Encoding: chunked\r\n"))
        #expect(untilClose.body == "d\r\nuntil the end\r\n0\r\n\r\n", "framed for the client, which stays on keep-alive otherwise")
        // An HTTP/1.0 client cannot take chunks: the body ends with its connection.
        let old = Self.split(try await RawConnection.exchange(port: proxy.port, send: [Self.request("/close", version: "HTTP/1.0", close: false)]))
        #expect(!old.head.contains("Transfer-Encoding") && old.head.contains("Connection: close"))
        #expect(old.body == "until the end")
        // A real client on one connection: both framings, decoded, and the connection kept.
        try await TestHTTPConnection.with(port: proxy.port) { client in
            let texts = [
                try await client.request(.GET, "/chunked", host: "up.test").text,
                try await client.request(.GET, "/close", host: "up.test").text,
                try await client.request(.GET, "/chunked", host: "up.test").text,
            ]
            #expect(texts == ["abcde", "until the end", "abcde"])
        }
        await proxy.stop()
        await upstream.stop()
    }

    /// Local answers to HEAD name their length and carry no body, so the next response on the
    /// connection is read where it starts.
    @Test func localAnswersToHEADHaveNoBody() async throws {
        let proxy = try await LiveProxy.start(proxyTable([("up.test", "/", [])]))
        let reply = try await RawConnection.exchange(
            port: proxy.port, send: ["HEAD / HTTP/1.1\r\nHost: nowhere.test\r\n\r\nGET / HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n"])
        let responses = reply.components(separatedBy: "HTTP/1.1 404 Not Found\r\n")
        #expect(responses.count == 3, "two answers: \(reply.debugDescription)")
        #expect(responses[1].hasSuffix("Content-Length: 13\r\n\r\n"), "no body after the HEAD answer's head")
        #expect(responses[2].hasSuffix("Content-Length: 13\r\nConnection: close\r\n\r\n404 no route\n"))
        await proxy.stop()
    }

    @Test func interimResponsesAreRelayedBeforeTheFinalOne() async throws {
        let upstream = try await ScriptedBackend.start { _ in
            .init("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        }
        let proxy = try await LiveProxy.start(proxyTable([("up.test", "/", [upstream.port])]))
        let response = try await RawConnection.exchange(port: proxy.port, send: [Self.request("/")])
        #expect(response.hasPrefix("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\n"))
        #expect(response.hasSuffix("\r\n\r\nok"))
        let counters = await proxy.worker.counters()
        #expect(counters.upstreamAnswers == [201: 1], "interim heads are not answers")
        await proxy.stop()
        await upstream.stop()
    }

    /// Bytes the upstream sends in the same packet as its 101 belong to the tunnel, after the 101.
    @Test func bytesAfterA101AreRelayedThroughTheTunnel() async throws {
        let upstream = try await ScriptedBackend.start { _ in
            .init("HTTP/1.1 101 Switching Protocols\r\nUpgrade: chat\r\nConnection: Upgrade\r\nX-Up: 1\r\n\r\nserver speaks first", close: true)
        }
        let proxy = try await LiveProxy.start(proxyTable([("up.test", "/", [upstream.port])]))
        let reply = try await RawConnection.exchange(
            port: proxy.port, send: ["GET / HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade\r\nUpgrade: chat\r\n\r\n"])
        #expect(reply == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: chat\r\nConnection: upgrade\r\nX-Up: 1\r\n\r\nserver speaks first")
        await proxy.stop()
        await upstream.stop()
    }

    @Test func anUpstreamThatClosesAfterItsResponseIsNotReused() async throws {
        let upstream = try await ScriptedBackend.start { _ in .init("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", close: true) }
        let proxy = try await LiveProxy.start(proxyTable([("up.test", "/", [upstream.port])]))
        try await TestHTTPConnection.with(port: proxy.port) { client in
            for _ in 0..<3 {
                let response = try await client.request(.GET, "/", host: "up.test")
                #expect(response.text == "ok" && response.status == .ok)
                #expect(response.headers["connection"].isEmpty, "the upstream's Connection field is hop-by-hop")
            }
        }
        #expect(upstream.acceptedConnections == 3)
        #expect(await proxy.worker.counters().localAnswers.isEmpty, "no request met a closed pooled connection")
        await proxy.stop()
        await upstream.stop()
    }

    @Test func aMalformedUpstreamResponseGets502() async throws {
        let upstream = try await ScriptedBackend.start { head in
            head.hasPrefix("GET /fold ")
                ? .init("HTTP/1.1 200 OK\r\nA: b\r\n folded\r\nContent-Length: 0\r\n\r\n")
                : .init("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
        }
        let proxy = try await LiveProxy.start(proxyTable([("up.test", "/", [upstream.port])]))
        try await TestHTTPConnection.with(port: proxy.port) { client in
            for path in ["/fold", "/lengths"] {
                let response = try await client.request(.GET, path, host: "up.test")
                #expect(response.status == .badGateway)
                #expect(response.text == "502 invalid response from upstream\n")
            }
        }
        await proxy.stop()
        await upstream.stop()
    }

    /// The limits a client's head has bind an upstream's too: more than 100 fields, or more than
    /// 8 interim responses to one request, is a malformed response (502).
    @Test func upstreamHeadsOverTheFieldAndInterimLimitsGet502() async throws {
        let upstream = try await ScriptedBackend.start { head in
            let fields = { (count: Int) in (1...count).map { "X-F\($0): v\r\n" }.joined() }
            let interim = { (count: Int) in String(repeating: "HTTP/1.1 100 Continue\r\n\r\n", count: count) }
            switch head.split(separator: " ")[1] {
            case "/fields100": return .init("HTTP/1.1 200 OK\r\n" + fields(99) + "Content-Length: 2\r\n\r\nok")
            case "/fields101": return .init("HTTP/1.1 200 OK\r\n" + fields(100) + "Content-Length: 2\r\n\r\nok")
            case "/interim8": return .init(interim(8) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            default: return .init(interim(9) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            }
        }
        let proxy = try await LiveProxy.start(proxyTable([("up.test", "/", [upstream.port])]))
        for (path, status) in [("/fields100", "200"), ("/fields101", "502"), ("/interim8", "200"), ("/interim9", "502")] {
            let answer = try await RawConnection.exchange(port: proxy.port, send: [Self.request(path)])
            let final = answer.components(separatedBy: "HTTP/1.1 ").last { !$0.hasPrefix("100 ") } ?? ""
            #expect(final.hasPrefix(status), "\(path): \(answer.prefix(200))")
        }
        await proxy.stop()
        await upstream.stop()
    }
}
