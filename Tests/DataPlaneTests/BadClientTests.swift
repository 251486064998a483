import Foundation
import Testing
import RouteModel
import TestSupport
@testable import DataPlane

/// Clients that send too much, too slowly, or ambiguously get a clear answer and a closed connection.
@Suite(.serialized) struct BadClientTests {
    @Test func slowHeadersGetTheConnectionClosed() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port])])) { $0.requestHeaderTimeout = .milliseconds(300) }
        // Half a request head, then nothing: the read ends when the proxy closes the connection.
        let answer = try await RawConnection.exchange(port: proxy.port, send: ["GET / HTTP/1.1\r\nHost: a.te"])
        #expect(answer.isEmpty, "closed without an answer: \(answer)")
        #expect(a.acceptedConnections == 0)
        await proxy.stop()
        await a.stop()
    }

    @Test func anIdleKeepAliveConnectionIsClosedAfterTheIdleTimeout() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port])])) { $0.idleTimeout = .milliseconds(300) }
        let answer = try await RawConnection.exchange(port: proxy.port, send: ["GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"])
        // The read only ends because the proxy closes the idle connection.
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(answer.components(separatedBy: "HTTP/1.1").count == 2)
        #expect(await proxy.worker.counters().timeouts == [.idle: 1])
        // The metrics endpoint renders the same count (counted once, on the loop).
        let metrics = await proxy.worker.exposition()
        #expect(metrics.contains("portico_timeouts_total{kind=\"idle\"} 1\n"))
        #expect(metrics.contains("portico_timeouts_total{kind=\"request_header\"} 0\n"))
        await proxy.stop()
        await a.stop()
    }

    /// On a kept-alive connection, the first byte of the next request starts the request-head
    /// timeout: a slowloris after a first request is cut as soon as one from accept.
    @Test func aPartialHeadAfterKeepAliveHasTheHeaderTimeout() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port])])) {
            $0.requestHeaderTimeout = .milliseconds(300)
            $0.idleTimeout = .seconds(50)
        }
        let answer = try await RawConnection.exchange(
            port: proxy.port, send: ["GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", "GET / HTTP/1.1\r\nHo"], pauseBetweenChunks: .milliseconds(100))
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(await proxy.worker.counters().timeouts == [.requestHeader: 1])
        await proxy.stop()
        await a.stop()
    }

    @Test func anOversizedHeaderBlockGets431() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port])])) { $0.maxRequestHeaderBytes = 8 << 10 }
        let big = String(repeating: "x", count: 16 << 10)
        let answer = try await RawConnection.exchange(port: proxy.port, send: ["GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: \(big)\r\n\r\n"])
        #expect(answer.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "\(answer.prefix(80))")
        #expect(answer.contains("connection: close") || answer.contains("Connection: close"))
        #expect(await proxy.worker.counters().localAnswers == [431: 1])
        await proxy.stop()
        await a.stop()
    }

    /// Requests sent back to back in one packet are answered in order, each after the previous
    /// one's response, the slow one included.
    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port])]))
        let answer = try await RawConnection.exchange(port: proxy.port, send: [
            "GET /first HTTP/1.1\r\nHost: a.test\r\n\r\n" + "GET /sleep/100 HTTP/1.1\r\nHost: a.test\r\n\r\n"
                + "POST /count HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc"
                + "GET /last HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        ])
        let markers = ["target=/first", "slept", "received=3", "target=/last"].map { answer.range(of: $0)?.lowerBound }
        #expect(markers.allSatisfy { $0 != nil }, "\(answer)")
        #expect(markers.compactMap { $0 } == markers.compactMap { $0 }.sorted(), "answers come in request order")
        #expect(answer.components(separatedBy: "HTTP/1.1 200 OK").count == 5)
        await proxy.stop()
        await a.stop()
    }

    /// Garbage behind complete pipelined requests is answered with 400 only after their responses.
    @Test func garbageBehindPipelinedRequestsIsAnsweredAfterThem() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port])]))
        let answer = try await RawConnection.exchange(port: proxy.port, send: [
            "GET /sleep/100 HTTP/1.1\r\nHost: a.test\r\n\r\n" + "NOT HTTP AT ALL\r\n\r\n"
        ])
        let ok = answer.range(of: "HTTP/1.1 200 OK")
        let bad = answer.range(of: "HTTP/1.1 400 Bad Request")
        #expect(ok != nil && bad != nil, "\(answer)")
        if let ok, let bad { #expect(ok.lowerBound < bad.lowerBound) }
        #expect(answer.contains("slept"))
        await proxy.stop()
        await a.stop()
    }

    @Test(arguments: [
        "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost a.test\r\n\r\n",
    ])
    func ambiguousOrMalformedRequestsGet400AndAClose(_ request: String) async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port])]))
        // A second, valid request after the bad one must never be served on that connection.
        let answer = try await RawConnection.exchange(port: proxy.port, send: [request + "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"])
        #expect(answer.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(answer.prefix(100))")
        #expect(!answer.contains("HTTP/1.1 200"))
        #expect(await proxy.worker.counters().localAnswers == [400: 1], "one answer, counted once")
        if !request.contains("\r\n\r\nzz") {
            // A malformed head never reaches an upstream. (A malformed chunk is only seen once the
            // request is already streaming, and then the upstream exchange is aborted.)
            #expect(a.acceptedConnections == 0, "nothing reached the upstream")
        }
        await proxy.stop()
        await a.stop()
    }
}

@Suite(.serialized) struct BodyLimitTests {
    func limitedTable(_ port: Int) -> RouteTable {
        let cluster = Cluster(namespace: "default", service: "a", servicePort: .number(80), endpoints: [Endpoint(address: "127.0.0.1", port: port)])
        return RouteTable(
            virtualHosts: [
                VirtualHost(
                    hostname: .exact("a.test"),
                    routes: [
                        Route(
                            match: PathMatch(kind: .prefix, path: "/"),
                            backend: Backend(
                                cluster: cluster.name, source: RouteSource(namespace: "default", ingress: "a"),
                                options: RouteOptions(maxRequestBodyBytes: 1 << 20)))
                    ])
            ], clusters: [cluster], certificates: [])
    }

    @Test func aDeclaredBodyOverTheLimitGets413() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(limitedTable(a.port))
        let answer = try await RawConnection.exchange(
            port: proxy.port, send: ["POST /count HTTP/1.1\r\nHost: a.test\r\nContent-Length: \((1 << 20) + 1)\r\n\r\n"])
        #expect(answer.hasPrefix("HTTP/1.1 413 Payload Too Large\r\n"), "\(answer.prefix(60))")
        #expect(a.acceptedConnections == 0)
        await proxy.stop()
        await a.stop()
    }

    @Test func aStreamedBodyOverTheLimitGets413AndBodiesWithinItPass() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(limitedTable(a.port))
        let within = try await TestHTTPConnection.with(port: proxy.port) { client in
            try await client.request(.POST, "/count", host: "a.test", uploadBytes: 1 << 20)
        }
        #expect(within.text == "received=\(1 << 20)\n")
        let over = try await TestHTTPConnection.with(port: proxy.port) { client in
            try await client.request(.POST, "/count", host: "a.test", uploadBytes: 3 << 20)
        }
        #expect(over.status == .payloadTooLarge)
        await proxy.stop()
        await a.stop()
    }
}
