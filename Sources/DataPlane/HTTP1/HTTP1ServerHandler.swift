import NIOCore
import NIOHTTP1

/// A request part read from a client's HTTP/1.1 connection. A head comes with what
/// `RequestFacts` made of it, which its body's framing was taken from.
enum HTTP1RequestPart {
    case head(HTTPRequestHead, Result<RequestFacts, RequestFacts.Refusal>)
    case body(ByteBuffer)
    case end(HTTPHeaders?)
}

/// What the handlers after `HTTP1ServerHandler` are told when the client's bytes stop being
/// HTTP/1.1: the exchange in flight is dropped. The server handler answers and closes.
struct HTTP1ProtocolError: Error {
    var refusal: RequestFacts.Refusal
}

/// Reads a client connection's requests with `HTTP1RequestParser` and `HTTP1BodyDecoder`, and answers
/// the ones it cannot read: the status the parser gave (400, 414, 431, 505), then the connection
/// closes. Body parts are slices of the bytes read, not copies.
///
/// Errors keep the order of pipelined exchanges: garbage behind requests that are still being
/// answered is answered after their responses. It closes the way nginx's lingering close does: it
/// shuts its sending side, reads and drops what the client still sends for up to `linger`, then
/// closes. Closing at once would make the client's kernel answer the unread bytes with a reset,
/// which can destroy the error response before the client reads it.
///
/// After a request that asks for an upgrade, bytes are no longer parsed: they are held for the
/// tunnel (`takeHeldBytes`) if the upstream switches protocols. After a head `RequestFacts` refused,
/// or the connection's last request, they are dropped; the proxy handler answers and closes.
///
/// Responses do not pass through it: the proxy handler writes them as bytes and reports where each
/// one starts and ends (`responseHeadWritten`, `responseEnded`).
///
/// It replaced NIO's `HTTPRequestDecoder` and a protocol-error handler: their parts cost one
/// HTTPHeaders and one String per field through llhttp's callbacks, and the decoder is not usable
/// outside a NIO pipeline, where the native engine needs the same parser.
final class HTTP1ServerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTP1RequestPart

    private enum State {
        case head
        case body(HTTP1BodyDecoder)
        /// After an upgrade request: what follows is the new protocol's.
        case upgraded
        /// After a refused head or unreadable bytes: nothing more is read as HTTP.
        case stopped
    }

    private var state = State.head
    private var parser: HTTP1RequestParser
    /// The fields of the head (or trailer section) being read; kept across requests.
    private var fields: [HTTP1FieldSpan] = []
    /// Bytes read and not yet handed on.
    private var buffered: ByteBuffer?
    /// The request being read asked for an upgrade.
    private var upgradeRequested = false
    /// The request being read is the connection's last (`Connection: close`, or HTTP/1.0 without
    /// keep-alive): what follows it is never served, so it is not read.
    private var lastRequest = false

    // Error answering, in the order of the exchanges.
    /// Requests whose heads were handed on and whose responses have not ended yet.
    private var unanswered = 0
    /// A request's head was handed on and its end has not been yet.
    private var requestOpen = false
    private var responseInProgress = false
    private var deferred: RequestFacts.Refusal?
    private var lingering = false
    private let linger: TimeAmount
    private let counters: CounterBox

    private var context: ChannelHandlerContext?

    init(maxHeadBytes: Int, maxFields: Int, counters: CounterBox, linger: TimeAmount = .seconds(2)) {
        parser = HTTP1RequestParser(maxHeadBytes: maxHeadBytes, maxFields: maxFields)
        self.counters = counters
        self.linger = linger
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// The bytes that followed an upgrade request, for the tunnel that replaces this handler.
    func takeHeldBytes() -> ByteBuffer? {
        guard case .upgraded = state, let bytes = buffered.take(), bytes.readableBytes > 0 else { return nil }
        return bytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        switch state {
        case .stopped: return
        case .head, .body, .upgraded: break
        }
        if var held = buffered.take(), held.readableBytes > 0 {
            held.discardReadBytes()
            held.writeBuffer(&incoming)
            buffered = held
        } else {
            buffered = incoming
        }
        if case .upgraded = state { return }
        do {
            try process(context: context)
        } catch {
            failed(context: context, error as? RequestFacts.Refusal ?? RequestFacts.Refusal(.badRequest, "unreadable request"))
        }
        if buffered?.readableBytes == 0 { buffered = nil }
    }

    /// Hands on every part the buffered bytes hold.
    private func process(context: ChannelHandlerContext) throws {
        while var bytes = buffered, bytes.readableBytes > 0 {
            switch state {
            case .head:
                let parsed = try bytes.withUnsafeReadableBytes { raw in
                    try parser.parseHead(raw, fields: &fields).map { line, length in (Self.head(raw, line, fields), length) }
                }
                guard let (head, length) = parsed else { return }
                // What is left in `fields` after a body is its trailers, or nothing.
                fields.removeAll(keepingCapacity: true)
                bytes.moveReaderIndex(forwardBy: length)
                buffered = bytes
                headArrived(head, context: context)
            case .body(var decoder):
                let step = try bytes.withUnsafeReadableBytes { raw in
                    try decoder.next(raw, trailers: &fields)
                }
                state = .body(decoder)
                switch step {
                case .data(let range):
                    let slice = bytes.getSlice(at: bytes.readerIndex + range.lowerBound, length: range.count)!
                    bytes.moveReaderIndex(forwardBy: range.upperBound)
                    buffered = bytes
                    context.fireChannelRead(wrapInboundOut(.body(slice)))
                case .needMore(let consumed):
                    bytes.moveReaderIndex(forwardBy: consumed)
                    buffered = bytes
                    return
                case .end(let consumed):
                    let trailers = fields.isEmpty ? nil : bytes.withUnsafeReadableBytes { Self.headers($0, fields) }
                    bytes.moveReaderIndex(forwardBy: consumed)
                    buffered = bytes
                    requestEnded(trailers, context: context)
                }
            case .upgraded, .stopped:
                return
            }
        }
        // A body that ends where its last bytes did: its end is known without more bytes.
        if case .body(var decoder) = state {
            if case .end = try decoder.next(UnsafeRawBufferPointer(start: nil, count: 0), trailers: &fields) {
                requestEnded(nil, context: context)
            }
        }
    }

    private func headArrived(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let facts = RequestFacts.inspect(head, maxFields: parser.maxFields)
        unanswered += 1
        requestOpen = true
        upgradeRequested = ForwardedHeaders.upgradeProtocol(head) != nil
        lastRequest = !head.isKeepAlive
        switch facts {
        case .success(let facts):
            switch facts.body {
            case .none: state = .head
            case .length(let length): state = .body(HTTP1BodyDecoder(length: length))
            case .chunked: state = .body(HTTP1BodyDecoder(chunkedWithTrailerLimits: parser.maxHeadBytes, fields: parser.maxFields))
            }
            context.fireChannelRead(wrapInboundOut(.head(head, .success(facts))))
            if facts.body == .none { requestEnded(nil, context: context) }
        case .failure:
            // Its framing is unknown: nothing after it can be read as a request.
            state = .stopped
            buffered = nil
            context.fireChannelRead(wrapInboundOut(.head(head, facts)))
        }
    }

    private func requestEnded(_ trailers: HTTPHeaders?, context: ChannelHandlerContext) {
        requestOpen = false
        if case .stopped = state {
        } else if upgradeRequested {
            state = .upgraded
        } else if lastRequest {
            state = .stopped
            buffered = nil
        } else {
            state = .head
        }
        context.fireChannelRead(wrapInboundOut(.end(trailers)))
    }

    private func failed(context: ChannelHandlerContext, _ error: RequestFacts.Refusal) {
        state = .stopped
        buffered = nil
        if requestOpen {
            // The request being received is broken (a bad chunk): answered if nothing else is
            // being answered before it, else the connection just closes.
            fail(context: context, error, answer: unanswered == 1 && !responseInProgress)
        } else if unanswered > 0 {
            // Garbage behind complete requests: answered in order, after their responses.
            deferred = error
        } else {
            fail(context: context, error, answer: true)
        }
    }

    private func fail(context: ChannelHandlerContext, _ refusal: RequestFacts.Refusal, answer: Bool) {
        lingering = true
        if answer {
            counters.local(Int(refusal.status.code))
            let body = "\(refusal.status.code) \(refusal.reason)\n"
            context.writeAndFlush(
                NIOAny(LocalResponse.bytes(refusal.status, body: body, close: true, allocator: context.channel.allocator)), promise: nil)
        }
        // The proxy handler drops the request in flight; this handler closes the connection.
        context.fireErrorCaught(HTTP1ProtocolError(refusal: refusal))
        let channel = context.channel
        channel.close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        state = .stopped
        buffered = nil
        context.fireChannelInactive()
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
            // this end belongs to.
            deferred = nil
            context.eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in
                guard let context = self.context else { return }
                fail(context: context, error, answer: true)
            }
        }
    }

    // MARK: Parts from offsets

    private static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    private static func headers(_ bytes: UnsafeRawBufferPointer, _ fields: [HTTP1FieldSpan]) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.reserveCapacity(fields.count)
        for field in fields { headers.add(name: string(bytes, field.name), value: string(bytes, field.value)) }
        return headers
    }

    private static func head(_ bytes: UnsafeRawBufferPointer, _ line: HTTP1RequestLine, _ fields: [HTTP1FieldSpan]) -> HTTPRequestHead {
        HTTPRequestHead(
            version: HTTPVersion(major: 1, minor: line.minorVersion), method: HTTPMethod(rawValue: string(bytes, line.method)),
            uri: string(bytes, line.target), headers: headers(bytes, fields))
    }
}

extension HTTP1RequestParser.Outcome {
    /// The complete head's request line and length, transformed; nil while incomplete.
    func map<T>(_ transform: (HTTP1RequestLine, Int) -> T) -> T? {
        guard case .complete(let line, let length) = self else { return nil }
        return transform(line, length)
    }
}
