import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
internal import NIOTLS
internal import NIOWebSocket
import Synchronization

/// A real HTTP/1.1 upstream on 127.0.0.1 for proxy tests. Paths:
/// - `/bytes/N`: N bytes of a repeating pattern, streamed in 64 KiB chunks with backpressure;
/// - `/count`: reads the request body and answers `received=N`;
/// - `/sleep/MS`: answers after MS milliseconds;
/// - `/close`: closes the connection without answering;
/// - `/status/N`: answers with status N;
/// - anything else: `backend=NAME`, the method, the target and every request header, one per line
///   (over TLS first `sni=NAME` and, when the client presented one, `client-certificate=yes`).
/// Every response carries `X-Backend: NAME`. A WebSocket handshake on a connection's first request
/// switches it to a WebSocket echo (text and binary frames come back as sent, with `NAME: ` in
/// front of text).
public final class TestBackend: Sendable {
    public let name: String
    public let port: Int
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup
    /// With `holdingConnections`, a connect gets no answer until `acceptConnections()`: the
    /// listener accepts nothing and its queue is full, so Linux drops the SYNs.
    /// With `tls`, it serves HTTPS with that certificate; with `clientCA` too, it asks clients for a
    /// certificate signed by it and refuses connections without one.
    public static func start(
        name: String, holdingConnections: Bool = false, tls: TestCertificate? = nil, clientCA: TestCertificate? = nil
    ) async throws -> TestBackend {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let counter = Counter()
        let heads = Counter()
        let sent = Counter()
        var context: NIOSSLContext?
        if let tls {
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(tls.certificatePEM.utf8)).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(tls.privateKeyPEM.utf8), format: .pem)))
            configuration.applicationProtocols = ["http/1.1"]
            if let clientCA {
                configuration.certificateVerification = .noHostnameVerification
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(clientCA.certificatePEM.utf8)))
                configuration.sendCANameList = true
            }
            context = try NIOSSLContext(configuration: configuration)
        }
        let bootstrap = Self.bootstrap(group: group, name: name, counter: counter, heads: heads, sent: sent, tls: context)
        let channel: any Channel
        var filler: (any Channel)?
        if holdingConnections {
            // A backlog of 0 and one connection, never accepted, in the queue.
            channel = try await bootstrap.serverChannelOption(.backlog, value: 0).serverChannelOption(.autoRead, value: false)
                .bind(host: "127.0.0.1", port: 0).get()
            filler = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: channel.localAddress!.port!).get()
        } else {
            channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        }
        return TestBackend(
            name: name, port: channel.localAddress!.port!, channel: channel, group: group, counter: counter, heads: heads, sent: sent,
            filler: filler)
    }

    private static func bootstrap(
        group: MultiThreadedEventLoopGroup, name: String, counter: Counter, heads: Counter, sent: Counter, tls: NIOSSLContext? = nil
    ) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
            .childChannelInitializer { channel in
                counter.value.add(1, ordering: .relaxed)
                let webSocket = NIOWebSocketServerUpgrader(
                    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders([("X-Backend", name)])) },
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            channel.pipeline.syncOperations.removeHandler(name: "backend", promise: nil)
                            try channel.pipeline.syncOperations.addHandler(WebSocketEcho(name: name))
                        }
                    })
                return channel.eventLoop.makeCompletedFuture {
                    let backend = BackendHandler(name: name, heads: heads, sent: sent)
                    if let tls {
                        let bound = NIOLoopBound(backend, eventLoop: channel.eventLoop)
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(
                                SNIHandler { result in
                                    if case .hostname(let name) = result { bound.value.serverName = name } else { bound.value.serverName = "" }
                                    return channel.eventLoop.makeSucceededVoidFuture()
                                }))
                        let handler = NIOSSLServerHandler(context: tls)
                        try channel.pipeline.syncOperations.addHandler(handler)
                        backend.peerCertificate = { (try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self))?.peerCertificate != nil }
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withServerUpgrade: ([webSocket], { _ in }))
                    try channel.pipeline.syncOperations.addHandler(backend, name: "backend")
                }
            }
    }

    /// A backend started `holdingConnections` answers from now on: a listener with a normal queue
    /// takes the port (SO_REUSEPORT) and then the held one closes, so the waiting connects succeed
    /// on their next SYN. (Accepting on the held listener instead raced: with its queue of 0, a
    /// connect could complete on the client's side while the server dropped its last ACK.)
    public func acceptConnections() async throws {
        let listener = try await Self.bootstrap(group: group, name: name, counter: counter, heads: heads, sent: sent)
            .bind(host: "127.0.0.1", port: port).get()
        replacement.withLock { $0 = listener }
        try? await channel.close()
        try? await filler?.close()
    }

    private let filler: (any Channel)?
    private let replacement = Mutex<(any Channel)?>(nil)

    final class Counter: Sendable { let value = Atomic<Int>(0) }
    private let counter: Counter
    private let heads: Counter
    private let sent: Counter

    private init(
        name: String, port: Int, channel: any Channel, group: MultiThreadedEventLoopGroup, counter: Counter, heads: Counter, sent: Counter,
        filler: (any Channel)?
    ) {
        self.filler = filler
        self.heads = heads
        self.sent = sent
        self.name = name
        self.port = port
        self.channel = channel
        self.group = group
        self.counter = counter
    }

    public var acceptedConnections: Int { counter.value.load(ordering: .relaxed) }
    /// Request heads received, on all connections.
    public var receivedRequests: Int { heads.value.load(ordering: .relaxed) }
    /// Body bytes of `/bytes/N` responses the socket has taken, on all connections.
    public var streamedBytes: Int { sent.value.load(ordering: .relaxed) }

    public func stop() async {
        try? await filler?.close()
        try? await replacement.withLock { $0 }?.close()
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

private final class BackendHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let name: String
    /// Over TLS: the SNI name the client sent ("" for none), and whether it presented a certificate.
    var serverName: String?
    var peerCertificate: (() -> Bool)?
    private var head: HTTPRequestHead?
    private var received = 0
    private let heads: TestBackend.Counter
    private let sent: TestBackend.Counter

    init(name: String, heads: TestBackend.Counter, sent: TestBackend.Counter) {
        self.name = name
        self.heads = heads
        self.sent = sent
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            heads.value.add(1, ordering: .relaxed)
            received = 0
            if head.uri == "/close" { context.close(promise: nil) }
        case .body(let body):
            received += body.readableBytes
        case .end:
            guard let head else { return }
            respond(context: context, to: head)
        }
    }

    private func respond(context: ChannelHandlerContext, to head: HTTPRequestHead) {
        let parts = head.uri.split(separator: "?")[0].split(separator: "/").map(String.init)
        var headers = HTTPHeaders()
        headers.add(name: "X-Backend", value: name)
        switch (parts.first, parts.count > 1 ? parts[1] : nil) {
        case ("bytes", let count?):
            let total = Int(count) ?? 0
            headers.add(name: "Content-Length", value: String(total))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            stream(context: context, remaining: total)
        case ("sleep", let milliseconds?):
            let headers = headers
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(milliseconds) ?? 0)) { [self] in
                send(context: context, status: .ok, body: "slept\n", headers: headers)
            }
        case ("status", let code?):
            send(context: context, status: HTTPResponseStatus(statusCode: Int(code) ?? 500), body: "status \(code)\n", headers: headers)
        case ("count", _):
            send(context: context, status: .ok, body: "received=\(received)\n", headers: headers)
        default:
            var body = "backend=\(name)\nmethod=\(head.method.rawValue)\ntarget=\(head.uri)\n"
            if let serverName { body += "sni=\(serverName)\n" }
            if peerCertificate?() == true { body += "client-certificate=yes\n" }
            for header in head.headers { body += "\(header.name.lowercased()): \(header.value)\n" }
            send(context: context, status: .ok, body: body, headers: headers)
        }
    }

    private func send(context: ChannelHandlerContext, status: HTTPResponseStatus, body: String, headers: HTTPHeaders) {
        var headers = headers
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// Writes the next chunk once the previous one is flushed, so memory stays at one chunk.
    private func stream(context: ChannelHandlerContext, remaining: Int) {
        guard remaining > 0 else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let size = min(remaining, 65_536)
        var buffer = context.channel.allocator.buffer(capacity: size)
        buffer.writeRepeatingByte(UInt8(truncatingIfNeeded: remaining % 251), count: size)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        // The next chunk goes on a later tick: a write that completes at once would otherwise
        // recurse once per chunk (16 Ki deep for 1 GiB).
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer)))).assumeIsolated().whenSuccess { [self] in
            sent.value.add(size, ordering: .relaxed)
            loopBound.value.eventLoop.assumeIsolated().execute { [self] in stream(context: loopBound.value, remaining: remaining - size) }
        }
    }
}

/// Echoes WebSocket frames: text gets `NAME: ` in front, binary comes back as is, a ping gets a
/// pong, and a close is answered and ends the connection.
private final class WebSocketEcho: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let name: String
    init(name: String) { self.name = name }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let payload = frame.unmaskedData
        switch frame.opcode {
        case .text:
            var reply = context.channel.allocator.buffer(string: "\(name): ")
            reply.writeImmutableBuffer(payload)
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: reply)), promise: nil)
        case .binary:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, data: payload)), promise: nil)
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: payload)), promise: nil)
        case .connectionClose:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload))).assumeIsolated()
                .whenComplete { _ in context.close(promise: nil) }
        default:
            break
        }
    }
}
