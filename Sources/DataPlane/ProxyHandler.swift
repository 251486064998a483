import Logging
import NIOCore
import NIOHTTP1
import RouteModel

/// Proxies one client connection's HTTP/1.1 requests, one at a time (NIO's pipelining handler
/// holds later requests back until a response is complete).
///
/// Bodies stream both ways with backpressure: the client is not read while the upstream cannot take
/// more (or is still connecting), and the upstream is not read while the client cannot. Nothing is
/// buffered beyond what one socket read delivered.
final class ProxyHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    struct Settings {
        var scheme = "http"
        var serverPort = 80
        var httpsPort = 443
        var maxConnectAttempts = 3
        var requestHeaderTimeout = TimeAmount.seconds(60)
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
        case closed
    }

    private let store: TableStore
    private let pool: UpstreamPool
    private let balancer: LoadBalancer
    private let settings: Settings
    private let logger: Logger
    private var context: ChannelHandlerContext!
    private var state = State.idle

    // The request in flight.
    private var pending: [HTTPClientRequestPart] = []
    private var requestComplete = false
    private var responseStarted = false
    private var keepAlive = true
    private var cluster: Cluster?
    private var upstreamHead: HTTPRequestHead?
    private var tried: Set<Endpoint> = []
    /// The route's body limit, and what the request body has carried so far.
    private var bodyLimit: Int64?
    private var bodyReceived: Int64 = 0
    /// The endpoint counted as busy for least-request until the exchange ends.
    private var startedEndpoint: Endpoint? {
        didSet { if let oldValue, oldValue != startedEndpoint { balancer.finished(oldValue) } }
    }
    /// While waiting for a request head (slowloris and idle keep-alive), and for a response head.
    private let headerTimer = LazyTimer()
    private let responseTimer = LazyTimer()

    // Backpressure on the client side.
    private var holdReads = false
    private var readPending = false

    init(store: TableStore, pool: UpstreamPool, balancer: LoadBalancer, settings: Settings, logger: Logger) {
        self.store = store
        self.pool = pool
        self.balancer = balancer
        self.settings = settings
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { armHeaderTimeout() }
    }

    func channelActive(context: ChannelHandlerContext) {
        armHeaderTimeout()
        context.fireChannelActive()
    }

    private func armHeaderTimeout() {
        headerTimer.arm(in: settings.requestHeaderTimeout, on: context.eventLoop) { [self] in
            guard case .idle = state else { return }
            // No request is in flight (a partial head is not one yet), so there is nothing to
            // answer: like nginx's client_header_timeout, the connection is closed.
            state = .closed
            context.close(promise: nil)
        }
    }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): receive(head)
        case .body(let body): receiveBodyPart(.body(.byteBuffer(body)))
        case .end(let trailers): receiveEnd(trailers)
        }
    }

    private func receive(_ head: HTTPRequestHead) {
        guard case .idle = state else { return }
        headerTimer.disarm()
        requestComplete = false
        responseStarted = false
        keepAlive = head.isKeepAlive
        tried = []
        pending = []
        switch RequestRouter.decide(head, table: store.current, isTLS: settings.scheme == "https", httpsPort: settings.httpsPort) {
        case .respond(let status, let reason):
            if status == .badRequest { keepAlive = false }
            respondLocally(status, body: "\(status.code) \(reason)\n")
        case .redirect(let location):
            var headers = HTTPHeaders()
            headers.add(name: "Location", value: location)
            respondLocally(.permanentRedirect, body: "", headers: headers)
        case .forward(let cluster, let backend, let target):
            bodyLimit = backend.options.maxRequestBodyBytes
            bodyReceived = 0
            if let limit = bodyLimit, let length = head.headers["content-length"].first.flatMap({ Int64($0) }), length > limit {
                // The body is not read, so the connection cannot carry another request.
                keepAlive = false
                respondLocally(.payloadTooLarge, body: "413 request body too large\n")
                lingeringClose()
                return
            }
            self.cluster = cluster
            let client = context.remoteAddress?.ipAddress
            upstreamHead = ForwardedHeaders.upstreamRequest(
                head, target: target, clientAddress: client, scheme: settings.scheme, serverPort: settings.serverPort,
                requestID: balancer.nextRequestID)
            state = .connecting
            setHoldReads(true)
            connect()
        }
    }

    private func receiveBodyPart(_ part: HTTPClientRequestPart) {
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
            connection.handler.write(part, flush: false)
            if !connection.channel.isWritable { setHoldReads(true) }
        case .idle, .respondedLocally, .closed: break
        }
    }

    /// A chunked body passed the route's limit while streaming: drop the upstream exchange and
    /// answer 413 if nothing was answered yet; the connection closes either way.
    private func bodyOverLimit() {
        bodyLimit = nil
        keepAlive = false
        if case .forwarding(let connection) = state {
            connection.handler.owner = nil
            connection.channel.close(promise: nil)
        }
        if responseStarted {
            state = .closed
            context.close(promise: nil)
        } else {
            respondLocally(.payloadTooLarge, body: "413 request body too large\n")
            lingeringClose()
        }
    }

    /// Stops sending, drops whatever the client still sends for a moment, then closes: closing at
    /// once would answer the client's unread bytes with a reset that can destroy our response.
    private func lingeringClose() {
        state = .closed
        setHoldReads(false)
        let channel = context.channel
        channel.close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
    }

    private func receiveEnd(_ trailers: HTTPHeaders?) {
        requestComplete = true
        switch state {
        case .connecting: pending.append(.end(trailers))
        case .forwarding(let connection):
            connection.handler.write(.end(trailers), flush: true)
            startResponseTimer()
        case .respondedLocally:
            finishExchange()
        case .idle, .closed: break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .forwarding(let connection) = state { connection.handler.flush() }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if holdReads {
            readPending = true
        } else {
            context.read()
        }
    }

    private func setHoldReads(_ hold: Bool) {
        holdReads = hold
        if !hold, readPending {
            readPending = false
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .forwarding(let connection) = state { connection.handler.setHoldReads(!context.channel.isWritable) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .forwarding(let connection) = state {
            // The client left mid-exchange: the upstream connection cannot be reused.
            connection.handler.owner = nil
            connection.channel.close(promise: nil)
        }
        state = .closed
        startedEndpoint = nil
        responseTimer.disarm()
        headerTimer.disarm()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("client connection error", metadata: ["error": "\(error)"])
        if case .forwarding(let connection) = state {
            connection.handler.owner = nil
            connection.channel.close(promise: nil)
        }
        responseTimer.disarm()
        headerTimer.disarm()
        state = .closed
        // A malformed request is answered and the connection closed by ProtocolErrorHandler.
        if !(error is HTTPParserError) { context.close(promise: nil) }
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
        tried.insert(endpoint)
        pool.acquire(endpoint, timeouts: cluster.timeouts).whenComplete { [self] result in
            guard case .connecting = state else {
                if case .success(let connection) = result { pool.release(connection) }
                return
            }
            switch result {
            case .success(let connection):
                balancer.connectSucceeded(endpoint)
                balancer.started(endpoint)
                startedEndpoint = endpoint
                connection.handler.owner = self
                state = .forwarding(connection)
                connection.handler.write(.head(upstreamHead!), flush: pending.isEmpty)
                for (index, part) in pending.enumerated() { connection.handler.write(part, flush: index == pending.count - 1) }
                pending = []
                if requestComplete { startResponseTimer() }
                setHoldReads(!connection.channel.isWritable)
            case .failure(let error):
                if balancer.connectFailed(endpoint) {
                    logger.warning("endpoint ejected after consecutive connect failures", metadata: ["endpoint": "\(endpoint)", "cluster": "\(cluster.name)"])
                }
                logger.info(
                    "upstream connect failed",
                    metadata: ["endpoint": "\(endpoint)", "cluster": "\(cluster.name)", "error": "\(error)"])
                if tried.count < min(settings.maxConnectAttempts, cluster.endpoints.count) {
                    connect()
                } else if error is ChannelError, case .connectTimeout = error as! ChannelError {
                    respondLocally(.gatewayTimeout, body: "504 upstream connect timeout\n")
                } else {
                    respondLocally(.badGateway, body: "502 upstream connect error\n")
                }
            }
        }
    }

    private func startResponseTimer() {
        guard let cluster, cluster.timeouts.responseHeaderMilliseconds > 0, !responseStarted else { return }
        responseTimer.arm(in: .milliseconds(Int64(cluster.timeouts.responseHeaderMilliseconds)), on: context.eventLoop) { [self] in
            guard !responseStarted, case .forwarding(let connection) = state else { return }
            connection.handler.owner = nil
            connection.channel.close(promise: nil)
            respondLocally(.gatewayTimeout, body: "504 upstream timeout\n")
        }
    }

    func upstreamRead(_ part: HTTPClientResponsePart) {
        guard case .forwarding(let connection) = state else { return }
        switch part {
        case .head(let head):
            responseStarted = true
            responseTimer.disarm()
            var response = ForwardedHeaders.downstreamResponse(head)
            if !keepAlive { response.headers.replaceOrAdd(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(response)), promise: nil)
        case .body(let body):
            // Flushed once per upstream socket read, in upstreamReadComplete.
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            if !context.channel.isWritable { connection.handler.setHoldReads(true) }
        case .end(let trailers):
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
            if requestComplete {
                pool.release(connection)
            } else {
                // The upstream answered before the request body ended; that connection is spent.
                connection.handler.owner = nil
                connection.channel.close(promise: nil)
                keepAlive = false
            }
            state = requestComplete ? .idle : .respondedLocally
            if requestComplete { finishExchange() }
        }
    }

    func upstreamReadComplete() {
        context.flush()
    }

    func upstreamClosed() {
        guard case .forwarding = state else { return }
        responseTimer.disarm()
        if responseStarted {
            // The response was cut short; the client must see the connection end too.
            state = .closed
            context.close(promise: nil)
        } else {
            respondLocally(.badGateway, body: "502 upstream closed the connection\n")
        }
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        setHoldReads(!writable)
    }

    // MARK: Local answers

    private func respondLocally(_ status: HTTPResponseStatus, body: String, headers extra: HTTPHeaders = HTTPHeaders()) {
        responseTimer.disarm()
        var headers = extra
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        pending = []
        state = .respondedLocally
        setHoldReads(false)
        if requestComplete { finishExchange() }
    }

    /// Both directions of the exchange are done: ready for the next request, or close.
    private func finishExchange() {
        startedEndpoint = nil
        cluster = nil
        upstreamHead = nil
        responseTimer.disarm()
        state = .idle
        setHoldReads(false)
        if !keepAlive {
            state = .closed
            context.close(promise: nil)
        } else {
            armHeaderTimeout()
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

    private func schedule(at time: NIODeadline, on eventLoop: any EventLoop) {
        generation += 1
        let generation = generation
        scheduledFor = time
        eventLoop.scheduleTask(deadline: time) { [weak self] in self?.fire(generation, on: eventLoop) }
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
