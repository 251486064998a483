import AdminHTTP
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import RouteModel
import Synchronization

/// The backend the quickstart routes to, so that `portico run` works with no cluster: each listener
/// answers every request with the name of the Service it stands for and what it received (method,
/// path, Host and the forwarding fields the proxy added). Request bodies are read and dropped.
///
/// A listener speaks the protocol its routes' `backend-protocol` asks for: HTTP/1.1, HTTPS (with the
/// certificate given to `run`), HTTP/2 in cleartext (H2C, GRPC) or over TLS (GRPCS). A gRPC call is
/// answered with one empty message (every protobuf type's default) and status OK, the Service's name
/// and the method in the initial metadata (`x-demo-backend`, `x-demo-method`).
public struct DemoBackend: Sendable {
    public struct Listener: Sendable, Hashable {
        /// Shown in every answer, e.g. `default/blog`.
        public var name: String
        public var host: String
        public var port: Int
        public var upstreamProtocol: UpstreamProtocol

        public init(name: String, host: String, port: Int, upstreamProtocol: UpstreamProtocol = .http) {
            self.name = name
            self.host = host
            self.port = port
            self.upstreamProtocol = upstreamProtocol
        }

        /// `NAME=HOST:PORT`, then optionally `/PROTOCOL` (http, https, h2c, grpc, grpcs).
        public init(parsing text: String) throws(DemoBackendError) {
            var address = Substring(text)
            var upstreamProtocol = UpstreamProtocol.http
            if let slash = text.lastIndex(of: "/"), let equals = text.firstIndex(of: "="), slash > equals {
                guard let parsed = UpstreamProtocol(rawValue: text[text.index(after: slash)...].uppercased()) else {
                    throw DemoBackendError(
                        description: "invalid listener \"\(text)\": the protocol is not one of "
                            + UpstreamProtocol.allCases.map { $0.rawValue.lowercased() }.joined(separator: ", "))
                }
                upstreamProtocol = parsed
                address = text[..<slash]
            }
            guard let equals = address.firstIndex(of: "="), let colon = address.lastIndex(of: ":"), equals < colon,
                let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port)
            else {
                throw DemoBackendError(
                    description: "invalid listener \"\(text)\": expected NAME=HOST:PORT[/PROTOCOL], e.g. default/blog=127.0.0.1:9003")
            }
            self.init(
                name: String(address[..<equals]), host: String(address[address.index(after: equals)..<colon]), port: port,
                upstreamProtocol: upstreamProtocol)
        }
    }

    public let listeners: [Listener]

    public init(listeners: [Listener]) {
        self.listeners = listeners
    }

    /// Binds every listener and serves until the task is cancelled. `certificate` (PEM chain and
    /// key) is what TLS listeners present; it is needed only when there are some.
    public func run(
        certificate: (chainPEM: String, keyPEM: String)? = nil, onListening: @escaping @Sendable ([Listener]) -> Void = { _ in }
    ) async throws {
        var tls: NIOSSLContext?
        if listeners.contains(where: { $0.upstreamProtocol.usesTLS }) {
            guard let certificate else { throw DemoBackendError(description: "TLS listeners need a certificate") }
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificate.chainPEM.utf8)).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(certificate.keyPEM.utf8), format: .pem)))
            configuration.applicationProtocols = ["h2", "http/1.1"]
            tls = try NIOSSLContext(configuration: configuration)
        }
        let bound = BoundPorts(count: listeners.count)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, listener) in listeners.enumerated() {
                let name = listener.name
                let report: @Sendable (Int) -> Void = { port in
                    if let all = bound.set(index, port) {
                        onListening(zip(listeners, all).map { Listener(name: $0.name, host: $0.host, port: $1, upstreamProtocol: $0.upstreamProtocol) })
                    }
                }
                if listener.upstreamProtocol == .http {
                    let server = AdminServer(host: listener.host, port: listener.port, owner: "demo backend \(name)", routes: [:]) { request in
                        Self.answer(name: name, head: request.head, local: request.localAddress, over: nil)
                    }
                    group.addTask { try await server.run(onListening: report) }
                } else {
                    let context = listener.upstreamProtocol.usesTLS ? tls : nil
                    group.addTask { try await Self.serve(listener, tls: context, onListening: report) }
                }
            }
            try await group.waitForAll()
        }
    }

    /// The Service's name, then what arrived: method, target, Host, the forwarding fields and every
    /// other field (so a rewrite or a header edit shows).
    static func answer(name: String, head: HTTPRequestHead, local: SocketAddress?, over upstreamProtocol: UpstreamProtocol?) -> AdminServer.Reply {
        let address = local.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let how = upstreamProtocol.map { ", \($0.rawValue)" } ?? ""
        var body = "Hello from \(name) (Portico demo backend on \(address)\(how))\n\(head.method) \(head.uri)\n"
        let first = ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-request-id"]
        for field in first {
            if let value = head.headers[field].first { body += "\(field): \(value)\n" }
        }
        for (name, value) in head.headers where !first.contains(name.lowercased()) { body += "\(name.lowercased()): \(value)\n" }
        return AdminServer.Reply(.ok, body)
    }

    /// A listener speaking HTTPS, H2C, GRPC or GRPCS.
    private static func serve(_ listener: Listener, tls: NIOSSLContext?, onListening: @Sendable (Int) -> Void) async throws {
        let upstreamProtocol = listener.upstreamProtocol
        let name = listener.name
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    if let tls { try operations.addHandler(NIOSSLServerHandler(context: tls)) }
                    guard upstreamProtocol.isHTTP2 else {
                        try operations.configureHTTPServerPipeline()
                        try operations.addHandler(DemoHandler(name: name, upstreamProtocol: upstreamProtocol))
                        return
                    }
                    _ = try operations.configureHTTP2Pipeline(
                        mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                            try stream.pipeline.syncOperations.addHandler(DemoHandler(name: name, upstreamProtocol: upstreamProtocol))
                        }
                    }
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: listener.host, port: listener.port).get()
        } catch {
            throw ListenError(owner: "demo backend \(name)", address: "\(listener.host):\(listener.port)", cause: error)
        }
        onListening(channel.localAddress?.port ?? listener.port)
        try await withTaskCancellationHandler {
            try await channel.closeFuture.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}

