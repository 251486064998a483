/// Request-target normalisation, applied before route matching; the normalised target is what is
/// forwarded upstream, so the backend sees the path that was matched.
///
/// Choices, in the order they are applied to the path (the query is kept verbatim):
/// 1. A fragment (`#…`) is dropped; clients must not send one.
/// 2. Percent-encoded unreserved characters (`A–Z a–z 0–9 - . _ ~`) are decoded, and the hex digits of
///    every other escape are uppercased (RFC 3986 §6.2.2). `%2F` and `%5C` stay encoded and are never
///    path separators, so `/api%2F..%2Fadmin` is one segment. A `%` without two hex digits is an error.
/// 3. Runs of `/` are merged into one, as nginx's `merge_slashes` does.
/// 4. Dot segments are removed (RFC 3986 §5.2.4), after decoding, so `/api/%2e%2e/admin` becomes
///    `/admin` and can never reach an `/api` route. `..` above the root stays at the root.
public enum RequestPath {
    /// Normalises an origin-form target (`/path?query`). Returns the input unchanged, without
    /// allocating, when it is already normal.
    public static func normalize(_ target: String) throws(RequestPathError) -> String {
        var target = target
        let rewritten = try target.withUTF8 { bytes in Result { () throws(RequestPathError) in try rewrite(bytes) } }.get()
        return rewritten.map { String(decoding: $0, as: UTF8.self) } ?? target
    }

    /// The normalised bytes, or nil when the target is already normal.
    private static func rewrite(_ bytes: UnsafeBufferPointer<UInt8>) throws(RequestPathError) -> [UInt8]? {
        guard let first = bytes.first, first == UInt8(ascii: "/") else {
            throw RequestPathError.notOriginForm
        }
        var pathEnd = bytes.count
        var queryEnd = bytes.count
        for i in 0..<bytes.count {
            let byte = bytes[i]
            if byte == UInt8(ascii: "?"), pathEnd == bytes.count { pathEnd = i }
            if byte == UInt8(ascii: "#") {
                if pathEnd == bytes.count { pathEnd = i }
                queryEnd = i
                break
            }
        }
        let path = UnsafeBufferPointer(rebasing: bytes[0..<pathEnd])
        if queryEnd == bytes.count, isNormal(path) { return nil }
        var output = try normalizePath(path)
        output.append(contentsOf: bytes[pathEnd..<queryEnd])
        return output
    }

    /// True when the path has no escapes, no `//` and no dot segments.
    static func isNormal(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
        var previous: UInt8 = 0
        for i in 0..<path.count {
            let byte = path[i]
            if byte == UInt8(ascii: "%") { return false }
            if previous == UInt8(ascii: "/") {
                if byte == UInt8(ascii: "/") { return false }
                if byte == UInt8(ascii: ".") {
                    let next = i + 1 < path.count ? path[i + 1] : UInt8(ascii: "/")
                    if next == UInt8(ascii: "/") { return false }
                    if next == UInt8(ascii: "."), (i + 2 == path.count || path[i + 2] == UInt8(ascii: "/")) {
                        return false
                    }
                }
            }
            previous = byte
        }
        return true
    }

    static func normalizePath(_ path: UnsafeBufferPointer<UInt8>) throws(RequestPathError) -> [UInt8] {
        // Pass 1: percent-encoding.
        var decoded: [UInt8] = []
        decoded.reserveCapacity(path.count)
        var i = 0
        while i < path.count {
            let byte = path[i]
            if byte == UInt8(ascii: "%") {
                guard i + 2 < path.count, let high = hexDigitValue(path[i + 1]), let low = hexDigitValue(path[i + 2]) else {
                    throw RequestPathError.invalidPercentEncoding
                }
                let value = high << 4 | low
                if isUnreserved(value) {
                    decoded.append(value)
                } else {
                    decoded.append(UInt8(ascii: "%"))
                    decoded.append(hexDigit(high))
                    decoded.append(hexDigit(low))
                }
                i += 3
            } else {
                decoded.append(byte)
                i += 1
            }
        }
        // Pass 2: segments, merging slashes and removing dot segments.
        var segments: [ArraySlice<UInt8>] = []
        var trailingSlash = false
        for segment in decoded.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst() {
            trailingSlash = false
            if segment.isEmpty {
                trailingSlash = true
            } else if segment.elementsEqual([UInt8(ascii: ".")]) {
                trailingSlash = true
            } else if segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                if !segments.isEmpty { segments.removeLast() }
                trailingSlash = true
            } else {
                segments.append(segment)
            }
        }
        var output: [UInt8] = [UInt8(ascii: "/")]
        output.reserveCapacity(decoded.count)
        for (index, segment) in segments.enumerated() {
            if index > 0 { output.append(UInt8(ascii: "/")) }
            output.append(contentsOf: segment)
        }
        if trailingSlash, !segments.isEmpty { output.append(UInt8(ascii: "/")) }
        return output
    }

    /// A hexadecimal digit's value (either case), as percent-encoding and chunk sizes spell them.
    public static func hexDigitValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "A") + value - 10
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            true
        default: false
        }
    }
}

public enum RequestPathError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The target does not start with `/` (absolute-form and `*` are handled before routing).
    case notOriginForm
    /// A `%` not followed by two hex digits.
    case invalidPercentEncoding

    public var description: String {
        switch self {
        case .notOriginForm: "the request path must start with '/'"
        case .invalidPercentEncoding: "the request path has a '%' that is not followed by two hex digits"
        }
    }
}
