import NIOHTTP1
import Testing
import TestSupport
@testable import DataPlane

@Suite(.serialized, .timeLimit(.minutes(1))) struct UpgradeTests {
    /// A WebSocket opened through the worker keeps echoing while the table is swapped 100 times,
    /// including to tables that send the host elsewhere: the tunnel does not depend on the table.
    @Test func webSocketEchoSurvivesOneHundredSwaps() async throws {
        let a = try await TestBackend.start(name: "a")
        let b = try await TestBackend.start(name: "b")
        let proxy = try await LiveProxy.start(proxyTable([("ws.test", "/", [a.port])]))
        try await WebSocketTestClient.with(port: proxy.port, host: "ws.test") { client in
            // The accept value RFC 6455 §1.3 derives from the sample key the client sends.
            #expect(client.handshake.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
            #expect(client.handshake.lowercased().contains("connection: upgrade\r\n"))
            #expect(client.handshake.lowercased().contains("upgrade: websocket\r\n"))
            for round in 0..<100 {
                try await proxy.publish(proxyTable([("ws.test", "/", round % 2 == 0 ? [b.port] : [a.port])]))
                try await client.send(text: "message \(round)")
                #expect(try await client.receiveText() == "a: message \(round)")
            }
            let large = (0..<12_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
            try await client.send(binary: large)
            #expect(try await client.receive().payload == large)
        }
        #expect(a.acceptedConnections == 1)
        #expect(b.acceptedConnections == 0)
        #expect(await proxy.worker.counters().upstreamAnswers[101] == 1)
        await proxy.stop()
        await a.stop()
        await b.stop()
    }

    /// Frames a client sends in the same packet as its handshake (the decoder holds them while
    /// the upstream decides) reach the upstream once the tunnel is joined.
    @Test func bytesSentWithTheHandshakeAreRelayed() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("ws.test", "/", [a.port])]))
        // A masked text frame "early" after the handshake, in one write.
        var bytes = Array("GET /ws HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n".utf8)
        bytes += Array("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8)
        let mask: [UInt8] = [1, 2, 3, 4]
        bytes += [0x81, 0x85] + mask + Array("early".utf8).enumerated().map { $0.element ^ mask[$0.offset % 4] }
        // ... then a close frame, so the backend ends the connection and the exchange returns.
        bytes += [0x88, 0x80] + mask
        let reply = try await RawConnection.exchange(port: proxy.port, sendBytes: [bytes])
        #expect(reply.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(reply.contains("a: early"), "reply: \(reply.debugDescription)")
        await proxy.stop()
        await a.stop()
    }

    /// When the upstream does not switch, its answer goes back as is and the connection closes
    /// (the request decoder stopped at the upgrade request).
    @Test func aRefusedUpgradeIsAnsweredAndTheConnectionClosed() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("h.test", "/", [a.port])]))
        let reply = try await RawConnection.exchange(
            port: proxy.port, send: ["GET /echo HTTP/1.1\r\nHost: h.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"])
        #expect(reply.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(reply.lowercased().contains("connection: close\r\n"))
        #expect(reply.contains("upgrade: h2c"), "the upstream saw the upgrade request")
        await proxy.stop()
        await a.stop()
    }

    /// A close from the upstream closes the client's side of the tunnel.
    @Test func theTunnelClosesWhenTheUpstreamCloses() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("ws.test", "/", [a.port])]))
        try await WebSocketTestClient.with(port: proxy.port, host: "ws.test") { client in
            try await client.send(text: "hello")
            #expect(try await client.receiveText() == "a: hello")
            try await client.sendClose()
            #expect(try await client.receive().opcode == 0x8)
            await #expect(throws: WebSocketTestClient.Failure.self) { try await client.receive() }
        }
        await proxy.stop()
        await a.stop()
    }
}
