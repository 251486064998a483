import Logging
import NIOCore
import NIOHTTP1
import RouteModel

/// What a connection's exchanges are configured with.
struct ProxySettings {
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
    var upstreamSendTimeout = TimeAmount.seconds(60)
    /// An upgraded connection (WebSocket) with no bytes either way for this long is closed.
    var tunnelIdleTimeout = TimeAmount.hours(1)
    /// On HTTP/2 over TLS: the connection's SNI name (`.some(nil)` without one) and the
    /// certificates, to refuse requests for hosts the connection's certificate does not cover.
    var tlsServerName: String??
    var certificates: CertificateStore?
    /// On HTTP/2: the connection's client address, worked out once for all its streams.
    var connectionClientAddress: String?

    var limits: ProxyExchange.Limits {
        ProxyExchange.Limits(
            requestHeaderTimeout: requestHeaderTimeout, idleTimeout: idleTimeout, requestBodyTimeout: requestBodyTimeout,
            upstreamReadTimeout: upstreamReadTimeout, upstreamSendTimeout: upstreamSendTimeout, maxConnectAttempts: maxConnectAttempts)
    }
}

/// What every exchange of one event loop shares.
struct ExchangeServices {
    let store: TableStore
    let connector: UpstreamConnector
    let counters: CounterBox
    let observability: WorkerObservability
    let logger: Logger
}

/// Runs a `ProxyExchange`'s actions: the one place where the exchange meets channels. Its client
/// side is a `Downstream` (an HTTP/1.1 connection or an HTTP/2 stream, which owns this runner);
/// its upstream side is the `UpstreamHandler` of the connection it holds, whose `owner` it is.
/// It also keeps what the exchange's actions need as data: the upstream request head, the
/// request parts that arrive while connecting, and the access-log record.
final class ExchangeRunner {
    private var exchange: ProxyExchange
    /// Holds this runner too, until its client side is gone (it lets go then): a stream can end
    /// inside the runner's last write, and the runner finishes the exchange after it.
    private let downstream: any Downstream
    private let services: ExchangeServices
    private let settings: ProxySettings

    private var upstream: UpstreamPool.Connection?
    private var cluster: Cluster?
    /// Endpoints whose connect failed in this exchange; only failures are remembered.
    private var tried: [Endpoint] = []
    private var pending: [HTTPClientRequestPart] = []
    /// The request head for the upstream, as bytes, and how its body is framed.
    private var upstreamHead: ByteBuffer?
    private var upstreamChunked = false
    /// Strict-Transport-Security for the response, on HTTPS.
    private var hsts: HSTSPolicy?
    /// The route's response header edits.
    private var responseEdits: HeaderEdits?
    /// What metrics and the access log get when the exchange ends.
    private var record: ExchangeRecord?
    /// The endpoint the exchange got its connection to, and whether least-request counts it busy
    /// until the exchange ends.
    private var endpoint: Endpoint?
    private var countedBusy = false
    /// The 101 while the tunnel is being joined.
    private var switchingHead: UpstreamResponseHead?
    /// The route's TLS or HTTP/2 pool (nil: the plain HTTP/1.1 one), and whether its settings were unusable.
    private var profile: UpstreamProfile?
    private var profileFailed = false
    /// The request is gRPC (`application/grpc…`): the worker's own answers become gRPC statuses.
    private var grpcRequest = false
    /// What a custom-http-errors request needs, kept only for routes that have one.
    private var errorPage: ErrorPageContext?

    struct ErrorPageContext {
        let head: HTTPRequestHead
        let authority: String
        let cluster: String
        let namespace: String
        let ingress: String
        let service: String
        let servicePort: String
    }

    init(carrier: ProxyExchange.Carrier, downstream: any Downstream, services: ExchangeServices, settings: ProxySettings) {
        self.exchange = ProxyExchange(carrier: carrier, limits: settings.limits)
        self.downstream = downstream
        self.services = services
        self.settings = settings
    }

    var isIdle: Bool { exchange.isIdle }
    var isClosed: Bool { exchange.phase == .closed }
    var holdsReads: Bool { exchange.holdsClientReads }

    // MARK: Client events

    func connectionOpened() { exchange.connectionOpened(now: .now()) }

    func nextRequestStarted() { exchange.nextRequestStarted(now: .now()) }

