import NIOCore
import NIOHTTP1
import Testing
@testable import DataPlane

/// The worker's own HTTP/1.1 request reader: what it accepts, what it refuses and with which status,
/// and that it reads the same however the bytes are split.
@Suite struct HTTP1ParserTests {
    static let simple = "GET /a?b=c HTTP/1.1\r\nHost: a.test\r\n\r\n"

    @Test func aRequestLineAndFieldsComeBackAsOffsets() throws {
        let bytes = Array("GET /x HTTP/1.0\r\nHost: a.test\r\nX-Empty:\r\nX-Pad: \t v  \t\r\n\r\nrest".utf8)
        var parser = HTTP1RequestParser(maxHeadBytes: 1024, maxFields: 10)
        var fields: [HTTP1FieldSpan] = []
        let outcome = try bytes.withUnsafeBytes { try parser.parseHead($0, fields: &fields) }
        guard case .complete(let line, let length) = outcome else {
            Issue.record("incomplete")
            return
        }
        func text(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
        #expect(text(line.method) == "GET")
        #expect(text(line.target) == "/x")
        #expect(line.minorVersion == 0)
        #expect(length == bytes.count - 4)
        #expect(fields.map { "\(text($0.name))=\(text($0.value))" } == ["Host=a.test", "X-Empty=", "X-Pad=v"])
    }

    @Test func anIncompleteHeadIsScannedOnce() throws {
        // Fed a byte more at a time, the parser looks at each byte once: after a thousand calls
        // with a 1,000-byte head, the scan has not gone back to the start.
        var parser = HTTP1RequestParser(maxHeadBytes: 4096, maxFields: 100)
        var fields: [HTTP1FieldSpan] = []
        let head = Array(("GET / HTTP/1.1\r\nHost: a.test\r\nX-Long: " + String(repeating: "v", count: 1000) + "\r\n\r\n").utf8)
        for end in 1..<head.count {
            let outcome = try head[..<end].withUnsafeBytes { try parser.parseHead($0, fields: &fields) }
            #expect(outcome == .incomplete, "complete after \(end) bytes")
        }
        let outcome = try head.withUnsafeBytes { try parser.parseHead($0, fields: &fields) }
        #expect(outcome.map { $1 } == head.count)
        #expect(fields.count == 2)
    }

    struct Refused: CustomTestStringConvertible, Sendable {
        let name: String
        let bytes: String
        let status: UInt
        init(_ name: String, _ bytes: String, _ status: UInt = 400) {
            self.name = name
            self.bytes = bytes
            self.status = status
        }
        var testDescription: String { name }
    }

    static let refused: [Refused] = [
        Refused("bare LF after the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n"),
        Refused("bare LF after a field", "GET / HTTP/1.1\r\nHost: a\n\r\n"),
        Refused("bare LF as the head's end", "GET / HTTP/1.1\r\nHost: a\r\n\n"),
        Refused("bare CR in a value", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"),
        Refused("bare LF before the request line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Refused("two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Refused("tab as a separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"),
        Refused("no target", "GET HTTP/1.1\r\nHost: a\r\n\r\n"),
        Refused("a space in the target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
        Refused("non-ASCII in the target", "GET /\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n"),
        Refused("DEL in the target", "GET /\u{7f} HTTP/1.1\r\nHost: a\r\n\r\n"),
        Refused("lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n"),
        Refused("no version", "GET /\r\nHost: a\r\n\r\n"),
        Refused("space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n"),
        Refused("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        Refused("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        Refused("HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
        Refused("a method with a separator", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Refused("whitespace before a colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        Refused("tab before a colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"),
        Refused("an empty field name", "GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n"),
        Refused("no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n"),
        Refused("obsolete line folding", "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n"),
        Refused("a field starting with a space", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
        Refused("NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n"),
        Refused("a control byte in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{1}b\r\n\r\n"),
        Refused("DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{7f}b\r\n\r\n"),
        Refused("a separator in a name", "GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n"),
        Refused("whitespace after a length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\t\r\n\r\nx"),
    ]

    @Test(arguments: refused) func refuses(_ example: Refused) throws {
        let outcome = try HTTP1Reading.portico([Array(example.bytes.utf8)])
        #expect(outcome.requests.isEmpty)
        #expect(outcome.refusal?.code == example.status, "\(outcome)")
        #expect(outcome.answer.hasPrefix("HTTP/1.1 \(example.status) "), "\(outcome.answer)")
    }

    @Test func emptyLinesBeforeARequestAreSkipped() throws {
        let outcome = try HTTP1Reading.portico([Array(("\r\n\r\n" + Self.simple).utf8)])
        #expect(outcome.requests.map(\.uri) == ["/a?b=c"])
        #expect(outcome.refusal == nil)
    }

    @Test func obsTextInAValueIsKept() throws {
        let outcome = try HTTP1Reading.portico([[UInt8]("GET / HTTP/1.1\r\nHost: a\r\nX: caf".utf8) + [0xC3, 0xA9] + [UInt8]("\r\n\r\n".utf8)])
        #expect(outcome.requests.first?.fields.last == ["X", "caf\u{e9}"])
    }

    @Test func limits() throws {
        let longLine = "GET /" + String(repeating: "a", count: 300) + " HTTP/1.1\r\nHost: a\r\n\r\n"
        #expect(try HTTP1Reading.portico([Array(longLine.utf8)], maxHeadBytes: 200).refusal == .uriTooLong)
        // Still arriving: the request line alone is over the limit.
        #expect(try HTTP1Reading.portico([Array(longLine.utf8.prefix(250))], maxHeadBytes: 200).refusal == .uriTooLong)
        let longHead = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 300) + "\r\n\r\n"
        #expect(try HTTP1Reading.portico([Array(longHead.utf8)], maxHeadBytes: 200).refusal == .requestHeaderFieldsTooLarge)
        #expect(try HTTP1Reading.portico([Array(longHead.utf8.prefix(250))], maxHeadBytes: 200).refusal == .requestHeaderFieldsTooLarge)
        let exactly = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 200 - 32) + "\r\n\r\n"
        #expect(exactly.utf8.count == 200)
        #expect(try HTTP1Reading.portico([Array(exactly.utf8)], maxHeadBytes: 200).requests.count == 1)
        let fields = "GET / HTTP/1.1\r\nHost: a\r\n" + (1...5).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        #expect(try HTTP1Reading.portico([Array(fields.utf8)], maxFields: 6).requests.count == 1)
        let tooMany = try HTTP1Reading.portico([Array(fields.utf8)], maxFields: 5)
        #expect(tooMany.refusal == .requestHeaderFieldsTooLarge)
        #expect(tooMany.reason == "more than 5 header fields")
    }

    struct Body: CustomTestStringConvertible, Sendable {
        let name: String
        let message: String
        /// The body read, or nil when the message is refused.
        let body: String?
        var trailers: [[String]]? = nil
        var testDescription: String { name }
    }

    static let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    static let bodies: [Body] = [
        Body(name: "content-length", message: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", body: "hello"),
        Body(name: "chunks", message: chunked + "5\r\nhello\r\n1;a=b;c=\"d;\\\"e\"\r\n!\r\n0\r\n\r\n", body: "hello!"),
        Body(name: "uppercase hex", message: chunked + "A\r\n0123456789\r\n0\r\n\r\n", body: "0123456789"),
        Body(name: "leading zeros", message: chunked + "0005\r\nhello\r\n000\r\n\r\n", body: "hello"),
        Body(name: "trailers", message: chunked + "1\r\nx\r\n0\r\nX-Sum: 1\r\nX-Other: 2 \r\n\r\n", body: "x", trailers: [["X-Sum", "1"], ["X-Other", "2"]]),
        Body(name: "no chunk size", message: chunked + "\r\nhello\r\n0\r\n\r\n", body: nil),
        Body(name: "a size that is not hex", message: chunked + "g\r\nhello\r\n0\r\n\r\n", body: nil),
        Body(name: "a negative size", message: chunked + "-5\r\nhello\r\n0\r\n\r\n", body: nil),
        Body(name: "a size past 2^60", message: chunked + "1000000000000000\r\nx\r\n0\r\n\r\n", body: nil),
        Body(name: "whitespace after the size", message: chunked + "5 \r\nhello\r\n0\r\n\r\n", body: nil),
        Body(name: "whitespace before an extension", message: chunked + "5 ;a\r\nhello\r\n0\r\n\r\n", body: nil),
        Body(name: "an extension without a name", message: chunked + "5;\r\nhello\r\n0\r\n\r\n", body: nil),
        Body(name: "an unterminated quoted extension", message: chunked + "5;a=\"b\r\nhello\r\n0\r\n\r\n", body: nil),
        Body(name: "a bare LF after the size", message: chunked + "5\nhello\r\n0\r\n\r\n", body: nil),
        Body(name: "a bare LF in an extension", message: chunked + "5;a\nb\r\nhello\r\n0\r\n\r\n", body: nil),
        Body(name: "data longer than its size", message: chunked + "3\r\nhello\r\n0\r\n\r\n", body: nil),
        Body(name: "no CRLF after the data", message: chunked + "5\r\nhello0\r\n\r\n", body: nil),
        Body(name: "a bare LF after the data", message: chunked + "5\r\nhello\n0\r\n\r\n", body: nil),
        Body(name: "a folded trailer", message: chunked + "0\r\nX: a\r\n b\r\n\r\n", body: nil),
        Body(name: "a trailer with a bare LF", message: chunked + "0\r\nX: a\n\r\n", body: nil),
    ]

    @Test(arguments: bodies) func readsBodies(_ example: Body) throws {
        let bytes = Array(example.message.utf8)
        let whole = try HTTP1Reading.portico([bytes])
        if let body = example.body {
            #expect(whole.refusal == nil, "\(whole)")
            #expect(whole.requests.map { String(decoding: $0.body, as: UTF8.self) } == [body])
            #expect(whole.requests.first?.trailers == example.trailers)
        } else {
            #expect(whole.requests.isEmpty, "\(whole)")
            #expect(whole.refusal == .badRequest, "\(whole)")
        }
        // A byte per read gives the same.
        let split = try HTTP1Reading.portico(bytes.map { [$0] })
        #expect(split.requests == whole.requests)
        #expect(split.refusal == whole.refusal)
    }

    @Test func pipelinedRequestsComeInOrder() throws {
        let message = Self.simple + "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi" + Self.chunked + "2\r\nyo\r\n0\r\n\r\n" + Self.simple
        let outcome = try HTTP1Reading.portico([Array(message.utf8)])
        #expect(outcome.requests.map(\.uri) == ["/a?b=c", "/p", "/", "/a?b=c"])
        #expect(outcome.requests.map { String(decoding: $0.body, as: UTF8.self) } == ["", "hi", "yo", ""])
    }

    @Test func aRefusedHeadStopsReading() throws {
        // RequestFacts refuses the second head (two Content-Lengths): nothing after it is read.
        let message = Self.simple + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx" + Self.simple
        let outcome = try HTTP1Reading.portico([Array(message.utf8)])
        #expect(outcome.requests.count == 1)
        #expect(outcome.refusal == .badRequest)
        #expect(outcome.reason == "more than one Content-Length")
    }
}
