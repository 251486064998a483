/// A header field of a parsed head: where its name and value lie, as offsets from the first byte
/// handed to the parser. The value has no leading or trailing whitespace.
struct HTTP1FieldSpan: Equatable {
    var name: Range<Int>
    var value: Range<Int>
}

/// A parsed request line, as offsets into the parsed bytes.
struct HTTP1RequestLine: Equatable {
    var method: Range<Int>
    var target: Range<Int>
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    var minorVersion: Int
}

/// Parses HTTP/1.1 request heads in place (RFC 9112 §2–§5): no copy and no allocation per field;
/// the request line and each field come back as offsets into the bytes, the fields in an array the
/// caller keeps from one request to the next (HAProxy's `h1_headers_to_hdr_list` and picohttpparser
/// work the same way).
///
/// Strict wherever a laxer reading could make the worker and an upstream see different messages:
/// every line ends in CRLF (a bare LF or CR is refused), no whitespace before a field's colon, no
/// obsolete line folding, no control bytes in a value, a target of visible ASCII only, and a version
/// of exactly `HTTP/1.0` or `HTTP/1.1`. Empty lines before the request line are skipped (§2.2).
///
/// A head that arrives a little at a time is scanned for its end once, not once per arrival: the
/// parser remembers how far it looked. Its limits: `maxHeadBytes` for the whole head (414 while the
/// request line alone is longer, else 431) and `maxFields` fields (431).
struct HTTP1RequestParser {
    enum Outcome: Equatable {
        case incomplete
        /// The first `length` bytes are the head, empty lines before it included.
        case complete(HTTP1RequestLine, length: Int)
    }

    typealias Refusal = RequestFacts.Refusal

    var maxHeadBytes: Int
    var maxFields: Int
    /// How far the bytes were scanned for the head's end.
    private var scanned = 0
    /// A line end was seen: what is over the limit now is the head, not the request line.
    private var sawLineEnd = false

    init(maxHeadBytes: Int, maxFields: Int) {
        self.maxHeadBytes = maxHeadBytes
        self.maxFields = maxFields
    }

    /// Parses the head at the start of `bytes`, filling `fields` (emptied first). The bytes must be
    /// the same ones, with more appended, until the head is complete; then the parser is ready for
    /// the next head, which starts at the bytes after this one.
    mutating func parseHead(_ bytes: UnsafeRawBufferPointer, fields: inout [HTTP1FieldSpan]) throws(Refusal) -> Outcome {
        // Empty lines before the request line.
        var start = 0
        while start + 1 < bytes.count, bytes[start] == .cr, bytes[start + 1] == .lf { start += 2 }
        if start < bytes.count, bytes[start] == .lf { throw Refusal(.badRequest, "a line ends in LF without CR") }
        guard
            let end = try HTTP1FieldBlock.end(
                of: bytes, from: start, scanned: &scanned, sawLineEnd: &sawLineEnd, limit: maxHeadBytes)
        else {
            if bytes.count > maxHeadBytes { throw overLimit() }
            return .incomplete
        }
        defer {
            scanned = 0
            sawLineEnd = false
        }
        if end > maxHeadBytes { throw overLimit() }
        fields.removeAll(keepingCapacity: true)
        return try HTTP1ByteClass.table.withUnsafeBufferPointer { table throws(Refusal) in
            var p = start
            let line = try Self.requestLine(bytes, at: &p, table: table)
            try HTTP1FieldBlock.parse(bytes, from: p, to: end, into: &fields, maxFields: maxFields, table: table)
            return .complete(line, length: end)
        }
    }

    private func overLimit() -> Refusal {
        sawLineEnd
            ? Refusal(.requestHeaderFieldsTooLarge, "request head larger than \(maxHeadBytes) bytes")
            : Refusal(.uriTooLong, "request line longer than \(maxHeadBytes) bytes")
    }

