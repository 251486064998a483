import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import RouteModel

/// Proxies one client connection's HTTP/1.1 requests, one at a time, or one HTTP/2 stream's
/// request (see `HTTP2ProxyConnection`, which calls it and carries its frames). Pipelined requests that
/// arrive while an exchange is under way wait in `queued`, and reads stop until they are served; in
/// the usual case (one request at a time) reads are never paused, so the socket's read interest is
/// never re-registered per request, which NIO's pipelining handler did with two epoll_ctl calls.
///
/// Bodies stream both ways with backpressure: the client is not read while the upstream cannot take
/// more (or is still connecting), and the upstream is not read while the client cannot. Nothing is
/// buffered beyond what one socket read delivered.
final class ProxyHandler: ChannelDuplexHandler, RemovableChannelHandler, ServedConnection {
    typealias InboundIn = HTTP1RequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    struct Settings {
        var scheme = "http"
        var serverPort = 80 {
            didSet { serverPortText = String(serverPort) }
        }
        /// `serverPort` as X-Forwarded-Port carries it, made once per connection.
        private(set) var serverPortText = "80"
        var httpsPort = 443
        var maxConnectAttempts = 3
        /// More request header fields than this get 431.
        var maxRequestHeaderFields = 100
        var requestHeaderTimeout = TimeAmount.seconds(60)
        var idleTimeout = TimeAmount.seconds(60)
        var requestBodyTimeout = TimeAmount.seconds(60)
        var upstreamReadTimeout = TimeAmount.seconds(60)
        /// An upgraded connection (WebSocket) with no bytes either way for this long is closed.
        var tunnelIdleTimeout = TimeAmount.hours(1)
        /// On HTTP/2 over TLS: the connection's SNI name (`.some(nil)` without one) and the
        /// certificates, to refuse requests for hosts the connection's certificate does not cover.
        var tlsServerName: String??
        var certificates: CertificateStore?
        /// On HTTP/2: the connection's client address, worked out once for all its streams (a
        /// stream channel has no address of its own).
        var connectionClientAddress: String?
    }

    private enum State {
        /// Waiting for a request head.
        case idle
        /// Answered locally; the rest of the request body is read and dropped.
        case respondedLocally
        /// Connecting to an upstream; request parts that already arrived wait in `pending`.
        case connecting
        /// Exchanging with an upstream.
        case forwarding(UpstreamPool.Connection)
        /// The upstream answered 101 to an upgrade request; the tunnel is joined once its head is
        /// complete.
        case upgrading(UpstreamPool.Connection, UpstreamResponseHead)
        /// Joined to the upstream as a byte tunnel; this handler has left the pipeline.
        case tunnelled
        case closed
    }

    private let store: TableStore
    private let pool: UpstreamPool
    private let balancer: LoadBalancer
    private let counters: CounterBox
    private let observability: WorkerObservability
    private let settings: Settings
    private let logger: Logger
    /// On HTTP/1.1: the client connection's pipeline, from `handlerAdded`.
    private var context: ChannelHandlerContext!
    /// On HTTP/2: the stream served and its connection. The handler is in no pipeline then.
    private let stream: (connection: HTTP2ProxyConnection, id: HTTP2StreamID)?
    /// On an HTTP/1.1 connection every response goes out as bytes this handler wrote (there is no
    /// response encoder); `requestReader` is told where each one starts and ends. An HTTP/2
    /// stream writes HEADERS and DATA frames through its connection.
    private var isHTTP2: Bool { stream != nil }
    private var eventLoop: any EventLoop { stream?.connection.eventLoop ?? context.eventLoop }
    /// The allocator every NIO channel has by default; one per handler, not one lookup per write.
    private let allocator = ByteBufferAllocator()
    private var state = State.idle

    // The request in flight.
    /// What metrics and the access log get when the exchange ends.
    private var exchange: ExchangeRecord?
    private var pending: [HTTPClientRequestPart] = []
    private var requestComplete = false
    private var responseStarted = false
    private var keepAlive = true
    private var clientIsHTTP10 = false
    /// The upstream's response may be followed by another on its connection.
    private var responseReusable = true
    /// The relayed response is chunked toward the client.
    private var relayChunked = false
    /// The relayed response's head, until body bytes join it or the upstream read ends.
    private var heldHead: ByteBuffer?
    /// The connection's request reader, on HTTP/1.1: told where responses start and end.
    private let requestReader: HTTP1ServerHandler?
    private var cluster: Cluster?
    /// The request head for the upstream, as bytes, and how its body is framed.
    private var upstreamHead: ByteBuffer?
    /// The last request head and response head written, kept for their storage: once their
    /// writes complete nothing else holds them, and the next exchange on the connection writes
    /// its heads into them instead of allocating two buffers (four mallocs) per request.
    private var spareRequestHead: ByteBuffer?
    private var spareResponseHead: ByteBuffer?
    private var upstreamChunked = false
    private var requestIsHead = false
    /// The protocol the request asks to switch to (`Upgrade`), if any.
    private var upgrade: String?
    /// Strict-Transport-Security for the response, on HTTPS.
    private var hsts: HSTSPolicy?
    private var tried: [Endpoint] = []
    /// The route's body limit, and what the request body has carried so far.
    private var bodyLimit: Int64?
    private var bodyReceived: Int64 = 0
    /// The endpoint counted as busy for least-request until the exchange ends.
    private var startedEndpoint: Endpoint? {
        didSet {
            guard countedInFlight, let oldValue else { return }
            countedInFlight = false
            balancer.finished(oldValue)
        }
    }
    /// `startedEndpoint` is counted as busy: only least-request reads the counts.
    private var countedInFlight = false
    /// Per connection, computed once.
    /// From the connection: an HTTP/2 stream channel has no addresses of its own.
    private lazy var clientAddress: String? = settings.connectionClientAddress ?? context.channel.remoteAddress?.ipAddress
    // Deadlines, checked by the loop's sweep (`sweep(now:)`) rather than by a timer each.
    /// While waiting for a request head: once it passes, the connection closes. HTTP/2 streams
    /// never set it.
    private var headerDeadline: NIODeadline?
    /// `headerDeadline` is the idle one (no byte of a next request yet): the first byte that
    /// arrives replaces it with the request-head deadline.
    private var headerDeadlineIsIdle = false
    /// The client read in progress delivered a request part (a head, body or end).
    private var readDeliveredParts = false
    /// While a request body is expected: the latest time its next bytes may arrive. Not checked
    /// while the exchange holds reads (the wait is then the upstream's, not the client's).
    private var bodyDeadline: NIODeadline?
    /// While an upstream response body is relayed: the latest time its next bytes may arrive.
    /// Not checked while the client's backpressure holds the upstream's reads.
    private var upstreamReadDeadline: NIODeadline?
    private var upstreamReadsHeld = false

