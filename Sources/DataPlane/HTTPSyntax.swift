import NIOHPACK

/// Byte-level syntax checks shared by the parsers and converters, without allocating.
enum HTTPSyntax {
    /// RFC 9110 §5.6.2 tchar.
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default: false
        }
    }

    /// ASCII letters lowercased, other bytes as they are.
    static func lowercase(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }

    /// An HTTP/2 field name: a token without uppercase letters (RFC 9113 §8.2.1).
    static func isHTTP2FieldName(_ name: some StringProtocol) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { isTokenCharacter($0) && lowercase($0) == $0 }
    }

    /// A field value without NUL, CR or LF (RFC 9113 §8.2.1): what would let it end a line of
    /// the HTTP/1.1 request it becomes.
    static func isFieldValue(_ value: String) -> Bool {
        for byte in value.utf8 where byte == 0 || byte == 0x0a || byte == 0x0d { return false }
        return true
    }

    /// A pseudo-field value: no control character, space or DEL. None of their grammars allows one,
    /// and `:path` and `:method` go into the upstream's request line.
    static func isPseudoFieldValue(_ value: String) -> Bool {
        for byte in value.utf8 where byte <= 0x20 || byte == 0x7f { return false }
        return !value.isEmpty
    }

    /// Fields no HTTP/2 message may carry (RFC 9113 §8.2.2); `te` is allowed only as `trailers`.
    static func isConnectionSpecific(_ name: String, value: String) -> Bool {
        switch name.utf8.count {
        case 2: name == "te" && value != "trailers"
        case 7: name == "upgrade"
        case 10: name == "connection" || name == "keep-alive"
        case 16: name == "proxy-connection"
        case 17: name == "transfer-encoding"
        default: false
        }
    }

    /// Trailer fields from a client: regular fields only, each well-formed; nil when malformed.
    static func http2Trailers(_ block: HPACKHeaders) -> [(String, String)]? {
        var fields: [(String, String)] = []
        fields.reserveCapacity(block.count)
        for (name, value, _) in block {
            guard isHTTP2FieldName(name), isFieldValue(value), !isConnectionSpecific(name, value: value) else { return nil }
            fields.append((name, value))
        }
        return fields
    }
}
