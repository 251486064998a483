import NIOCore
import NIOHTTP1

/// The last handler of an upstream connection: parses the responses (`UpstreamResponseParser`) and
/// hands their parts to the `ExchangeRunner` that currently owns the connection, and holds reads
/// while the client cannot take more bytes. Requests go out as bytes: heads serialised by
/// `ForwardedHeaders`, bodies framed here.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The request being served on this connection; nil while pooled. Whoever takes or leaves the
    /// connection leaves its response timer disarmed.
    var owner: ExchangeRunner? {
        didSet { responseTimer.disarm() }
    }
    /// The response-header timeout of the exchange in progress (armed by its `owner`).
    let responseTimer = LazyTimer()
    /// Made once per connection, not per exchange: the timer only runs while `owner` is set, since
    /// every change of owner disarms it. Unowned, not weak: a weak reference gives the handler a
    /// side table, which slows down every retain and release of it afterwards.
    private lazy var responseTimedOut: () -> Void = { [unowned self] in owner?.responseTimeout() }
    /// Called when the connection closes while no exchange owns it (it may sit idle in the pool).
    var onIdleClose: (() -> Void)?
    private var parser = UpstreamResponseParser()
    /// The request body being sent goes in chunks.
    private var requestChunked = false
    /// An incomplete head or chunk line, waiting for more bytes; after a 101, the tunnel's first
    /// bytes, handed on when this handler leaves the pipeline.
    private var held: ByteBuffer?
    private var holdReads = false
    private var gate = ReadGate()
    private var context: ChannelHandlerContext?
    /// On an HTTP/2 stream (`HTTP2UpstreamFraming` before it): bodies go out unframed and the end
    /// as an `UpstreamRequestEnd` event.
    private let messages: Bool

    init(messages: Bool = false) {
        self.messages = messages
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        responseTimer.cancel()
        if let held, held.readableBytes > 0 {
            self.held = nil
            context.fireChannelRead(wrapInboundOut(held))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if var earlier = held {
            held = nil
            earlier.writeBuffer(&buffer)
            buffer = earlier
        }
        do {
            while let event = try parser.next(&buffer) {
                guard let owner else {
                    // The exchange was abandoned and the connection is being closed.
                    return
                }
                switch event {
                case .head(let head):
                    owner.upstreamHead(head)
                    parser.recycle(head)
                case .body(let body): owner.upstreamBody(body)
                case .end(let trailers): owner.upstreamEnd(trailers)
                }
            }
        } catch {
            let owner = self.owner
            self.owner = nil
            owner?.upstreamFailed(error as? UpstreamResponseError ?? .invalidField)
            context.close(promise: nil)
            return
        }
        if buffer.readableBytes > 0 { held = buffer }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        owner?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let owner {
            // A body delimited by the close is complete now; anything else was cut short.
            if case .end(let trailers) = parser.connectionClosed() {
                owner.upstreamEnd(trailers)
            }
            if let current = self.owner {
                self.owner = nil
                current.upstreamClosed()
            }
        } else {
            onIdleClose?()
        }
        onIdleClose = nil  // it holds the pool's view of this connection
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

    /// What came after a 101, for a tunnel that will not be joined.
    func takeHeldBytes() -> ByteBuffer? {
        defer { held = nil }
        return held
    }

    func flush() {
        context?.flush()
    }

    /// Arms the response-header timeout for the owner's exchange.
    func armResponseTimer(in delay: TimeAmount) {
        guard let context else { return }
        responseTimer.arm(in: delay, on: context.eventLoop, action: responseTimedOut)
    }

    /// Sends a request head (`ForwardedHeaders.writeUpstreamRequest`); its response comes next.
    func writeHead(_ bytes: ByteBuffer, chunked: Bool, isHead: Bool, flush: Bool) {
        guard let context else { return }
        parser.requestSent(isHead: isHead)
        requestChunked = chunked && !messages
        context.write(wrapOutboundOut(bytes), promise: nil)
        if flush { context.flush() }
    }

    /// Sends a piece of the request body, or its end. `promise` completes when the socket has
    /// taken the piece, or failed to.
    func write(_ part: HTTPClientRequestPart, flush: Bool, promise: EventLoopPromise<Void>? = nil) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch part {
        case .head:
            preconditionFailure("request heads go through writeHead")
        case .body(let body):
            guard case .byteBuffer(let body) = body else {
                promise?.succeed()
                break
            }
            if requestChunked {
                // Writes complete in order: the last piece's promise stands for the chunk.
                var last: ByteBuffer?
                ChunkedFraming.chunk(body, allocator: context.channel.allocator) {
                    if let previous = last { context.write(wrapOutboundOut(previous), promise: nil) }
                    last = $0
                }
                if let last { context.write(wrapOutboundOut(last), promise: promise) } else { promise?.succeed() }
            } else {
                context.write(wrapOutboundOut(body), promise: promise)
            }
        case .end(let trailers):
            if messages {
                context.triggerUserOutboundEvent(UpstreamRequestEnd(trailers: trailers), promise: promise)
                break
            }
            promise?.succeed()
            guard requestChunked else { break }
            context.write(wrapOutboundOut(ChunkedFraming.lastChunk(trailers: trailers, allocator: context.channel.allocator)), promise: nil)
        }
        if flush { context.flush() }
    }
}