    /// A request head. `bodyFollows` is known on HTTP/2 (the HEADERS frame did not end the stream),
    /// nil on HTTP/1.1, where the reader worked out `facts` already.
    func receive(_ head: HTTPRequestHead, bodyFollows: Bool? = nil, facts inspected: Result<RequestFacts, RequestFacts.Refusal>? = nil) {
        guard exchange.isIdle else { return }
        let now = NIODeadline.now()
        // Host, path, method and request id are for the access log only: not read without one.
        record =
            services.observability.accessLog == nil
            ? ExchangeRecord(started: now)
            : ExchangeRecord(
                started: now, method: head.method.rawValue, host: head.headers.first(name: "host") ?? "", path: head.uri,
                requestID: head.headers.first(name: "x-request-id"))
        hsts = nil
        responseEdits = nil
        profile = nil
        profileFailed = false
        errorPage = nil
        grpcRequest = Self.isGRPC(head.headers)
        tried.removeAll(keepingCapacity: true)
        pending = []
        let upgrade = ForwardedHeaders.upgradeProtocol(head)
        exchange.requestHead(keepAlive: head.isKeepAlive, isHTTP10: head.version == .http1_0, isHead: head.method == .HEAD, upgrade: upgrade != nil, now: now)
        let facts: RequestFacts
        switch inspected ?? RequestFacts.inspect(head, maxFields: settings.maxRequestHeaderFields) {
        case .failure(let refusal):
            return perform(exchange.route(.refused(refusal.status, reason: refusal.reason), bodyFollows: bodyFollows, now: now))
        case .success(let inspected):
            facts = inspected
        }
        if let host = downstream.misdirectedHost(facts.authority) {
            return perform(exchange.route(.misdirected(host: host), bodyFollows: bodyFollows, now: now))
        }
        // Routed inside the store's reference, which reads its table in place.
        let decision = services.store.current.decide(
            facts, isTLS: settings.scheme == "https", httpsPort: settings.httpsPort, serverPort: settings.serverPort)
        guard case .forward(let routed, let backend, let target, let hsts) = decision else {
            return perform(exchange.route(.routed(decision, body: facts.body, bodyLimit: nil), bodyFollows: bodyFollows, now: now))
        }
        let action = exchange.route(
            .routed(decision, body: facts.body, bodyLimit: backend.options.maxRequestBodyBytes), bodyFollows: bodyFollows, now: now)
        guard case .prepareUpstream(let connectNow) = action else { return perform(action) }
        self.hsts = hsts
        responseEdits = backend.options.responseHeaders
        if backend.options.upstreamProtocol != .http {
            switch services.connector.profile(for: backend.options) {
            case .success(let made): profile = made
            case .failure: profileFailed = true
            }
        }
        var cluster = routed
        if let route = backend.options.upstream {
            // ingress-nginx's proxy-connect-timeout and proxy-read-timeout (the wait for the head too).
            if let connect = route.connectTimeoutMilliseconds { cluster.timeouts.connectMilliseconds = connect }
            if let read = route.readTimeoutMilliseconds { cluster.timeouts.responseHeaderMilliseconds = read }
        }
        record?.namespace = backend.source.namespace
        record?.ingress = backend.source.ingress
        record?.service = cluster.service
        self.cluster = cluster
        var spare = downstream.takeSpareHead()
        var bytes = HeadBuffers.make(reusing: &spare, capacity: 512)
        // HTTP/2 says whether a body follows by the HEADERS frame's END_STREAM; without a
        // Content-Length it goes upstream chunked.
        let body = bodyFollows == true && facts.body == .none ? .chunked : facts.body
        var edits = backend.options.requestHeaders
        if backend.options.defaultBackend != nil, routed.name != backend.cluster,
            let original = services.store.current.table.cluster(named: backend.cluster)
        {
            // default-backend serves a route whose Service has no endpoints; as ingress-nginx, it is told so.
            edits = Self.errorFields(
                adding: edits, status: 503, accept: head.headers.first(name: "accept"), originalURI: nil, namespace: backend.source.namespace,
                ingress: backend.source.ingress, service: original.service, servicePort: original.servicePort.description)
        }
        let generated = ForwardedHeaders.writeUpstreamRequest(
            head, authority: facts.authority, upstreamHost: backend.options.upstreamHost, forwardedPrefix: backend.options.forwardedPrefix,
            edits: edits, target: target, body: body, clientAddress: downstream.clientAddress, scheme: settings.scheme,
            serverPort: settings.serverPortText, upgrade: upgrade, requestID: services.connector.balancer.nextRequestID, into: &bytes)
        upstreamHead = bytes
        upstreamChunked = body == .chunked
        if let generated, services.observability.accessLog != nil { record?.requestID = generated.text }
        if backend.options.upstream?.retryAfterSending == true {
            exchange.allowResending(idempotent: !Self.nonIdempotent(head.method), endpoints: cluster.endpoints.count)
        }
        if let rule = backend.options.defaultBackend, !rule.interceptedStatuses.isEmpty {
            exchange.interceptErrors(rule.interceptedStatuses, podAnswers: rule.interceptsPodAnswers)
            // The error request carries the X-Request-ID the Pod got.
            var kept = head
            if let generated { kept.headers.replaceOrAdd(name: "X-Request-ID", value: generated.text) }
            errorPage = ErrorPageContext(
                head: kept, authority: facts.authority, cluster: rule.cluster, namespace: backend.source.namespace,
                ingress: backend.source.ingress, service: cluster.service, servicePort: cluster.servicePort.description)
        }
        holdReads()
        if connectNow { connect() }
    }

