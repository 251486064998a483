import NIOHTTP1

/// What the worker reads from a request head before routing it: the authority it names, its target
/// and how its body is framed. Read strictly (RFC 9110, RFC 9112): a head that a laxer reader
/// could take another way is refused, so the worker and an upstream can never disagree on which
/// host a request is for or where its body ends (request smuggling, Host confusion).
///
/// What goes upstream is built from these facts, not copied from the client: the Host field is
/// `authority`, and the body's framing fields are the worker's own.
struct RequestFacts: Equatable {
    /// How the request's body is delimited, as the worker frames it upstream.
    enum Body: Equatable {
        /// No body (HTTP/1.1 without Content-Length or Transfer-Encoding), or unknown on HTTP/2
        /// until the HEADERS frame says whether DATA follows.
        case none
        case length(Int64)
        case chunked
    }

    /// `host[:port]` as the request names it: an absolute-form target's authority, else the Host
    /// field (`:authority` on HTTP/2). Valid per RFC 3986 (`HTTPSyntax.isAuthority`).
    var authority: String
    /// The target without an absolute form's scheme and authority: origin-form (`/…`), or `*`
    /// for OPTIONS.
    var target: String
    var body: Body

    /// Why a head is refused, and the answer it gets. The connection closes after it.
    struct Refusal: Error, Equatable {
        var status: HTTPResponseStatus
        var reason: String

        init(_ status: HTTPResponseStatus, _ reason: String) {
            self.status = status
            self.reason = reason
        }
    }

    /// The facts of `head`, or why it is refused: 431 for more than `maxFields` fields; 501 for a
    /// transfer coding other than chunked; 400 for everything else (Host missing, repeated or not
    /// `host[:port]`; a target that is neither origin-form nor an http(s) absolute form; a
    /// Transfer-Encoding that is not exactly one final `chunked`; a Content-Length that is not one
    /// field of digits; both of them).
    static func inspect(_ head: HTTPRequestHead, maxFields: Int) -> Result<RequestFacts, Refusal> {
        if head.headers.count > maxFields {
            return .failure(Refusal(.requestHeaderFieldsTooLarge, "more than \(maxFields) header fields"))
        }
        // One pass over the fields for the three that matter here.
        var fields = Fields()
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 4 where ForwardedHeaders.equalsIgnoringCase(name, "host"): fields.host(value)
            case 14 where ForwardedHeaders.equalsIgnoringCase(name, "content-length"): fields.contentLength(value)
            case 17 where ForwardedHeaders.equalsIgnoringCase(name, "transfer-encoding"): fields.transferEncoding(value)
            default: break
            }
        }
        return fields.facts(target: head.uri, isOptions: head.method == .OPTIONS, version: head.version)
    }

    /// The fields `inspect` reads, collected by whoever walks a head's fields (an `HTTPHeaders`,
    /// or the parser's spans), then judged with the request line.
    struct Fields {
        private var hostField: String?
        private var hostCount = 0
        private var contentLengthField: String?
        private var contentLengthCount = 0
        private var transferCodings = TransferCodings()

        mutating func host(_ value: String) {
            hostField = value
            hostCount += 1
        }

        mutating func contentLength(_ value: String) {
            contentLengthField = value
            contentLengthCount += 1
        }

        mutating func transferEncoding(_ value: String) { transferCodings.add(value) }

        func facts(target uri: String, isOptions: Bool, version: HTTPVersion) -> Result<RequestFacts, Refusal> {
            let body: Body
            switch (transferCodings.present, contentLengthField) {
            case (true, .some):
                return .failure(Refusal(.badRequest, "both Content-Length and Transfer-Encoding"))
            case (true, nil):
                // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
                if version == .http1_0 { return .failure(Refusal(.badRequest, "Transfer-Encoding in an HTTP/1.0 request")) }
                if let refusal = transferCodings.refusal { return .failure(refusal) }
                body = .chunked
            case (false, let field?):
                guard contentLengthCount == 1 else { return .failure(Refusal(.badRequest, "more than one Content-Length")) }
                guard let length = RequestFacts.contentLength(field) else { return .failure(Refusal(.badRequest, "Content-Length is not a number")) }
                body = length == 0 ? .none : .length(length)
            case (false, nil):
                body = .none
            }

            // The target's form (RFC 9112 §3.2).
            var target = uri
            var authority: String?
            switch target.utf8.first {
            case UInt8(ascii: "/"):
                break
            case UInt8(ascii: "*") where target.utf8.count == 1:
                guard isOptions else { return .failure(Refusal(.badRequest, "'*' is a target for OPTIONS only")) }
            default:
                switch RequestFacts.absoluteForm(target) {
                case .success(let parts):
                    authority = parts.authority
                    target = parts.target
                case .failure(let refusal):
                    return .failure(refusal)
                }
            }
            // Exactly one Host on every request, whatever the target's form (RFC 9112 §3.2); an
            // absolute form's authority replaces it. HTTP/2 requests carry `:authority` as their Host.
            guard hostCount <= 1 else { return .failure(Refusal(.badRequest, "more than one Host header")) }
            if let hostField {
                guard HTTPSyntax.isAuthority(hostField) else { return .failure(Refusal(.badRequest, "the Host header is not host[:port]")) }
            } else if authority == nil || version.major == 1 && version.minor == 1 {
                return .failure(Refusal(.badRequest, "missing Host header"))
            }
            return .success(RequestFacts(authority: authority ?? hostField!, target: target, body: body))
        }
    }

    /// An absolute-form target's authority and the rest as an origin-form target.
    private static func absoluteForm(_ target: String) -> Result<(authority: String, target: String), Refusal> {
        let bytes = target.utf8
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else {
            return .failure(Refusal(.badRequest, "the request target is not a path or an absolute URI"))
        }
        let scheme = target[..<colon]
        guard ForwardedHeaders.equalsIgnoringCase(scheme, "http") || ForwardedHeaders.equalsIgnoringCase(scheme, "https") else {
            let isScheme = !scheme.isEmpty && scheme.utf8.allSatisfy { HTTPSyntax.isSchemeCharacter($0) }
            return .failure(Refusal(.badRequest, isScheme ? "the request target's scheme is not http or https" : "the request target is not a path or an absolute URI"))
        }
        let rest = target[bytes.index(after: colon)...]
        guard rest.utf8.starts(with: "//".utf8) else { return .failure(Refusal(.badRequest, "the absolute request target has no authority")) }
        let afterSlashes = rest.dropFirst(2)
        let end = afterSlashes.utf8.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? afterSlashes.endIndex
        let authority = String(afterSlashes[..<end])
        guard HTTPSyntax.isAuthority(authority) else {
            return .failure(Refusal(.badRequest, "the request target's authority is not host[:port]"))
        }
        let path = afterSlashes[end...]
        if path.utf8.first == UInt8(ascii: "#") { return .failure(Refusal(.badRequest, "the request target has a fragment")) }
        return .success((authority, path.isEmpty ? "/" : path.utf8.first == UInt8(ascii: "?") ? "/" + path : String(path)))
    }

    /// A Content-Length value: digits only (leading zeros allowed, no sign, no list), within Int64.
    static func contentLength(_ value: String) -> Int64? {
        guard !value.isEmpty, value.utf8.count <= 18, value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return Int64(value)
    }
}

