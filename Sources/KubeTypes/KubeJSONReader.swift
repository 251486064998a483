import Foundation

/// What was wrong in a JSON document from the API server, and where.
public struct KubeJSONError: Error, Sendable, CustomStringConvertible {
    /// The field path, `items[3].spec.rules[0].host`; empty for the document itself.
    public var fieldPath: String
    /// Where in the document, in bytes.
    public var offset: Int
    public var problem: String

    public var description: String { (fieldPath.isEmpty ? "" : "\(fieldPath): ") + problem + " (at byte \(offset))" }
}

/// A pull reader of one JSON document, for the objects an API server lists and watches.
///
/// Foundation's JSONDecoder goes through Codable's containers: at 100k Ingresses, Services and
/// EndpointSlices, its retains, releases and generic-metadata lookups were most of the control
/// plane's time to its first table. Each type the informers read has a reader of its own on this
/// (KubeJSONDecoding.swift) that asks for exactly its fields and skips the rest (managedFields and
/// every field Portico does not read), with the same results as its Codable conformance: missing
/// or null optional fields are nil, a missing required field or a wrong type is an error.
///
/// Errors carry the byte offset only; the public entry points (`KubeJSON`) turn it into a field
/// path by walking the document again, so reading costs nothing for paths it never reports.
public struct KubeJSONReader {
    let bytes: UnsafeRawBufferPointer
    var index: Int
    /// True right after `{` or `[`: the next key or element takes no comma.
    private var afterOpen = false
    private var depth = 0
    static let maximumDepth = 512

    init(_ bytes: UnsafeRawBufferPointer, at index: Int = 0) {
        self.bytes = bytes
        self.index = index
    }

    // MARK: Errors

    func failure(_ problem: String, at offset: Int? = nil) -> KubeJSONError {
        KubeJSONError(fieldPath: "", offset: offset ?? index, problem: problem)
    }

    /// What the value at the reading position is, for messages: `a number`, `the end of the document`.
    func found() -> String {
        guard index < bytes.count else { return "the end of the document" }
        switch bytes[index] {
        case UInt8(ascii: "\""): return "a string"
        case UInt8(ascii: "{"): return "an object"
        case UInt8(ascii: "["): return "a list"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "a boolean"
        case UInt8(ascii: "n"): return "null"
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return "a number"
        case let byte: return "\"\(Unicode.Scalar(byte))\""
        }
    }

    func mismatch(_ expected: String) -> KubeJSONError { failure("expected \(expected), found \(found())") }

    // MARK: Structure

