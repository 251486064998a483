/// The host part of a virtual host: an exact name, a one-label wildcard, or any host.
///
/// Hosts are stored lowercased. `*.example.com` covers `a.example.com` but neither `example.com` nor
/// `a.b.example.com` (Kubernetes Ingress semantics: the wildcard is exactly one DNS label).
public enum HostPattern: Sendable, Hashable {
    case exact(String)
    /// `suffix` is the part after `*.`, for example `example.com`.
    case wildcard(suffix: String)
    case any

    /// The pattern as written in an Ingress: `foo.com`, `*.foo.com`, or `*` for any host.
    public var text: String {
        switch self {
        case .exact(let host): host
        case .wildcard(let suffix): "*." + suffix
        case .any: "*"
        }
    }

    /// Parses an Ingress host. An empty string means any host.
    ///
    /// Accepts what the Kubernetes API server accepts: a lowercase RFC 1123 subdomain, optionally
    /// prefixed by `*.`; IP addresses are not hosts. Uppercase input is lowercased first, since DNS
    /// names compare case-insensitively.
    public static func parse(_ raw: String) throws(HostPatternError) -> HostPattern {
        if raw.isEmpty { return .any }
        let host = raw.utf8.contains(where: { $0 &- UInt8(ascii: "A") < 26 }) ? raw.lowercased() : raw
        if host.hasPrefix("*.") {
            let suffix = String(host.dropFirst(2))
            try validateSubdomain(suffix, original: raw)
            return .wildcard(suffix: suffix)
        }
        // Bytes, not `String.contains`, which Foundation turns into a locale-aware search.
        if host.utf8.contains(UInt8(ascii: "*")) {
            throw HostPatternError(host: raw, reason: "a wildcard must be the whole first label, as in *.example.com")
        }
        try validateSubdomain(host, original: raw)
        if isIPv4Literal(host) {
            throw HostPatternError(host: raw, reason: "an IP address is not allowed as a host")
        }
        return .exact(host)
    }

    private static func validateSubdomain(_ host: String, original: String) throws(HostPatternError) {
        let bytes = host.utf8
        if bytes.count > 253 {
            throw HostPatternError(host: original, reason: "longer than 253 characters")
        }
        var labelLength = 0
        var previous: UInt8 = UInt8(ascii: ".")
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                guard labelLength > 0 else { throw HostPatternError(host: original, reason: "contains an empty DNS label") }
                guard previous != UInt8(ascii: "-") else {
                    throw HostPatternError(host: original, reason: "a DNS label must start and end with a letter or digit")
                }
                labelLength = 0
            } else {
                guard isAlphanumeric(byte) || byte == UInt8(ascii: "-") else {
                    throw HostPatternError(
                        host: original, reason: "must consist of lowercase letters, digits, '-' and '.' (RFC 1123)")
                }
                if labelLength == 0, byte == UInt8(ascii: "-") {
                    throw HostPatternError(host: original, reason: "a DNS label must start and end with a letter or digit")
                }
                labelLength += 1
                guard labelLength <= 63 else {
                    throw HostPatternError(host: original, reason: "a DNS label is longer than 63 characters")
                }
            }
            previous = byte
        }
        guard labelLength > 0 else { throw HostPatternError(host: original, reason: "contains an empty DNS label") }
        guard previous != UInt8(ascii: "-") else {
            throw HostPatternError(host: original, reason: "a DNS label must start and end with a letter or digit")
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    /// Four dot-separated all-digit labels: an address, not a name.
    private static func isIPv4Literal(_ host: String) -> Bool {
        var dots = 0
        for byte in host.utf8 {
            if byte == UInt8(ascii: ".") {
                dots += 1
            } else if byte < UInt8(ascii: "0") || byte > UInt8(ascii: "9") {
                return false
            }
        }
        return dots == 3
    }
}

extension HostPattern: Comparable {
    /// Exact hosts sort first, then wildcards, then the catch-all; alphabetical within each group.
    public static func < (lhs: HostPattern, rhs: HostPattern) -> Bool {
        func rank(_ pattern: HostPattern) -> Int {
            switch pattern {
            case .exact: 0
            case .wildcard: 1
            case .any: 2
            }
        }
        switch (lhs, rhs) {
        case (.exact(let left), .exact(let right)), (.wildcard(let left), .wildcard(let right)): return left < right
        default: return rank(lhs) < rank(rhs)
        }
    }
}

extension HostPattern: CustomStringConvertible {
    public var description: String { text }
}

public struct HostPatternError: Error, Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var reason: String
    public var description: String { "host \"\(host)\" is invalid: \(reason)" }
}