/// The transfer codings of a request's Transfer-Encoding fields, as a list over all of them.
struct TransferCodings {
    private(set) var present = false
    /// The first malformation seen.
    private var malformed: RequestFacts.Refusal?
    private var codings = 0
    private var sawChunked = false
    private var unknown = false

    mutating func add(_ field: String) {
        present = true
        var rest = Substring(field)
        var any = false
        while !rest.isEmpty {
            let comma = rest.utf8.firstIndex(of: UInt8(ascii: ",")) ?? rest.endIndex
            let element = rest[..<comma].trimmingWhitespace()
            rest = comma == rest.endIndex ? "" : rest[rest.utf8.index(after: comma)...]
            // Empty list elements are allowed and ignored (RFC 9110 §5.6.1).
            if element.isEmpty { continue }
            any = true
            take(element)
        }
        if !any { refuse(.badRequest, "an empty Transfer-Encoding") }
    }

    private mutating func take(_ element: Substring) {
        codings += 1
        if sawChunked { refuse(.badRequest, "a transfer coding after chunked") }
        let name = element.utf8.firstIndex(of: UInt8(ascii: ";")).map { element[..<$0].trimmingWhitespace() } ?? element
        guard !name.isEmpty, name.utf8.allSatisfy(HTTPSyntax.isTokenCharacter) else {
            refuse(.badRequest, "a malformed Transfer-Encoding")
            return
        }
        if ForwardedHeaders.equalsIgnoringCase(name, "chunked") {
            // chunked takes no parameters (RFC 9112 §7.1).
            if name.utf8.count != element.utf8.count { refuse(.badRequest, "chunked with parameters") }
            sawChunked = true
        } else {
            unknown = true
        }
    }

    private mutating func refuse(_ status: HTTPResponseStatus, _ reason: String) {
        if malformed == nil { malformed = RequestFacts.Refusal(status, reason) }
    }

    /// Why the list is not exactly one final `chunked`, once every field was added.
    var refusal: RequestFacts.Refusal? {
        if let malformed { return malformed }
        // RFC 9112 §6.3: chunked must be the final coding of a request, else 400; a coding the
        // worker does not implement, before it, is 501 (§6.1).
        if !sawChunked { return RequestFacts.Refusal(.badRequest, "Transfer-Encoding without a final chunked") }
        if unknown { return RequestFacts.Refusal(.notImplemented, "a transfer coding other than chunked") }
        return nil
    }
}