/// One request at a time on an HTTP/1.1 connection or an HTTP/2 stream.
private final class DemoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let name: String
    private let upstreamProtocol: UpstreamProtocol
    private var head: HTTPRequestHead?

    init(name: String, upstreamProtocol: UpstreamProtocol) {
        self.name = name
        self.upstreamProtocol = upstreamProtocol
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            if head.headers["content-type"].first?.lowercased().hasPrefix("application/grpc") == true {
                answerGRPC(head, context: context)
            } else {
                let reply = DemoBackend.answer(name: name, head: head, local: context.channel.parent?.localAddress ?? context.localAddress, over: upstreamProtocol)
                var headers = HTTPHeaders([("content-type", reply.contentType), ("content-length", String(reply.body.utf8.count))])
                if !head.isKeepAlive, !upstreamProtocol.isHTTP2 { headers.add(name: "connection", value: "close") }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: reply.status, headers: headers))), promise: nil)
                if head.method != .HEAD {
                    context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: reply.body)))), promise: nil)
                }
                let keepAlive = head.isKeepAlive || upstreamProtocol.isHTTP2
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                    if !keepAlive { channel.close(promise: nil) }
                }
            }
        }
    }

    /// One empty message (any protobuf type's default value) and grpc-status 0.
    private func answerGRPC(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let headers = HTTPHeaders([("content-type", "application/grpc"), ("x-demo-backend", name), ("x-demo-method", head.uri)])
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: [0, 0, 0, 0, 0])))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(HTTPHeaders([("grpc-status", "0")]))), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

public struct DemoBackendError: Error, CustomStringConvertible {
    public var description: String
}

/// The listeners' bound ports, reported once all are known.
private final class BoundPorts: Sendable {
    private let ports: Mutex<[Int?]>

    init(count: Int) { ports = Mutex(Array(repeating: nil, count: count)) }

    /// Records one; returns all once every listener is bound.
    func set(_ index: Int, _ port: Int) -> [Int]? {
        ports.withLock { ports in
            ports[index] = port
            let known = ports.compactMap { $0 }
            return known.count == ports.count ? known : nil
        }
    }
}
