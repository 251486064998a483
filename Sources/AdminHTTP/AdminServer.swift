import NIOCore
import NIOHTTP1
@_exported import enum NIOHTTP1.HTTPResponseStatus
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small HTTP/1.1 server for probes and operators: each GET path maps to a handler that returns
/// a status and a plain-text body. Anything else is 404, and methods other than GET and HEAD are 405,
/// unless a fallback answers every other request (the demo backend's case).
public struct AdminServer: Sendable {
    /// What a fallback sees of a request.
    public struct Request: Sendable {
        public var head: HTTPRequestHead
        /// The address the connection arrived on.
        public var localAddress: SocketAddress?
    }

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
    /// Listen on this Unix socket (0600) instead of host and port.
    public let unixSocket: String?
    public let routes: [String: @Sendable () async -> Reply]
    public let fallback: (@Sendable (Request) async -> Reply)?
    /// Who runs it, for errors: "node agent admin server", ...
    public let owner: String

    public init(
        host: String, port: Int, owner: String = "admin server", routes: [String: @Sendable () async -> Reply],
        fallback: (@Sendable (Request) async -> Reply)? = nil
    ) {
        self.owner = owner
        self.host = host
        self.port = port
        self.unixSocket = nil
        self.routes = routes
        self.fallback = fallback
    }

    public init(unixSocket: String, owner: String = "admin server", routes: [String: @Sendable () async -> Reply]) {
        self.owner = owner
        self.host = ""
        self.port = 0
        self.unixSocket = unixSocket
        self.routes = routes
        self.fallback = nil
    }

    /// Binds, calls `onListening` with the bound port, and serves until the task is cancelled.
    public func run(onListening: @Sendable (Int) -> Void = { _ in }) async throws {
        let routes = self.routes
        let fallback = self.fallback
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(routes: routes, fallback: fallback))
                }
            }
        let channel: any Channel
        if let unixSocket {
            channel = try await ListenError.naming(owner, "unix:\(unixSocket)") {
                try await bootstrap.bind(unixDomainSocketPath: unixSocket, cleanupExistingSocketFile: true).get()
            }
            _ = chmod(unixSocket, 0o600)
        } else {
            channel = try await ListenError.naming(owner, "\(host):\(port)") { try await bootstrap.bind(host: host, port: port).get() }
        }
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

    private let routes: [String: @Sendable () async -> AdminServer.Reply]
    private let fallback: (@Sendable (AdminServer.Request) async -> AdminServer.Reply)?
    private var head: HTTPRequestHead?

    init(routes: [String: @Sendable () async -> AdminServer.Reply], fallback: (@Sendable (AdminServer.Request) async -> AdminServer.Reply)?) {
        self.routes = routes
        self.fallback = fallback
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
        let answer: @Sendable () async -> AdminServer.Reply
        if let route = routes[path], head.method == .GET || head.method == .HEAD {
            answer = route
        } else if let fallback {
            let request = AdminServer.Request(head: head, localAddress: context.channel.localAddress)
            answer = { await fallback(request) }
        } else if head.method != .GET, head.method != .HEAD {
            return send(.init(.methodNotAllowed, "only GET and HEAD\n"), to: head, context: context)
        } else {
            return send(.init(.notFound, "no such page; try \(routes.keys.sorted().joined(separator: ", "))\n"), to: head, context: context)
        }
        // Routes may await (a scrape of the workers); the answer is written back on the loop.
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let promise = context.eventLoop.makePromise(of: AdminServer.Reply.self)
        promise.completeWithTask { await answer() }
        promise.futureResult.whenSuccess { reply in bound.value.handler.send(reply, to: head, context: bound.value.context) }
    }

    private func send(_ reply: AdminServer.Reply, to head: HTTPRequestHead, context: ChannelHandlerContext) {
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

/// A one-shot HTTP/1.1 GET over a Unix socket (the node agent scraping its workers).
public enum AdminClient {
    public static func get(unixSocket: String, path: String, timeout: TimeAmount = .seconds(2)) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(timeout)
            .connect(unixDomainSocketPath: unixSocket) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
            head.headers.add(name: "Host", value: "localhost")
            head.headers.add(name: "Connection", value: "close")
            try await outbound.write(.head(head))
            try await outbound.write(.end(nil))
            var status: HTTPResponseStatus = .ok
            var body = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let response): status = response.status
                case .body(var chunk): body.writeBuffer(&chunk)
                case .end:
                    guard status == .ok else { throw AdminClientError(description: "GET \(path) on \(unixSocket): \(status.code)") }
                    return String(buffer: body)
                }
            }
            throw AdminClientError(description: "GET \(path) on \(unixSocket): the connection closed early")
        }
    }
}

public struct AdminClientError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
