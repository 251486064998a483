import Logging
import NIOCore
import NIOHTTP1

/// One side of an upgraded connection (WebSocket or any other protocol after `101 Switching
/// Protocols`): relays bytes to its peer on the other connection, with the same backpressure as the
/// HTTP path. Reads stop while the peer cannot take more; when either side closes, the other one is
/// flushed and closed. A tunnel with no traffic either way for `idleTimeout` is closed.
final class TunnelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var peer: TunnelHandler?
    private var context: ChannelHandlerContext?
    private var holdReads = false
    private var gate = ReadGate()
    private let idleTimer = LazyTimer()
    private let idleTimeout: TimeAmount

    init(idleTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
    }

    /// Pairs two handlers; each is added to its own connection's pipeline.
    static func pair(idleTimeout: TimeAmount) -> (client: TunnelHandler, upstream: TunnelHandler) {
        let client = TunnelHandler(idleTimeout: idleTimeout)
        let upstream = TunnelHandler(idleTimeout: idleTimeout)
        client.peer = upstream
        upstream.peer = client
        return (client, upstream)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        touch()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer.disarm()
        self.context = nil
    }

    private func touch() {
        guard let context else { return }
        idleTimer.arm(in: idleTimeout, on: context.eventLoop) { [weak self] in self?.context?.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let peer else { return }
        peer.send(unwrapInboundIn(data))
        if !peer.isWritable { holdReads = true }
        touch()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        peer?.context?.flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        peer?.setHoldReads(!context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer.cancel()
        let peer = self.peer
        self.peer = nil
        peer?.peerClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if gate.passes(held: holdReads) { context.read() }
    }

    /// Writes bytes that came before the tunnel was joined (the 101 head, or what the decoder held).
    func send(_ buffer: ByteBuffer, flush: Bool = false) {
        guard let context else { return }
        context.write(wrapOutboundOut(buffer), promise: nil)
        if flush { context.flush() }
    }

    /// Flushes what this side wrote to its peer outside a read cycle.
    func flushPeer() {
        peer?.context?.flush()
    }

    private var isWritable: Bool { context?.channel.isWritable ?? true }

    private func setHoldReads(_ hold: Bool) {
        holdReads = hold
        if let context, gate.releases(held: hold) { context.read() }
    }

    /// The other side closed: send what is queued, then close this side too.
    private func peerClosed() {
        peer = nil
        idleTimer.disarm()
        guard let context else { return }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in channel.close(promise: nil) }
    }
}

extension TunnelHandler {
    /// Turns an HTTP/1.1 client connection and the upstream connection that answered 101 into a
    /// byte tunnel: the HTTP handlers leave both pipelines, the 101 goes to the client, and the
    /// bytes either side's reader still held are relayed first. False when either side closed
    /// meanwhile (nothing was changed) or the pipelines refused the change.
    static func join(
        client context: ChannelHandlerContext, reader: HTTP1ServerHandler, upstream connection: UpstreamPool.Connection,
        switching head: UpstreamResponseHead, idleTimeout: TimeAmount, logger: Logger
    ) -> Bool {
        guard context.channel.isActive, connection.channel.isActive else { return false }
        let (clientSide, upstreamSide) = pair(idleTimeout: idleTimeout)
        let client = context.pipeline.syncOperations
        let upstream = connection.channel.pipeline.syncOperations
        do {
            try client.addHandler(clientSide)
            try upstream.addHandler(upstreamSide)
            // What the client sent after its upgrade request goes to the upstream first.
            if let held = reader.takeHeldBytes() { upstreamSide.send(held, flush: true) }
            remove(HTTP1ServerHandler.self, from: client)
            clientSide.send(ForwardedHeaders.switchingProtocolsBytes(head, allocator: context.channel.allocator), flush: true)
            // The upstream handler hands on the bytes that followed the 101 as it leaves, outside
            // any read cycle: they are flushed then.
            remove(UpstreamHandler.self, from: upstream)?.assumeIsolatedUnsafeUnchecked().whenComplete { _ in upstreamSide.flushPeer() }
            let clientChannel = context.channel
            remove(ProxyHandler.self, from: client)
            // Reads held while the exchange was under way start again under the tunnel's control.
            clientChannel.read()
            connection.channel.read()
            return true
        } catch {
            logger.warning("could not join an upgraded connection", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Removes the handler of `type` if the pipeline has one; the future completes once it is gone.
    @discardableResult
    private static func remove<Handler: ChannelHandler>(
        _ type: Handler.Type, from pipeline: ChannelPipeline.SynchronousOperations
    ) -> EventLoopFuture<Void>? {
        guard let context = try? pipeline.context(handlerType: type) else { return nil }
        return pipeline.removeHandler(context: context)
    }
}

extension ForwardedHeaders {
    /// The protocol a request asks to switch to (`Upgrade` named in `Connection`), or nil.
    static func upgradeProtocol(_ head: HTTPRequestHead) -> String? {
        guard let upgrade = head.headers["upgrade"].first, !upgrade.isEmpty,
            head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "upgrade" })
        else { return nil }
        return upgrade
    }

    /// The `101` sent to the client. The upstream's fields pass except hop-by-hop ones; `Upgrade`
    /// and `Connection: upgrade` are kept.
    static func switchingProtocolsBytes(_ head: UpstreamResponseHead, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: head.bytes.readableBytes + 64)
        buffer.writeStaticString("HTTP/1.1 101 Switching Protocols\r\n")
        for field in head.fields where equalsIgnoringCase(head.string(field.name), "upgrade") {
            buffer.writeHTTPField("Upgrade", head.string(field.value))
        }
        buffer.writeStaticString("Connection: upgrade\r\n")
        head.writeForwardedFields(into: &buffer)
        buffer.writeStaticString("\r\n")
        return buffer
    }
}
