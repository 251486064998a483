import NIOCore
import NIOHTTP1
import RouteModel

/// Header rewriting between client and upstream, without I/O.
enum ForwardedHeaders {
    /// The head sent upstream, written as bytes into `buffer`: the request line with the
    /// normalised target; Host set to the request's `authority` (an absolute-form target's, or the
    /// client's Host field, which is not copied); hop-by-hop fields and those named by Connection
    /// removed (except an `Upgrade` request's `Connection: upgrade` and `Upgrade`);
    /// X-Forwarded-For appended, X-Forwarded-Proto/Host/Port set, X-Request-ID kept or generated;
    /// `upstreamHost` (ingress-nginx's upstream-vhost) replaces the Host sent, not X-Forwarded-Host;
    /// `forwardedPrefix` is sent as X-Forwarded-Prefix, replacing the client's; the route's `edits`
    /// remove, replace and add fields (never the ones the proxy writes itself);
    /// and the body's framing, the worker's own: the client's Content-Length and
    /// Transfer-Encoding are never copied, `body` says what to write. A POST, PUT or PATCH without
    /// a body says `Content-Length: 0`. Returns the request ID it generated, if it did.
    static func writeUpstreamRequest(
        _ head: HTTPRequestHead, authority: String, upstreamHost: String? = nil, forwardedPrefix: String? = nil, edits: HeaderEdits? = nil,
        target: String,
        body: RequestFacts.Body, clientAddress: String?, scheme: String,
        serverPort: String, upgrade: String? = nil, requestID: () -> RequestID, into buffer: inout ByteBuffer
    ) -> RequestID? {
        // First pass: what the copy must leave out or replace.
        var connectionNames: [Substring] = []
        var hasRequestID = false
        var previousForwardedFor: [String] = []
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 10 where equalsIgnoringCase(name, "connection"):
                // Walked in place: splitting made an array for every request that says keep-alive.
                var rest = Substring(value)
                while !rest.isEmpty {
                    let comma = rest.utf8.firstIndex(of: UInt8(ascii: ",")) ?? rest.endIndex
                    let token = rest[..<comma].trimmingWhitespace()
                    rest = comma == rest.endIndex ? "" : rest[rest.utf8.index(after: comma)...]
                    if !token.isEmpty, !equalsIgnoringCase(token, "transfer-encoding"), !equalsIgnoringCase(token, "content-length"),
                        !equalsIgnoringCase(token, "host"), !equalsIgnoringCase(token, "close"), !equalsIgnoringCase(token, "keep-alive")
                    {
                        connectionNames.append(token)
                    }
                }
            case 12 where equalsIgnoringCase(name, "x-request-id"): if !value.isEmpty { hasRequestID = true }
            case 15 where equalsIgnoringCase(name, "x-forwarded-for"): previousForwardedFor.append(value)
            default: break
            }
        }
        buffer.writeString(head.method.rawValue)
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(target)
        buffer.writeStaticString(" HTTP/1.1\r\n")
        buffer.writeHTTPField("Host", upstreamHost ?? authority)
        for (name, value) in head.headers {
            if isHopByHop(name) || isFraming(name) || isSetByProxy(name, replacingForwardedFor: clientAddress != nil) { continue }
            if forwardedPrefix != nil, name.utf8.count == 18, equalsIgnoringCase(name, "x-forwarded-prefix") { continue }
            if let edits, edits.replaces(name) { continue }
            if !connectionNames.isEmpty, connectionNames.contains(where: { $0.utf8.count == name.utf8.count && $0.lowercased() == name.lowercased() }) {
                continue
            }
            if value.isEmpty, equalsIgnoringCase(name, "x-request-id") { continue }
            buffer.writeHTTPField(name, value)
        }
        if let edits {
            for field in edits.written() { buffer.writeHTTPField(field.name, field.value) }
        }
        if let upgrade {
            // The one hop-by-hop exchange that must reach the upstream: it decides whether to switch.
            buffer.writeStaticString("Connection: upgrade\r\n")
            buffer.writeHTTPField("Upgrade", upgrade)
        }
        if let clientAddress {
            buffer.writeStaticString("X-Forwarded-For: ")
            for previous in previousForwardedFor {
                buffer.writeString(previous)
                buffer.writeStaticString(", ")
            }
            buffer.writeString(clientAddress)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeHTTPField("X-Forwarded-Proto", scheme)
        buffer.writeHTTPField("X-Forwarded-Host", authority)
        buffer.writeHTTPField("X-Forwarded-Port", serverPort)
        if let forwardedPrefix { buffer.writeHTTPField("X-Forwarded-Prefix", forwardedPrefix) }
        var generated: RequestID?
        if !hasRequestID {
            let id = requestID()
            generated = id
            buffer.writeStaticString("X-Request-ID: ")
            id.write(into: &buffer)
            buffer.writeStaticString("\r\n")
        }
        switch body {
        case .length(let length):
            buffer.writeStaticString("Content-Length: ")
            buffer.writeString(String(length))
            buffer.writeStaticString("\r\n")
        case .chunked:
            buffer.writeStaticString("Transfer-Encoding: chunked\r\n")
        case .none:
            if head.method == .POST || head.method == .PUT || head.method == .PATCH { buffer.writeStaticString("Content-Length: 0\r\n") }
        }
        buffer.writeStaticString("\r\n")
        return generated
    }

    /// Host and the body's framing fields: the worker writes its own.
    private static func isFraming(_ name: String) -> Bool {
        switch name.utf8.count {
        case 4: equalsIgnoringCase(name, "host")
        case 14: equalsIgnoringCase(name, "content-length")
        case 17: equalsIgnoringCase(name, "transfer-encoding")
        default: false
        }
    }

    /// X-Forwarded-Proto/Host/Port, and X-Forwarded-For when the client's address is appended to it.
    private static func isSetByProxy(_ name: String, replacingForwardedFor: Bool) -> Bool {
        switch name.utf8.count {
        case 15: replacingForwardedFor && equalsIgnoringCase(name, "x-forwarded-for")
        case 16: equalsIgnoringCase(name, "x-forwarded-host") || equalsIgnoringCase(name, "x-forwarded-port")
        case 17: equalsIgnoringCase(name, "x-forwarded-proto")
        default: false
        }
    }

    /// RFC 9110 §7.6.1 fields, compared without allocating.
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: equalsIgnoringCase(name, "te")
        case 7: equalsIgnoringCase(name, "upgrade") || equalsIgnoringCase(name, "trailer")
        case 10: equalsIgnoringCase(name, "connection") || equalsIgnoringCase(name, "keep-alive")
        case 16: equalsIgnoringCase(name, "proxy-connection")
        case 18: equalsIgnoringCase(name, "proxy-authenticate")
        case 19: equalsIgnoringCase(name, "proxy-authorization")
        default: false
        }
    }

    /// ASCII case-insensitive equality with a lowercase `expected`.
    static func equalsIgnoringCase(_ value: some StringProtocol, _ expected: StaticString) -> Bool {
        guard value.utf8.count == expected.utf8CodeUnitCount else { return false }
        return expected.withUTF8Buffer { expected in
            var index = 0
            for byte in value.utf8 {
                if HTTPSyntax.lowercase(byte) != expected[index] { return false }
                index += 1
            }
            return true
        }
    }
}

