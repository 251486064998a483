import NIOCore
import NIOHPACK
import NIOHTTP1
import RouteModel
import Testing
import TestSupport
@testable import DataPlane

@Suite struct UpstreamResponseParserTests {
    /// What the parser made of a connection's bytes: each head, body bytes joined, each end.
    struct Outcome {
        var heads: [UpstreamResponseHead] = []
        var bodies: [String] = []
        var ends = 0
        var trailers: [HTTPHeaders] = []
        var left = ByteBuffer()
        var error: UpstreamResponseError?
    }

    /// Feeds `input` in pieces of `step` bytes (0: all at once), the way UpstreamHandler does:
    /// what a call leaves unparsed is kept and the next piece appended to it.
    static func run(
        _ input: String, step: Int = 0, requests: [Bool] = [false], closeAtEnd: Bool = false
    ) -> Outcome {
        var parser = UpstreamResponseParser(maxHeadBytes: 1024)
        var outcome = Outcome()
        var pendingRequests = requests
        var currentBody = ""
        func advance(_ event: UpstreamResponseParser.Event) {
            switch event {
            case .head(let head):
                outcome.heads.append(head)
            case .body(let body):
                currentBody += String(buffer: body)
            case .end(let trailers):
                outcome.ends += 1
                outcome.bodies.append(currentBody)
                currentBody = ""
                if let trailers { outcome.trailers.append(trailers) }
                if !pendingRequests.isEmpty { parser.requestSent(isHead: pendingRequests.removeFirst()) }
            }
        }
        parser.requestSent(isHead: pendingRequests.removeFirst())
        let bytes = Array(input.utf8)
        var held = ByteBuffer()
        var offset = 0
        do {
            while offset < bytes.count {
                let end = step == 0 ? bytes.count : min(bytes.count, offset + step)
                held.writeBytes(bytes[offset..<end])
                offset = end
                while let event = try parser.next(&held) { advance(event) }
            }
            if closeAtEnd, let event = parser.connectionClosed() { advance(event) }
        } catch {
            outcome.error = error as? UpstreamResponseError
        }
        outcome.left = held
        return outcome
    }

    static func names(_ head: UpstreamResponseHead, kept: Bool = true) -> [String] {
        head.fields.filter { head.isForwarded($0) == kept }.map { head.string($0.name) }
    }

    @Test func contentLengthResponse() throws {
        let input = "HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\n"
            + "X-Private: secret\r\nContent-Length: 5\r\nStrict-Transport-Security: max-age=1\r\n\r\nhello"
        for step in [0, 1, 7] {
            let outcome = Self.run(input, step: step)
            #expect(outcome.error == nil)
            let head = try #require(outcome.heads.first)
            #expect(head.status == 200 && head.string(head.reason) == "OK")
            #expect(head.framing == .contentLength(5) && head.reusable && head.hasStrictTransportSecurity)
            #expect(Self.names(head) == ["Server", "Content-Length", "Strict-Transport-Security"])
            #expect(Self.names(head, kept: false) == ["Connection", "Keep-Alive", "X-Private"], "hop-by-hop and named by Connection")
            #expect(outcome.bodies == ["hello"] && outcome.ends == 1)
        }
    }

