import Foundation
import NIOCore
import NIOPosix
import Testing
import TestSupport
@testable import DataPlane

/// Each timeout with a short value: what is closed, what the client is answered, and the count.
@Suite(.serialized, .timeLimit(.minutes(1))) struct TimeoutTests {
    static let short: Duration = .milliseconds(300)

    /// A TCP connection to the TLS port that never finishes its handshake is closed.
    @Test func aStalledTLSHandshakeIsClosed() async throws {
        // Longer than the other timeouts here: a real handshake below must finish within it on a
        // loaded 2-core CI machine (at 300 ms one did not, once).
        let timeout: Duration = .seconds(1)
        try await withTLSProxy({ $0.tlsHandshakeTimeout = timeout }) { a, proxy in
            // Half a ClientHello's record header, then nothing.
            let answer = try await RawConnection.exchange(port: proxy.worker.httpsPort, sendBytes: [[0x16, 0x03, 0x01]])
            #expect(answer.isEmpty)
            #expect(await proxy.worker.counters().timeouts == [.tlsHandshake: 1])
            // A handshake that completes is not cut by the timer afterwards.
            try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "a.test") { connection in
                _ = try await connection.request(.GET, "/", authority: "a.test")
                try await Task.sleep(for: timeout * 2)  // pacing: past the handshake timeout, on purpose
                #expect(try await connection.request(.GET, "/", authority: "a.test").status == .ok)
            }
            #expect(await proxy.worker.counters().timeouts == [.tlsHandshake: 1])
        }
    }

    /// An HTTP/2 connection without an open stream is sent GOAWAY and closed after the idle
    /// timeout; one with a stream open is not.
    @Test func anIdleHTTP2ConnectionGetsGoAway() async throws {
        try await withTLSProxy({ $0.idleTimeout = Self.short }) { a, proxy in
            let connection = try await RawHTTP2Connection.connect(port: proxy.worker.httpsPort, serverName: "a.test")
            try await connection.send([RawHTTP2Connection.get(stream: 1, authority: "a.test", path: "/sleep/700")])
            try await connection.waitFor("the slow answer") { $0.contains { $0.stream == 1 && $0.status == "200" } }
            #expect(!connection.frames.contains { $0.type == RawHTTP2Connection.Frame.goAway }, "not idle while a stream was open")
            try await connection.waitFor("the close") { _ in connection.isClosed }
            let goAway = connection.frames.first { $0.type == RawHTTP2Connection.Frame.goAway }
            #expect(goAway?.errorCode == 0, "GOAWAY NO_ERROR: \(connection.frames)")
            #expect(await proxy.worker.counters().timeouts == [.idle: 1])
        }
    }

    /// A request body whose next bytes do not come in time: 408 and the close. The timeout is a
    /// gap between reads, not a total: a body that keeps coming passes.
    @Test func aTricklingRequestBodyGets408() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port])])) { $0.requestBodyTimeout = .milliseconds(500) }
        let head = "POST /count HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\nConnection: close\r\n\r\n"
        let steady = try await RawConnection.exchange(
            port: proxy.port, send: [head + "a", "b", "c", "d", "e", "f"], pauseBetweenChunks: .milliseconds(150))
        #expect(steady.hasPrefix("HTTP/1.1 200 OK") && steady.contains("received=6"), "\(steady.prefix(80))")
        #expect(await proxy.worker.counters().timeouts.isEmpty)
        let stalled = try await RawConnection.exchange(port: proxy.port, send: [head + "abc"])
        #expect(stalled.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(stalled.prefix(80))")
        #expect(await proxy.worker.counters().timeouts == [.requestBody: 1])
        await proxy.stop()
        await a.stop()
    }

    /// The same on HTTP/2: the stream gets 408, the connection goes on.
    @Test func aStalledHTTP2RequestBodyGets408() async throws {
        try await withTLSProxy({ $0.requestBodyTimeout = Self.short }) { a, proxy in
            let connection = try await RawHTTP2Connection.connect(port: proxy.worker.httpsPort, serverName: "a.test")
            let post = [(":method", "POST"), (":scheme", "https"), (":authority", "a.test"), (":path", "/count"), ("content-length", "6")]
            try await connection.send([
                RawHTTP2Connection.headers(stream: 1, post, endStream: false), RawHTTP2Connection.data(stream: 1, Array("abc".utf8), endStream: false),
            ])
            try await connection.waitFor("408 on stream 1") { $0.contains { $0.stream == 1 && $0.status == "408" } }
            try await connection.send([RawHTTP2Connection.get(stream: 3, authority: "a.test")])
            try await connection.waitFor("200 on stream 3") { $0.contains { $0.stream == 3 && $0.status == "200" } }
            #expect(await proxy.worker.counters().timeouts == [.requestBody: 1])
            await connection.close()
        }
    }

    /// An upstream that stops in the middle of its response body: the exchange is cut (the client
    /// sees its connection close short of the length) and counted.
    @Test func aStalledUpstreamBodyIsCut() async throws {
        let upstream = try await ScriptedBackend.start { _ in .init("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nthe first part") }
        let proxy = try await LiveProxy.start(proxyTable([("up.test", "/", [upstream.port])])) { $0.upstreamReadTimeout = Self.short }
        let answer = try await RawConnection.exchange(port: proxy.port, send: ["GET / HTTP/1.1\r\nHost: up.test\r\n\r\n"])
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n") && answer.hasSuffix("\r\n\r\nthe first part"), "\(answer)")
        #expect(await proxy.worker.counters().timeouts == [.upstreamRead: 1])
        await proxy.stop()
        await upstream.stop()
    }
}
