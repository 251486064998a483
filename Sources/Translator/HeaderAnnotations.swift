import RouteModel
import Yams

extension IngressAnnotations {
    /// Fields Portico writes itself, which no edit may touch: framing and hop-by-hop fields, and the
    /// forwarding fields of the request (Host is `upstream-vhost`'s).
    static let requestOwned: Set = [
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "proxy-connection",
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-request-id",
    ]
    static let responseOwned: Set = ["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "proxy-connection"]

    /// The request and response header edits of `portico.io/request-headers`,
    /// `portico.io/response-headers` and the header lines of ingress-nginx's `configuration-snippet`.
    mutating func headerEdits() -> (request: HeaderEdits?, response: HeaderEdits?) {
        var request = HeaderEdits()
        var response = HeaderEdits()
        for (name, owned, isRequest) in [("request-headers", Self.requestOwned, true), ("response-headers", Self.responseOwned, false)] {
            guard let (key, value) = value(name) else { continue }
            switch Self.parseEdits(value, owned: owned) {
            case .success(let edits):
                if isRequest { request = edits } else { response = edits }
            case .failure(let problem):
                invalid(key, "\(problem.message); no header is changed")
            }
        }
        if let (key, value) = value("configuration-snippet") {
            switch NginxHeaderSnippet.parse(value) {
            case .success(let snippet):
                var problem: String?
                for field in snippet.request.set + snippet.request.add where Self.requestOwned.contains(field.name.lowercased()) {
                    problem = "proxy_set_header \(field.name): Portico writes \(field.name) itself (use upstream-vhost for Host)"
                }
                for name in snippet.response.remove + (snippet.response.set + snippet.response.add).map({ $0.name.lowercased() })
                where Self.responseOwned.contains(name) {
                    problem = "\(name) is the relay's framing, which a snippet cannot change"
                }
                if let problem {
                    unsupported(key, "\(problem); none of the snippet applies")
                } else {
                    request.set += snippet.request.set
                    request.remove += snippet.request.remove
                    response.set += snippet.response.set
                    response.add += snippet.response.add
                    response.remove += snippet.response.remove
                }
            case .failure(let problem):
                unsupported(key, "\(problem.message); none of the snippet applies, the rest of the Ingress does")
            }
        }
        return (request.isEmpty ? nil : request, response.isEmpty ? nil : response)
    }

    struct EditsProblem: Error {
        let message: String
    }

    /// Gateway API's header filter as YAML: `set` and `add` (maps of name to value, or lists of
    /// `{name, value}`) and `remove` (a list of names).
    static func parseEdits(_ text: String, owned: Set<String>) -> Result<HeaderEdits, EditsProblem> {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            return .failure(EditsProblem(message: "not YAML: \(error)"))
        }
        guard let mapping = node?.mapping else { return .failure(EditsProblem(message: "must be a mapping with set, add and remove")) }
        var edits = HeaderEdits()
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string else { return .failure(EditsProblem(message: "keys must be set, add or remove")) }
            switch key {
            case "set", "add":
                var fields: [HeaderField] = []
                if let map = valueNode.mapping {
                    for (name, value) in map {
                        guard let name = name.string, let value = value.string else {
                            return .failure(EditsProblem(message: "\(key): names and values must be strings"))
                        }
                        fields.append(HeaderField(name: name, value: value))
                    }
                } else if let list = valueNode.sequence {
                    for entry in list {
                        guard let name = entry.mapping?["name"]?.string, let value = entry.mapping?["value"]?.string else {
                            return .failure(EditsProblem(message: "\(key): each entry needs a name and a value"))
                        }
                        fields.append(HeaderField(name: name, value: value))
                    }
                } else {
                    return .failure(EditsProblem(message: "\(key) must map names to values"))
                }
                for field in fields {
                    guard HeaderField.isName(field.name) else { return .failure(EditsProblem(message: "\"\(field.name)\" is not a field name")) }
                    guard HeaderField.isValue(field.value) else {
                        return .failure(EditsProblem(message: "the value of \(field.name) has a line break, control character or non-ASCII byte"))
                    }
                    guard !owned.contains(field.name.lowercased()) else {
                        return .failure(EditsProblem(message: "\(field.name) is written by Portico itself and cannot be edited"))
                    }
                }
                if key == "set" { edits.set += fields } else { edits.add += fields }
            case "remove":
                guard let list = valueNode.sequence else { return .failure(EditsProblem(message: "remove must be a list of names")) }
                for entry in list {
                    guard let name = entry.string, HeaderField.isName(name) else {
                        return .failure(EditsProblem(message: "remove: \(entry.string.map { "\"\($0)\"" } ?? "an entry") is not a field name"))
                    }
                    guard !owned.contains(name.lowercased()) else {
                        return .failure(EditsProblem(message: "\(name) is written by Portico itself and cannot be edited"))
                    }
                    edits.remove.append(name.lowercased())
                }
            default:
                return .failure(EditsProblem(message: "\"\(key)\" is not set, add or remove"))
            }
        }
        return .success(edits)
    }

    /// An annotation whose value asks for something Portico does not do: reported like an
    /// unsupported annotation, its default applying.
    mutating func unsupported(_ key: String, _ message: String) {
        report(key, .unsupported, reason: .unsupportedAnnotation, effect: .defaultApplied, message)
    }
}

