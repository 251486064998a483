import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
internal import NIOTLS
import X509

/// What a test request got back. Bodies over 1 MiB are counted, not kept.
public struct TestResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var bodyCount = 0
    public var body: [UInt8] = []
    /// Trailer fields, when the response had any (HTTP/2 client only).
    public var trailers: HTTPHeaders?

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// `key: value` lines of a TestBackend echo, as a dictionary.
    public var echoed: [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if let separator = line.firstIndex(of: "=") ?? line.firstIndex(of: ":") {
                let key = String(line[..<separator])
                var value = line[line.index(after: separator)...]
                if value.first == " " { value = value.dropFirst() }
                fields[key] = fields[key].map { "\($0), \(value)" } ?? String(value)
            }
        }
        return fields
    }
}

/// One HTTP/1.1 client connection for tests: requests go one after another on the same socket.
public final class TestHTTPConnection: @unchecked Sendable {
    private var inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

    private init(
        inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    ) {
        self.inbound = inbound
        self.outbound = outbound
    }

    /// The server's leaf certificate, on a TLS connection.
    public private(set) var peer: PeerCertificate?

    /// Connects to 127.0.0.1:`port`, runs `body`, and closes. With `tls`, the connection is TLS with
    /// that SNI name (`.some(nil)`: no SNI), certificates unverified: tests inspect them instead.
    public static func with<Result: Sendable>(
        port: Int, tls serverName: String?? = nil, _ body: (TestHTTPConnection) async throws -> Result
    ) async throws -> Result {
        let context = try serverName.map { _ in try TLSTestClient.context() }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context, let serverName {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        let pipeline = channel.channel.pipeline
        let loop = channel.channel.eventLoop
        let tlsHandler =
            context == nil
            ? nil
            : try await loop.submit { NIOLoopBound(try pipeline.syncOperations.handler(type: NIOSSLClientHandler.self), eventLoop: loop) }.get()
        return try await channel.executeThenClose { inbound, outbound in
            let connection = TestHTTPConnection(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            connection.tlsHandler = tlsHandler
            connection.eventLoop = channel.channel.eventLoop
            return try await body(connection)
        }
    }

    /// Touched on its channel's event loop only.
    private var tlsHandler: NIOLoopBound<NIOSSLClientHandler>?
    private var eventLoop: (any EventLoop)?

    /// The server's leaf certificate once the handshake is done (after a first request).
    public func peerCertificate() async throws -> PeerCertificate? {
        guard let eventLoop else { return nil }
        let der = try await eventLoop.submit { try self.tlsHandler?.value.peerCertificate?.toDERBytes() }.get()
        return try der.map(PeerCertificate.init(der:))
    }

    /// One request; `uploadBytes` streams that many bytes as the body (chunked) in 64 KiB writes.
    public func request(
        _ method: HTTPMethod = .GET, _ path: String, host: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        uploadBytes: Int? = nil
    ) async throws -> TestResponse {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: host)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body { head.headers.add(name: "Content-Length", value: String(body.count)) }
        if uploadBytes != nil { head.headers.add(name: "Transfer-Encoding", value: "chunked") }
        try await outbound.write(.head(head))
        if let body, !body.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
        if var remaining = uploadBytes {
            let chunk = ByteBuffer(repeating: 0x61, count: 65_536)
            while remaining > 0 {
                let size = min(remaining, chunk.readableBytes)
                try await outbound.write(.body(.byteBuffer(chunk.getSlice(at: 0, length: size)!)))
                remaining -= size
            }
        }
        try await outbound.write(.end(nil))
        return try await readResponse()
    }

    /// Sends raw bytes (for malformed requests) and reads one response, or nil if the server closed.
    public func readResponse() async throws -> TestResponse {
        var response: TestResponse?
        while let part = try await inbound.next() {
            switch part {
            case .head(let head):
                response = TestResponse(status: head.status, headers: head.headers)
            case .body(let buffer):
                response?.bodyCount += buffer.readableBytes
                if (response?.bodyCount ?? 0) <= 1 << 20 { response?.body += Array(buffer.readableBytesView) } else { response?.body = [] }
            case .end:
                if let response { return response }
            }
        }
        throw TestConnectionClosed()
    }
}

public struct TestConnectionClosed: Error {}

/// What a test reads from a server certificate.
public struct PeerCertificate: Sendable, Equatable {
    public let commonName: String
    public let dnsNames: [String]
    public let serialNumber: String

    public init(der: [UInt8]) throws {
        let certificate = try Certificate(derEncoded: der)
        commonName = certificate.subject.description
        dnsNames = (try? certificate.extensions.subjectAlternativeNames)??.compactMap {
            if case .dnsName(let name) = $0 { return name }
            return nil
        } ?? []
        serialNumber = certificate.serialNumber.description
    }
}

/// TLS handshakes for tests: what certificate and protocol a server picks for a ClientHello.
public enum TLSTestClient {
    public struct Handshake: Sendable {
        public let certificate: PeerCertificate
        public let alpn: String?
    }

    /// A client context that accepts any certificate and offers `alpn`.
    public static func context(alpn: [String] = ["http/1.1"]) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        configuration.applicationProtocols = alpn
        return try NIOSSLContext(configuration: configuration)
    }

    /// Handshakes with 127.0.0.1:`port` sending `serverName` as SNI (none when nil).
    public static func handshake(port: Int, serverName: String?, alpn: [String] = ["http/1.1"]) async throws -> Handshake {
        let context = try context(alpn: alpn)
        let done = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Handshake.self)
        let channel = try await ClientBootstrap(group: done.futureResult.eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try NIOSSLClientHandler(context: context, serverHostname: serverName)
                    try channel.pipeline.syncOperations.addHandler(tls)
                    try channel.pipeline.syncOperations.addHandler(HandshakeRecorder(tls: tls, done: done))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        defer { channel.close(promise: nil) }
        return try await done.futureResult.get()
    }

    private final class HandshakeRecorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let tls: NIOSSLClientHandler
        let done: EventLoopPromise<Handshake>
        init(tls: NIOSSLClientHandler, done: EventLoopPromise<Handshake>) {
            self.tls = tls
            self.done = done
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? TLSUserEvent, case .handshakeCompleted(let alpn) = event {
                do {
                    guard let der = try tls.peerCertificate?.toDERBytes() else { throw NIOSSLError.noCertificateToValidate }
                    done.succeed(Handshake(certificate: try PeerCertificate(der: der), alpn: alpn))
                } catch {
                    done.fail(error)
                }
            }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            done.fail(error)
            context.close(promise: nil)
        }
    }
}