    // HTTP/2 only.
    /// Set by the connection while this stream's upstream waits for the client read to complete.
    var awaitsClientReadComplete = false
    /// The exchange is routed and connects at the end of the client read (`clientReadComplete`).
    private var connectsAtReadEnd = false
    /// The stream's inbound window, topped up while the upstream takes the request body.
    private var streamWindow = InboundWindow(target: HTTP2ProxyConnection.streamWindowTarget)
    /// Request body bytes the connection counted against its window for this stream that the
    /// upstream has not taken yet (its socket has not) and that were not dropped.
    var uncreditedBody = 0
    /// The response's HEADERS and latest DATA, held until more follows or the upstream read ends,
    /// so that the last frame carries END_STREAM.
    private var heldHeaders: HPACKHeaders?
    private var heldData: ByteBuffer?
    /// Bytes of DATA frames written and not yet sent (waiting for the peer's window or the socket).
    private var unsentData = 0
    /// Above this many unsent bytes the upstream is not read; below half of it, again.
    private static let unsentDataLimit = 64 << 10

    /// Parts of pipelined requests that arrived while an exchange was under way.
    private var queued: [HTTP1RequestPart] = []
    private var replayScheduled = false

    // Backpressure on the client side: reads pause while the exchange asks for it, or while
    // pipelined requests wait.
    private var exchangeHoldsReads = false
    private var gate = ReadGate()
    private var holdReads: Bool { exchangeHoldsReads || !queued.isEmpty }