    func receiveBody(_ buffer: ByteBuffer) {
        record?.bytesIn += buffer.readableBytes
        perform(exchange.requestBody(buffer.readableBytes, now: .now()), body: buffer)
    }

    func receiveEnd(_ trailers: HTTPHeaders?) {
        perform(exchange.requestEnd(), trailers: trailers)
    }

    /// The request parts of one client read are delivered: the upstream gets them in one flush.
    func clientReadComplete() {
        perform(exchange.clientReadComplete())
    }

    /// The client connection closed, or (HTTP/2) the stream did: reset, or both sides ended.
    func clientGone() {
        // Counted with the status it got, or 499 (nginx's "client closed request") when nothing
        // was answered yet.
        if record != nil, record?.status == 0 { record?.status = 499 }
        recordExchange()
        exchange.clientGone()
        // The upstream connection cannot be reused.
        dropUpstream()
        endBusy()
    }

    /// An error on the client connection: the exchange is over, and its upstream connection too.
    func clientFailed() {
        exchange.clientGone()
        dropUpstream()
    }

    func beginDrain() { perform(exchange.beginDrain()) }

    func sweep(now: NIODeadline) {
        guard let (kind, action) = exchange.sweep(now: now) else { return }
        services.counters.timedOut(kind)
        if kind == .upstreamRead { services.logger.info("upstream read timeout", metadata: ["cluster": "\(cluster?.name ?? "")"]) }
        perform(action)
    }

    func downstreamWritabilityChanged() {
        perform(exchange.downstreamWritable(downstream.isWritable, now: .now()))
    }

    // MARK: Upstream events (from UpstreamHandler, while this runner owns its connection)

    func responseTimeout() { perform(exchange.responseTimedOut()) }

