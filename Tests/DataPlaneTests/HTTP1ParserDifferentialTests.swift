import NIOCore
import NIOHTTP1
import Testing
@testable import DataPlane

/// The worker's request reader against a second one, NIO's `HTTPRequestDecoder` (llhttp), on
/// generated requests and on mutations of them: whatever the worker accepts, llhttp accepts too,
/// as the same requests with the same fields and bodies. Where they differ, the worker refuses.
///
/// Two differences are allowed. llhttp knows a fixed list of methods, and the worker takes any token
/// (RFC 9110 §9.1), so requests whose method llhttp does not know are not compared. And llhttp
/// keeps whitespace at the end of a field value, which is not part of the value (RFC 9110 §5.5):
/// it is trimmed from llhttp's values before they are compared.
@Suite struct HTTP1ParserDifferentialTests {
    /// A small, seeded generator (SplitMix64): every run tries the same inputs.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
    static let llhttpMethods: Set<String> = [
        "DELETE", "GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "TRACE", "COPY", "LOCK", "MKCOL", "MOVE", "PROPFIND",
        "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE",
        "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PATCH", "PURGE", "MKCALENDAR", "LINK", "UNLINK", "SOURCE", "QUERY",
    ]
    static let names = ["Accept", "user-agent", "X-Request-ID", "Cookie", "x-a", "Accept-Encoding", "X_Under", "x.dot", "X~!#$%&'*+^`|"]
    static let valueBytes = Array("abcXYZ019 -_.,;:=/\"'()[]{}<>?@\\!*~\t".utf8) + [0x80, 0xC3, 0xA9, 0xFF]
    static let interesting: [UInt8] = Array("\r\n\0 \t:;\"\\,=/aG0fF".utf8) + [0x7F, 0x80, 0xFF, 0x01, 0x0B]

