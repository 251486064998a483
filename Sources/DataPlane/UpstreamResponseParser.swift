import NIOCore
import NIOHPACK
import NIOHTTP1
import RouteModel

/// An upstream's response head, parsed in place: the fields are ranges into `bytes`, the head as it
/// arrived, so relaying it to an HTTP/1.1 client copies bytes instead of building strings.
struct UpstreamResponseHead {
    /// How the body is delimited (RFC 9112 §6.3).
    enum Framing: Equatable {
        /// No body: a response to HEAD, 1xx, 204 or 304.
        case none
        case contentLength(Int)
        case chunked
        /// Until the upstream closes the connection.
        case untilClose
    }

    /// What the relay does with a field.
    enum FieldKind: Equatable {
        case plain
        /// Hop-by-hop (RFC 9110 §7.6.1), or named by `Connection`: never forwarded.
        case hopByHop
        /// Framing is the relay's: the client gets its own.
        case transferEncoding
        case contentLength
    }

    struct Field {
        var name: Range<Int>
        var value: Range<Int>
        var kind: FieldKind
    }

    /// The status line and field lines, reader index 0.
    var bytes: ByteBuffer
    var status: Int
    var reason: Range<Int>
    var fields: [Field]
    var framing: Framing
    /// The connection may carry another exchange after this response: HTTP/1.1 without
    /// `Connection: close`, and framing that cannot be confused.
    var reusable: Bool
    var hasStrictTransportSecurity = false

    /// The field's name or value as a string (for HTTP/2 clients and the tunnel's 101).
    func string(_ range: Range<Int>) -> String {
        bytes.getString(at: range.lowerBound, length: range.count) ?? ""
    }

    /// Whether a client may see the field: hop-by-hop and framing fields are left out, except
    /// `Content-Length` when it is the framing (or describes a HEAD response).
    func isForwarded(_ field: Field) -> Bool {
        switch field.kind {
        case .plain: true
        case .hopByHop, .transferEncoding: false
        case .contentLength:
            switch framing {
            case .contentLength, .none: true
            case .chunked, .untilClose: false
            }
        }
    }

    /// The response head for an HTTP/2 client: `:status`, then the forwarded fields with their
    /// names lowercased (RFC 9113 §8.2.1), then Strict-Transport-Security when `hsts` is given.
    func http2Headers(hsts: HSTSPolicy?, edits: HeaderEdits? = nil) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.reserveCapacity(fields.count + 2)
        headers.add(name: ":status", value: Self.statusText(status))
        bytes.withUnsafeReadableBytes { raw in
            for field in fields where isForwarded(field) {
                if let edits, edits.replaces(string(field.name)) { continue }
                let name = UnsafeRawBufferPointer(rebasing: raw[field.name])
                let lowercased = String(unsafeUninitializedCapacity: name.count) { target in
                    for (index, byte) in name.enumerated() { target[index] = HTTPSyntax.lowercase(byte) }
                    return name.count
                }
                headers.add(name: lowercased, value: String(decoding: UnsafeRawBufferPointer(rebasing: raw[field.value]), as: UTF8.self))
            }
        }
        if let edits {
            for field in edits.written(status: status) { headers.add(name: field.name.lowercased(), value: field.value) }
        }
        if let hsts { headers.add(name: "strict-transport-security", value: hsts.headerValue) }
        return headers
    }

    /// Three digits, without formatting machinery.
    private static func statusText(_ status: Int) -> String {
        String(unsafeUninitializedCapacity: 3) { target in
            (target[0], target[1], target[2]) = statusDigits(status)
            return 3
        }
    }

    private static func statusDigits(_ status: Int) -> (UInt8, UInt8, UInt8) {
        (UInt8(ascii: "0") + UInt8(status / 100 % 10), UInt8(ascii: "0") + UInt8(status / 10 % 10), UInt8(ascii: "0") + UInt8(status % 10))
    }

    /// `HTTP/1.1 <status> <reason>` and CRLF, the reason as the upstream sent it.
    func writeStatusLine(into buffer: inout ByteBuffer) {
        let (hundreds, tens, units) = Self.statusDigits(status)
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeMultipleIntegers(hundreds, tens, units, UInt8(ascii: " "))
        _ = bytes.withUnsafeReadableBytes { raw in
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[reason]))
        }
        buffer.writeStaticString("\r\n")
    }

    /// Each forwarded field as `name: value` and CRLF, copied as the upstream sent it.
    /// The forwarded fields, then the route's header edits (fields they remove or replace left out).
    func writeForwardedFields(into buffer: inout ByteBuffer, edits: HeaderEdits? = nil) {
        bytes.withUnsafeReadableBytes { raw in
            for field in fields where isForwarded(field) {
                if let edits, edits.replaces(string(field.name)) { continue }
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[field.name]))
                buffer.writeStaticString(": ")
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[field.value]))
                buffer.writeStaticString("\r\n")
            }
        }
        guard let edits else { return }
        for field in edits.written(status: status) { buffer.writeHTTPField(field.name, field.value) }
    }
}

