import NIOCore
import NIOHTTP1
@_exported import enum NIOHTTP1.HTTPResponseStatus
import NIOPosix

/// A small HTTP/1.1 server for probes and operators: each GET path maps to a handler that returns
/// a status and a plain-text body. Anything else is 404; methods other than GET and HEAD are 405.
public struct AdminServer: Sendable {
    public struct Reply: Sendable {
        public var status: HTTPResponseStatus
        public var body: String
        public var contentType: String

        public init(_ status: HTTPResponseStatus, _ body: String, contentType: String = "text/plain; charset=utf-8") {
            self.status = status
            self.body = body
            self.contentType = contentType
        }
    }

    public let host: String
    public let port: Int
    public let routes: [String: @Sendable () -> Reply]

    public init(host: String, port: Int, routes: [String: @Sendable () -> Reply]) {
        self.host = host
        self.port = port
        self.routes = routes
    }

    /// Binds, calls `onListening` with the bound port, and serves until the task is cancelled.
    public func run(onListening: @Sendable (Int) -> Void = { _ in }) async throws {
        let routes = self.routes
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(routes: routes))
                }
            }
            .bind(host: host, port: port).get()
        onListening(channel.localAddress?.port ?? port)
        await withTaskCancellationHandler {
            try? await channel.closeFuture.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}

private final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: [String: @Sendable () -> AdminServer.Reply]
    private var head: HTTPRequestHead?

    init(routes: [String: @Sendable () -> AdminServer.Reply]) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let reply: AdminServer.Reply
        if head.method != .GET, head.method != .HEAD {
            reply = .init(.methodNotAllowed, "only GET and HEAD\n")
        } else if let route = routes[path] {
            reply = route()
        } else {
            reply = .init(.notFound, "no such page; try \(routes.keys.sorted().joined(separator: ", "))\n")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: reply.contentType)
        headers.add(name: "Content-Length", value: String(reply.body.utf8.count))
        headers.add(name: "Cache-Control", value: "no-store")
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: reply.status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: reply.body)))), promise: nil)
        }
        let keepAlive = head.isKeepAlive
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}