    /// One well-formed request, with its body framed one of three ways.
    static func request(_ random: inout Generator) -> [UInt8] {
        var text = methods.randomElement(using: &random)! + " /"
        for _ in 0..<Int.random(in: 0...3, using: &random) { text += ["a", "b/", "%20", "x.y", "~"].randomElement(using: &random)! }
        if Bool.random(using: &random) { text += "?q=" + ["1", "a&b=2", "%41"].randomElement(using: &random)! }
        let isHTTP10 = Int.random(in: 0..<8, using: &random) == 0
        text += isHTTP10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n"
        var head = Array(text.utf8)
        head += Array("Host: a.test\r\n".utf8)
        for _ in 0..<Int.random(in: 0...6, using: &random) {
            head += Array(names.randomElement(using: &random)!.utf8) + [UInt8(ascii: ":")]
            head += Array(repeating: UInt8(ascii: " "), count: Int.random(in: 0...2, using: &random))
            for _ in 0..<Int.random(in: 0...12, using: &random) { head.append(valueBytes.randomElement(using: &random)!) }
            head += Array("\r\n".utf8)
        }
        let body = (0..<Int.random(in: 0...40, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
        // No chunked coding on HTTP/1.0 (RFC 9112 §6.1).
        switch Int.random(in: 0..<(isHTTP10 ? 2 : 3), using: &random) {
        case 0:
            return head + Array("\r\n".utf8)
        case 1:
            return head + Array("Content-Length: \(body.count)\r\n\r\n".utf8) + body
        default:
            var message = head + Array("Transfer-Encoding: chunked\r\n\r\n".utf8)
            var rest = body[...]
            while !rest.isEmpty {
                let size = Int.random(in: 1...rest.count, using: &random)
                message += Array(String(size, radix: 16, uppercase: Bool.random(using: &random)).utf8)
                if Int.random(in: 0..<4, using: &random) == 0 { message += Array(";ext=\"v\"".utf8) }
                message += Array("\r\n".utf8) + rest.prefix(size) + Array("\r\n".utf8)
                rest = rest.dropFirst(size)
            }
            message += Array("0\r\n".utf8)
            if Bool.random(using: &random) { message += Array("X-Trailer: t\r\n".utf8) }
            return message + Array("\r\n".utf8)
        }
    }

    /// A few random edits: a byte replaced (often by one that matters to HTTP), removed, inserted
    /// or a run repeated.
    static func mutate(_ message: [UInt8], _ random: inout Generator) -> [UInt8] {
        var bytes = message
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            guard !bytes.isEmpty else { break }
            let at = Int.random(in: 0..<bytes.count, using: &random)
            let byte = Bool.random(using: &random) ? interesting.randomElement(using: &random)! : UInt8.random(in: 0...255, using: &random)
            switch Int.random(in: 0..<4, using: &random) {
            case 0: bytes[at] = byte
            case 1: bytes.remove(at: at)
            case 2: bytes.insert(byte, at: at)
            default:
                let run = bytes[at..<min(bytes.count, at + Int.random(in: 1...8, using: &random))]
                bytes.insert(contentsOf: run, at: at)
            }
        }
        return bytes
    }

    /// Splits `bytes` into reads of random sizes.
    static func split(_ bytes: [UInt8], _ random: inout Generator) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            let size = Int.random(in: 1...max(1, min(rest.count, 64)), using: &random)
            chunks.append(Array(rest.prefix(size)))
            rest = rest.dropFirst(size)
        }
        return chunks
    }

    /// The property: every request the worker read completely, llhttp read the same.
    static func compare(_ bytes: [UInt8], _ random: inout Generator) throws -> (compared: Int, refusedByPortico: Bool) {
        let ours = try HTTP1Reading.portico(split(bytes, &random))
        let reference = try HTTP1Reading.nio([bytes])
        var compared = 0
        for (index, request) in ours.requests.enumerated() {
            guard llhttpMethods.contains(request.method) else { break }
            guard index < reference.requests.count else {
                Issue.record(
                    "Portico read \(request) that llhttp did not (llhttp: \(reference)) in \(String(decoding: bytes, as: UTF8.self).debugDescription)")
                break
            }
            var theirs = reference.requests[index]
            theirs.fields = theirs.fields.map(trimmingTrailingWhitespace)
            theirs.trailers = theirs.trailers?.map(trimmingTrailingWhitespace)
            if request != theirs {
                Issue.record("Portico read \(request), llhttp \(theirs), in \(String(decoding: bytes, as: UTF8.self).debugDescription)")
                break
            }
            compared += 1
        }
        return (compared, ours.refusal != nil)
    }

    static func trimmingTrailingWhitespace(_ field: [String]) -> [String] {
        var value = Substring(field[1])
        while value.last == " " || value.last == "\t" { value = value.dropLast() }
        return [field[0], String(value)]
    }

    @Test func generatedRequestsReadTheSame() throws {
        var random = Generator(state: 1)
        var compared = 0
        for _ in 0..<1500 {
            var message: [UInt8] = []
            for _ in 0..<Int.random(in: 1...3, using: &random) { message += Self.request(&random) }
            let (count, refused) = try Self.compare(message, &random)
            compared += count
            #expect(!refused, "a well-formed message was refused: \(String(decoding: message, as: UTF8.self).debugDescription)")
        }
        // Every generated request is valid: nearly all are compared (HEAD and unknown methods aside).
        #expect(compared > 2500, "only \(compared) requests compared")
    }

    @Test func mutatedRequestsReadTheSameOrPorticoRefuses() throws {
        var random = Generator(state: 2)
        var compared = 0
        var refused = 0
        for _ in 0..<20000 {
            var message: [UInt8] = []
            for _ in 0..<Int.random(in: 1...2, using: &random) { message += Self.request(&random) }
            let outcome = try Self.compare(Self.mutate(message, &random), &random)
            compared += outcome.compared
            if outcome.refusedByPortico { refused += 1 }
        }
        // Both sides of the property were exercised.
        #expect(compared > 5000, "only \(compared) requests compared")
        #expect(refused > 5000, "only \(refused) inputs refused")
    }
}