    /// `method SP request-target SP HTTP-version CRLF`, single spaces only.
    private static func requestLine(
        _ bytes: UnsafeRawBufferPointer, at p: inout Int, table: UnsafeBufferPointer<UInt8>
    ) throws(Refusal) -> HTTP1RequestLine {
        // Every scan below stops at the CR that ends the line at the latest: CR is in no class.
        let methodStart = p
        while table[Int(bytes[p])] & HTTP1ByteClass.token != 0 { p += 1 }
        guard p > methodStart, bytes[p] == .space else { throw Refusal(.badRequest, "malformed request line") }
        let method = methodStart..<p
        p += 1
        let targetStart = p
        while table[Int(bytes[p])] & HTTP1ByteClass.target != 0 { p += 1 }
        guard p > targetStart, bytes[p] == .space else { throw Refusal(.badRequest, "malformed request target") }
        let target = targetStart..<p
        p += 1
        // "HTTP/" DIGIT "." DIGIT CRLF: ten bytes. When ten are left before the head's end, they
        // are all in the head (it ends in CRLF CRLF), whatever this line holds.
        let isVersion =
            bytes.count - p >= 10 && bytes[p] == UInt8(ascii: "H") && bytes[p + 1] == UInt8(ascii: "T") && bytes[p + 2] == UInt8(ascii: "T")
            && bytes[p + 3] == UInt8(ascii: "P") && bytes[p + 4] == UInt8(ascii: "/") && bytes[p + 5].isDigit
            && bytes[p + 6] == UInt8(ascii: ".") && bytes[p + 7].isDigit && bytes[p + 8] == .cr && bytes[p + 9] == .lf
        guard isVersion else { throw Refusal(.badRequest, "malformed HTTP version") }
        guard bytes[p + 5] == UInt8(ascii: "1"), bytes[p + 7] <= UInt8(ascii: "1") else {
            throw Refusal(.httpVersionNotSupported, "HTTP version not supported")
        }
        let minor = Int(bytes[p + 7] - UInt8(ascii: "0"))
        p += 10
        return HTTP1RequestLine(method: method, target: target, minorVersion: minor)
    }
}

/// A block of field lines ended by an empty line: a request head's fields, or a chunked body's
/// trailer section (RFC 9112 §5, §7.1.2).
enum HTTP1FieldBlock {
    /// The offset just past the block's empty line, if `bytes` hold it. Lines that end in a bare LF
    /// are refused. `scanned` carries how far earlier calls looked, so that bytes are looked at once.
    static func end(
        of bytes: UnsafeRawBufferPointer, from start: Int, scanned: inout Int, sawLineEnd: inout Bool, limit: Int
    ) throws(RequestFacts.Refusal) -> Int? {
        var i = max(scanned, start)
        while i < bytes.count {
            if bytes[i] == .lf {
                guard i > start, bytes[i - 1] == .cr else { throw RequestFacts.Refusal(.badRequest, "a line ends in LF without CR") }
                // The line this LF ends is empty: it starts the block, or follows the previous LF.
                if i - 1 == start || (i - 2 >= start && bytes[i - 2] == .lf) { return i + 1 }
                sawLineEnd = true
            }
            i += 1
            // Nothing past the limit is looked at: the caller refuses the block.
            if i - start > limit + 4 { break }
        }
        scanned = i
        return nil
    }

    /// Parses the field lines of a block that ends at `end` (just past its empty line).
    static func parse(
        _ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int, into fields: inout [HTTP1FieldSpan], maxFields: Int,
        table: UnsafeBufferPointer<UInt8>
    ) throws(RequestFacts.Refusal) {
        var p = start
        // The block's lines all end in CRLF (`end` checked it), and CR and LF are in no class: each
        // scan stops at the line's CR at the latest.
        while p < end - 2 {
            let first = bytes[p]
            if first == .space || first == .tab { throw RequestFacts.Refusal(.badRequest, "obsolete line folding in a header field") }
            let nameStart = p
            while table[Int(bytes[p])] & HTTP1ByteClass.token != 0 { p += 1 }
            guard p > nameStart, bytes[p] == UInt8(ascii: ":") else {
                throw RequestFacts.Refusal(.badRequest, "malformed header field name")
            }
            let name = nameStart..<p
            p += 1
            while bytes[p] == .space || bytes[p] == .tab { p += 1 }
            let valueStart = p
            while table[Int(bytes[p])] & HTTP1ByteClass.fieldValue != 0 { p += 1 }
            guard bytes[p] == .cr, bytes[p + 1] == .lf else {
                throw RequestFacts.Refusal(.badRequest, "invalid character in a header field value")
            }
            var valueEnd = p
            while valueEnd > valueStart, bytes[valueEnd - 1] == .space || bytes[valueEnd - 1] == .tab { valueEnd -= 1 }
            // Whitespace after a length is optional whitespace by the grammar, but llhttp and others
            // refuse it there: a length that one reader takes and another refuses is refused.
            if valueEnd != p, isContentLength(bytes, name) {
                throw RequestFacts.Refusal(.badRequest, "whitespace after the Content-Length value")
            }
            guard fields.count < maxFields else {
                throw RequestFacts.Refusal(.requestHeaderFieldsTooLarge, "more than \(maxFields) header fields")
            }
            fields.append(HTTP1FieldSpan(name: name, value: valueStart..<valueEnd))
            p += 2
        }
    }

    private static func isContentLength(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        guard name.count == 14 else { return false }
        return zip(bytes[name], "content-length".utf8).allSatisfy { HTTPSyntax.lowercase($0) == $1 }
    }
}

extension UInt8 {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")

    var isDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
}
