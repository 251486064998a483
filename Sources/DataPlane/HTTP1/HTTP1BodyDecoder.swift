import RouteModel

/// Finds a request body's bytes in what the client sends, for a Content-Length or a chunked body
/// (RFC 9112 §6, §7.1), in place: it hands back ranges of the bytes it is given, never copies.
///
/// Chunked framing is read strictly: a size of hexadecimal digits (at most 15, so it fits) followed
/// directly by CRLF or by extensions of tokens and quoted strings without whitespace; CRLF after each
/// chunk's data; a trailer section of field lines like a head's. Anything else is refused, so the
/// worker never disagrees with an upstream on where a body ends; what goes upstream is framed anew.
struct HTTP1BodyDecoder {
    enum Step: Equatable {
        /// Body bytes: this range of the bytes given. Everything before its end is used up.
        case data(Range<Int>)
        /// The first `consumed` bytes were framing; more bytes are needed.
        case needMore(consumed: Int)
        /// The body ended after `consumed` bytes. A chunked body's trailer fields, if any, were
        /// added to the array given, as offsets into the bytes given.
        case end(consumed: Int)
    }

    typealias Refusal = RequestFacts.Refusal

    private enum State {
        case length(remaining: Int64)
        case chunkSize
        case chunkData(remaining: Int64)
        case chunkDataEnd
        case trailers(scanned: Int)
        case done
    }

    /// A chunk-size line (size and extensions) longer than this is refused.
    static let maxChunkLine = 4096

    private var state: State
    private let maxTrailerBytes: Int
    private let maxTrailerFields: Int

    /// A body of `length` bytes (more than zero).
    init(length: Int64) {
        precondition(length > 0)
        state = .length(remaining: length)
        maxTrailerBytes = 0
        maxTrailerFields = 0
    }

    /// A chunked body, whose trailer section may take up to `maxTrailerBytes` and `maxTrailerFields`.
    init(chunkedWithTrailerLimits maxTrailerBytes: Int, fields maxTrailerFields: Int) {
        state = .chunkSize
        self.maxTrailerBytes = maxTrailerBytes
        self.maxTrailerFields = maxTrailerFields
    }

    /// The next step through `bytes`, which start where the previous step's consumption ended.
    mutating func next(_ bytes: UnsafeRawBufferPointer, trailers: inout [HTTP1FieldSpan]) throws(Refusal) -> Step {
        var p = 0
        while true {
            switch state {
            case .length(let remaining):
                guard p < bytes.count else { return .needMore(consumed: p) }
                let taken = Int(min(remaining, Int64(bytes.count - p)))
                state = remaining == Int64(taken) ? .done : .length(remaining: remaining - Int64(taken))
                return .data(p..<p + taken)
            case .chunkData(let remaining):
                guard p < bytes.count else { return .needMore(consumed: p) }
                let taken = Int(min(remaining, Int64(bytes.count - p)))
                state = remaining == Int64(taken) ? .chunkDataEnd : .chunkData(remaining: remaining - Int64(taken))
                return .data(p..<p + taken)
            case .chunkDataEnd:
                guard bytes.count - p >= 2 else {
                    if p < bytes.count, bytes[p] != .cr { throw Refusal(.badRequest, "chunk data not followed by CRLF") }
                    return .needMore(consumed: p)
                }
                guard bytes[p] == .cr, bytes[p + 1] == .lf else { throw Refusal(.badRequest, "chunk data not followed by CRLF") }
                p += 2
                state = .chunkSize
            case .chunkSize:
                guard let size = try Self.chunkSizeLine(bytes, at: &p) else { return .needMore(consumed: p) }
                if size == 0 { trailers.removeAll(keepingCapacity: true) }
                state = size == 0 ? .trailers(scanned: 0) : .chunkData(remaining: size)
            case .trailers(var scanned):
                var sawLineEnd = false
                guard
                    let end = try HTTP1FieldBlock.end(
                        of: bytes, from: p, scanned: &scanned, sawLineEnd: &sawLineEnd, limit: maxTrailerBytes)
                else {
                    if bytes.count - p > maxTrailerBytes { throw Refusal(.badRequest, "trailer section larger than \(maxTrailerBytes) bytes") }
                    // `scanned` is kept relative to where the next call starts.
                    state = .trailers(scanned: scanned - p)
                    return .needMore(consumed: p)
                }
                if end - p > maxTrailerBytes { throw Refusal(.badRequest, "trailer section larger than \(maxTrailerBytes) bytes") }
                let maxFields = maxTrailerFields
                try HTTP1ByteClass.table.withUnsafeBufferPointer { table throws(Refusal) in
                    try HTTP1FieldBlock.parse(bytes, from: p, to: end, into: &trailers, maxFields: maxFields, table: table)
                }
                state = .done
                return .end(consumed: end)
            case .done:
                return .end(consumed: p)
            }
        }
    }

