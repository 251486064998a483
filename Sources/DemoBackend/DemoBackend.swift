import NIOCore
import NIOHTTP1
import NIOPosix

/// The backend the quickstart routes to, so that `portico run` works with no cluster: each listener
/// answers every request with the name of the Service it stands for and what it received (method,
/// path, Host and the forwarding fields the proxy added). Request bodies are read and dropped.
public struct DemoBackend: Sendable {
    public struct Listener: Sendable, Hashable {
        /// Shown in every answer, e.g. `default/blog`.
        public var name: String
        public var host: String
        public var port: Int

        public init(name: String, host: String, port: Int) {
            self.name = name
            self.host = host
            self.port = port
        }

        /// `NAME=HOST:PORT`.
        public init(parsing text: String) throws(DemoBackendError) {
            guard let equals = text.firstIndex(of: "="), let colon = text.lastIndex(of: ":"), equals < colon,
                let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
            else {
                throw DemoBackendError(description: "invalid listener \"\(text)\": expected NAME=HOST:PORT, e.g. default/blog=127.0.0.1:9003")
            }
            self.init(name: String(text[..<equals]), host: String(text[text.index(after: equals)..<colon]), port: port)
        }
    }

    public let listeners: [Listener]

    public init(listeners: [Listener]) {
        self.listeners = listeners
    }

    /// Binds every listener and serves until the task is cancelled.
    public func run(onListening: @Sendable ([Listener]) -> Void = { _ in }) async throws {
        var channels: [any Channel] = []
        do {
            for listener in listeners {
                let name = listener.name
                let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelInitializer { channel in
                        channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMapThrowing {
                            try channel.pipeline.syncOperations.addHandler(DemoHandler(name: name))
                        }
                    }
                    .bind(host: listener.host, port: listener.port).get()
                channels.append(channel)
            }
        } catch {
            for channel in channels { try? await channel.close() }
            throw error
        }
        let bound = channels
        onListening(zip(listeners, bound).map { Listener(name: $0.name, host: $0.host, port: $1.localAddress?.port ?? $0.port) })
        await withTaskCancellationHandler {
            for channel in bound { try? await channel.closeFuture.get() }
        } onCancel: {
            for channel in bound { channel.close(promise: nil) }
        }
    }
}

public struct DemoBackendError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

private final class DemoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let name: String
    private var head: HTTPRequestHead?

    init(name: String) {
        self.name = name
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
        let local = context.channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        var body = "Hello from \(name) (Portico demo backend on \(local))\n\(head.method) \(head.uri)\n"
        for field in ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-request-id"] {
            if let value = head.headers[field].first { body += "\(field): \(value)\n" }
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        let keepAlive = head.isKeepAlive
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}