/// What is wrong with an upstream's response; the connection is closed and the client gets a 502.
enum UpstreamResponseError: Error, Equatable, CustomStringConvertible {
    case bytesWithoutRequest
    case invalidStatusLine
    case invalidField
    case headTooLarge
    case invalidContentLength
    case invalidChunk
    case tooManyFields
    case tooManyInterimResponses

    var description: String {
        switch self {
        case .bytesWithoutRequest: "bytes from the upstream with no request outstanding"
        case .invalidStatusLine: "invalid status line"
        case .invalidField: "invalid header field"
        case .headTooLarge: "response head over the limit"
        case .invalidContentLength: "invalid or conflicting Content-Length"
        case .invalidChunk: "invalid chunked framing"
        case .tooManyFields: "more header fields than the limit"
        case .tooManyInterimResponses: "more 1xx responses to one request than the limit"
        }
    }
}

/// Parses the responses on one upstream connection, one per request written, without I/O: bytes go
/// in, heads, body slices (views of the input, never copies) and ends come out.
///
/// Strict where a laxer reading could desynchronise the connection: no obs-fold, no whitespace
/// before a field's colon, no CR or NUL in a value, one Content-Length value, chunk sizes in hex.
/// Lines may end in a bare LF (RFC 9112 §2.2). Interim 1xx heads come out as heads; after a 101
/// the parser stops, and the bytes that follow belong to the tunnel.
struct UpstreamResponseParser {
    enum Event {
        case head(UpstreamResponseHead)
        case body(ByteBuffer)
        /// The response is complete; trailers of a chunked body, if it had any.
        case end(HTTPHeaders?)
    }

    private enum State {
        /// No request outstanding.
        case idle
        case head
        /// The head said there is no body: `end` comes next.
        case noBody
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        /// After a 101: bytes are not ours.
        case switched
    }

    private var state = State.idle
    private var requestIsHead = false
    /// The last head's field list, handed back once its response head was relayed: the next head
    /// on the connection fills it instead of allocating one (when nothing else still holds it).
    private var spareFields: [UpstreamResponseHead.Field]?
    /// Where the search for the end of a partial head resumes.
    private var scanned = 0
    let maxHeadBytes: Int
    /// More fields in one head than this is a malformed response, as more request fields are
    /// for a client.
    let maxFields: Int
    /// Interim (1xx) heads one request may get before its final one: without a bound, an upstream
    /// could stream 100 Continue forever and hold the exchange.
    static let maxInterimResponses = 8
    private var interimResponses = 0

    init(maxHeadBytes: Int = 64 << 10, maxFields: Int = 100) {
        self.maxHeadBytes = maxHeadBytes
        self.maxFields = maxFields
    }

    var hasSwitchedProtocols: Bool {
        if case .switched = state { return true }
        return false
    }

    /// `head` was relayed: its field list's storage can serve the next head.
    mutating func recycle(_ head: consuming UpstreamResponseHead) {
        spareFields = head.fields
    }

    /// A request was written: its response comes next.
    mutating func requestSent(isHead: Bool) {
        state = .head
        requestIsHead = isHead
        scanned = 0
        interimResponses = 0
    }

