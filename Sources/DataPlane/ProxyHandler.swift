import Logging
import NIOCore
import NIOHTTP1
import RouteModel

/// One HTTP/1.1 client connection: the requests `HTTP1ServerHandler` reads go to the connection's
/// `ExchangeRunner` one at a time, and its responses come back here to be written as bytes. This
/// is the connection's side of the exchange only (its pipelining, read holding and writes); what
/// happens to a request is `ProxyExchange`'s.
///
/// Pipelined requests that arrive while an exchange is under way wait in `queued`, and reads stop
/// until they are served; in the usual case (one request at a time) reads are never paused, so the
/// socket's read interest is never re-registered per request.
final class ProxyHandler: ChannelDuplexHandler, RemovableChannelHandler, ServedConnection, Downstream {
    typealias InboundIn = HTTP1RequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Until the handler leaves the pipeline: the runner holds this handler too.
    private var runner: ExchangeRunner?
    /// The connection's request reader: told where each response starts and ends.
    private let requestReader: HTTP1ServerHandler
    private let tunnelIdleTimeout: TimeAmount
    private let logger: Logger
    private var context: ChannelHandlerContext!
    private var loop: (any EventLoop)!
    private var framing = HTTP1ResponseFraming()
    /// The last upstream request head written, kept for its storage (see `HeadBuffers`).
    private var spareRequestHead: ByteBuffer?
    /// Parts of pipelined requests that arrived while an exchange was under way.
    private var queued: [HTTP1RequestPart] = []
    private var replayScheduled = false
    /// The client read in progress delivered a request part (a head, body or end).
    private var readDeliveredParts = false
    // Reads pause while the exchange asks for it, or while pipelined requests wait.
    private var exchangeHoldsReads = false
    private var gate = ReadGate()
    private var holdsReads: Bool { exchangeHoldsReads || !queued.isEmpty }

    init(services: ExchangeServices, settings: ProxySettings, requestReader: HTTP1ServerHandler) {
        self.requestReader = requestReader
        self.tunnelIdleTimeout = settings.tunnelIdleTimeout
        self.logger = services.logger
        runner = ExchangeRunner(carrier: .connection, downstream: self, services: services, settings: settings)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        loop = context.eventLoop
        if context.channel.isActive { runner?.connectionOpened() }
    }

    /// The context holds this handler, and this handler the context: without letting go here,
    /// every connection's handler and pipeline outlived it; and so does the runner?.
    func handlerRemoved(context: ChannelHandlerContext) {
        runner?.clientGone()
        runner = nil
        queued = []
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        runner?.connectionOpened()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        readDeliveredParts = true
        // Refused or cut: what the client still sends is dropped until the connection closes.
        if runner?.isClosed ?? true { return }
        if !queued.isEmpty {
            queued.append(part)
            return
        }
        if case .head = part, runner?.isIdle == false {
            // Pipelined: served once the current exchange ends.
            queued.append(part)
            return
        }
        dispatch(part)
    }

