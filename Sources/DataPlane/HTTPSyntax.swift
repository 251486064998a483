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

extension HTTPSyntax {
    /// RFC 3986 §3.1: a scheme's characters after its first letter.
    static func isSchemeCharacter(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: false
        }
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: false
        }
    }

    /// `host[:port]` as a Host field or an `:authority` must be (RFC 9110 §7.2, RFC 3986 §3.2.2):
    /// a reg-name (unreserved, sub-delims and %-escapes, no empty label), an IPv4 address or a
    /// bracketed IPv6 literal, then optionally `:` and 1-5 digits. Everything else is refused:
    /// userinfo (`@`), `/`, `\`, spaces, control bytes, an empty host or port. What a Host may
    /// contain is what the router and the upstream read alike; a laxer check lets one of them
    /// see a host the other does not.
    static func isAuthority(_ value: some StringProtocol) -> Bool {
        var bytes = Substring(value).utf8[...]
        guard let first = bytes.first else { return false }
        if first == UInt8(ascii: "[") {
            guard let close = bytes.firstIndex(of: UInt8(ascii: "]")) else { return false }
            guard isIPv6Literal(bytes[bytes.index(after: bytes.startIndex)..<close]) else { return false }
            bytes = bytes[bytes.index(after: close)...]
        } else {
            let colon = bytes.firstIndex(of: UInt8(ascii: ":")) ?? bytes.endIndex
            guard isRegName(bytes[..<colon]) else { return false }
            bytes = bytes[colon...]
        }
        guard let colon = bytes.first else { return true }
        guard colon == UInt8(ascii: ":") else { return false }
        let port = bytes.dropFirst()
        return (1...5).contains(port.count) && port.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// An authority's host: without `:port`, an IPv6 literal with its brackets.
    static func hostWithoutPort(_ authority: String) -> Substring {
        let bytes = authority.utf8
        let end =
            authority.hasPrefix("[")
            ? bytes.firstIndex(of: UInt8(ascii: "]")).map { bytes.index(after: $0) } : bytes.firstIndex(of: UInt8(ascii: ":"))
        return authority[..<(end ?? authority.endIndex)]
    }

    /// A reg-name or IPv4 address (its digits and dots are a reg-name too), not empty, with no
    /// empty label but a final one (`example.com.`).
    private static func isRegName(_ name: Substring.UTF8View.SubSequence) -> Bool {
        guard !name.isEmpty, name.first != UInt8(ascii: ".") else { return false }
        var previous: UInt8 = 0
        var index = name.startIndex
        while index < name.endIndex {
            let byte = name[index]
            switch byte {
            case _ where isAlphanumeric(byte): break
            case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"):
                break
            case UInt8(ascii: "."):
                if previous == UInt8(ascii: ".") { return false }
            case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("), UInt8(ascii: ")"),
                UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "="):
                break
            case UInt8(ascii: "%"):
                let first = name.index(after: index)
                guard first < name.endIndex, isHexDigit(name[first]) else { return false }
                let second = name.index(after: first)
                guard second < name.endIndex, isHexDigit(name[second]) else { return false }
                index = second
            default:
                return false
            }
            previous = byte
            index = name.index(after: index)
        }
        return true
    }

    /// The inside of `[…]`: hex digits, colons, and dots for an embedded IPv4 address, with at
    /// least two colons. (IPvFuture and zone identifiers are not accepted.)
    private static func isIPv6Literal(_ literal: Substring.UTF8View.SubSequence) -> Bool {
        var colons = 0
        for byte in literal {
            if byte == UInt8(ascii: ":") {
                colons += 1
            } else if !isHexDigit(byte), byte != UInt8(ascii: ".") {
                return false
            }
        }
        return colons >= 2 && literal.count <= 45
    }
}
