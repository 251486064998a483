import NIOCore
import NIOHTTP1

/// The last handler of an upstream connection: hands response parts to the `ProxyHandler` that
/// currently owns the connection, and holds reads while the client cannot take more bytes.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// The request being served on this connection; nil while pooled. Whoever takes or leaves the
    /// connection leaves its response timer disarmed.
    var owner: ProxyHandler? {
        didSet { responseTimer.disarm() }
    }
    /// The response-header timeout of the exchange in progress (armed by its `owner`).
    let responseTimer = LazyTimer()
    /// Called when the connection closes while it sits idle in the pool.
    var onIdleClose: (() -> Void)?
    private var holdReads = false
    private var gate = ReadGate()
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        responseTimer.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if let owner {
            owner.upstreamRead(part)
        } else {
            // Bytes on an idle connection mean the upstream broke the protocol: drop it.
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        owner?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let owner {
            self.owner = nil
            owner.upstreamClosed()
        } else {
            onIdleClose?()
        }
        onIdleClose = nil
        responseTimer.cancel()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        owner?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if gate.passes(held: holdReads) { context.read() }
    }

    /// Stops reading the response while the client is not writable.
    func setHoldReads(_ hold: Bool) {
        holdReads = hold
        if let context, gate.releases(held: hold) { context.read() }
    }

    func flush() {
        context?.flush()
    }

    func write(_ part: HTTPClientRequestPart, flush: Bool) {
        guard let context else { return }
        context.write(wrapOutboundOut(part), promise: nil)
        if flush { context.flush() }
    }
}