    @Test func relayedHeadBytes() throws {
        let outcome = Self.run("HTTP/1.1 404 Not Here\r\nA:  spaced value \r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        let head = try #require(outcome.heads.first)
        var buffer = ByteBuffer()
        head.writeStatusLine(into: &buffer)
        head.writeForwardedFields(into: &buffer)
        #expect(String(buffer: buffer) == "HTTP/1.1 404 Not Here\r\nA: spaced value\r\nContent-Length: 0\r\n")
        #expect(!head.reusable, "Connection: close")
        // For HTTP/2: the status as a pseudo-field, names lowercased, HSTS added when asked.
        let http2 = head.http2Headers(hsts: HSTSPolicy(maxAgeSeconds: 60, includeSubdomains: false, preload: false))
        #expect(http2.map { "\($0.name): \($0.value)" } == [":status: 404", "a: spaced value", "content-length: 0", "strict-transport-security: max-age=60"])
    }

    @Test func chunkedBodyWithExtensionsAndTrailers() throws {
        let input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Checksum: abc\r\n\r\n"
        for step in [0, 1, 3, 16] {
            let outcome = Self.run(input, step: step)
            #expect(outcome.error == nil, "step \(step)")
            let head = try #require(outcome.heads.first)
            #expect(head.framing == .chunked && head.reusable)
            #expect(Self.names(head, kept: false) == ["Transfer-Encoding"], "the relay frames the body itself")
            #expect(outcome.bodies == ["hello 0123456789"], "step \(step)")
            #expect(outcome.trailers == [HTTPHeaders([("X-Checksum", "abc")])])
            #expect(outcome.left.readableBytes == 0)
        }
    }

    @Test func responsesInARowOnOneConnection() throws {
        // A HEAD response names a length but has no body; then a 204 and a 304; then a normal one.
        let input = "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + "HTTP/1.1 204 No Content\r\n\r\n"
            + "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n" + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        for step in [0, 1] {
            let outcome = Self.run(input, step: step, requests: [true, false, false, false])
            #expect(outcome.error == nil)
            #expect(outcome.heads.map(\.status) == [200, 204, 304, 200])
            #expect(outcome.heads.map(\.framing) == [.none, .none, .none, .contentLength(2)])
            #expect(Self.names(outcome.heads[0]) == ["Content-Length"], "a HEAD response keeps its length")
            #expect(outcome.bodies == ["", "", "", "ok"])
        }
    }

    @Test func interimResponsesPrecedeTheFinalOne() {
        let outcome = Self.run("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx", step: 2)
        #expect(outcome.heads.map(\.status) == [100, 103, 201])
        #expect(outcome.ends == 1 && outcome.bodies == ["x"])
    }

    @Test func switchingProtocolsLeavesTheRestForTheTunnel() throws {
        var parser = UpstreamResponseParser()
        parser.requestSent(isHead: false)
        var buffer = ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{81}\u{01}x")
        guard case .head(let head) = try parser.next(&buffer) else { Issue.record("no head"); return }
        #expect(head.status == 101 && !head.reusable)
        #expect(try parser.next(&buffer) == nil)
        #expect(parser.hasSwitchedProtocols)
        #expect(Array(buffer.readableBytesView) == Array("\u{81}\u{01}x".utf8))
        let bytes = ForwardedHeaders.switchingProtocolsBytes(head, allocator: ByteBufferAllocator())
        #expect(String(buffer: bytes) == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
    }

    @Test func bodyUntilCloseAndOtherUnreusableShapes() throws {
        let closeDelimited = Self.run("HTTP/1.0 200 OK\r\n\r\nall of it", step: 4, closeAtEnd: true)
        #expect(closeDelimited.heads.first?.framing == .untilClose && closeDelimited.heads.first?.reusable == false)
        #expect(closeDelimited.bodies == ["all of it"])
        let cut = Self.run("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", closeAtEnd: true)
        #expect(cut.ends == 0, "a body cut short by the close is not complete")
        let both = Self.run("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n")
        #expect(both.heads.first?.framing == .chunked && both.heads.first?.reusable == false, "Transfer-Encoding wins; the connection is not reused")
        #expect(both.bodies == ["a"])
        let notChunked = Self.run("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", closeAtEnd: true)
        #expect(notChunked.heads.first?.framing == .untilClose && notChunked.bodies == ["zz"])
        let keepAlive10 = Self.run("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
        #expect(keepAlive10.heads.first?.reusable == true)
        let bareLF = Self.run("HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
        #expect(bareLF.error == nil && bareLF.bodies == ["ok"])
    }

    @Test(arguments: [
        ("HTTP/2 200 OK\r\n\r\n", UpstreamResponseError.invalidStatusLine),
        ("HTTP/1.1 20x OK\r\n\r\n", .invalidStatusLine),
        ("HTTP/1.1 200OK\r\n\r\n", .invalidStatusLine),
        ("HTTP/1.1 099 Low\r\n\r\n", .invalidStatusLine),
        ("HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", .invalidField),
        ("HTTP/1.1 200 OK\r\nName : value\r\n\r\n", .invalidField),
        ("HTTP/1.1 200 OK\r\n: value\r\n\r\n", .invalidField),
        ("HTTP/1.1 200 OK\r\nA: b\u{0}c\r\n\r\n", .invalidField),
        ("HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", .invalidField),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .invalidContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", .invalidContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", .invalidContentLength),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .invalidChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;ext\r\n", .invalidChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", .invalidChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", .invalidChunk),
        ("HTTP/1.1 200 OK\r\nBig: " + String(repeating: "x", count: 2000) + "\r\n\r\n", .headTooLarge),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab", .bytesWithoutRequest),
    ])
    func malformedResponsesAreRefused(input: String, expected: UpstreamResponseError) {
        for step in [0, 1] {
            #expect(Self.run(input, step: step).error == expected, "\(input.debugDescription) in steps of \(step)")
        }
    }

    /// Random sequences of well-formed responses on one connection (every framing, random field
    /// case and spacing, chunk sizes, trailers, HEAD requests), cut at random points: each head,
    /// body and trailer comes out as it was generated.
    @Test(arguments: [1, 2, 3, 4, 5, 6] as [UInt64])
    func randomResponsesSurviveRandomSplits(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        for _ in 0..<40 {
            var wire = ""
            var expected: [(status: Int, fields: [String], body: String, trailers: HTTPHeaders?, isHead: Bool)] = []
            for _ in 0..<Int.random(in: 1...5, using: &random) {
                let status = [200, 201, 204, 301, 304, 404, 500].randomElement(using: &random)!
                let isHead = Int.random(in: 0..<6, using: &random) == 0
                let hasBody = !isHead && status != 204 && status != 304
                let alphabet = Array("abcxyz\r\n0;".utf8)
                let bodyLength = hasBody ? Int.random(in: 0...300, using: &random) : 0
                let body = String(decoding: (0..<bodyLength).map { _ in alphabet.randomElement(using: &random)! }, as: UTF8.self)
                let chunked = hasBody && Bool.random(using: &random)
                var fields = (0..<Int.random(in: 0...6, using: &random)).map { "X-Field-\($0): value \($0)" }
                if Bool.random(using: &random) { fields.append("Keep-Alive: timeout=5") }
                var head = "HTTP/1.1 \(status) Reason \(status)\r\n"
                for field in fields { head += (Bool.random(using: &random) ? field.uppercased() : field).replacingOccurrences(of: ": ", with: Bool.random(using: &random) ? ":" : ":  ") + "\r\n" }
                var trailers: HTTPHeaders?
                if chunked {
                    head += "Transfer-Encoding: chunked\r\n\r\n"
                    let bytes = Array(body.utf8)
                    var offset = 0
                    while offset < bytes.count {
                        let size = min(bytes.count - offset, Int.random(in: 1...80, using: &random))
                        let sizeLine = String(size, radix: 16) + (Bool.random(using: &random) ? ";ext=1" : "")
                        head += sizeLine + "\r\n"
                        head += String(decoding: bytes[offset..<(offset + size)], as: UTF8.self) + "\r\n"
                        offset += size
                    }
                    head += "0\r\n"
                    if Bool.random(using: &random) {
                        head += "X-Trailer: t\r\n"
                        trailers = HTTPHeaders([("X-Trailer", "t")])
                    }
                    head += "\r\n"
                } else {
                    // A HEAD response names the length its GET would have had, and has no body.
                    let length = isHead ? Int.random(in: 1...500, using: &random) : body.utf8.count
                    head += (hasBody || isHead ? "Content-Length: \(length)\r\n" : "") + "\r\n" + body
                }
                wire += head
                expected.append((status, fields.filter { !$0.hasPrefix("Keep-Alive") }, body, trailers, isHead))
            }
            // The parser is told of each request as the previous response ends, the way the proxy
            // writes the next request on a reused connection.
            let outcome = Self.run(wire, step: Int.random(in: 1...64, using: &random), requests: expected.map { $0.isHead })
            #expect(outcome.error == nil, "seed \(seed): \(wire.debugDescription)")
            #expect(outcome.heads.map { $0.status } == expected.map { $0.status })
            #expect(outcome.bodies == expected.map { $0.body })
            #expect(outcome.trailers == expected.compactMap { $0.trailers })
            for (head, want) in zip(outcome.heads, expected) {
                let kept = head.fields.filter { head.isForwarded($0) && $0.kind == .plain }
                #expect(kept.map { head.string($0.name).lowercased() + ": " + head.string($0.value).lowercased() } == want.fields.map { $0.lowercased() })
            }
            #expect(outcome.left.readableBytes == 0)
        }
    }

    @Test func aHeadLargerThanTheLimitIsRefusedBeforeItEnds() {
        // No end of head in sight: refused once the bytes pass the limit, not buffered on.
        #expect(Self.run("HTTP/1.1 200 OK\r\nBig: " + String(repeating: "x", count: 2000), step: 100).error == .headTooLarge)
    }
}