    @inline(__always) mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): index += 1
            default: return
            }
        }
    }

    @inline(__always) func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    /// Consumes `{`; then `nextKey` until it returns nil.
    mutating func beginObject() throws(KubeJSONError) {
        skipWhitespace()
        guard peek() == UInt8(ascii: "{") else { throw mismatch("an object") }
        try enter()
    }

    /// Consumes `[`; then `nextElement` until it returns false.
    mutating func beginArray() throws(KubeJSONError) {
        skipWhitespace()
        guard peek() == UInt8(ascii: "[") else { throw mismatch("a list") }
        try enter()
    }

    private mutating func enter() throws(KubeJSONError) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw failure("nested more than \(Self.maximumDepth) levels deep") }
        index += 1
        afterOpen = true
    }

    /// The next key of the object being read, the reader left at its value; nil at the object's end.
    mutating func nextKey() throws(KubeJSONError) -> KubeJSONKey? {
        guard try nextMember(closing: UInt8(ascii: "}"), of: "an object", after: "a field") else { return nil }
        guard peek() == UInt8(ascii: "\"") else { throw failure("expected a field name, found \(found())") }
        let key = try readKey()
        skipWhitespace()
        guard peek() == UInt8(ascii: ":") else { throw failure("expected \":\" after a field name, found \(found())") }
        index += 1
        skipWhitespace()
        return key
    }

    /// True when another element follows, the reader left at it; false at the list's end.
    mutating func nextElement() throws(KubeJSONError) -> Bool {
        try nextMember(closing: UInt8(ascii: "]"), of: "a list", after: "an element")
    }

    /// Consumes the container's closing byte (false) or, but for its first member, the comma
    /// before the next member (true).
    @inline(__always) private mutating func nextMember(closing: UInt8, of container: String, after member: String) throws(KubeJSONError) -> Bool {
        skipWhitespace()
        guard let byte = peek() else { throw failure("the document ends inside \(container)") }
        if byte == closing {
            index += 1
            depth -= 1
            afterOpen = false
            return false
        }
        if !afterOpen {
            guard byte == UInt8(ascii: ",") else {
                throw failure("expected \",\" or \"\(Unicode.Scalar(closing))\" after \(member), found \(found())")
            }
            index += 1
            skipWhitespace()
        }
        afterOpen = false
        return true
    }

    /// Consumes `null` if it is next.
    @inline(__always) mutating func null() -> Bool {
        skipWhitespace()
        guard index + 4 <= bytes.count, bytes[index] == UInt8(ascii: "n"), bytes[index + 1] == UInt8(ascii: "u"),
            bytes[index + 2] == UInt8(ascii: "l"), bytes[index + 3] == UInt8(ascii: "l")
        else { return false }
        index += 4
        return true
    }

    /// The document has nothing but whitespace after the reading position.
    func finish() throws(KubeJSONError) {
        var rest = self
        rest.skipWhitespace()
        guard rest.index == bytes.count else { throw rest.failure("unexpected \(rest.found()) after the document") }
    }

    /// Skips one value of any kind, checking its syntax.
    mutating func skipValue() throws(KubeJSONError) {
        skipWhitespace()
        switch peek() {
        case UInt8(ascii: "{"):
            try beginObject()
            while try nextKey() != nil { try skipValue() }
        case UInt8(ascii: "["):
            try beginArray()
            while try nextElement() { try skipValue() }
        case UInt8(ascii: "\""):
            try skipString()
        case UInt8(ascii: "t"):
            _ = try bool()
        case UInt8(ascii: "f"):
            _ = try bool()
        case UInt8(ascii: "n"):
            guard null() else { throw mismatch("a value") }
        case UInt8(ascii: "-"), .some(UInt8(ascii: "0")...UInt8(ascii: "9")):
            _ = try numberText()
        default:
            throw mismatch("a value")
        }
    }

    // MARK: Scalars

    /// The raw bytes of a string without escapes, or nil (the reader unmoved) when it has escapes.
    @inline(__always) private mutating func plainString() throws(KubeJSONError) -> UnsafeRawBufferPointer? {
        let start = index + 1
        var end = start
        while end < bytes.count {
            let byte = bytes[end]
            if byte == UInt8(ascii: "\"") {
                index = end + 1
                return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            }
            if byte == UInt8(ascii: "\\") { return nil }
            guard byte >= 0x20 else { throw failure("a control character inside a string", at: end) }
            end += 1
        }
        throw failure("the document ends inside a string")
    }

    private mutating func readKey() throws(KubeJSONError) -> KubeJSONKey {
        if let plain = try plainString() { return KubeJSONKey(bytes: plain, escaped: nil) }
        return KubeJSONKey(bytes: UnsafeRawBufferPointer(start: nil, count: 0), escaped: try escapedString())
    }

    private mutating func skipString() throws(KubeJSONError) {
        if try plainString() == nil { _ = try escapedString() }
    }

    mutating func string() throws(KubeJSONError) -> String {
        skipWhitespace()
        guard peek() == UInt8(ascii: "\"") else { throw mismatch("a string") }
        let start = index
        if let plain = try plainString() {
            guard let text = String(validating: plain, as: UTF8.self) else { throw failure("a string that is not UTF-8", at: start) }
            return text
        }
        return try escapedString()
    }

    mutating func optionalString() throws(KubeJSONError) -> String? {
        null() ? nil : try string()
    }

    /// A string with escapes, the reader at its opening quote.
    private mutating func escapedString() throws(KubeJSONError) -> String {
        let start = index
        var text: [UInt8] = []
        index += 1
        func hex(_ reader: inout KubeJSONReader) throws(KubeJSONError) -> UInt32 {
            guard reader.index + 4 <= reader.bytes.count else { throw reader.failure("a \\u escape cut short") }
            var value: UInt32 = 0
            for offset in 0..<4 {
                let byte = reader.bytes[reader.index + offset]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw reader.failure("a \\u escape with \(reader.found()) in it")
                }
                value = value << 4 | UInt32(digit)
            }
            reader.index += 4
            return value
        }
        while true {
            guard index < bytes.count else { throw failure("the document ends inside a string") }
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let string = String(validating: text, as: UTF8.self) else { throw failure("a string that is not UTF-8", at: start) }
                return string
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw failure("the document ends inside a string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escape)
                case UInt8(ascii: "b"): text.append(0x08)
                case UInt8(ascii: "f"): text.append(0x0C)
                case UInt8(ascii: "n"): text.append(0x0A)
                case UInt8(ascii: "r"): text.append(0x0D)
                case UInt8(ascii: "t"): text.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex(&self)
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw failure("a lone UTF-16 surrogate in a string")
                        }
                        index += 2
                        let low = try hex(&self)
                        guard (0xDC00..<0xE000).contains(low) else { throw failure("a lone UTF-16 surrogate in a string") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw failure("a lone UTF-16 surrogate in a string") }
                    text.append(contentsOf: UTF8.encode(unicode)!)
                default:
                    throw failure("an unknown escape \\\(Unicode.Scalar(escape)) in a string", at: index - 2)
                }
            default:
                guard byte >= 0x20 else { throw failure("a control character inside a string", at: index - 1) }
                text.append(byte)
            }
        }
    }

    mutating func bool() throws(KubeJSONError) -> Bool {
        skipWhitespace()
        func literal(_ reader: inout KubeJSONReader, _ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard reader.index + count <= reader.bytes.count,
                memcmp(reader.bytes.baseAddress! + reader.index, word.utf8Start, count) == 0
            else { return false }
            reader.index += count
            return true
        }
        if literal(&self, "true") { return true }
        if literal(&self, "false") { return false }
        throw mismatch("a boolean")
    }

    mutating func optionalBool() throws(KubeJSONError) -> Bool? {
        null() ? nil : try bool()
    }

    /// The text of a number, checked against JSON's grammar; whether it has a fraction or exponent.
    private mutating func numberText() throws(KubeJSONError) -> (range: Range<Int>, integral: Bool) {
        let start = index
        var integral = true
        func digits(_ reader: inout KubeJSONReader) -> Int {
            let first = reader.index
            while reader.index < reader.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(reader.bytes[reader.index]) {
                reader.index += 1
            }
            return reader.index - first
        }
        if peek() == UInt8(ascii: "-") { index += 1 }
        let leading = index
        guard digits(&self) > 0 else { throw failure("a number without digits", at: start) }
        guard bytes[leading] != UInt8(ascii: "0") || index - leading == 1 else { throw failure("a number with a leading zero", at: start) }
        if peek() == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard digits(&self) > 0 else { throw failure("a number without digits after its point", at: start) }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            integral = false
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw failure("a number without digits in its exponent", at: start) }
        }
        return (start..<index, integral)
    }

    /// An integer of type `T`. As with JSONDecoder, `8.0` and `8e0` are 8; `8.5` and out-of-range
    /// numbers are errors.
    mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(KubeJSONError) -> T {
        skipWhitespace()
        guard let first = peek(), first == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            throw mismatch("an integer")
        }
        let start = index
        let (range, integral) = try numberText()
        let text = UnsafeRawBufferPointer(rebasing: bytes[range])
        if integral {
            var value: T = 0
            let negative = text[0] == UInt8(ascii: "-")
            for byte in text.dropFirst(negative ? 1 : 0) {
                let digit = T(byte - UInt8(ascii: "0"))
                let (shifted, overflow) = value.multipliedReportingOverflow(by: 10)
                let (next, overflow2) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
                guard !overflow, !overflow2 else { throw failure("\(String(decoding: text, as: UTF8.self)) does not fit in \(T.self)", at: start) }
                value = next
            }
            return value
        }
        let written = String(decoding: text, as: UTF8.self)
        guard let double = Double(written), double.rounded() == double, let value = T(exactly: double) else {
            throw failure("\(written) is not a whole number that fits in \(T.self)", at: start)
        }
        return value
    }

    mutating func optionalInteger<T: FixedWidthInteger>(_ type: T.Type) throws(KubeJSONError) -> T? {
        null() ? nil : try integer(type)
    }

    // MARK: Containers of plain values

    /// A list, each element read by `element`; nil for null.
    mutating func optionalArray<T>(_ element: (inout KubeJSONReader) throws(KubeJSONError) -> T) throws(KubeJSONError) -> [T]? {
        null() ? nil : try array(element)
    }

    mutating func array<T>(_ element: (inout KubeJSONReader) throws(KubeJSONError) -> T) throws(KubeJSONError) -> [T] {
        try beginArray()
        var items: [T] = []
        while try nextElement() { items.append(try element(&self)) }
        return items
    }

    /// A string-to-string map (labels, annotations, selectors); nil for null.
    mutating func optionalStringMap() throws(KubeJSONError) -> [String: String]? {
        guard !null() else { return nil }
        try beginObject()
        var map: [String: String] = [:]
        while let key = try nextKey() { map[key.string] = try string() }
        return map
    }

    /// The value that starts at the reading position, as its bytes' range, skipped.
    mutating func valueRange() throws(KubeJSONError) -> Range<Int> {
        skipWhitespace()
        let start = index
        try skipValue()
        return start..<index
    }

    // MARK: Locating an error

    /// One step of a field path.
    enum PathPart { case key(String), index(Int) }

    /// Walks the value at the reading position and returns true when `target` lies within it (or
    /// before it), leaving in `path` the steps from that value down to where `target` is.
    mutating func locate(_ target: Int, _ path: inout [PathPart]) -> Bool {
        skipWhitespace()
        guard index < target else { return true }
        do {
            switch peek() {
            case UInt8(ascii: "{"):
                try beginObject()
                while let key = try nextKey() {
                    path.append(.key(key.string))
                    if locate(target, &path) { return true }
                    path.removeLast()
                }
            case UInt8(ascii: "["):
                try beginArray()
                var position = 0
                while try nextElement() {
                    path.append(.index(position))
                    if locate(target, &path) { return true }
                    path.removeLast()
                    position += 1
                }
            default:
                try skipValue()
            }
        } catch {
            return true
        }
        return index > target
    }

    /// The field path to `offset` in `bytes`: `items[3].spec.rules[0].host`.
    static func fieldPath(to offset: Int, in bytes: UnsafeRawBufferPointer) -> String {
        var reader = KubeJSONReader(bytes)
        var path: [PathPart] = []
        _ = reader.locate(offset, &path)
        var text = ""
        for part in path {
            switch part {
            case .key(let key): text += text.isEmpty ? key : ".\(key)"
            case .index(let index): text += "[\(index)]"
            }
        }
        return text
    }
}

/// A field name as read: the document's bytes when it has no escapes, else the unescaped text.
struct KubeJSONKey {
    let bytes: UnsafeRawBufferPointer
    let escaped: String?

    var string: String { escaped ?? String(decoding: bytes, as: UTF8.self) }

    @inline(__always) static func ~= (pattern: StaticString, key: KubeJSONKey) -> Bool {
        let count = pattern.utf8CodeUnitCount
        if let escaped = key.escaped { return escaped.utf8.elementsEqual(UnsafeBufferPointer(start: pattern.utf8Start, count: count)) }
        return key.bytes.count == count && (count == 0 || memcmp(key.bytes.baseAddress!, pattern.utf8Start, count) == 0)
    }
}
