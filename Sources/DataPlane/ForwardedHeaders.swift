import NIOHTTP1
import RouteModel

/// Header rewriting between client and upstream, without I/O.
enum ForwardedHeaders {
    /// The head sent upstream: hop-by-hop fields and those named by Connection removed (except an
    /// `Upgrade` request's `Connection: upgrade` and `Upgrade`), Host kept,
    /// the normalised target, X-Forwarded-For appended, X-Forwarded-Proto/Host/Port set, and
    /// X-Request-ID kept or generated.
    static func upstreamRequest(
        _ head: HTTPRequestHead, target: String, clientAddress: String?, scheme: String, serverPort: String, upgrade: String? = nil,
        requestID: () -> String
    ) -> HTTPRequestHead {
        var headers = head.headers
        removeHopByHop(&headers)
        if let upgrade {
            // The one hop-by-hop exchange that must reach the upstream: it decides whether to switch.
            headers.add(name: "Connection", value: "upgrade")
            headers.add(name: "Upgrade", value: upgrade)
        }
        let originalHost = head.headers.first(name: "host") ?? ""
        // Most requests carry none of the fields set below: then they are appended without a
        // search per field.
        let carriesForwarded = headers.contains { $0.name.utf8.count >= 12 && ($0.name.hasPrefix("X-") || $0.name.hasPrefix("x-")) }
        guard carriesForwarded else {
            if let clientAddress { headers.add(name: "X-Forwarded-For", value: clientAddress) }
            headers.add(name: "X-Forwarded-Proto", value: scheme)
            headers.add(name: "X-Forwarded-Host", value: originalHost)
            headers.add(name: "X-Forwarded-Port", value: serverPort)
            headers.add(name: "X-Request-ID", value: requestID())
            return HTTPRequestHead(version: .http1_1, method: head.method, uri: target, headers: headers)
        }
        if let clientAddress {
            let previous = headers["x-forwarded-for"].joined(separator: ", ")
            headers.replaceOrAdd(name: "X-Forwarded-For", value: previous.isEmpty ? clientAddress : "\(previous), \(clientAddress)")
        }
        headers.replaceOrAdd(name: "X-Forwarded-Proto", value: scheme)
        headers.replaceOrAdd(name: "X-Forwarded-Host", value: originalHost)
        headers.replaceOrAdd(name: "X-Forwarded-Port", value: serverPort)
        if headers.first(name: "x-request-id")?.isEmpty ?? true { headers.replaceOrAdd(name: "X-Request-ID", value: requestID()) }
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: target, headers: headers)
    }

    /// Removes hop-by-hop fields and the fields the Connection header names, except the framing
    /// fields and Host. One pass over the fields finds them; most messages carry only Connection.
    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var doomed: [String] = []
        for (name, value) in headers where isHopByHop(name) {
            doomed.append(name)
            guard equalsIgnoringCase(name, "connection") else { continue }
            for token in value.split(separator: ",") {
                let token = token.trimmingWhitespace()
                if !token.isEmpty, !equalsIgnoringCase(token, "transfer-encoding"), !equalsIgnoringCase(token, "content-length"),
                    !equalsIgnoringCase(token, "host")
                {
                    doomed.append(String(token))
                }
            }
        }
        for name in doomed { headers.remove(name: name) }
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
                let lower = byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte
                if lower != expected[index] { return false }
                index += 1
            }
            return true
        }
    }

    /// 32 lowercase hex digits from the system's random source.
    static func newRequestID() -> String {
        var generator = SystemRandomNumberGenerator()
        return newRequestID(using: &generator)
    }

    /// 32 lowercase hex digits from `generator`, built without intermediate strings.
    static func newRequestID(using generator: inout some RandomNumberGenerator) -> String {
        let digits: StaticString = "0123456789abcdef"
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        return String(unsafeUninitializedCapacity: 32) { buffer in
            digits.withUTF8Buffer { digits in
                for index in 0..<16 {
                    buffer[index] = digits[Int(high >> (60 - 4 * UInt64(index)) & 0xf)]
                    buffer[16 + index] = digits[Int(low >> (60 - 4 * UInt64(index)) & 0xf)]
                }
            }
            return 32
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