    /// `chunk-size [chunk-ext] CRLF` at `p`: the size, with `p` moved past the line; nil while the
    /// line is incomplete.
    private static func chunkSizeLine(_ bytes: UnsafeRawBufferPointer, at p: inout Int) throws(Refusal) -> Int64? {
        let start = p
        let limit = min(bytes.count, start + maxChunkLine)
        var lineFeed = start
        while lineFeed < limit, bytes[lineFeed] != .lf { lineFeed += 1 }
        guard lineFeed < limit else {
            if bytes.count - start >= maxChunkLine { throw Refusal(.badRequest, "chunk size line longer than \(maxChunkLine) bytes") }
            return nil
        }
        guard lineFeed > start, bytes[lineFeed - 1] == .cr else { throw Refusal(.badRequest, "a line ends in LF without CR") }
        let lineEnd = lineFeed - 1
        var size: Int64 = 0
        var i = start
        while i < lineEnd, let digit = RequestPath.hexDigitValue(bytes[i]) {
            guard i - start < 15 else { throw Refusal(.badRequest, "chunk size too large") }
            size = size << 4 | Int64(digit)
            i += 1
        }
        guard i > start else { throw Refusal(.badRequest, "malformed chunk size") }
        if i < lineEnd { try extensions(bytes, from: i, to: lineEnd) }
        p = lineFeed + 1
        return size
    }

    /// `*( ";" token [ "=" ( token / quoted-string ) ] )`, exactly up to `end` (RFC 9112 §7.1.1,
    /// without the optional whitespace: no client needs it, and readers disagree on it).
    private static func extensions(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) throws(Refusal) {
        let malformed = Refusal(.badRequest, "malformed chunk extension")
        var i = start
        func token() throws(Refusal) {
            let tokenStart = i
            while i < end, HTTPSyntax.isTokenCharacter(bytes[i]) { i += 1 }
            guard i > tokenStart else { throw malformed }
        }
        while i < end {
            guard bytes[i] == UInt8(ascii: ";") else { throw malformed }
            i += 1
            try token()
            guard i < end, bytes[i] == UInt8(ascii: "=") else { continue }
            i += 1
            guard i < end, bytes[i] == UInt8(ascii: "\"") else {
                try token()
                continue
            }
            i += 1
            var closed = false
            while i < end {
                let byte = bytes[i]
                if byte == UInt8(ascii: "\"") {
                    closed = true
                    i += 1
                    break
                }
                if byte == UInt8(ascii: "\\") {
                    i += 1
                    guard i < end, isQuotable(bytes[i]) else { throw malformed }
                } else if !isQuotable(byte) || byte == UInt8(ascii: "\\") {
                    throw malformed
                }
                i += 1
            }
            guard closed else { throw malformed }
        }
    }

    /// HTAB, SP, VCHAR or obs-text: what a quoted string may hold (RFC 9110 §5.6.4).
    private static func isQuotable(_ byte: UInt8) -> Bool {
        byte == .tab || byte >= 0x20 && byte != 0x7F
    }
}