    func upstreamHead(_ head: UpstreamResponseHead) {
        let action = exchange.responseHead(status: head.status, framing: head.framing, reusable: head.reusable, now: .now())
        switch action {
        case .switchProtocols:
            upstream?.handler.responseTimer.disarm()
            services.counters.upstream(101)
            record?.status = 101
            if services.observability.accessLog != nil { record?.upstream = endpoint?.description }
            recordExchange()
            guard let connection = upstream else { return }
            switchingHead = head
            // Joined on the next tick: the upstream's handler is still on the stack here, and it
            // holds the bytes after the 101 until it is removed.
            downstream.eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in
                guard exchange.phase == .upgrading else { return }
                endBusy()
                upstream = nil
                switchingHead = nil
                connection.handler.owner = nil
                if downstream.joinTunnel(connection, switching: head) {
                    exchange.tunnelJoined()
                } else {
                    exchange.tunnelFailed()
                    services.connector.drop(connection)
                    downstream.close()
                }
            }
        case .relayInterim:
            downstream.writeInterim(head)
        case .relayHead(let framing):
            upstream?.handler.responseTimer.disarm()
            services.counters.upstream(head.status)
            record?.status = UInt16(head.status)
            if services.observability.accessLog != nil { record?.upstream = endpoint?.description }
            downstream.startResponse(
                head, framing: framing, hsts: hsts != nil && !head.hasStrictTransportSecurity ? hsts : nil, edits: responseEdits)
        default:
            perform(action)
        }
    }

    func upstreamBody(_ body: ByteBuffer) {
        let action = exchange.responseBody(now: .now())
        guard case .relayBody = action else { return }
        record?.bytesOut += body.readableBytes
        downstream.relayBody(body)
        if !downstream.isWritable { perform(exchange.downstreamWritable(false, now: .now())) }
    }

    func upstreamEnd(_ trailers: HTTPHeaders?) {
        perform(exchange.responseEnd(), trailers: trailers)
    }

    func upstreamReadComplete() { downstream.flushResponse() }

    /// The upstream's response could not be parsed; its connection is being closed.
    func upstreamFailed(_ error: UpstreamResponseError) {
        services.logger.info("invalid upstream response", metadata: ["error": "\(error)", "cluster": "\(cluster?.name ?? "")"])
        upstreamLost("invalid response from upstream")
    }

    func upstreamClosed() { upstreamLost("upstream closed the connection") }

    /// The upstream handler has let go of its connection, which is closing.
    private func upstreamLost(_ reason: String) {
        let connection = upstream
        connection?.handler.responseTimer.disarm()
        upstream = nil
        switch exchange.upstreamLost(reason) {
        case .upgradeCutShort:
            // Closed before the tunnel was joined: what the upstream sent still reaches the client.
            guard let head = switchingHead.take() else { return }
            downstream.switchingCutShort(head, rest: connection?.handler.takeHeldBytes())
        case let action:
            perform(action)
        }
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        exchange.upstreamWritable(writable, now: .now())
        downstream.holdReads(exchange.holdsClientReads)
    }

    // MARK: Actions

    private func perform(_ action: ProxyExchange.Action, body: ByteBuffer? = nil, trailers: HTTPHeaders? = nil) {
        switch action {
        case .wait, .prepareUpstream, .attach, .relayInterim, .relayHead, .relayBody, .switchProtocols, .upgradeCutShort:
            break
        case .respond(let answer, let dropUpstream, let then):
            if dropUpstream { self.dropUpstream() }
            respond(answer, then: then)
        case .connect:
            connect()
        case .retry:
            services.connector.retrying()
            connect()
        case .forwardBody:
            guard let connection = upstream, let body else { return }
            // Flushed once per client read, in clientReadComplete.
            connection.handler.write(.body(.byteBuffer(body)), flush: false, promise: downstream.bodyWritePromise(bytes: body.readableBytes))
            if !connection.channel.isWritable { upstreamWritabilityChanged(false) }
        case .holdBody:
            if let body { pending.append(.body(.byteBuffer(body))) }
        case .dropBody:
            downstream.bodyDropped()
        case .forwardEnd:
            upstream?.handler.write(.end(trailers), flush: true)
            armResponseTimer()
        case .holdEnd:
            pending.append(.end(trailers))
        case .flushUpstream:
            upstream?.handler.flush()
        case .relayEnd(let reuse, let next):
            guard let connection = upstream else { return }
            // The upstream connection is settled before the last write: on HTTP/2 that write ends
            // the stream, and NIOHTTP2 reports it closed from inside the write.
            upstream = nil
            if reuse { services.connector.release(connection) } else { services.connector.drop(connection) }
            downstream.endResponse(trailers: trailers)
            if let next { finish(next) }
        case .finish(let next):
            finish(next)
        case .cut(let dropUpstream):
            if dropUpstream { self.dropUpstream() }
            downstream.cut()
        case .close:
            downstream.close()
        case .holdUpstreamReads(let hold):
            upstream?.handler.setHoldReads(hold)
        case .errorPage(let status, let drop):
            sendErrorRequest(status: status, dropUpstream: drop)
        case .resend(let drop):
            // The same head again, to an endpoint not tried yet.
            upstream?.handler.responseTimer.disarm()
            if let endpoint { tried.append(endpoint) }
            if drop { dropUpstream() }
            upstream = nil
            endBusy()
            services.connector.retrying()
            pending = exchange.requestComplete ? [.end(nil)] : []
            connect()
        }
    }

    /// custom-http-errors: the default backend is asked for `/` with ingress-nginx's X-Code,
    /// X-Format, X-Original-URI, X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port and
    /// X-Request-ID (the client's method and fields, no body), and its answer is relayed as it is.
    private func sendErrorRequest(status: Int, dropUpstream drop: Bool) {
        upstream?.handler.responseTimer.disarm()
        if drop { dropUpstream() }
        endBusy()
        tried.removeAll(keepingCapacity: true)
        profile = nil
        profileFailed = false
        guard let context = errorPage, var fallback = services.store.current.table.cluster(named: context.cluster) else {
            // The table changed meanwhile and has no such cluster: answered as if there were no rule.
            return perform(exchange.noEndpoint(none: true))
        }
        if let current = cluster { fallback.timeouts = current.timeouts }
        cluster = fallback
        let edits = Self.errorFields(
            adding: nil, status: status, accept: context.head.headers.first(name: "accept"), originalURI: context.head.uri,
            namespace: context.namespace, ingress: context.ingress, service: context.service, servicePort: context.servicePort)
        var bytes = upstreamHead.take() ?? HeadBuffers.make(reusing: &upstreamHead, capacity: 512)
        bytes.clear()
        _ = ForwardedHeaders.writeUpstreamRequest(
            context.head, authority: context.authority, edits: edits, target: "/", body: .none, clientAddress: downstream.clientAddress,
            scheme: settings.scheme, serverPort: settings.serverPortText, requestID: services.connector.balancer.nextRequestID, into: &bytes)
        upstreamHead = bytes
        upstreamChunked = false
        // A bodiless request whose end is still to come ends through the usual path.
        pending = exchange.requestComplete ? [.end(nil)] : []
        connect()
    }

    private func respond(_ answer: ProxyExchange.Answer, then: ProxyExchange.AfterAnswer) {
        var answer = answer
        if grpcRequest { answer.grpcStatus = ProxyExchange.Answer.grpcStatus(forHTTP: Int(answer.status.code)) }
        upstream?.handler.responseTimer.disarm()
        services.counters.local(Int(answer.status.code))
        record?.status = UInt16(answer.status.code)
        // A response to HEAD carries the length its GET would have, and no body.
        if !exchange.requestIsHead { record?.bytesOut += answer.text.utf8.count }
        downstream.writeAnswer(answer, close: !exchange.keepAlive, isHead: exchange.requestIsHead)
        pending = []
        switch then {
        case .finish(let next):
            holdReads()
            finish(next)
        case .dropBody:
            holdReads()
        case .linger:
            downstream.lingeringClose()
        }
    }

    private func holdReads() {
        downstream.holdReads(exchange.holdsClientReads)
    }

    private func connect() {
        guard let cluster, !profileFailed else { return perform(exchange.noEndpoint()) }
        switch services.connector.connect(to: cluster, fresh: exchange.wantsUpgrade, skipping: tried, profile: profile) {
        case .noEndpoint:
            perform(exchange.noEndpoint(none: cluster.endpoints.isEmpty))
        case .ready(let connection, let endpoint):
            attach(connection, endpoint: endpoint, cluster: cluster)
        case .opening(let future, let endpoint):
            future.assumeIsolatedUnsafeUnchecked().whenComplete { [self] result in
                guard exchange.phase == .connecting else {
                    if case .success(let connection) = result { services.connector.release(connection) }
                    return
                }
                switch result {
                case .success(let connection):
                    attach(connection, endpoint: endpoint, cluster: cluster)
                case .failure(let error):
                    let failure = services.connector.failed(endpoint, in: cluster, error: error)
                    tried.append(endpoint)
                    perform(exchange.connectFailed(failure, endpoints: cluster.endpoints.count))
                }
            }
        }
    }

    /// The exchange takes `connection`: the request head goes out, with the body parts that
    /// arrived while connecting.
    private func attach(_ connection: UpstreamPool.Connection, endpoint: Endpoint, cluster: Cluster) {
        self.endpoint = endpoint
        countedBusy = services.connector.succeeded(endpoint, in: cluster)
        guard case .attach(let armTimer) = exchange.connected(now: .now()) else { return }
        connection.handler.owner = self
        upstream = connection
        connection.handler.writeHead(upstreamHead!, chunked: upstreamChunked, isHead: exchange.requestIsHead, flush: pending.isEmpty)
        for (index, part) in pending.enumerated() {
            var promise: EventLoopPromise<Void>?
            if case .body(.byteBuffer(let body)) = part { promise = downstream.bodyWritePromise(bytes: body.readableBytes) }
            connection.handler.write(part, flush: index == pending.count - 1, promise: promise)
        }
        pending = []
        if armTimer { armResponseTimer() }
        upstreamWritabilityChanged(connection.channel.isWritable)
    }

    /// The timer lives with the upstream connection, which the pool reuses across exchanges: a
    /// timer per exchange would add and remove a task in the loop's timer heap for every request.
    private func armResponseTimer() {
        guard let cluster, cluster.timeouts.responseHeaderMilliseconds > 0, !exchange.responseStarted, let upstream else { return }
        upstream.handler.armResponseTimer(in: .milliseconds(Int64(cluster.timeouts.responseHeaderMilliseconds)))
    }

    /// Closes the upstream connection of an exchange that cannot finish cleanly.
    private func dropUpstream() {
        guard let connection = upstream else { return }
        upstream = nil
        services.connector.drop(connection)
    }

    private func endBusy() {
        defer { endpoint = nil }
        guard countedBusy, let endpoint else { return }
        countedBusy = false
        services.connector.finished(endpoint)
    }

    /// Counts the exchange and logs it, once.
    private func recordExchange() {
        guard let finished = record else { return }
        record = nil
        services.observability.record(finished, now: .now())
        services.observability.accessLog?.scheduleFlush(on: downstream.eventLoop)
    }

    /// Both directions of the exchange are done.
    private func finish(_ next: ProxyExchange.Next) {
        recordExchange()
        endBusy()
        cluster = nil
        if let head = upstreamHead.take() { downstream.keepSpareHead(head) }
        upstream?.handler.responseTimer.disarm()
        holdReads()
        if next == .nextRequest { exchange.awaitNextRequest(now: .now()) }
        downstream.exchangeFinished(next)
    }

    /// nginx's non-idempotent methods, which proxy-next-upstream repeats only with non_idempotent.
    static func nonIdempotent(_ method: HTTPMethod) -> Bool {
        switch method {
        case .POST, .PATCH, .LOCK: true
        default: false
        }
    }

    /// ingress-nginx's fields for a default backend: X-Code, X-Format, X-Original-URI (error
    /// requests), X-Namespace, X-Ingress-Name, X-Service-Name and X-Service-Port, set after `edits`'
    /// own. X-Request-ID is the request's own, which every upstream request carries.
    static func errorFields(
        adding edits: HeaderEdits?, status: Int, accept: String?, originalURI: String?, namespace: String, ingress: String, service: String,
        servicePort: String
    ) -> HeaderEdits {
        var result = edits ?? HeaderEdits()
        result.set.append(HeaderField(name: "X-Code", value: String(status)))
        result.set.append(HeaderField(name: "X-Format", value: accept ?? ""))
        if let originalURI { result.set.append(HeaderField(name: "X-Original-URI", value: originalURI)) }
        result.set.append(HeaderField(name: "X-Namespace", value: namespace))
        result.set.append(HeaderField(name: "X-Ingress-Name", value: ingress))
        result.set.append(HeaderField(name: "X-Service-Name", value: service))
        result.set.append(HeaderField(name: "X-Service-Port", value: servicePort))
        return result
    }

    /// `application/grpc` and its `+proto`/`;…` forms; not gRPC-Web, whose status travels in the body.
    static func isGRPC(_ headers: HTTPHeaders) -> Bool {
        guard let type = headers.first(name: "content-type"), type.utf8.count >= 16 else { return false }
        let lowered = type.lowercased()
        guard lowered.hasPrefix("application/grpc") else { return false }
        let rest = lowered.dropFirst(16)
        return rest.isEmpty || rest.hasPrefix("+") || rest.hasPrefix(";")
    }

    /// The connection waits for its next request again (after replaying pipelined ones).
    func awaitNextRequest() { exchange.awaitNextRequest(now: .now()) }
}

/// Head buffers reused across exchanges: a buffer is two mallocs, and a head is written per request.
enum HeadBuffers {
    /// Spare head buffers are kept up to this size only: an idle keep-alive connection holds them.
    static let spareLimit = 2048
    private static let allocator = ByteBufferAllocator()

    /// An empty buffer of at least `capacity`, in the spare's storage when it is large enough.
    /// Writing into storage that a pending write still holds copies it first (ByteBuffer is
    /// copy-on-write), so a spare whose write has not completed costs what a new buffer does.
    static func make(reusing spare: inout ByteBuffer?, capacity: Int) -> ByteBuffer {
        guard var buffer = spare.take(), buffer.capacity >= capacity else { return allocator.buffer(capacity: capacity) }
        buffer.clear()
        return buffer
    }

    static func keep(_ buffer: ByteBuffer, as spare: inout ByteBuffer?) {
        spare = buffer.capacity <= spareLimit ? buffer : nil
    }
}