    init(
        store: TableStore, pool: UpstreamPool, balancer: LoadBalancer, counters: CounterBox, observability: WorkerObservability,
        settings: Settings, logger: Logger, requestReader: HTTP1ServerHandler? = nil,
        stream: (connection: HTTP2ProxyConnection, id: HTTP2StreamID)? = nil
    ) {
        self.requestReader = requestReader
        self.stream = stream
        self.store = store
        self.pool = pool
        self.balancer = balancer
        self.counters = counters
        self.observability = observability
        self.settings = settings
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armHeaderTimeout() }
    }

    /// The context holds this handler, and this handler the context: without
    /// letting go here, every connection's handler and pipeline outlived it, about 1.5 KB each.
    func handlerRemoved(context: ChannelHandlerContext) {
        state = .closed
        queued = []
        headerDeadline = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        armHeaderTimeout()
        context.fireChannelActive()
    }

    /// From accept: the first request head has `requestHeaderTimeout` to arrive.
    private func armHeaderTimeout() {
        // An HTTP/2 stream exists only once its request headers arrived: there is no head to wait for.
        guard !isHTTP2 else { return }
        headerDeadline = .now() + settings.requestHeaderTimeout
        headerDeadlineIsIdle = false
    }

    /// After a response: the connection may stay idle for `idleTimeout`.
    private func armIdleTimeout() {
        guard !isHTTP2 else { return }
        headerDeadline = .now() + settings.idleTimeout
        headerDeadlineIsIdle = true
    }

    func sweep(now: NIODeadline) {
        if let deadline = headerDeadline, deadline <= now {
            headerDeadline = nil
            guard case .idle = state else { return }
            // No request is in flight (a partial head is not one yet), so there is nothing to
            // answer: like nginx's client_header_timeout and keepalive_timeout, the connection closes.
            counters.timedOut(headerDeadlineIsIdle ? .idle : .requestHeader)
            state = .closed
            context.close(promise: nil)
            return
        }
        if let deadline = bodyDeadline, deadline <= now, !holdReads {
            bodyDeadline = nil
            requestBodyTimedOut()
            return
        }
        if let deadline = upstreamReadDeadline, deadline <= now, !upstreamReadsHeld {
            upstreamReadDeadline = nil
            upstreamReadTimedOut()
        }
    }

    /// The client stopped sending its request body: 408 if nothing was answered yet, else the
    /// exchange is cut. Either way the connection (or stream) carries nothing more.
    private func requestBodyTimedOut() {
        counters.timedOut(.requestBody)
        keepAlive = false
        switch state {
        case .connecting, .forwarding:
            if !responseStarted {
                dropUpstream()
                respondLocally(.requestTimeout, body: "408 request body timeout\n")
                lingeringClose()
                return
            }
        case .respondedLocally, .idle, .upgrading, .tunnelled, .closed:
            break
        }
        dropUpstream()
        state = .closed
        closeClient()
    }

    /// The upstream stopped sending its response body: the exchange is cut (the client sees a
    /// response end early: a closed connection, or a reset stream).
    private func upstreamReadTimedOut() {
        guard case .forwarding = state else { return }
        counters.timedOut(.upstreamRead)
        logger.info("upstream read timeout", metadata: ["cluster": "\(cluster?.name ?? "")"])
        dropUpstream()
        state = .closed
        closeClient()
    }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        readDeliveredParts = true
        // Refused or cut: what the client still sends is dropped until the connection closes.
        if case .closed = state { return }
        if !queued.isEmpty {
            queued.append(part)
            return
        }
        if case .head = part, !isIdle {
            // Pipelined: served once the current exchange ends.
            queued.append(part)
            return
        }
        dispatch(part)
    }

    private func dispatch(_ part: HTTP1RequestPart) {
        switch part {
        case .head(let head, let facts): receive(head, facts: facts)
        case .body(let body): receiveBodyPart(.body(.byteBuffer(body)))
        case .end(let trailers): receiveEnd(trailers)
        }
    }

    private var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    /// One request part of an HTTP/2 stream (heads come through `receive`).
    func dispatch(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head): receive(head)
        case .body(let body): receiveBodyPart(.body(.byteBuffer(body)))
        case .end(let trailers): receiveEnd(trailers)
        }
    }

    /// A request head. `bodyFollows` is known on HTTP/2 (the HEADERS frame did not end the stream),
    /// nil on HTTP/1.1, where the head's own framing says; there the reader worked out `facts`.
    func receive(_ head: HTTPRequestHead, bodyFollows: Bool? = nil, facts inspected: Result<RequestFacts, RequestFacts.Refusal>? = nil) {
        guard case .idle = state else { return }
        headerDeadline = nil
        // Host, path, method and request id are for the access log only: not read without one.
        exchange =
            observability.accessLog == nil
            ? ExchangeRecord(started: .now())
            : ExchangeRecord(
                started: .now(), method: head.method.rawValue, host: head.headers.first(name: "host") ?? "", path: head.uri,
                requestID: head.headers.first(name: "x-request-id"))
        requestComplete = false
        responseStarted = false
        // An HTTP/2 stream carries one exchange; the connection is not this handler's to close.
        keepAlive = isHTTP2 || head.isKeepAlive
        clientIsHTTP10 = head.version == .http1_0
        heldHead = nil
        heldHeaders = nil
        heldData = nil
        requestIsHead = head.method == .HEAD
        // After an upgrade request the decoder parses no further requests: if the upstream does
        // not switch protocols, the connection closes after its answer.
        hsts = nil
        upgrade = ForwardedHeaders.upgradeProtocol(head)
        if upgrade != nil { keepAlive = false }
        tried.removeAll(keepingCapacity: true)
        pending = []
        let facts: RequestFacts
        switch inspected ?? RequestFacts.inspect(head, maxFields: settings.maxRequestHeaderFields) {
        case .success(let inspected):
            facts = inspected
            // The client has `requestBodyTimeout` between reads of the body it announced.
            if isHTTP2 ? bodyFollows == true : facts.body != .none { bodyDeadline = .now() + settings.requestBodyTimeout }
        case .failure(let refusal):
            // Nothing of a refused head is used, and the connection carries nothing after it.
            keepAlive = false
            respondLocally(refusal.status, body: "\(refusal.status.code) \(refusal.reason)\n")
            if !isHTTP2 || bodyFollows == true { lingeringClose() }
            return
        }
        if let serverName = settings.tlsServerName, let certificates = settings.certificates, facts.authority != stream?.connection.coveredHost,
            !Self.names(facts.authority, serverName)
        {
            let host = HTTPSyntax.hostWithoutPort(facts.authority).lowercased()
            if !certificates.current.sameCertificate(for: serverName, as: host) {
                // A client reusing this connection for another host (HTTP/2 coalescing) must not get an
                // answer under the wrong certificate: RFC 9110 §15.5.20.
                respondLocally(.misdirectedRequest, body: "421 misdirected request: this connection's certificate does not cover \(host)\n")
                return
            }
            stream?.connection.coveredHost = facts.authority
        }
        // Routed inside the store's reference, which reads its table in place: copying the table
        // out retained and released each of its arrays and dictionaries, per request.
        switch store.current.decide(facts, isTLS: settings.scheme == "https", httpsPort: settings.httpsPort) {
        case .respond(let status, let reason):
            if status == .badRequest { keepAlive = false }
            respondLocally(status, body: "\(status.code) \(reason)\n")
        case .redirect(let location):
            var headers = HTTPHeaders()
            headers.add(name: "Location", value: location)
            respondLocally(.permanentRedirect, body: "", headers: headers)
        case .forward(let cluster, let backend, let target, let hsts):
            self.hsts = hsts
            exchange?.namespace = backend.source.namespace
            exchange?.ingress = backend.source.ingress
            exchange?.service = cluster.service
            bodyLimit = backend.options.maxRequestBodyBytes
            bodyReceived = 0
            if let limit = bodyLimit, case .length(let length) = facts.body, length > limit {
                // The body is not read, so the connection cannot carry another request.
                keepAlive = false
                respondLocally(.payloadTooLarge, body: "413 request body too large\n")
                lingeringClose()
                return
            }
            self.cluster = cluster
            var spare = stream?.connection.takeSpareHead() ?? spareRequestHead.take()
            var bytes = Self.headBuffer(reusing: &spare, capacity: 512, allocator: allocator)
            // HTTP/2 says whether a body follows by the HEADERS frame's END_STREAM; without a
            // Content-Length it goes upstream chunked.
            let body = bodyFollows == true && facts.body == .none ? .chunked : facts.body
            let generated = ForwardedHeaders.writeUpstreamRequest(
                head, authority: facts.authority, target: target, body: body, clientAddress: clientAddress, scheme: settings.scheme,
                serverPort: settings.serverPortText, upgrade: upgrade, requestID: balancer.nextRequestID, into: &bytes)
            upstreamHead = bytes
            upstreamChunked = body == .chunked
            if let generated, observability.accessLog != nil { exchange?.requestID = generated.text }
            state = .connecting
            setHoldReads(true)
            // An HTTP/2 stream connects once the read that opened it is processed: a stream the
            // same read resets (or makes the server reset) never costs an upstream connection.
            if isHTTP2 { connectsAtReadEnd = true } else { connect() }
        }
    }

    /// Whether a Host field names the connection's SNI name (lowercase), with or without a port:
    /// the usual case, which needs no certificate lookup.
    static func names(_ field: String, _ serverName: String?) -> Bool {
        guard let serverName else { return false }
        var expected = serverName.utf8.makeIterator()
        var seen = field.utf8.makeIterator()
        while let byte = seen.next() {
            guard let want = expected.next() else { return byte == UInt8(ascii: ":") }
            if HTTPSyntax.lowercase(byte) != want { return false }
        }
        return expected.next() == nil
    }

    private func receiveBodyPart(_ part: HTTPClientRequestPart) {
        if case .body(.byteBuffer(let buffer)) = part { exchange?.bytesIn += buffer.readableBytes }
        if bodyDeadline != nil { bodyDeadline = .now() + settings.requestBodyTimeout }
        if let limit = bodyLimit, case .body(.byteBuffer(let buffer)) = part {
            bodyReceived += Int64(buffer.readableBytes)
            if bodyReceived > limit {
                bodyOverLimit()
                return
            }
        }
        switch state {
        case .connecting: pending.append(part)
        case .forwarding(let connection):
            // Flushed once per socket read, in channelReadComplete.
            connection.handler.write(part, flush: false, promise: bodyPromise(part))
            if !connection.channel.isWritable { setHoldReads(true) }
        case .idle, .respondedLocally, .upgrading, .tunnelled, .closed:
            bodyTaken(uncreditedBody)
        }
    }

    /// HTTP/2: a body part's write completes when the upstream's socket has taken it (or the
    /// upstream is gone); then its bytes go back to the connection's window.
    private func bodyPromise(_ part: HTTPClientRequestPart) -> EventLoopPromise<Void>? {
        guard isHTTP2, case .body(.byteBuffer(let buffer)) = part else { return nil }
        let bytes = buffer.readableBytes
        let promise = eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { [self] _ in bodyTaken(bytes) }
        return promise
    }

    /// HTTP/2: `bytes` of the request body left this stream's hands.
    private func bodyTaken(_ bytes: Int) {
        guard let stream else { return }
        let taken = min(bytes, uncreditedBody)
        guard taken > 0 else { return }
        uncreditedBody -= taken
        stream.connection.consumed(taken)
    }

    /// A chunked body passed the route's limit while streaming: drop the upstream exchange and
    /// answer 413 if nothing was answered yet; the connection closes either way.
    private func bodyOverLimit() {
        bodyLimit = nil
        keepAlive = false
        dropUpstream()
        if responseStarted {
            state = .closed
            closeClient()
        } else {
            respondLocally(.payloadTooLarge, body: "413 request body too large\n")
            lingeringClose()
        }
    }

    /// Stops sending, drops whatever the client still sends for a moment, then closes: closing at
    /// once would answer the client's unread bytes with a reset that can destroy our response.
    private func lingeringClose() {
        state = .closed
        if let stream {
            // The response ended the stream on this side; RST_STREAM NO_ERROR asks the client to
            // stop sending the body (RFC 9113 §8.1).
            stream.connection.reset(stream.id, .noError)
            return
        }
        setHoldReads(false)
        let channel = context.channel
        channel.close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
    }

    private func receiveEnd(_ trailers: HTTPHeaders?) {
        requestComplete = true
        bodyDeadline = nil
        switch state {
        case .connecting: pending.append(.end(trailers))
        case .forwarding(let connection):
            connection.handler.write(.end(trailers), flush: true)
            startResponseTimer()
        case .respondedLocally:
            finishExchange()
        case .idle, .upgrading, .tunnelled, .closed: break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !readDeliveredParts, headerDeadlineIsIdle, headerDeadline != nil, isIdle {
            // Bytes of a next request arrived (the decoder holds them): it has the request-head
            // timeout from now, not what is left of the idle one.
            armHeaderTimeout()
        }
        readDeliveredParts = false
        clientReadComplete()
        context.fireChannelReadComplete()
    }

    /// The request parts of one client read are written: the upstream gets them in one flush.
    func clientReadComplete() {
        if connectsAtReadEnd {
            connectsAtReadEnd = false
            if case .connecting = state { connect() }
            return
        }
        if case .forwarding(let connection) = state { connection.handler.flush() }
    }

    func read(context: ChannelHandlerContext) {
        if gate.passes(held: holdReads) { context.read() }
    }

    private func setHoldReads(_ hold: Bool) {
        // The client's gap is counted from when the exchange takes its bytes again.
        if !hold, exchangeHoldsReads, bodyDeadline != nil { bodyDeadline = .now() + settings.requestBodyTimeout }
        exchangeHoldsReads = hold
        if isHTTP2 {
            // On HTTP/2 holding reads means withholding the stream's window.
            topUpStreamWindow()
            return
        }
        if gate.releases(held: holdReads) { context?.read() }
    }

    /// HTTP/2: the stream's inbound window changed (DATA arrived, or an update went out).
    /// Recorded while reads are held too: the update goes out when the hold ends.
    func inboundWindowChanged(to size: Int) {
        streamWindow.record(size)
        topUpStreamWindow()
    }

    /// Sends the stream's window update, if one is due and the exchange takes more body now.
    private func topUpStreamWindow() {
        guard let stream, !holdReads, !requestComplete, let increment = streamWindow.topUp() else { return }
        stream.connection.write(HTTP2Frame(streamID: stream.id, payload: .windowUpdate(windowSizeIncrement: increment)))
        stream.connection.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        downstreamWritabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    /// Whether the client side can take more of the response now.
    private var downstreamIsWritable: Bool {
        guard let stream else { return context.channel.isWritable }
        return stream.connection.isWritable && unsentData < Self.unsentDataLimit
    }

    func downstreamWritabilityChanged() {
        if case .forwarding(let connection) = state { holdUpstreamReads(connection, !downstreamIsWritable) }
    }

    /// The client's backpressure on the upstream's reads; the upstream's gap is counted from
    /// when its reads resume.
    private func holdUpstreamReads(_ connection: UpstreamPool.Connection, _ hold: Bool) {
        if !hold, upstreamReadsHeld, upstreamReadDeadline != nil { upstreamReadDeadline = .now() + settings.upstreamReadTimeout }
        upstreamReadsHeld = hold
        connection.handler.setHoldReads(hold)
    }

    func channelInactive(context: ChannelHandlerContext) {
        clientGone()
        context.fireChannelInactive()
    }

    /// The client connection closed, or (HTTP/2) the stream did: reset, or both sides ended.
    func clientGone() {
        // The client left mid-exchange: counted with the status it got, or 499 (nginx's "client
        // closed request") when nothing was answered yet.
        if exchange != nil, exchange?.status == 0 { exchange?.status = 499 }
        recordExchange()
        // The upstream connection cannot be reused.
        dropUpstream()
        state = .closed
        startedEndpoint = nil
        headerDeadline = nil
        bodyDeadline = nil
        upstreamReadDeadline = nil
    }

    /// Ends the client side for good: the connection on HTTP/1.1, the stream (RST_STREAM) on HTTP/2.
    private func closeClient() {
        if let stream {
            stream.connection.reset(stream.id, .internalError)
        } else {
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("client connection error", metadata: ["error": "\(error)"])
        dropUpstream()
        headerDeadline = nil
        state = .closed
        // A malformed request is answered and the connection closed by HTTP1ServerHandler.
        if !(error is HTTP1ProtocolError) { context.close(promise: nil) }
    }

    /// Closes the upstream connection of an exchange that cannot finish cleanly.
    private func dropUpstream() {
        switch state {
        case .forwarding(let connection), .upgrading(let connection, _):
            connection.handler.owner = nil
            connection.channel.close(promise: nil)
        case .idle, .respondedLocally, .connecting, .tunnelled, .closed:
            break
        }
    }

    /// Graceful drain: an idle connection closes now; one with a request in flight closes after
    /// its response (which says `Connection: close` if its head is not out yet).
    func beginDrain() {
        keepAlive = false
        if case .idle = state {
            state = .closed
            context.close(promise: nil)
        }
    }

    // MARK: Upstream side

    private func connect() {
        guard let cluster, let endpoint = balancer.pick(cluster, skipping: tried) else {
            respondLocally(.badGateway, body: "502 upstream connect error\n")
            return
        }
        // A pooled connection is taken at once, without a future and its callback.
        if upgrade == nil, let connection = pool.takeIdle(endpoint, timeouts: cluster.timeouts) {
            attach(connection, endpoint: endpoint, cluster: cluster)
            return
        }
        pool.connect(endpoint, timeouts: cluster.timeouts).assumeIsolatedUnsafeUnchecked().whenComplete { [self] result in
            guard case .connecting = state else {
                if case .success(let connection) = result { pool.release(connection) }
                return
            }
            switch result {
            case .success(let connection):
                attach(connection, endpoint: endpoint, cluster: cluster)
            case .failure(let error):
                counters.value.connectFailures += 1
                observability.connectErrors.increment()
                if balancer.connectFailed(endpoint) {
                    counters.value.ejections += 1
                    observability.ejections.increment()
                    logger.warning("endpoint ejected after consecutive connect failures", metadata: ["endpoint": "\(endpoint)", "cluster": "\(cluster.name)"])
                }
                logger.info(
                    "upstream connect failed",
                    metadata: ["endpoint": "\(endpoint)", "cluster": "\(cluster.name)", "error": "\(error)"])
                // Only failed endpoints are remembered: an array per exchange otherwise.
                tried.append(endpoint)
                if tried.count < min(settings.maxConnectAttempts, cluster.endpoints.count) {
                    counters.value.retries += 1
                    observability.retries.increment()
                    connect()
                } else if error is ChannelError, case .connectTimeout = error as! ChannelError {
                    respondLocally(.gatewayTimeout, body: "504 upstream connect timeout\n")
                } else {
                    respondLocally(.badGateway, body: "502 upstream connect error\n")
                }
            }
        }
    }

    /// The exchange takes `connection`: the request head goes out, with the body parts that
    /// arrived while connecting.
    private func attach(_ connection: UpstreamPool.Connection, endpoint: Endpoint, cluster: Cluster) {
        balancer.connectSucceeded(endpoint)
        startedEndpoint = endpoint
        if cluster.loadBalancing == .leastRequest {
            balancer.started(endpoint)
            countedInFlight = true
        }
        connection.handler.owner = self
        state = .forwarding(connection)
        connection.handler.writeHead(upstreamHead!, chunked: upstreamChunked, isHead: requestIsHead, flush: pending.isEmpty)
        for (index, part) in pending.enumerated() {
            connection.handler.write(part, flush: index == pending.count - 1, promise: bodyPromise(part))
        }
        pending = []
        if requestComplete { startResponseTimer() }
        setHoldReads(!connection.channel.isWritable)
    }

    /// The timer lives with the upstream connection, which the pool reuses across exchanges: a
    /// timer per exchange would add and remove a task in the loop's timer heap for every request.
    /// The connection disarms it whenever it changes hands.
    private func startResponseTimer() {
        guard let cluster, cluster.timeouts.responseHeaderMilliseconds > 0, !responseStarted,
            case .forwarding(let connection) = state
        else { return }
        connection.handler.armResponseTimer(in: .milliseconds(Int64(cluster.timeouts.responseHeaderMilliseconds)))
    }

    /// From the upstream connection's timer, which only runs while this handler owns the connection.
    func responseTimeout() {
        guard !responseStarted, case .forwarding = state else { return }
        dropUpstream()
        respondLocally(.gatewayTimeout, body: "504 upstream timeout\n")
    }

    private func disarmResponseTimer() {
        switch state {
        case .forwarding(let connection), .upgrading(let connection, _): connection.handler.responseTimer.disarm()
        case .idle, .respondedLocally, .connecting, .tunnelled, .closed: break
        }
    }

    func upstreamHead(_ head: UpstreamResponseHead) {
        guard case .forwarding(let connection) = state else { return }
        if head.status == 101 {
            disarmResponseTimer()
            guard upgrade != nil else {
                // 101 to a request that asked for no upgrade: the upstream broke the protocol.
                dropUpstream()
                respondLocally(.badGateway, body: "502 upstream switched protocols unasked\n")
                return
            }
            responseStarted = true
            counters.upstream(101)
            exchange?.status = 101
            if observability.accessLog != nil { exchange?.upstream = startedEndpoint?.description }
            recordExchange()
            state = .upgrading(connection, head)
            // Joined on the next tick: the upstream's handler is still on the stack here, and it
            // holds the bytes after the 101 until it is removed.
            context.eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in joinTunnel(connection, switching: head) }
            return
        }
        if head.status < 200 {
            // Interim (100 Continue, 103 Early Hints): relayed to an HTTP/1.1 client as it is; the
            // final response follows on the same exchange.
            if !isHTTP2 {
                var buffer = allocator.buffer(capacity: head.bytes.readableBytes + 16)
                head.writeStatusLine(into: &buffer)
                head.writeForwardedFields(into: &buffer)
                buffer.writeStaticString("\r\n")
                context.write(NIOAny(buffer), promise: nil)
            }
            return
        }
        responseStarted = true
        responseReusable = head.reusable
        disarmResponseTimer()
        if head.framing != .none { upstreamReadDeadline = .now() + settings.upstreamReadTimeout }
        counters.upstream(head.status)
        exchange?.status = UInt16(head.status)
        if observability.accessLog != nil { exchange?.upstream = startedEndpoint?.description }
        let addHSTS = hsts != nil && !head.hasStrictTransportSecurity
        guard !isHTTP2 else {
            heldHeaders = head.http2Headers(hsts: addHSTS ? hsts : nil)
            return
        }
        // HTTP/1.1 client: the head is written as bytes, with the client's own framing. Room is
        // made for a small body, which joins it (see `emit`).
        var room = 0
        if case .contentLength(let length) = head.framing, length <= Self.joinLimit { room = length }
        var buffer = Self.headBuffer(reusing: &spareResponseHead, capacity: head.bytes.readableBytes + 96 + room, allocator: allocator)
        head.writeStatusLine(into: &buffer)
        head.writeForwardedFields(into: &buffer)
        relayChunked = false
        switch head.framing {
        case .none, .contentLength: break
        case .chunked, .untilClose:
            if clientIsHTTP10 {
                // No chunked coding for HTTP/1.0: the body ends with the connection.
                keepAlive = false
            } else {
                relayChunked = true
                buffer.writeStaticString("Transfer-Encoding: chunked\r\n")
            }
        }
        if addHSTS, let hsts { buffer.writeHTTPField("Strict-Transport-Security", hsts.headerValue) }
        if !keepAlive {
            buffer.writeStaticString("Connection: close\r\n")
        } else if clientIsHTTP10 {
            buffer.writeStaticString("Connection: keep-alive\r\n")
        }
        buffer.writeStaticString("\r\n")
        requestReader?.responseHeadWritten(status: UInt(head.status))
        heldHead = buffer
    }

    /// Body bytes up to this size are copied into the held head.
    private static let joinLimit = 16 << 10

    /// An empty buffer of at least `capacity`, in the spare's storage when it is large enough.
    /// Writing into storage that a pending write still holds copies it first (ByteBuffer is
    /// copy-on-write), so a spare whose write has not completed costs what a new buffer does.
    private static func headBuffer(reusing spare: inout ByteBuffer?, capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard var buffer = spare.take(), buffer.capacity >= capacity else { return allocator.buffer(capacity: capacity) }
        buffer.clear()
        return buffer
    }

    /// Spare head buffers are kept up to this size only: an idle keep-alive connection holds them.
    static let spareHeadLimit = 2048

    private static func keep(_ buffer: ByteBuffer, as spare: inout ByteBuffer?) {
        spare = buffer.capacity <= spareHeadLimit ? buffer : nil
    }

    /// Writes the relayed response's head (with any body joined to it) and keeps its buffer.
    private func writeResponseHead(_ head: ByteBuffer) {
        context.write(NIOAny(head), promise: nil)
        Self.keep(head, as: &spareResponseHead)
    }

    /// Writes relayed bytes. The response head waits for the first of them and they go out as
    /// one write: on TLS each write is a record of its own (nginx's ssl_buffer_size does the same
    /// joining), and in plain text it saves an iovec.
    private func emit(_ bytes: ByteBuffer) {
        if var head = heldHead.take() {
            guard bytes.readableBytes > Self.joinLimit else {
                head.writeImmutableBuffer(bytes)
                writeResponseHead(head)
                return
            }
            writeResponseHead(head)
        }
        context.write(NIOAny(bytes), promise: nil)
    }

    /// The head alone, when no body bytes came with it in this read.
    private func releaseHeldHead() {
        if let head = heldHead.take() { writeResponseHead(head) }
    }

    func upstreamBody(_ body: ByteBuffer) {
        guard case .forwarding(let connection) = state, responseStarted else { return }
        // Flushed once per upstream socket read, in upstreamReadComplete.
        exchange?.bytesOut += body.readableBytes
        if isHTTP2 {
            sendHeldFrames()
            heldData = body
        } else if relayChunked {
            ChunkedFraming.chunk(body, allocator: allocator) { emit($0) }
        } else {
            emit(body)
        }
        if upstreamReadDeadline != nil { upstreamReadDeadline = .now() + settings.upstreamReadTimeout }
        if !downstreamIsWritable { holdUpstreamReads(connection, true) }
    }

    func upstreamEnd(_ trailers: HTTPHeaders?) {
        guard case .forwarding(let connection) = state, responseStarted else { return }
        upstreamReadDeadline = nil
        // The upstream connection is settled before the last write: on HTTP/2 that write ends
        // the stream, and NIOHTTP2 reports it closed from inside the write.
        let complete = requestComplete
        if complete, responseReusable {
            pool.release(connection)
        } else {
            // The upstream answered before the request body ended, or its connection cannot carry
            // another exchange: it is spent.
            connection.handler.owner = nil
            connection.channel.close(promise: nil)
            if !complete { keepAlive = false }
        }
        state = complete ? .idle : .respondedLocally
        if isHTTP2 {
            endStream(trailers: trailers)
        } else {
            if relayChunked {
                emit(ChunkedFraming.lastChunk(trailers: trailers, allocator: allocator))
            } else {
                releaseHeldHead()
            }
            context.flush()
            requestReader?.responseEnded()
        }
        if complete { finishExchange() }
    }

    /// The upstream's response could not be parsed; its connection is being closed.
    func upstreamFailed(_ error: UpstreamResponseError) {
        logger.info("invalid upstream response", metadata: ["error": "\(error)", "cluster": "\(cluster?.name ?? "")"])
        upstreamLost(answer: "502 invalid response from upstream\n")
    }

    func upstreamReadComplete() {
        if let stream {
            sendHeldFrames()
            stream.connection.flush()
            return
        }
        releaseHeldHead()
        context.flush()
    }

    // MARK: HTTP/2 response frames

    /// Writes the held HEADERS and DATA without ending the stream: more of the response follows.
    private func sendHeldFrames() {
        guard let stream else { return }
        if let headers = heldHeaders {
            heldHeaders = nil
            stream.connection.write(HTTP2Frame(streamID: stream.id, payload: .headers(.init(headers: headers))))
        }
        guard let data = heldData else { return }
        heldData = nil
        // Counted until NIOHTTP2 sends it (the peer's window allowing) and the socket takes it.
        let size = data.readableBytes
        unsentData += size
        let promise = eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { [self] _ in
            let wasFull = unsentData >= Self.unsentDataLimit
            unsentData -= size
            if wasFull || unsentData < Self.unsentDataLimit / 2 { downstreamWritabilityChanged() }
        }
        stream.connection.write(HTTP2Frame(streamID: stream.id, payload: .data(.init(data: .byteBuffer(data)))), promise: promise)
    }

    /// The response's last frames: whatever is held, the last of them with END_STREAM, and
    /// trailers as a final HEADERS block.
    private func endStream(trailers: HTTPHeaders?) {
        guard let stream else { return }
        let id = stream.id
        let trailerBlock = trailers.map { HPACKHeaders(httpHeaders: $0, normalizeHTTPHeaders: true) }
        var ended = false
        if let headers = heldHeaders {
            heldHeaders = nil
            ended = heldData == nil && trailerBlock == nil
            stream.connection.write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers, endStream: ended))))
        }
        if let data = heldData {
            heldData = nil
            ended = trailerBlock == nil
            stream.connection.write(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(data), endStream: ended))))
        }
        if let trailerBlock {
            stream.connection.write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: trailerBlock, endStream: true))))
            ended = true
        }
        if !ended {
            stream.connection.write(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))))
        }
        stream.connection.flush()
    }

    func upstreamClosed() {
        if case .upgrading(let connection, let head) = state {
            // Closed before the tunnel was joined: what the upstream sent still reaches the client.
            state = .closed
            var bytes = ForwardedHeaders.switchingProtocolsBytes(head, allocator: allocator)
            if var rest = connection.handler.takeHeldBytes() { bytes.writeBuffer(&rest) }
            let channel = context.channel
            context.writeAndFlush(NIOAny(bytes)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        upstreamLost(answer: "502 upstream closed the connection\n")
    }

    /// The exchange's upstream connection is gone: a 502 with `answer` if nothing was answered
    /// yet, else the client's connection closes too, since its response was cut short.
    private func upstreamLost(answer: String) {
        guard case .forwarding = state else { return }
        disarmResponseTimer()
        if responseStarted {
            state = .closed
            closeClient()
        } else {
            respondLocally(.badGateway, body: answer)
        }
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        setHoldReads(!writable)
    }

    /// Turns both connections into a byte tunnel: the HTTP handlers leave both pipelines, the 101
    /// goes to the client, and the bytes either decoder still held are relayed first.
    private func joinTunnel(_ connection: UpstreamPool.Connection, switching head: UpstreamResponseHead) {
        guard case .upgrading = state else { return }
        guard context.channel.isActive, connection.channel.isActive else {
            dropUpstream()
            state = .closed
            context.close(promise: nil)
            return
        }
        state = .tunnelled
        startedEndpoint = nil
        headerDeadline = nil
        connection.handler.owner = nil
        let (clientSide, upstreamSide) = TunnelHandler.pair(idleTimeout: settings.tunnelIdleTimeout)
        let client = context.pipeline.syncOperations
        let upstream = connection.channel.pipeline.syncOperations
        do {
            try client.addHandler(clientSide)
            try upstream.addHandler(upstreamSide)
            // Everything that speaks HTTP goes. What the client sent after its upgrade request goes
            // to the upstream first.
            if let held = requestReader?.takeHeldBytes() { upstreamSide.send(held, flush: true) }
            Self.remove(HTTP1ServerHandler.self, from: client)
            clientSide.send(ForwardedHeaders.switchingProtocolsBytes(head, allocator: allocator), flush: true)
            // The upstream handler hands on the bytes that followed the 101 as it leaves, and a
            // decoder a tick later, outside any read cycle: each is flushed then.
            Self.remove(UpstreamHandler.self, from: upstream)?.assumeIsolatedUnsafeUnchecked().whenComplete { _ in upstreamSide.flushPeer() }
            let clientChannel = context.channel
            Self.remove(ProxyHandler.self, from: client)
            // Reads held while the exchange was under way start again under the tunnel's control.
            clientChannel.read()
            connection.channel.read()
        } catch {
            logger.warning("could not join an upgraded connection", metadata: ["error": "\(error)"])
            connection.channel.close(promise: nil)
            context.close(promise: nil)
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

    // MARK: Local answers

    private func respondLocally(_ status: HTTPResponseStatus, body: String, headers extra: HTTPHeaders = HTTPHeaders()) {
        disarmResponseTimer()
        counters.local(Int(status.code))
        exchange?.status = UInt16(status.code)
        // A response to HEAD carries the length its GET would have, and no body.
        if !requestIsHead { exchange?.bytesOut += body.utf8.count }
        if let stream {
            heldHeaders = nil
            heldData = nil
            let headers = LocalResponse.http2Headers(status, bodyLength: body.utf8.count, extra: extra)
            let bodyFrame = body.isEmpty || requestIsHead ? nil : allocator.buffer(string: body)
            stream.connection.write(HTTP2Frame(streamID: stream.id, payload: .headers(.init(headers: headers, endStream: bodyFrame == nil))))
            if let bodyFrame { stream.connection.write(HTTP2Frame(streamID: stream.id, payload: .data(.init(data: .byteBuffer(bodyFrame), endStream: true)))) }
            stream.connection.flush()
            // The request body is not going anywhere now.
            bodyTaken(uncreditedBody)
        } else {
            requestReader?.responseHeadWritten(status: status.code)
            context.writeAndFlush(
                NIOAny(LocalResponse.bytes(status, body: body, extra: extra, close: !keepAlive, isHead: requestIsHead, allocator: allocator)),
                promise: nil)
            requestReader?.responseEnded()
        }
        pending = []
        state = .respondedLocally
        setHoldReads(false)
        if requestComplete { finishExchange() }
    }

    /// Counts the exchange and logs it, once.
    private func recordExchange() {
        guard let finished = exchange else { return }
        exchange = nil
        observability.record(finished, now: .now())
        observability.accessLog?.scheduleFlush(on: eventLoop)
    }

    /// Both directions of the exchange are done: ready for the next request, or close.
    private func finishExchange() {
        recordExchange()
        if case .closed = state { return }  // the connection (or stream) closed meanwhile
        startedEndpoint = nil
        cluster = nil
        if let head = upstreamHead.take() {
            // An HTTP/2 stream's handler goes with the stream: its connection keeps the buffer.
            if let stream { stream.connection.keepSpareHead(head) } else { Self.keep(head, as: &spareRequestHead) }
        }
        disarmResponseTimer()
        bodyDeadline = nil
        upstreamReadDeadline = nil
        upstreamReadsHeld = false
        state = .idle
        setHoldReads(false)
        if isHTTP2 {
            // The stream ended with the response.
            state = .closed
        } else if !keepAlive {
            state = .closed
            queued = []
            context.close(promise: nil)
        } else if !queued.isEmpty {
            scheduleReplay()
        } else {
            armIdleTimeout()
        }
    }

    /// Serves queued pipelined parts on the next tick (not inside the upstream's read that ended
    /// the exchange), until one starts an exchange that is not over yet.
    private func scheduleReplay() {
        guard !replayScheduled else { return }
        replayScheduled = true
        context.eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in
            replayScheduled = false
            guard context != nil else { return }  // removed meanwhile
            while !queued.isEmpty {
                if case .head = queued[0], !isIdle { return }
                dispatch(queued.removeFirst())
            }
            if isIdle { armIdleTimeout() }
            setHoldReads(exchangeHoldsReads)
        }
    }
}

/// A timeout that is re-armed on every request without touching the event loop's timer heap: arming
/// only moves the deadline; the one scheduled task checks it when it fires and reschedules itself if
/// the deadline moved later. Scheduling and cancelling two tasks per request showed up in the proxy
/// profile. Used on one event loop only.
final class LazyTimer {
    private var deadline: NIODeadline?
    private var scheduledFor: NIODeadline?
    private var scheduled: Scheduled<Void>?
    private var generation = 0
    private var action: (() -> Void)?

    func arm(in delay: TimeAmount, on eventLoop: any EventLoop, action: @escaping () -> Void) {
        let deadline = NIODeadline.now() + delay
        self.deadline = deadline
        self.action = action
        if let scheduledFor, scheduledFor <= deadline { return }
        schedule(at: deadline, on: eventLoop)
    }

    /// Also breaks the reference cycle through `action`.
    func disarm() {
        deadline = nil
        action = nil
    }

    /// For good, when the owner goes away: the scheduled task leaves the loop's timer heap too,
    /// instead of waiting there until its time (a minute, for thousands of closed connections).
    func cancel() {
        disarm()
        scheduled?.cancel()
        scheduled = nil
        scheduledFor = nil
        generation += 1
    }

    private func schedule(at time: NIODeadline, on eventLoop: any EventLoop) {
        generation += 1
        let generation = generation
        scheduledFor = time
        scheduled = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: time) { [weak self] in self?.fire(generation, on: eventLoop) }
    }

    private func fire(_ generation: Int, on eventLoop: any EventLoop) {
        guard generation == self.generation else { return }  // superseded by an earlier deadline
        scheduledFor = nil
        guard let deadline else { return }
        if NIODeadline.now() < deadline {
            schedule(at: deadline, on: eventLoop)
            return
        }
        let action = self.action
        disarm()
        action?()
    }
}
