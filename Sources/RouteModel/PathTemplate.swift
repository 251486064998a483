/// A rewrite target or redirect location in nginx's syntax: text with `$1`…`$9` (groups of the route's
/// regular expression) and a few request variables: `$scheme`, `$host`, `$http_host`, `$server_port`,
/// `$request_uri`, `$uri`, `$args`, `$query_string` and `$is_args`. `${name}` is the same as `$name`. Parsed
/// once by the translator, which refuses anything else, and again where it is expanded (a template
/// is a few bytes; only routes that have one pay).
public struct PathTemplate: Sendable, Hashable {
    public enum Part: Sendable, Hashable {
        case text(String)
        case group(Int)
        case variable(Variable)
    }

    public enum Variable: String, Sendable, Hashable, CaseIterable {
        case scheme, host
        case httpHost = "http_host"
        case serverPort = "server_port"
        case requestURI = "request_uri"
        case uri, args
        case queryString = "query_string"
        /// `?` when the request has a query, else nothing.
        case isArgs = "is_args"
    }

    public let parts: [Part]

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// What a template expands from.
    public struct Context {
        /// The normalised request path, without the query.
        public var path: String
        /// The query without `?`, or nil when the request had none.
        public var query: String?
        /// The groups of the route's match in `path`; index 0 is the whole match.
        public var groups: [Range<Int>?]
        public var scheme: String
        /// Without the port.
        public var host: String
        /// The Host header as sent.
        public var httpHost: String
        public var serverPort: String

        public init(path: String, query: String?, groups: [Range<Int>?], scheme: String, host: String, httpHost: String, serverPort: String) {
            self.path = path
            self.query = query
            self.groups = groups
            self.scheme = scheme
            self.host = host
            self.httpHost = httpHost
            self.serverPort = serverPort
        }
    }

    public init(parsing text: String) throws(ParseError) {
        var parts: [Part] = []
        var literal = ""
        let bytes = Array(text.utf8)
        var index = 0
        func flush() {
            if !literal.isEmpty { parts.append(.text(literal)) }
            literal = ""
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte < 0x21 || byte > 0x7E {
                throw ParseError(description: "\"\(text)\" contains a space, a control character or a non-ASCII byte (percent-encode it)")
            }
            guard byte == UInt8(ascii: "$") else {
                literal.unicodeScalars.append(Unicode.Scalar(byte))
                index += 1
                continue
            }
            index += 1
            guard index < bytes.count else { throw ParseError(description: "\"\(text)\" ends with a lone '$'") }
            if bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                flush()
                parts.append(.group(Int(bytes[index] - UInt8(ascii: "0"))))
                index += 1
                continue
            }
            let braced = bytes[index] == UInt8(ascii: "{")
            if braced { index += 1 }
            let start = index
            while index < bytes.count, bytes[index] == UInt8(ascii: "_") || (bytes[index] | 0x20 >= UInt8(ascii: "a") && bytes[index] | 0x20 <= UInt8(ascii: "z"))
                || (bytes[index] >= UInt8(ascii: "0") && bytes[index] <= UInt8(ascii: "9")) {
                index += 1
            }
            let name = String(decoding: bytes[start..<index], as: UTF8.self)
            if braced {
                guard index < bytes.count, bytes[index] == UInt8(ascii: "}") else { throw ParseError(description: "\"\(text)\": '${' without '}'") }
                index += 1
            }
            flush()
            if let number = Int(name), (0...9).contains(number) {
                parts.append(.group(number))
            } else if let variable = Variable(rawValue: name) {
                parts.append(.variable(variable))
            } else {
                let known = Variable.allCases.map { "$\($0.rawValue)" }.joined(separator: ", ")
                throw ParseError(description: "\"\(text)\": $\(name) is not supported (only $1-$9, \(known))")
            }
        }
        flush()
        self.parts = parts
    }

    /// The highest group referred to, or 0.
    public var highestGroup: Int {
        parts.reduce(0) { highest, part in
            if case .group(let number) = part { return max(highest, number) }
            return highest
        }
    }

    public var usesGroups: Bool { highestGroup > 0 || parts.contains(.group(0)) }

    public func expand(_ context: Context) -> String {
        var out = ""
        let path = Array(context.path.utf8)
        for part in parts {
            switch part {
            case .text(let text): out += text
            case .group(let number):
                if number < context.groups.count, let range = context.groups[number] {
                    out += String(decoding: path[range], as: UTF8.self)
                }
            case .variable(let variable):
                switch variable {
                case .scheme: out += context.scheme
                case .host: out += context.host
                case .httpHost: out += context.httpHost
                case .serverPort: out += context.serverPort
                case .requestURI: out += context.query.map { "\(context.path)?\($0)" } ?? context.path
                case .uri: out += context.path
                case .args, .queryString: out += context.query ?? ""
                case .isArgs: out += context.query == nil ? "" : "?"
                }
            }
        }
        return out
    }
}
