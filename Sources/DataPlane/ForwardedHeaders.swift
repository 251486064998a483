import NIOHTTP1

/// Header rewriting between client and upstream, without I/O.
enum ForwardedHeaders {
    /// Hop-by-hop fields (RFC 9110 §7.6.1) that never cross the proxy. Transfer-Encoding is kept on
    /// requests because the body is forwarded with the same framing.
    static let hopByHop: Set<String> = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate", "proxy-authorization"]

    /// The head sent upstream: hop-by-hop fields and those named by Connection removed (except an
    /// `Upgrade` request's `Connection: upgrade` and `Upgrade`), Host kept,
    /// the normalised target, X-Forwarded-For appended, X-Forwarded-Proto/Host/Port set, and
    /// X-Request-ID kept or generated.
    static func upstreamRequest(
        _ head: HTTPRequestHead, target: String, clientAddress: String?, scheme: String, serverPort: Int, upgrade: String? = nil,
        requestID: () -> String
    ) -> HTTPRequestHead {
        var headers = head.headers
        removeHopByHop(&headers)
        if let upgrade {
            // The one hop-by-hop exchange that must reach the upstream: it decides whether to switch.
            headers.add(name: "Connection", value: "upgrade")
            headers.add(name: "Upgrade", value: upgrade)
        }
        let originalHost = head.headers["host"].first ?? ""
        if let clientAddress {
            let previous = headers["x-forwarded-for"].joined(separator: ", ")
            headers.replaceOrAdd(name: "X-Forwarded-For", value: previous.isEmpty ? clientAddress : "\(previous), \(clientAddress)")
        }
        headers.replaceOrAdd(name: "X-Forwarded-Proto", value: scheme)
        headers.replaceOrAdd(name: "X-Forwarded-Host", value: originalHost)
        headers.replaceOrAdd(name: "X-Forwarded-Port", value: String(serverPort))
        if headers["x-request-id"].first?.isEmpty ?? true { headers.replaceOrAdd(name: "X-Request-ID", value: requestID()) }
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: target, headers: headers)
    }

    /// The head sent to the client: hop-by-hop fields removed; framing is the encoder's.
    static func downstreamResponse(_ head: HTTPResponseHead) -> HTTPResponseHead {
        var headers = head.headers
        removeHopByHop(&headers)
        return HTTPResponseHead(version: .http1_1, status: head.status, headers: headers)
    }

    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        let named = headers["connection"].flatMap { $0.split(separator: ",") }.map { $0.trimmingWhitespace().lowercased() }
        for name in hopByHop.union(named) where name != "transfer-encoding" && name != "content-length" && name != "host" {
            headers.remove(name: name)
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
