import Foundation
import Testing
import TestSupport
@testable import DataPlane

/// HTTP/2 frames a hostile client sends, written raw: stream errors stay on their stream
/// (RFC 9113 §5.4.2), resets the server makes count with the client's (MadeYouReset,
/// CVE-2025-8671), and a flood on one connection leaves other clients' latency alone.
@Suite(.serialized, .timeLimit(.minutes(1))) struct HTTP2AbuseTests {
    typealias Frame = RawHTTP2Connection.Frame
    static let protocolError: UInt32 = 0x1
    static let enhanceYourCalm: UInt32 = 0xb

    struct StreamErrorCase: Sendable, CustomTestStringConvertible {
        let name: String
        /// Frames on stream 3, which must be reset alone.
        let frames: [[UInt8]]
        let code: UInt32
        var testDescription: String { name }
    }

    static let post: [(String, String)] = [(":method", "POST"), (":scheme", "https"), (":authority", "a.test"), (":path", "/count")]

    static let streamErrors: [StreamErrorCase] = [
        StreamErrorCase(
            name: "DATA beyond the content-length",
            frames: [
                RawHTTP2Connection.headers(stream: 3, post + [("content-length", "3")], endStream: false),
                RawHTTP2Connection.data(stream: 3, Array("abcdef".utf8), endStream: true),
            ], code: protocolError),
        StreamErrorCase(
            name: "END_STREAM short of the content-length",
            frames: [RawHTTP2Connection.headers(stream: 3, post + [("content-length", "3")], endStream: true)], code: protocolError),
        StreamErrorCase(
            name: "WINDOW_UPDATE of 0 on a stream",
            frames: [
                RawHTTP2Connection.headers(stream: 3, post, endStream: false), RawHTTP2Connection.windowUpdate(stream: 3, increment: 0),
            ], code: protocolError),
        StreamErrorCase(
            name: "HEADERS after END_STREAM",
            frames: [
                RawHTTP2Connection.headers(stream: 3, post + [("content-length", "0")], endStream: true),
                RawHTTP2Connection.headers(stream: 3, [("x-trailer", "1")], endStream: true),
            ],
            // RFC 9113 §5.1 asks for STREAM_CLOSED; NIOHTTP2, which writes this reset, sends
            // PROTOCOL_ERROR. Still a stream error only, which is what matters here.
            code: protocolError),
    ]

    /// The offending stream is reset, a stream opened beside it is answered, and the connection
    /// is neither closed nor sent GOAWAY.
    @Test(arguments: streamErrors)
    func streamErrorsResetOnlyTheirStream(_ test: StreamErrorCase) async throws {
        try await withTLSProxy { a, proxy in
            let connection = try await RawHTTP2Connection.connect(port: proxy.worker.httpsPort, serverName: "a.test")
            // Stream 1 is open (its body follows later) while stream 3 misbehaves.
            try await connection.send([RawHTTP2Connection.headers(stream: 1, Self.post, endStream: false)] + test.frames)
            try await connection.waitFor("a reset of stream 3") { $0.contains { $0.type == Frame.rstStream && $0.stream == 3 } }
            try await connection.send([RawHTTP2Connection.data(stream: 1, Array("xyz".utf8), endStream: true), RawHTTP2Connection.get(stream: 5, authority: "a.test")])
            try await connection.waitFor("answers on streams 1 and 5") { frames in
                frames.contains { $0.stream == 1 && $0.status == "200" } && frames.contains { $0.stream == 5 && $0.status == "200" }
            }
            let reset = connection.frames.first { $0.type == Frame.rstStream && $0.stream == 3 }
            #expect(reset?.errorCode == test.code, "\(test.name): \(connection.frames)")
            #expect(!connection.frames.contains { $0.type == Frame.goAway }, "\(test.name): no GOAWAY")
            #expect(!connection.isClosed)
            await connection.close()
        }
    }

    /// A connection error is a GOAWAY with its code, then the close.
    @Test func aConnectionErrorSendsGoAwayBeforeClosing() async throws {
        try await withTLSProxy { a, proxy in
            let connection = try await RawHTTP2Connection.connect(port: proxy.worker.httpsPort, serverName: "a.test")
            // DATA on stream 0 is a connection error of type PROTOCOL_ERROR (RFC 9113 §6.1).
            try await connection.send([RawHTTP2Connection.data(stream: 0, [1, 2, 3], endStream: false)])
            try await connection.waitFor("the close") { _ in connection.isClosed }
            let goAway = connection.frames.first { $0.type == Frame.goAway }
            #expect(goAway?.errorCode == Self.protocolError, "\(connection.frames)")
        }
    }

    /// Resets the server makes because of the client (malformed requests, stream errors) count
    /// toward the same limit as the client's own RST_STREAM frames; past it, GOAWAY
    /// ENHANCE_YOUR_CALM and the close. No reset stream opens an upstream connection.
    @Test func serverResetsCountTowardTheResetLimit() async throws {
        try await withTLSProxy({ $0.http2.maxResetsPerWindow = 30 }) { a, proxy in
            let connection = try await RawHTTP2Connection.connect(port: proxy.worker.httpsPort, serverName: "a.test")
            var frames: [[UInt8]] = []
            var stream: UInt32 = 1
            for round in 0..<40 {
                switch round % 3 {
                case 0:
                    // Malformed: an uppercase field name; the worker resets it.
                    frames.append(RawHTTP2Connection.headers(stream: stream, Self.post + [("X-Up", "1")], endStream: true))
                case 1:
                    // MadeYouReset: a valid request, then a frame that makes the server reset it.
                    frames.append(RawHTTP2Connection.headers(stream: stream, Self.post, endStream: false))
                    frames.append(RawHTTP2Connection.windowUpdate(stream: stream, increment: 0))
                default:
                    // The client's own reset, at once (rapid reset).
                    frames.append(RawHTTP2Connection.headers(stream: stream, Self.post, endStream: false))
                    frames.append(RawHTTP2Connection.rstStream(stream: stream, code: 0x8))
                }
                stream += 2
            }
            try await connection.send(frames)
            try await connection.waitFor("the close") { _ in connection.isClosed }
            let goAway = connection.frames.first { $0.type == Frame.goAway }
            #expect(goAway?.errorCode == Self.enhanceYourCalm, "\(connection.frames)")
            #expect(a.acceptedConnections == 0, "no reset stream reached the upstream")
        }
    }

    /// One connection floods the worker with streams it gets reset, connection after connection,
    /// while another client's requests go on: their latency stays within a few milliseconds of
    /// what it is without the flood. Bounded: 20 connections of 400 resets each.
    /// It measures latency, so it runs alone (scripts/test.sh runs it in a pass of its own, with
    /// PORTICO_TEST_ALONE=1): beside the other suites it measures them.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PORTICO_TEST_ALONE"] == "1", "measures latency: run alone by scripts/test.sh"))
    func aFloodDoesNotDelayOtherClients() async throws {
        try await withTLSProxy({ $0.http2.maxResetsPerWindow = 200 }) { a, proxy in
            let port = proxy.worker.httpsPort
            try await HTTP2TestConnection.with(port: port, serverName: "a.test") { client in
                func latencies(_ count: Int) async throws -> [Duration] {
                    var measured: [Duration] = []
                    for _ in 0..<count {
                        let start = ContinuousClock.now
                        let response = try await client.request(.GET, "/", authority: "a.test")
                        #expect(response.status == .ok)
                        measured.append(ContinuousClock.now - start)
                    }
                    return measured.sorted()
                }
                _ = try await latencies(20)  // warm: the upstream connection is pooled
                let quiet = try await latencies(100)
                let flood = Task {
                    for _ in 0..<20 {
                        guard let attacker = try? await RawHTTP2Connection.connect(port: port, serverName: "a.test") else { continue }
                        var frames: [[UInt8]] = []
                        for index in 0..<400 {
                            frames.append(RawHTTP2Connection.headers(stream: UInt32(2 * index + 1), Self.post + [("X-Up", "1")], endStream: true))
                        }
                        try? await attacker.send(frames)
                        try? await attacker.waitFor("the close", timeout: .seconds(5)) { _ in attacker.isClosed }
                        await attacker.close()
                    }
                }
                let loaded = try await latencies(100)
                await flood.value
                let median = { (values: [Duration]) in values[values.count / 2] }
                let p90 = { (values: [Duration]) in values[values.count * 9 / 10] }
                print("latency without flood: median \(median(quiet)), p90 \(p90(quiet)); during flood: median \(median(loaded)), p90 \(p90(loaded))")
                // Generous for a debug build on a shared 2-core machine; the flood itself never waits.
                #expect(median(loaded) < median(quiet) + .milliseconds(10), "median \(median(loaded)) against \(median(quiet))")
                #expect(p90(loaded) < p90(quiet) + .milliseconds(25), "p90 \(p90(loaded)) against \(p90(quiet))")
            }
        }
    }
}