    /// The upstream closed: the end of a body delimited by the close, else nil (a cut response).
    mutating func connectionClosed() -> Event? {
        guard case .untilClose = state else { return nil }
        state = .idle
        return .end(nil)
    }

    /// The next event from `buffer`, consuming what it covers; nil when more bytes are needed (or,
    /// after a 101, never: the rest is left in `buffer`).
    mutating func next(_ buffer: inout ByteBuffer) throws -> Event? {
        switch state {
        case .idle:
            if buffer.readableBytes > 0 { throw UpstreamResponseError.bytesWithoutRequest }
            return nil
        case .switched:
            return nil
        case .head:
            return try parseHead(&buffer)
        case .noBody:
            state = .idle
            return .end(nil)
        case .body(let remaining):
            guard let slice = Self.take(&buffer, upTo: remaining) else { return nil }
            state = slice.readableBytes == remaining ? .noBody : .body(remaining: remaining - slice.readableBytes)
            return .body(slice)
        case .untilClose:
            return Self.take(&buffer, upTo: .max).map { .body($0) }
        case .chunkSize:
            guard let line = try takeLine(&buffer, limit: 4096, error: .invalidChunk) else { return nil }
            let size = try Self.chunkSize(line)
            state = size == 0 ? .trailers : .chunkData(remaining: size)
            return try next(&buffer)
        case .chunkData(let remaining):
            guard let slice = Self.take(&buffer, upTo: remaining) else { return nil }
            state = slice.readableBytes == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - slice.readableBytes)
            return .body(slice)
        case .chunkDataEnd:
            guard let line = try takeLine(&buffer, limit: 2, error: .invalidChunk) else { return nil }
            guard line.readableBytes == 0 else { throw UpstreamResponseError.invalidChunk }
            state = .chunkSize
            return try next(&buffer)
        case .trailers:
            guard let end = try Self.headEnd(buffer, from: &scanned, limit: maxHeadBytes) else { return nil }
            var block = buffer.readSlice(length: end)!
            scanned = 0
            state = .idle
            var trailers = HTTPHeaders()
            while let line = try takeLine(&block, limit: .max, error: .invalidField), line.readableBytes > 0 {
                let (name, value) = try line.withUnsafeReadableBytes { try Self.field($0) }
                trailers.add(name: line.getString(at: line.readerIndex + name.lowerBound, length: name.count)!,
                             value: line.getString(at: line.readerIndex + value.lowerBound, length: value.count)!)
            }
            return .end(trailers.isEmpty ? nil : trailers)
        }
    }

    /// Up to `limit` body bytes as a view of `buffer`, or nil when it has none.
    private static func take(_ buffer: inout ByteBuffer, upTo limit: Int) -> ByteBuffer? {
        guard buffer.readableBytes > 0 else { return nil }
        return buffer.readSlice(length: min(limit, buffer.readableBytes))
    }

    /// One line without its terminator (CRLF or LF), or nil until a whole one is there.
    private func takeLine(
        _ buffer: inout ByteBuffer, limit: Int, error: UpstreamResponseError
    ) throws -> ByteBuffer? {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > limit { throw error }
            return nil
        }
        var length = newline - buffer.readerIndex
        let lineEnd = length + 1
        if length > 0, buffer.getInteger(at: newline - 1, as: UInt8.self) == UInt8(ascii: "\r") { length -= 1 }
        if length > limit { throw error }
        let line = buffer.getSlice(at: buffer.readerIndex, length: length)!
        buffer.moveReaderIndex(forwardBy: lineEnd)
        return line
    }

    /// The length of the head (through its empty line) at the start of `buffer`, or nil while
    /// incomplete; `scanned` keeps the search from starting over on every read.
    private static func headEnd(_ buffer: ByteBuffer, from scanned: inout Int, limit: Int) throws -> Int? {
        try buffer.withUnsafeReadableBytes { try headEnd($0, from: &scanned, limit: limit) }
    }

    /// The same over raw bytes.
    static func headEnd(_ bytes: UnsafeRawBufferPointer, from scanned: inout Int, limit: Int) throws -> Int? {
        var found: Int?
        var lineStart = scanned
        var index = scanned
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\n") {
                let lineLength = index - lineStart
                if lineLength == 0 || (lineLength == 1 && bytes[lineStart] == UInt8(ascii: "\r")) {
                    found = index + 1
                    break
                }
                lineStart = index + 1
            }
            index += 1
        }
        if found == nil { scanned = lineStart }
        if found == nil, bytes.count > limit { throw UpstreamResponseError.headTooLarge }
        if let found, found > limit { throw UpstreamResponseError.headTooLarge }
        return found
    }

    private mutating func parseHead(_ buffer: inout ByteBuffer) throws -> Event? {
        guard let end = try Self.headEnd(buffer, from: &scanned, limit: maxHeadBytes) else { return nil }
        let bytes = buffer.readSlice(length: end)!
        scanned = 0
        var fields = spareFields.take() ?? []
        fields.removeAll(keepingCapacity: true)
        let requestIsHead = requestIsHead
        var head = try bytes.withUnsafeReadableBytes { raw in
            try Self.parse(raw, bytes: bytes, requestIsHead: requestIsHead, maxFields: maxFields, fields: &fields)
        }
        switch head.status {
        case 101:
            state = .switched
            head.reusable = false
        case 100..<200:
            interimResponses += 1
            if interimResponses > Self.maxInterimResponses { throw UpstreamResponseError.tooManyInterimResponses }
            state = .head  // interim: the final response follows
        default:
            switch head.framing {
            case .none: state = .noBody
            case .contentLength(let length): state = length == 0 ? .noBody : .body(remaining: length)
            case .chunked: state = .chunkSize
            case .untilClose: state = .untilClose
            }
        }
        return .head(head)
    }

    // MARK: Pure parsing of a complete head

    static func parse(
        _ raw: UnsafeRawBufferPointer, bytes: ByteBuffer, requestIsHead: Bool, maxFields: Int, fields: inout [UpstreamResponseHead.Field]
    ) throws -> UpstreamResponseHead {
        var lines = LineIterator(raw)
        guard let statusLine = lines.next() else { throw UpstreamResponseError.invalidStatusLine }
        // HTTP/1.x SP 3DIGIT [SP reason]
        guard statusLine.count >= 12, raw[statusLine.lowerBound + 8] == UInt8(ascii: " ") else { throw UpstreamResponseError.invalidStatusLine }
        let prefix: StaticString = "HTTP/1."
        for offset in 0..<7 where raw[statusLine.lowerBound + offset] != prefix.utf8Start[offset] { throw UpstreamResponseError.invalidStatusLine }
        let minor = raw[statusLine.lowerBound + 7]
        guard minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1") else { throw UpstreamResponseError.invalidStatusLine }
        var status = 0
        for offset in 9..<12 {
            let digit = raw[statusLine.lowerBound + offset] &- UInt8(ascii: "0")
            guard digit < 10 else { throw UpstreamResponseError.invalidStatusLine }
            status = status * 10 + Int(digit)
        }
        guard status >= 100 else { throw UpstreamResponseError.invalidStatusLine }
        var reason = statusLine.upperBound..<statusLine.upperBound
        if statusLine.count > 12 {
            guard raw[statusLine.lowerBound + 12] == UInt8(ascii: " ") else { throw UpstreamResponseError.invalidStatusLine }
            reason = (statusLine.lowerBound + 13)..<statusLine.upperBound
            for index in reason where raw[index] == 0 || raw[index] == UInt8(ascii: "\r") { throw UpstreamResponseError.invalidStatusLine }
        }

        if fields.capacity < 12 { fields.reserveCapacity(12) }
        var contentLength: Int?
        var transferEncoding: Range<Int>?
        var close = minor == UInt8(ascii: "0")
        var namedByConnection: [Range<Int>] = []
        var hasStrictTransportSecurity = false
        while let line = lines.next() {
            guard fields.count < maxFields else { throw UpstreamResponseError.tooManyFields }
            let (name, value) = try field(UnsafeRawBufferPointer(rebasing: raw[line]))
            let nameRange = (line.lowerBound + name.lowerBound)..<(line.lowerBound + name.upperBound)
            let valueRange = (line.lowerBound + value.lowerBound)..<(line.lowerBound + value.upperBound)
            var kind = UpstreamResponseHead.FieldKind.plain
            let nameBytes = UnsafeRawBufferPointer(rebasing: raw[nameRange])
            switch nameBytes.count {
            case 2 where nameBytes.equalsLowercase("te"): kind = .hopByHop
            case 7 where nameBytes.equalsLowercase("upgrade") || nameBytes.equalsLowercase("trailer"): kind = .hopByHop
            case 10 where nameBytes.equalsLowercase("keep-alive"): kind = .hopByHop
            case 10 where nameBytes.equalsLowercase("connection"):
                kind = .hopByHop
                for token in Tokens(UnsafeRawBufferPointer(rebasing: raw[valueRange])) {
                    let tokenBytes = UnsafeRawBufferPointer(rebasing: raw[(valueRange.lowerBound + token.lowerBound)..<(valueRange.lowerBound + token.upperBound)])
                    if tokenBytes.equalsLowercase("close") {
                        close = true
                    } else if tokenBytes.equalsLowercase("keep-alive") {
                        if minor == UInt8(ascii: "0") { close = false }
                    } else {
                        namedByConnection.append((valueRange.lowerBound + token.lowerBound)..<(valueRange.lowerBound + token.upperBound))
                    }
                }
            case 14 where nameBytes.equalsLowercase("content-length"):
                kind = .contentLength
                let length = try Self.contentLength(UnsafeRawBufferPointer(rebasing: raw[valueRange]))
                if let contentLength, contentLength != length { throw UpstreamResponseError.invalidContentLength }
                contentLength = length
            case 16 where nameBytes.equalsLowercase("proxy-connection"): kind = .hopByHop
            case 17 where nameBytes.equalsLowercase("transfer-encoding"):
                kind = .transferEncoding
                transferEncoding = valueRange
            case 18 where nameBytes.equalsLowercase("proxy-authenticate"): kind = .hopByHop
            case 19 where nameBytes.equalsLowercase("proxy-authorization"): kind = .hopByHop
            case 25 where nameBytes.equalsLowercase("strict-transport-security"): hasStrictTransportSecurity = true
            default: break
            }
            fields.append(.init(name: nameRange, value: valueRange, kind: kind))
        }
        // Fields the Connection header names are hop-by-hop too, except the framing ones.
        for named in namedByConnection {
            let namedBytes = UnsafeRawBufferPointer(rebasing: raw[named])
            for index in fields.indices where fields[index].kind == .plain {
                let candidate = UnsafeRawBufferPointer(rebasing: raw[fields[index].name])
                if candidate.count == namedBytes.count, candidate.equalsIgnoringCase(namedBytes) { fields[index].kind = .hopByHop }
            }
        }

        let framing: UpstreamResponseHead.Framing
        var reusable = !close
        if requestIsHead || status < 200 || status == 204 || status == 304 {
            framing = .none
        } else if let transferEncoding {
            // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3); a message with both is
            // suspect, so its connection is not reused.
            let codings = UnsafeRawBufferPointer(rebasing: raw[transferEncoding])
            var last: Range<Int>?
            for token in Tokens(codings) { last = token }
            if let last, UnsafeRawBufferPointer(rebasing: codings[last]).equalsLowercase("chunked") {
                framing = .chunked
            } else {
                framing = .untilClose
            }
            if contentLength != nil { reusable = false }
        } else if let contentLength {
            framing = .contentLength(contentLength)
        } else {
            framing = .untilClose
        }
        if framing == .untilClose { reusable = false }
        return UpstreamResponseHead(
            bytes: bytes, status: status, reason: reason, fields: fields, framing: framing, reusable: reusable,
            hasStrictTransportSecurity: hasStrictTransportSecurity)
    }

    /// `name: OWS value OWS`, as ranges into `line`.
    fileprivate static func field(_ line: UnsafeRawBufferPointer) throws -> (Range<Int>, Range<Int>) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { throw UpstreamResponseError.invalidField }
        for index in 0..<colon where !HTTPSyntax.isTokenCharacter(line[index]) { throw UpstreamResponseError.invalidField }
        var start = colon + 1
        var end = line.count
        while start < end, line[start] == UInt8(ascii: " ") || line[start] == UInt8(ascii: "\t") { start += 1 }
        while end > start, line[end - 1] == UInt8(ascii: " ") || line[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        for index in start..<end where line[index] == 0 || line[index] == UInt8(ascii: "\r") { throw UpstreamResponseError.invalidField }
        return (0..<colon, start..<end)
    }

    private static func contentLength(_ value: UnsafeRawBufferPointer) throws -> Int {
        guard !value.isEmpty, value.count <= 18 else { throw UpstreamResponseError.invalidContentLength }
        var length = 0
        for byte in value {
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { throw UpstreamResponseError.invalidContentLength }
            length = length * 10 + Int(digit)
        }
        return length
    }

    /// A chunk-size line: hex digits, then optionally `;` and extensions, which are ignored.
    private static func chunkSize(_ line: ByteBuffer) throws -> Int {
        var size = 0
        var digits = 0
        for byte in line.readableBytesView {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = byte - UInt8(ascii: "A") + 10
            case UInt8(ascii: ";"), UInt8(ascii: " "), UInt8(ascii: "\t"):
                guard digits > 0 else { throw UpstreamResponseError.invalidChunk }
                return size
            default: throw UpstreamResponseError.invalidChunk
            }
            digits += 1
            guard digits <= 15 else { throw UpstreamResponseError.invalidChunk }
            size = size << 4 | Int(value)
        }
        guard digits > 0 else { throw UpstreamResponseError.invalidChunk }
        return size
    }
}

