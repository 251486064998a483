import NIOCore
import NIOHTTP1
import RouteModel
import Testing
import TestSupport
@testable import DataPlane

/// Backend "a" behind a worker with a TLS listener for a.test; both stop after `body`.
func withTLSProxy(
    holdingConnections: Bool = false, timeouts: ClusterTimeouts = .standard, _ configure: (inout Worker.Configuration) -> Void = { _ in },
    _ body: (TestBackend, LiveProxy) async throws -> Void
) async throws {
    let a = try await TestBackend.start(name: "a", holdingConnections: holdingConnections)
    let proxy = try await LiveProxy.start(
        tlsTable(backend: a.port, hosts: [(.exact("a.test"), nil)], certificates: [], timeouts: timeouts)
    ) {
        $0.httpsListenPort = 0
        configure(&$0)
    }
    do {
        try await body(a, proxy)
    } catch {
        await proxy.stop()
        await a.stop()
        throw error
    }
    await proxy.stop()
    await a.stop()
}

@Suite(.serialized, .timeLimit(.minutes(1))) struct HTTP2Tests {
    @Test func alpnPrefersH2AndFallsBackToHTTP1() async throws {
        try await withTLSProxy { a, proxy in
            let port = proxy.worker.httpsPort
            let preferred = try await TLSTestClient.handshake(port: port, serverName: "a.test", alpn: ["h2", "http/1.1"])
            let fallback = try await TLSTestClient.handshake(port: port, serverName: "a.test", alpn: ["http/1.1"])
            #expect(preferred.alpn == "h2")
            #expect(fallback.alpn == "http/1.1")
        }
    }

    /// 100 streams at once on one connection, each proxied to an HTTP/1.1 upstream and answered
    /// with its own response.
    @Test func oneHundredConcurrentStreamsAreProxied() async throws {
        try await withTLSProxy { a, proxy in
            try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test") { connection in
                try await withThrowingTaskGroup(of: (Int, TestResponse).self) { group in
                    for index in 0..<100 {
                        group.addTask {
                            let path = index % 10 == 0 ? "/sleep/\(index)" : "/stream/\(index)"
                            return (index, try await connection.request(.GET, path, authority: "a.test"))
                        }
                    }
                    var seen = Set<Int>()
                    for try await (index, response) in group {
                        #expect(response.status == .ok)
                        if index % 10 != 0 {
                            #expect(response.echoed["target"] == "/stream/\(index)")
                            #expect(response.echoed["host"] == "a.test", ":authority becomes Host upstream")
                            #expect(response.echoed["x-forwarded-proto"] == "https")
                            #expect(response.echoed["x-forwarded-for"] == "127.0.0.1")
                        } else {
                            #expect(response.text == "slept\n")
                        }
                        #expect(response.headers["connection"].isEmpty, "no connection-specific field in HTTP/2")
                        seen.insert(index)
                    }
                    #expect(seen.count == 100)
                }
                // Upstream connections go back to the pool when a stream ends: sequential streams
                // open no new ones.
                let upstreamConnections = a.acceptedConnections
                for index in 0..<20 {
                    #expect(try await connection.request(.GET, "/again/\(index)", authority: "a.test").status == .ok)
                }
                #expect(a.acceptedConnections == upstreamConnections)
                // A body goes up a stream too.
                let upload = try await connection.request(.POST, "/count", authority: "a.test", body: Array(repeating: 1, count: 100_000))
                #expect(upload.text == "received=100000\n")
            }
            #expect(proxy.worker.acceptedConnections == 1)
        }
    }

    /// CVE-2023-44487: a client that opens and resets streams faster than the limit loses its
    /// connection; other clients are served throughout.
    @Test func aRapidResetFloodClosesTheConnectionAndOthersAreServed() async throws {
        try await withTLSProxy({ $0.http2.maxResetsPerWindow = 50 }) { a, proxy in
            let port = proxy.worker.httpsPort
            try await HTTP2TestConnection.with(port: port, serverName: "a.test") { attacker in
                var sent = 0
                while attacker.channel.isActive, sent < 1000 {
                    try? await attacker.openAndReset(path: "/sleep/1000", authority: "a.test")
                    sent += 1
                }
                try await eventually("the flooding connection is closed") { !attacker.channel.isActive }
                #expect(sent < 1000, "closed after \(sent) resets")
            }
            try await HTTP2TestConnection.with(port: port, serverName: "a.test") { other in
                let response = try await other.request(.GET, "/", authority: "a.test")
                #expect(response.status == .ok)
            }
        }
    }

    /// Bodies larger than every flow-control window pass both ways: the proxy tops up the
    /// client's windows as the upstream takes the upload, and sends the download as the client's
    /// windows allow.
    @Test func largeBodiesPassBothWaysUnderFlowControl() async throws {
        try await withTLSProxy { a, proxy in
            try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test") { connection in
                // 3 MiB up: three stream windows, one and a half of the connection's.
                let upload = try await connection.request(.POST, "/count", authority: "a.test", body: Array(repeating: 7, count: 3 << 20))
                #expect(upload.text == "received=\(3 << 20)\n")
                // 8 MiB down, on a client that keeps NIO's 64 KiB stream window; two at once.
                async let first = connection.request(.GET, "/bytes/\(8 << 20)", authority: "a.test")
                async let second = connection.request(.GET, "/bytes/\(8 << 20)", authority: "a.test")
                #expect(try await first.bodyCount == 8 << 20)
                #expect(try await second.bodyCount == 8 << 20)
            }
        }
    }

    /// Uploads get 1 MiB stream windows, so one is not held to 64 KiB per round trip. The
    /// connection's window is given back only as upstreams take the data, so it bounds what a
    /// connection holds, whatever its streams' windows add up to. And every byte held is given
    /// back: once the upstream answers, all the uploads finish and the connection takes more.
    @Test func uploadWindowsAreLargeAndTheConnectionBoundsWhatIsHeld() async throws {
        // The upstream does not answer connects at first: the worker holds every byte it lets in
        // (no socket takes any), so what the client could send is what the windows allowed.
        let timeouts = ClusterTimeouts(connectMilliseconds: 50_000, responseHeaderMilliseconds: 50_000, idleMilliseconds: 60_000)
        try await withTLSProxy(holdingConnections: true, timeouts: timeouts) { held, proxy in
            let size = 3 << 20
            try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test") { connection in
                func settled(_ uploads: [HTTP2TestConnection.Upload]) async throws -> Int {
                    var last = -1
                    var unchanged = 0
                    try await eventually("the uploads stop") {
                        let sent = uploads.reduce(0) { $0 + $1.sent }
                        unchanged = sent == last && sent > 0 ? unchanged + 1 : 0
                        last = sent
                        return unchanged >= 40
                    }
                    return last
                }
                let first = try await connection.upload("/count", authority: "a.test", bytes: size)
                let alone = try await settled([first])
                #expect(alone >= 1_000_000, "one stream sent \(alone) bytes without a window update")
                var uploads = [first]
                for _ in 0..<3 { uploads.append(try await connection.upload("/count", authority: "a.test", bytes: size)) }
                // Four streams' windows are 4 MiB; the connection's is 2 MiB.
                let all = try await settled(uploads)
                #expect(all <= 2 << 20, "four held uploads sent \(all) bytes")
                #expect(all > 3 << 19, "four held uploads sent only \(all) bytes")
                // A reset stream gives back what it held: the others send that much more.
                let cancelled = uploads.removeFirst()
                let others = all - cancelled.sent
                await cancelled.cancel()
                let after = try await settled(uploads)
                #expect(after > others && after <= 2 << 20, "the other uploads went from \(others) to \(after) bytes")
                try await held.acceptConnections()
                for upload in uploads { #expect(try await upload.result().text == "received=\(size)\n") }
                let more = try await connection.upload("/count", authority: "a.test", bytes: size)
                #expect(try await more.result().text == "received=\(size)\n")
            }
        }
    }

    /// A client that stops reading a stream holds back that stream's upstream: the proxy stops
    /// reading it once a window's worth waits to be sent, instead of buffering the whole body.
    /// When the client reads again, the rest follows.
    @Test func aStreamThatIsNotReadHoldsBackItsUpstream() async throws {
        try await withTLSProxy { a, proxy in
            let total = 96 << 20
            try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test") { connection in
                let paused = try await connection.pausedRequest("/bytes/\(total)", authority: "a.test")
                // The backend writes until socket buffers fill behind the held upstream read: it
                // stalls (no progress over 40 polls) well short of the body.
                var last = -1
                var unchanged = 0
                try await eventually("the backend stalls") {
                    let sent = a.streamedBytes
                    unchanged = sent == last && sent > 0 ? unchanged + 1 : 0
                    last = sent
                    return unchanged >= 40 || sent == total
                }
                #expect(a.streamedBytes < total / 2, "the backend sent \(a.streamedBytes) of \(total) bytes to a client that read none")
                // The connection's other streams are not held.
                #expect(try await connection.request(.GET, "/other", authority: "a.test").status == .ok)
                let response = try await paused.resume()
                #expect(response.bodyCount == total)
            }
        }
    }

    /// Upstream response shapes, relayed as HTTP/2 frames: a HEAD answer's length without a body,
    /// 204, trailers of a chunked body, a body delimited by the close, an interim 103 dropped before
    /// the final answer, and a body cut short, which resets the stream.
    @Test func upstreamResponseShapesBecomeFrames() async throws {
        let upstream = try await ScriptedBackend.start { head in
            let path = head.split(separator: " ").dropFirst().first.map(String.init) ?? ""
            switch path {
            case "/head": return .init("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: head\r\n\r\n")
            case "/nocontent": return .init("HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n")
            case "/trailers":
                return .init("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n")
            case "/until-close": return .init("HTTP/1.1 200 OK\r\nX-Kind: close\r\n\r\nuntil the close", close: true)
            case "/hints": return .init("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            default: return .init("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", close: true)
            }
        }
        let proxy = try await LiveProxy.start(tlsTable(backend: upstream.port, hosts: [(.exact("a.test"), nil)], certificates: [])) {
            $0.httpsListenPort = 0
        }
        try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test") { connection in
            let head = try await connection.request(.HEAD, "/head", authority: "a.test")
            #expect(head.status == .ok && head.headers["content-length"] == ["5"] && head.bodyCount == 0)
            let none = try await connection.request(.GET, "/nocontent", authority: "a.test")
            #expect(none.status == .noContent && none.headers["x-kind"] == ["none"] && none.bodyCount == 0)
            let trailers = try await connection.request(.GET, "/trailers", authority: "a.test")
            #expect(trailers.text == "hello world")
            #expect(trailers.trailers?["x-checksum"] == ["abc"])
            let untilClose = try await connection.request(.GET, "/until-close", authority: "a.test")
            #expect(untilClose.text == "until the close")
            let hints = try await connection.request(.GET, "/hints", authority: "a.test")
            #expect(hints.status == .ok && hints.text == "ok")
            // A local answer: HEADERS and DATA of the worker's own.
            let notFound = try await connection.request(.GET, "/", authority: "other.test")
            #expect(notFound.status == .notFound && notFound.text.hasPrefix("404 "))
            #expect(notFound.headers["content-type"] == ["text/plain; charset=utf-8"])
            await #expect(throws: (any Error).self, "a body cut short resets the stream") {
                try await connection.request(.GET, "/cut", authority: "a.test")
            }
            // The connection outlives the reset stream.
            #expect(try await connection.request(.GET, "/hints", authority: "a.test").text == "ok")
        }
        await proxy.stop()
        await upstream.stop()
    }

    /// What HTTP/2 requests carry becomes a well-formed HTTP/1.1 request upstream: a body without
    /// Content-Length goes chunked whatever the method (a GET's body used to go out unframed, for
    /// the upstream to read as the next request), and cookie crumbs are joined into one field.
    @Test func requestsBecomeWellFramedHTTP1Requests() async throws {
        try await withTLSProxy { a, proxy in
            try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test") { connection in
                let get = try await connection.request(.GET, "/count", authority: "a.test", body: Array(repeating: 1, count: 1000), declaresLength: false)
                #expect(get.text == "received=1000\n")
                let put = try await connection.request(.PUT, "/count", authority: "a.test", body: Array(repeating: 1, count: 10), declaresLength: false)
                #expect(put.text == "received=10\n")
                let cookies = try await connection.request(.GET, "/", authority: "a.test", headers: [("cookie", "a=1"), ("x-other", "y"), ("cookie", "b=2")])
                // (`echoed` splits at the first "=": the cookie's line is looked for whole.)
                #expect(cookies.text.contains("cookie: a=1; b=2\n"), "\(cookies.text)")
                #expect(cookies.echoed["x-other"] == "y")
                // The upstream connection carried all three and is still in use: nothing was left on it.
                #expect(try await connection.request(.GET, "/after", authority: "a.test").echoed["target"] == "/after")
            }
            #expect(a.acceptedConnections == 1)
        }
    }

    /// A client that resets a stream whose upstream has not answered: the upstream connection is
    /// closed (it cannot be reused mid-exchange), the exchange counts as 499, and the connection
    /// serves the next stream.
    @Test func aResetStreamDropsItsUpstreamExchange() async throws {
        try await withTLSProxy { a, proxy in
            try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test") { connection in
                try await connection.openAndReset(path: "/sleep/5000", authority: "a.test") {
                    try await eventually("the request reached the backend") { a.receivedRequests == 1 }
                }
                try await eventually("the upstream exchange is counted as 499") {
                    proxy.worker.observability.exposition().contains(#"code="499""#)
                }
                #expect(try await connection.request(.GET, "/next", authority: "a.test").status == .ok)
            }
            #expect(a.acceptedConnections == 2, "the reset stream's upstream connection was not reused")
        }
    }

    /// Malformed requests (RFC 9113 §8.1.1) reset their stream with PROTOCOL_ERROR and reach no
    /// upstream; the connection goes on serving well-formed ones.
    struct Malformed: Sendable, CustomTestStringConvertible {
        let what: String
        let fields: [(String, String)]
        var testDescription: String { what }

        init(_ what: String, _ fields: [(String, String)]) {
            self.what = what
            self.fields = fields
        }

        static let get: [(String, String)] = [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/")]
        static let cases: [Malformed] = [
            Malformed("uppercase name", get + [("X-Up", "1")]),
            Malformed("CR LF in a value", get + [("x-a", "1\r\nx-b: 2")]),
            Malformed("NUL in a value", get + [("x-a", "1\u{0}")]),
            Malformed("connection", get + [("connection", "close")]),
            Malformed("transfer-encoding", get + [("transfer-encoding", "chunked")]),
            Malformed("te other than trailers", get + [("te", "gzip")]),
            Malformed("unknown pseudo", get + [(":status", "200")]),
            Malformed("two :path", get + [(":path", "/b")]),
            Malformed("pseudo after regular", [(":method", "GET"), ("x-a", "1"), (":scheme", "https"), (":path", "/")]),
            Malformed("space in :path", [(":method", "GET"), (":scheme", "https"), (":path", "/a HTTP/1.1")]),
            Malformed("space in :method", [(":method", "GET /x"), (":scheme", "https"), (":path", "/")]),
            Malformed("no :path", [(":method", "GET"), (":scheme", "https"), (":authority", "a.test")]),
            Malformed("no :method", [(":scheme", "https"), (":authority", "a.test"), (":path", "/")]),
            Malformed("CONNECT with :path", [(":method", "CONNECT"), (":authority", "a.test:443"), (":path", "/")]),
            Malformed("absolute URI in :path", [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "https://a.test/")]),
            Malformed(":path not starting with /", [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "a.test/")]),
            Malformed("* for GET", [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "*")]),
            Malformed("Host disagreeing with :authority", get + [("host", "b.test")]),
        ]
    }

    @Test(arguments: Malformed.cases)
    func malformedRequestsResetTheirStreamOnly(_ malformed: Malformed) async throws {
        try await withTLSProxy { a, proxy in
            try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test", validatesHeaders: false) { connection in
                let refused = try await connection.sendFields(malformed.fields)
                #expect(refused == .reset(0x1), "\(malformed.what)")
                let wellFormed = Malformed.get + [("te", "trailers")]
                let served = try await connection.sendFields(wellFormed)
                #expect(served == .status("200"), "the connection still serves")
                // Trailers: no pseudo-field among them.
                let post: [(String, String)] = [(":method", "POST"), (":scheme", "https"), (":authority", "a.test"), (":path", "/count")]
                let badTrailers = try await connection.sendFields(post, trailers: [(":path", "/x")])
                #expect(badTrailers == .reset(0x1))
            }
            #expect(a.acceptedConnections == 1, "only the well-formed request reached the upstream")
        }
    }

    /// An :authority that is not host[:port] (RFC 3986) is answered 400 on its stream alone.
    @Test func anInvalidAuthorityGets400() async throws {
        try await withTLSProxy { a, proxy in
            try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test", validatesHeaders: false) { connection in
                for authority in ["x@a.test", "a.test:80a", "a..test", "[::1"] {
                    let refused = try await connection.sendFields([(":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", "/")])
                    #expect(refused == .status("400"), "\(authority)")
                }
                #expect(try await connection.sendFields(Malformed.get) == .status("200"), "the connection still serves")
            }
            #expect(a.acceptedConnections == 1, "only the well-formed request reached the upstream")
        }
    }

    /// Stopping the worker: GOAWAY, the stream under way finishes, then the connection closes.
    @Test func drainingLetsStreamsFinishThenCloses() async throws {
        try await withTLSProxy({ $0.drainTimeout = .seconds(20) }) { a, proxy in
            try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test") { connection in
                async let slow = connection.request(.GET, "/sleep/1000", authority: "a.test")
                try await eventually("the request reached the backend") { a.acceptedConnections == 1 }
                let workerTask = proxy.tasks[1]
                workerTask.cancel()
                let response = try await slow
                #expect(response.status == .ok && response.text == "slept\n")
                try await eventually("the drained connection is closed") { !connection.channel.isActive }
                _ = await workerTask.result
            }
        }
    }

    /// HTTP/2 lets a client reuse a connection for another host; a host that this connection's
    /// certificate does not cover gets 421, one covered by the same certificate is served.
    @Test func aHostTheConnectionsCertificateDoesNotCoverGets421() async throws {
        let a = try await TestBackend.start(name: "a")
        let certificateA = try TestCertificate(commonName: "a", dnsNames: ["a.test"])
        let certificateB = try TestCertificate(commonName: "b", dnsNames: ["b.test"])
        let certificateW = try TestCertificate(commonName: "w", dnsNames: ["*.w.test"])
        let table = tlsTable(
            backend: a.port,
            hosts: [(.exact("a.test"), "default/a"), (.exact("b.test"), "default/b"), (.wildcard(suffix: "w.test"), "default/w"), (.exact("c.test"), nil)],
            certificates: [
                TLSCertificate(name: "default/a", certificateA), TLSCertificate(name: "default/b", certificateB),
                TLSCertificate(name: "default/w", certificateW),
            ])
        let proxy = try await LiveProxy.start(table) { $0.httpsListenPort = 0 }
        let statuses = try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test") { connection in
            var statuses: [String: UInt] = [:]
            for authority in ["a.test", "a.test:443", "b.test", "c.test"] {
                statuses[authority] = try await connection.request(.GET, "/", authority: authority).status.code
            }
            return statuses
        }
        #expect(statuses == ["a.test": 200, "a.test:443": 200, "b.test": 421, "c.test": 421])
        let wildcard = try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "x.w.test") { connection in
            var statuses: [UInt] = []
            // The second y.w.test is decided by the connection's remembered answer; b.test after it is not.
            for authority in ["y.w.test", "y.w.test", "b.test", "y.w.test"] {
                statuses.append(try await connection.request(.GET, "/", authority: authority).status.code)
            }
            return statuses
        }
        #expect(wildcard == [200, 200, 421, 200], "the same wildcard certificate covers y.w.test")
        #expect(await proxy.worker.counters().localAnswers[421] == 3)
        await proxy.stop()
        await a.stop()
    }
}
