import NIOCore
import NIOHTTP1

/// Answers requests the HTTP decoder refuses, then closes the connection: 431 when the header block
/// is over the limit, 400 for every other malformed or ambiguous request (request-smuggling shapes
/// included). Like NIO's own `HTTPServerProtocolErrorHandler`, but it tells an oversized header
/// block apart, never writes into a response already under way, and closes the way nginx's
/// lingering close does: it shuts its sending side, reads and drops what the client still sends
/// for up to `linger`, then closes. Closing at once would make the client's kernel answer the
/// unread bytes with a reset, which can destroy the error response before the client reads it.
final class ProtocolErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var responseInProgress = false
    private var lingering = false
    private let linger: TimeAmount
    private let counters: CounterBox

    init(counters: CounterBox, linger: TimeAmount = .seconds(2)) {
        self.counters = counters
        self.linger = linger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // While lingering, the decoder reports every further read as an error: drop them.
        if lingering { return }
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        lingering = true
        if !responseInProgress {
            let status: HTTPResponseStatus = parserError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
            counters.local(Int(status.code))
            let body = "\(status.code) \(status.reasonPhrase)\n"
            let headers = HTTPHeaders([
                ("Connection", "close"), ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", String(body.utf8.count)),
            ])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        // The proxy handler drops the request in flight; this handler closes the connection.
        context.fireErrorCaught(error)
        let channel = context.channel
        channel.close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: responseInProgress = true
        case .end: responseInProgress = false
        default: break
        }
        context.write(data, promise: promise)
    }
}
