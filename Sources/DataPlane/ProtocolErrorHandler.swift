import NIOCore
import NIOHTTP1

/// Answers requests the HTTP decoder refuses, then closes the connection: 431 when the header block
/// is over the limit, 400 for every other malformed or ambiguous request (request-smuggling shapes
/// included).
///
/// Like NIO's own `HTTPServerProtocolErrorHandler`, but it tells an oversized header block apart,
/// and it keeps the order of pipelined exchanges: an error behind requests that are still being
/// answered waits until their responses are complete. It closes the way nginx's lingering close
/// does: it shuts its sending side, reads and drops what the client still sends for up to
/// `linger`, then closes. Closing at once would make the client's kernel answer the unread bytes
/// with a reset, which can destroy the error response before the client reads it.
///
/// Responses do not pass through it: the proxy handler writes them as bytes and reports where each
/// one starts and ends (`responseHeadWritten`, `responseEnded`).
final class ProtocolErrorHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    /// Requests whose heads passed through and whose responses have not ended yet.
    private var unanswered = 0
    /// A request's head passed through and its end has not yet.
    private var requestOpen = false
    private var responseInProgress = false
    private var deferred: HTTPParserError?
    private var lingering = false
    private let linger: TimeAmount
    private let counters: CounterBox

    private var context: ChannelHandlerContext?

    init(counters: CounterBox, linger: TimeAmount = .seconds(2)) {
        self.counters = counters
        self.linger = linger
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            unanswered += 1
            requestOpen = true
        case .end: requestOpen = false
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // While lingering or waiting, the decoder reports every further read as an error: drop them.
        if lingering || deferred != nil { return }
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if requestOpen {
            // The request being received is broken (a bad chunk): answer it if nothing else is
            // being answered before it, else just close.
            fail(context: context, parserError, answer: unanswered == 1 && !responseInProgress)
        } else if unanswered > 0 {
            // Garbage behind complete requests: answered in order, after their responses.
            deferred = parserError
        } else {
            fail(context: context, parserError, answer: true)
        }
    }

    private func fail(context: ChannelHandlerContext, _ error: HTTPParserError, answer: Bool) {
        lingering = true
        if answer {
            let status: HTTPResponseStatus = error == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
            counters.local(Int(status.code))
            let body = "\(status.code) \(status.reasonPhrase)\n"
            context.writeAndFlush(NIOAny(LocalResponse.bytes(status, body: body, close: true, allocator: context.channel.allocator)), promise: nil)
        }
        // The proxy handler drops the request in flight; this handler closes the connection.
        context.fireErrorCaught(error)
        let channel = context.channel
        channel.close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
    }

    /// A response's head went out (interim 1xx ones do not count).
    func responseHeadWritten(status: UInt) {
        if status >= 200 { responseInProgress = true }
    }

    /// A response is complete: an error waiting behind it may be answered now.
    func responseEnded() {
        guard !lingering, let context else { return }
        responseInProgress = false
        unanswered = max(0, unanswered - 1)
        if let error = deferred, unanswered == 0 {
            // Answered on the next tick, once the proxy handler has finished the exchange that
            // this `end` belongs to.
            deferred = nil
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.execute {
                let (handler, context) = loopBound.value
                handler.fail(context: context, error, answer: true)
            }
        }
    }
}
