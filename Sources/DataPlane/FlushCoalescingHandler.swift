import NIOCore

/// Turns the flushes that reach it during one event-loop tick into one, issued after the tick's
/// I/O events have been handled.
///
/// Sits below the HTTP/2 handler on a client connection. Each stream flushes when its response
/// arrives from its own upstream connection, so without this every response became its own TLS
/// record and `write` call; responses that arrive in the same batch of events now leave together.
/// A close flushes whatever was written first, so nothing is dropped: NIOHTTP2 closes the
/// connection itself, without a flush, when the last stream ends after a GOAWAY, and the TLS
/// handler discards writes that were never flushed.
final class FlushCoalescingHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var flushPending = false
    private var unflushed = false
    private var removed = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        unflushed = true
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        guard !flushPending else { return }
        flushPending = true
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            bound.value.handler.flushNow(context: bound.value.context)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        flushNow(context: context)
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        flushNow(context: context)
        removed = true
    }

    private func flushNow(context: ChannelHandlerContext) {
        guard flushPending || unflushed, !removed else { return }
        flushPending = false
        unflushed = false
        context.flush()
    }
}