    private func dispatch(_ part: HTTP1RequestPart) {
        switch part {
        case .head(let head, let facts): runner?.receive(head, facts: facts)
        case .body(let body): runner?.receiveBody(body)
        case .end(let trailers): runner?.receiveEnd(trailers)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Bytes of a next request arrived (the reader holds them): it has the request-head
        // timeout from now, not what is left of the idle one.
        if !readDeliveredParts { runner?.nextRequestStarted() }
        readDeliveredParts = false
        runner?.clientReadComplete()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if gate.passes(held: holdsReads) { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        runner?.downstreamWritabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        runner?.clientGone()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("client connection error", metadata: ["error": "\(error)"])
        runner?.clientFailed()
        // A malformed request is answered and the connection closed by HTTP1ServerHandler.
        if !(error is HTTP1ProtocolError) { context.close(promise: nil) }
    }

    func beginDrain() { runner?.beginDrain() }

    func sweep(now: NIODeadline) { runner?.sweep(now: now) }

    /// Serves queued pipelined parts on the next tick (not inside the upstream's read that ended
    /// the exchange), until one starts an exchange that is not over yet.
    private func scheduleReplay() {
        guard !replayScheduled else { return }
        replayScheduled = true
        context.eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in
            replayScheduled = false
            guard context != nil else { return }  // removed meanwhile
            while !queued.isEmpty {
                if case .head = queued[0], runner?.isIdle == false { return }
                dispatch(queued.removeFirst())
            }
            if runner?.isIdle == true { runner?.awaitNextRequest() }
            holdReads(exchangeHoldsReads)
        }
    }

    // MARK: Downstream

    var eventLoop: any EventLoop { loop }
    private(set) lazy var clientAddress: String? = context.channel.remoteAddress?.ipAddress
    var isWritable: Bool { context?.channel.isWritable ?? false }

    func misdirectedHost(_ authority: String) -> String? { nil }

    func takeSpareHead() -> ByteBuffer? { spareRequestHead.take() }

    func keepSpareHead(_ buffer: ByteBuffer) { HeadBuffers.keep(buffer, as: &spareRequestHead) }

    func holdReads(_ hold: Bool) {
        exchangeHoldsReads = hold
        if gate.releases(held: holdsReads) { context?.read() }
    }

    func bodyWritePromise(bytes: Int) -> EventLoopPromise<Void>? { nil }

    func bodyDropped() {}

    func writeAnswer(_ answer: ProxyExchange.Answer, close: Bool, isHead: Bool) {
        var extra = HTTPHeaders()
        if let location = answer.location { extra.add(name: "Location", value: location) }
        requestReader.responseHeadWritten(status: answer.status.code)
        let bytes = LocalResponse.bytes(answer.status, body: answer.text, extra: extra, close: close, isHead: isHead, allocator: context.channel.allocator)
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        requestReader.responseEnded()
    }

    func writeInterim(_ head: UpstreamResponseHead) {
        context.write(wrapOutboundOut(framing.interim(head)), promise: nil)
    }

    func startResponse(_ head: UpstreamResponseHead, framing relay: ProxyExchange.Framing, hsts: HSTSPolicy?, edits: HeaderEdits?) {
        framing.start(head, framing: relay, hsts: hsts, edits: edits)
        requestReader.responseHeadWritten(status: UInt(head.status))
    }

    func relayBody(_ body: ByteBuffer) {
        // Flushed once per upstream socket read, in flushResponse.
        framing.body(body) { context.write(wrapOutboundOut($0), promise: nil) }
    }

    func endResponse(trailers: HTTPHeaders?) {
        framing.end(trailers: trailers) { context.write(wrapOutboundOut($0), promise: nil) }
        context.flush()
        requestReader.responseEnded()
    }

    func flushResponse() {
        framing.releaseHead { context.write(wrapOutboundOut($0), promise: nil) }
        context.flush()
    }

    func exchangeFinished(_ next: ProxyExchange.Next) {
        switch next {
        case .nextRequest:
            if !queued.isEmpty { scheduleReplay() }
        case .close, .streamEnded:
            queued = []
            context.close(promise: nil)
        }
    }

    func cut() { context.close(promise: nil) }

    func close() { context?.close(promise: nil) }

    func lingeringClose() {
        holdReads(false)
        let channel = context.channel
        channel.close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
    }

    func joinTunnel(_ connection: UpstreamPool.Connection, switching head: UpstreamResponseHead) -> Bool {
        TunnelHandler.join(client: context, reader: requestReader, upstream: connection, switching: head, idleTimeout: tunnelIdleTimeout, logger: logger)
    }

    func switchingCutShort(_ head: UpstreamResponseHead, rest: ByteBuffer?) {
        var bytes = ForwardedHeaders.switchingProtocolsBytes(head, allocator: context.channel.allocator)
        if var rest { bytes.writeBuffer(&rest) }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(bytes)).whenComplete { _ in channel.close(promise: nil) }
    }
}