/// The lines of a complete head (status line first, the empty last line left out), as ranges
/// without their CRLF or LF. A folded line (obs-fold, starting with whitespace) comes out as it is,
/// and `field` rejects it: whitespace is not a name character.
private struct LineIterator {
    let raw: UnsafeRawBufferPointer
    var position = 0

    init(_ raw: UnsafeRawBufferPointer) {
        self.raw = raw
    }

    mutating func next() -> Range<Int>? {
        guard position < raw.count else { return nil }
        var end = position
        while end < raw.count, raw[end] != UInt8(ascii: "\n") { end += 1 }
        let next = end + 1
        if end > position, raw[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        let line = position..<end
        position = next
        return line.isEmpty ? nil : line
    }
}

/// Comma-separated list elements, trimmed, empty ones skipped (RFC 9110 §5.6.1).
private struct Tokens: Sequence, IteratorProtocol {
    let raw: UnsafeRawBufferPointer
    var position = 0

    init(_ raw: UnsafeRawBufferPointer) {
        self.raw = raw
    }

    mutating func next() -> Range<Int>? {
        while position < raw.count {
            var start = position
            var end = position
            while end < raw.count, raw[end] != UInt8(ascii: ",") { end += 1 }
            position = end + 1
            while start < end, raw[start] == UInt8(ascii: " ") || raw[start] == UInt8(ascii: "\t") { start += 1 }
            var last = end
            while last > start, raw[last - 1] == UInt8(ascii: " ") || raw[last - 1] == UInt8(ascii: "\t") { last -= 1 }
            if last > start { return start..<last }
        }
        return nil
    }
}

extension UnsafeRawBufferPointer {
    /// ASCII case-insensitive equality with a lowercase `expected` of the same length.
    fileprivate func equalsLowercase(_ expected: StaticString) -> Bool {
        guard count == expected.utf8CodeUnitCount else { return false }
        let pattern = expected.utf8Start
        for index in 0..<count where HTTPSyntax.lowercase(self[index]) != pattern[index] { return false }
        return true
    }

    fileprivate func equalsIgnoringCase(_ other: UnsafeRawBufferPointer) -> Bool {
        for index in 0..<count where HTTPSyntax.lowercase(self[index]) != HTTPSyntax.lowercase(other[index]) { return false }
        return true
    }
}