/// The header directives of an ingress-nginx `configuration-snippet`, read as data and never as
/// configuration: `more_set_headers "Name: value"…`, `more_clear_headers "Name"…` (a trailing `*`
/// matches a prefix), `proxy_set_header Name value` and `add_header Name value [always]`, with
/// literal values. Anything else (another directive, a block, an `-s`/`-t` filter, a `$variable`)
/// makes the whole snippet unsupported: applying part of it could mean something else than the
/// whole (a header inside an `if` block, for one).
struct NginxHeaderSnippet {
    var request = HeaderEdits()
    var response = HeaderEdits()

    struct Problem: Error {
        let message: String
    }

    static func parse(_ text: String) -> Result<NginxHeaderSnippet, Problem> {
        let statements: [[String]]
        switch tokenize(text) {
        case .success(let parsed): statements = parsed
        case .failure(let problem): return .failure(problem)
        }
        var snippet = NginxHeaderSnippet()
        for statement in statements {
            guard let directive = statement.first else { continue }
            let arguments = Array(statement.dropFirst())
            if arguments.contains(where: { $0.contains("$") }) {
                return .failure(Problem(message: "\(directive): nginx variables ($…) are not supported in headers"))
            }
            switch directive {
            case "more_set_headers":
                guard !arguments.isEmpty, !arguments.contains(where: { $0.hasPrefix("-") }) else {
                    return .failure(Problem(message: "more_set_headers: only plain 'Name: value' arguments are supported (no -s or -t)"))
                }
                for argument in arguments {
                    guard let colon = argument.firstIndex(of: ":") else {
                        return .failure(Problem(message: "more_set_headers: \"\(argument)\" is not 'Name: value'"))
                    }
                    let name = String(argument[..<colon]).trimmingSpaces
                    let value = String(argument[argument.index(after: colon)...]).trimmingSpaces
                    guard HeaderField.isName(name), HeaderField.isValue(value) else {
                        return .failure(Problem(message: "more_set_headers: \"\(argument)\" is not a valid field"))
                    }
                    // headers-more: an empty value clears the field.
                    if value.isEmpty { snippet.response.remove.append(name.lowercased()) } else { snippet.response.set.append(HeaderField(name: name, value: value)) }
                }
            case "more_clear_headers":
                guard !arguments.isEmpty, !arguments.contains(where: { $0.hasPrefix("-") }) else {
                    return .failure(Problem(message: "more_clear_headers: only plain names are supported (no -s or -t)"))
                }
                for argument in arguments {
                    for name in argument.split(separator: " ").map(String.init) {
                        let bare = name.hasSuffix("*") ? String(name.dropLast()) : name
                        guard HeaderField.isName(bare) else { return .failure(Problem(message: "more_clear_headers: \"\(name)\" is not a field name")) }
                        snippet.response.remove.append(name.lowercased())
                    }
                }
            case "proxy_set_header":
                guard arguments.count == 2, HeaderField.isName(arguments[0]), HeaderField.isValue(arguments[1]) else {
                    return .failure(Problem(message: "proxy_set_header takes a field name and a value"))
                }
                // nginx: an empty value means the field is not passed.
                if arguments[1].isEmpty {
                    snippet.request.remove.append(arguments[0].lowercased())
                } else {
                    snippet.request.set.append(HeaderField(name: arguments[0], value: arguments[1]))
                }
            case "add_header":
                let always = arguments.count == 3 && arguments[2] == "always"
                guard arguments.count == 2 || always, HeaderField.isName(arguments[0]), HeaderField.isValue(arguments[1]) else {
                    return .failure(Problem(message: "add_header takes a field name, a value and optionally always"))
                }
                snippet.response.add.append(HeaderField(name: arguments[0], value: arguments[1], onlySuccess: !always))
            default:
                return .failure(Problem(message: "\(directive) is nginx configuration Portico does not interpret (only more_set_headers, more_clear_headers, proxy_set_header and add_header)"))
            }
        }
        return .success(snippet)
    }

    /// nginx's lexical rules, as far as header lines need them: words separated by whitespace,
    /// `"…"` and `'…'` strings with backslash escapes, `#` comments, statements ended by `;`. A block
    /// (`{`, `}`) is refused.
    static func tokenize(_ text: String) -> Result<[[String]], Problem> {
        var statements: [[String]] = []
        var current: [String] = []
        var word = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        var comment = false
        func endWord() {
            if inWord { current.append(word) }
            word = ""
            inWord = false
        }
        // By scalar: "\r\n" is one Character, and would be neither "\r" nor "\n".
        for character in text.unicodeScalars.lazy.map(Character.init) {
            if comment {
                if character == "\n" { comment = false }
                continue
            }
            if let open = quote {
                if escaped {
                    // nginx's escapes in quoted strings.
                    switch character {
                    case "t": word.append("\t")
                    case "r": word.append("\r")
                    case "n": word.append("\n")
                    default: word.append(character)
                    }
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == open {
                    quote = nil
                } else {
                    word.append(character)
                }
                continue
            }
            switch character {
            case " ", "\t", "\n", "\r": endWord()
            case "\"", "'":
                quote = character
                inWord = true
            case ";":
                endWord()
                if !current.isEmpty { statements.append(current) }
                current = []
            case "#" where !inWord: comment = true
            case "{", "}": return .failure(Problem(message: "blocks ({ … }) are nginx configuration Portico does not interpret"))
            default:
                word.append(character)
                inWord = true
            }
        }
        if quote != nil { return .failure(Problem(message: "a quoted string is not closed")) }
        endWord()
        if !current.isEmpty { return .failure(Problem(message: "the last directive (\(current[0])) has no ';'")) }
        return .success(statements)
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        while text.last == " " || text.last == "\t" { text = text.dropLast() }
        return String(text)
    }
}
