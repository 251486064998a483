import NIOCore

/// Turns the flushes that reach it during one event-loop tick into one, issued after the tick's
/// I/O events have been handled, and joins the small writes before it into one buffer.
///
/// Sits below the HTTP/2 handler on a client connection, above TLS. Each stream flushes when its
/// response arrives from its own upstream connection, so without this every response became its
/// own `write` call; responses that arrive in the same batch of events now leave together. NIOHTTP2
/// writes each frame header and each DATA payload as a buffer of its own, and the TLS handler makes
/// a record of every buffer: three records per small response, each with its own encryption call
/// and 22 bytes of overhead. Joined, they fill records of up to 16 KiB, as nginx and HAProxy send.
///
/// A close flushes whatever was written first, so nothing is dropped: NIOHTTP2 closes the
/// connection itself, without a flush, when the last stream ends after a GOAWAY, and the TLS
/// handler discards writes that were never flushed.
final class FlushCoalescingHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The most a TLS record carries.
    static let joinLimit = 16 << 10
    /// Writes this large go on as they are (after what was joined before them).
    static let passThroughSize = 8 << 10

    private var flushPending = false
    private var unflushed = false
    private var removed = false
    /// Small writes joined, waiting for the flush (or for a write that does not fit).
    private var joined: ByteBuffer?
    private var joinedPromises: [EventLoopPromise<Void>] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        unflushed = true
        let buffer = unwrapOutboundIn(data)
        if buffer.readableBytes >= Self.passThroughSize {
            writeJoined(context: context)
            context.write(data, promise: promise)
            return
        }
        if let current = joined, current.readableBytes + buffer.readableBytes > Self.joinLimit { writeJoined(context: context) }
        if joined == nil { joined = context.channel.allocator.buffer(capacity: Self.joinLimit) }
        joined!.writeImmutableBuffer(buffer)
        if let promise { joinedPromises.append(promise) }
    }

    /// Passes the joined writes on as one; its promise completes theirs.
    private func writeJoined(context: ChannelHandlerContext) {
        guard let buffer = joined else { return }
        joined = nil
        var promise: EventLoopPromise<Void>?
        if joinedPromises.count == 1 {
            promise = joinedPromises[0]
        } else if !joinedPromises.isEmpty {
            let each = joinedPromises
            let all = context.eventLoop.makePromise(of: Void.self)
            all.futureResult.whenComplete { result in
                for promise in each { promise.completeWith(result) }
            }
            promise = all
        }
        joinedPromises.removeAll(keepingCapacity: true)
        context.write(wrapOutboundOut(buffer), promise: promise)
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
        writeJoined(context: context)
        context.flush()
    }
}