/// A generated X-Request-ID: 128 random bits, written as 32 lowercase hex digits.
struct RequestID: Equatable {
    let high: UInt64
    let low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    init(using generator: inout some RandomNumberGenerator) {
        self.init(high: generator.next(), low: generator.next())
    }

    /// The digits go straight into the upstream request: a string (an allocation per request) is
    /// made only for the access log.
    func write(into buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 32) { out in
            fill(out)
            return 32
        }
    }

    var text: String {
        String(unsafeUninitializedCapacity: 32) { out in
            fill(UnsafeMutableRawBufferPointer(out))
            return 32
        }
    }

    func fill(_ out: UnsafeMutableRawBufferPointer) {
        let digits: StaticString = "0123456789abcdef"
        digits.withUTF8Buffer { digits in
            for index in 0..<16 {
                out[index] = digits[Int(high >> (60 - 4 * UInt64(index)) & 0xf)]
                out[16 + index] = digits[Int(low >> (60 - 4 * UInt64(index)) & 0xf)]
            }
        }
    }
}

extension HSTSPolicy {
    /// The Strict-Transport-Security value.
    var headerValue: String {
        var value = "max-age=\(maxAgeSeconds)"
        if includeSubdomains { value += "; includeSubDomains" }
        if preload { value += "; preload" }
        return value
    }
}

extension ByteBuffer {
    /// One field line, `name: value` and CRLF, as every head the worker serialises writes it.
    mutating func writeHTTPField(_ name: String, _ value: String) {
        writeString(name)
        writeStaticString(": ")
        writeString(value)
        writeStaticString("\r\n")
    }
}
