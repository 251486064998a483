import NIOCore
import NIOHTTP1
import RouteModel

/// The exchanges of one client connection (HTTP/1.1, one at a time) or of one HTTP/2 stream, as a
/// state machine without I/O, in the manner of AsyncHTTPClient's `HTTP1ConnectionStateMachine`:
/// each event (a request part, the routing outcome, a connect result, a response part, a deadline
/// passing) updates the state and returns the one `Action` that carries it out. `ExchangeRunner`
/// performs the actions on channels; tests feed events and read actions, with no socket and no clock
/// (every event that starts or moves a deadline is given `now`).
struct ProxyExchange {
    struct Limits {
        var requestHeaderTimeout = TimeAmount.seconds(60)
        var idleTimeout = TimeAmount.seconds(60)
        var requestBodyTimeout = TimeAmount.seconds(60)
        var upstreamReadTimeout = TimeAmount.seconds(60)
        /// The longest the upstream may leave request bytes untaken (nginx's proxy_send_timeout).
        var upstreamSendTimeout = TimeAmount.seconds(60)
        /// Connection attempts per exchange, each on another endpoint.
        var maxConnectAttempts = 3
    }

    /// The route's own upstream settings (ingress-nginx's proxy-* annotations), for one exchange.
    struct Policy: Equatable {
        var readTimeout: TimeAmount
        var sendTimeout: TimeAmount
        var maxAttempts: Int
        var retryOnRefused = true
        var retryOnTimeout = true
        /// Request body bytes read before connecting; nil: connect at once.
        var bufferBytes: Int?
        /// proxy-next-upstream: a sent request is sent again (see `UpstreamOptions.retryAfterSending`).
        var retryAfterSending = false
        var retryStatuses: [Int] = []
        var retryNonIdempotent = false

        init(_ limits: Limits, route: UpstreamOptions? = nil) {
            readTimeout = limits.upstreamReadTimeout
            sendTimeout = limits.upstreamSendTimeout
            maxAttempts = limits.maxConnectAttempts
            guard let route else { return }
            if let read = route.readTimeoutMilliseconds { readTimeout = .milliseconds(Int64(read)) }
            if let send = route.sendTimeoutMilliseconds { sendTimeout = .milliseconds(Int64(send)) }
            if let attempts = route.maxAttempts { maxAttempts = attempts }
            retryOnRefused = route.retryOnConnectError
            retryOnTimeout = route.retryOnConnectTimeout
            bufferBytes = route.requestBufferBytes
            retryAfterSending = route.retryAfterSending
            retryStatuses = route.retryStatuses
            retryNonIdempotent = route.retryNonIdempotent
        }
    }

    /// What carries the exchange: an HTTP/1.1 connection waits for one request head after another
    /// (with a deadline) and connects upstream as soon as a request is routed; an HTTP/2 stream
    /// carries one exchange, and connects once the read that opened it is processed, so a stream
    /// the same read resets never costs an upstream connection.
    enum Carrier: Equatable {
        case connection
        case stream
    }

    enum Phase: Equatable {
        /// Waiting for a request head.
        case idle
        /// Answered locally; the rest of the request body is read and dropped.
        case respondedLocally
        /// Routed; connecting to an upstream. Request parts that arrive meanwhile are held.
        case connecting
        /// Exchanging with an upstream.
        case forwarding
        /// The upstream answered 101; the tunnel is joined next.
        case upgrading
        /// Joined to the upstream as a byte tunnel.
        case tunnelled
        /// Nothing more is served.
        case closed
    }

    /// An answer of the worker's own: a status and a one-line text body.
    struct Answer: Equatable {
        var status: HTTPResponseStatus
        var text: String
        /// For a redirect.
        var location: String?
        /// For a gRPC request: answered as HTTP 200 with this `grpc-status` (and the text as
        /// `grpc-message`) in one trailers-only HEADERS frame.
        var grpcStatus: Int?

        init(_ status: HTTPResponseStatus, _ reason: String) {
            self.status = status
            self.text = "\(status.code) \(reason)\n"
        }

        /// The gRPC code for an HTTP status, as gRPC's HTTP mapping and Envoy have it: 400 INTERNAL,
        /// 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504
        /// UNAVAILABLE, anything else UNKNOWN.
        static func grpcStatus(forHTTP status: Int) -> Int {
            switch status {
            case 400: 13
            case 401: 16
            case 403: 7
            case 404: 12
            case 429, 502, 503, 504: 14
            default: 2
            }
        }

        init(redirectTo location: String, status: Int = 308) {
            self.status = HTTPResponseStatus(statusCode: status)
            self.text = ""
            self.location = location
        }
    }

    /// What follows a finished exchange.
    enum Next: Equatable {
        /// The connection waits for its next request (or serves the pipelined one).
        case nextRequest
        /// The connection closes.
        case close
        /// The HTTP/2 stream ended with the response.
        case streamEnded
    }

    /// What follows a local answer.
    enum AfterAnswer: Equatable {
        /// Both directions are done.
        case finish(Next)
        /// The rest of the request body is read and dropped; the exchange finishes with its end.
        case dropBody
        /// Nothing more is sent; what the client still sends is drained for a moment, then the
        /// connection closes (closing at once could reset the answer away).
        case linger
    }

    /// How a relayed response is framed toward an HTTP/1.1 client (an HTTP/2 stream frames it itself).
    struct Framing: Equatable {
        /// Chunked toward the client: the upstream's body had no length.
        var chunked = false
        /// With `Connection: close`.
        var close = false
        /// With `Connection: keep-alive`, which an HTTP/1.0 client needs.
        var keepAlive = false
    }

    /// How an event's upstream connection attempt ended.
    enum ConnectFailure: Equatable {
        case timedOut
        case refused
    }

    enum Action: Equatable {
        /// Nothing to do now.
        case wait
        /// Answer with `answer`, after closing the upstream connection if `dropUpstream`.
        case respond(Answer, dropUpstream: Bool, then: AfterAnswer)
        /// The request is routed to `RouteDecision.forward`: write its upstream head, then connect
        /// (at once when `connectNow`, else at the end of the client read).
        case prepareUpstream(connectNow: Bool)
        /// Pick an endpoint (skipping the failed ones) and take an idle connection or open one.
        case connect
        /// A connect failed and another endpoint is tried: counted, then as `.connect`.
        case retry
        /// The exchange takes the connection: its head goes out with the request parts held while
        /// connecting; the response timer starts if the request is complete.
        case attach(armResponseTimer: Bool)
        /// The request body part goes upstream, or is held until the upstream is there, or dropped.
        case forwardBody
        case holdBody
        case dropBody
        /// The request's end goes upstream (and the response-header timer starts), or is held.
        case forwardEnd
        case holdEnd
        /// The client read that completed delivered request parts: the upstream gets them in one flush.
        case flushUpstream
        /// An interim response (1xx) goes to the client as it is.
        case relayInterim
        /// The final response's head goes to the client.
        case relayHead(Framing)
        /// The upstream switched protocols: the exchange is counted and the tunnel joined.
        case switchProtocols
        case relayBody
        /// The response ended: the upstream connection goes back to the pool (`reuseUpstream`) or
        /// is closed, and if the request is complete too the exchange finishes with `next`.
        case relayEnd(reuseUpstream: Bool, next: Next?)
        /// The client side ends for good (the response was cut short), after closing the upstream if asked.
        case cut(dropUpstream: Bool)
        /// The exchange is over (answered here, and now the request ended too).
        case finish(Next)
        /// The connection closes: it has no request in flight (idle, a partial head, a drain).
        case close
        /// The upstream closed before the tunnel was joined: the 101 and what followed it still
        /// reach the client, then the connection closes.
        case upgradeCutShort
        /// The client's backpressure on the upstream's reads.
        case holdUpstreamReads(Bool)
        /// proxy-next-upstream: the sent request goes again to another endpoint (after closing the
        /// upstream connection if `dropUpstream`); counted, then as `.connect`.
        case resend(dropUpstream: Bool)
        /// `custom-http-errors`: the answer with `status` is replaced by the default backend's to
        /// an error request (the upstream connection, if any, is closed first); the exchange is
        /// connecting again, to the default backend.
        case errorPage(status: Int, dropUpstream: Bool)
    }

    let carrier: Carrier
    let limits: Limits
    private(set) var phase = Phase.idle
    /// The exchange's route's settings; the worker's until it is routed.
    private(set) var policy: Policy

    // The exchange in flight.
    private(set) var requestComplete = false
    private(set) var responseStarted = false
    private(set) var keepAlive = true
    private var clientIsHTTP10 = false
    private(set) var requestIsHead = false
    /// The request asked to switch protocols (`Upgrade`).
    private(set) var wantsUpgrade = false
    /// The upstream's response may be followed by another on its connection.
    private var responseReusable = true
    private var bodyLimit: Int64?
    private var bodyReceived: Int64 = 0
    /// Connection attempts that failed in this exchange.
    private(set) var failedAttempts = 0
    private var connectsAtReadEnd = false

    // Deadlines, checked by `sweep(now:)`.
    /// While waiting for a request head on a connection: once it passes, the connection closes.
    private(set) var headerDeadline: NIODeadline?
    /// `headerDeadline` is the idle one (no byte of a next request yet).
    private var headerDeadlineIsIdle = false
    /// While a request body is expected: the latest time its next bytes may arrive. Not checked
    /// while the exchange holds the client's reads (the wait is the upstream's then).
    private(set) var bodyDeadline: NIODeadline?
    /// While a response body is relayed: the latest time its next bytes may arrive. Not checked
    /// while the client's backpressure holds the upstream's reads.
    private(set) var upstreamReadDeadline: NIODeadline?
    private var upstreamReadsHeld = false
    /// While the upstream takes no more of the request: the latest time it must take some again.
    private(set) var upstreamSendDeadline: NIODeadline?
    /// Request body bytes held before connecting (`Policy.bufferBytes`); nil when not buffering.
    private var buffered: Int?
    /// The exchange takes no request body now (connecting, or the upstream is not writable).
    private(set) var holdsClientReads = false

    init(carrier: Carrier, limits: Limits) {
        self.carrier = carrier
        self.limits = limits
        self.policy = Policy(limits)
    }

    var isIdle: Bool { phase == .idle }

    // MARK: Client side

    /// The connection is open: the first request head has `requestHeaderTimeout` to arrive.
    mutating func connectionOpened(now: NIODeadline) {
        guard carrier == .connection else { return }
        headerDeadline = now + limits.requestHeaderTimeout
        headerDeadlineIsIdle = false
    }

    /// Bytes of a next request arrived on an idle kept-alive connection: the head has the
    /// request-head timeout from now, not what is left of the idle one.
    mutating func nextRequestStarted(now: NIODeadline) {
        guard headerDeadlineIsIdle, headerDeadline != nil, phase == .idle else { return }
        connectionOpened(now: now)
    }

    /// A request head arrived; `route` follows with what became of it. `bodyFollows` is known on
    /// HTTP/2 (the HEADERS frame did not end the stream) and nil on HTTP/1.1.
    mutating func requestHead(keepAlive: Bool, isHTTP10: Bool, isHead: Bool, upgrade: Bool, now: NIODeadline) {
        guard phase == .idle else { return }
        interceptedStatuses = []
        errorPageSent = false
        resendEndpoints = 0
        headerDeadline = nil
        requestComplete = false
        responseStarted = false
        // An HTTP/2 stream carries one exchange; its connection is not the exchange's to close.
        // After an upgrade request no further request is read: if the upstream does not switch
        // protocols, the connection closes after its answer.
        self.keepAlive = carrier == .stream || (keepAlive && !upgrade)
        clientIsHTTP10 = isHTTP10
        requestIsHead = isHead
        wantsUpgrade = upgrade
        failedAttempts = 0
        bodyLimit = nil
        bodyReceived = 0
        policy = Policy(limits)
        buffered = nil
        upstreamSendDeadline = nil
    }

    /// What became of the head.
    enum HeadOutcome: Equatable {
        /// The head was refused (malformed or ambiguous): nothing of it is used.
        case refused(HTTPResponseStatus, reason: String)
        /// On a TLS connection, for a host its certificate does not cover (RFC 9110 §15.5.20).
        case misdirected(host: String)
        /// Routed: answered here, redirected, or forwarded with the route's body limit.
        case routed(RouteDecision, body: RequestFacts.Body, bodyLimit: Int64?)
    }

    mutating func route(_ outcome: HeadOutcome, bodyFollows: Bool?, now: NIODeadline) -> Action {
        switch outcome {
        case .refused(let status, let reason):
            // The connection carries nothing after a refused head.
            keepAlive = false
            let answer = Answer(status, reason)
            // An HTTP/2 stream that ended with its HEADERS has no body to drain.
            return answered(answer, dropUpstream: false, linger: bodyFollows != false)
        case .misdirected(let host):
            return answered(Answer(.misdirectedRequest, "misdirected request: this connection's certificate does not cover \(host)"))
        case .routed(let decision, let body, let limit):
            requestHasBody = bodyFollows ?? (body != .none)
            // The client has `requestBodyTimeout` between reads of the body it announced.
            if bodyFollows ?? (body != .none) { bodyDeadline = now + limits.requestBodyTimeout }
            switch decision {
            case .respond(let status, let reason):
                if status == .badRequest { keepAlive = false }
                return answered(Answer(status, reason))
            case .redirect(let status, let location):
                return answered(Answer(redirectTo: location, status: status))
            case .forward(_, let backend, _, _):
                bodyLimit = limit
                if let limit, case .length(let length) = body, length > limit {
                    // The body is not read, so the connection cannot carry another request.
                    keepAlive = false
                    return answered(Answer(.payloadTooLarge, "request body too large"), dropUpstream: false, linger: true)
                }
                if let route = backend.options.upstream { policy = Policy(limits, route: route) }
                phase = .connecting
                if policy.bufferBytes != nil, bodyFollows ?? (body != .none) {
                    // proxy-request-buffering: the body is read (and held) first; the upstream is
                    // connected to once it is complete or the buffer is full.
                    buffered = 0
                    holdsClientReads = false
                    return .prepareUpstream(connectNow: false)
                }
                holdsClientReads = true
                connectsAtReadEnd = carrier == .stream
                return .prepareUpstream(connectNow: carrier == .connection)
            }
        }
    }

    /// `bytes` of request body arrived.
    mutating func requestBody(_ bytes: Int, now: NIODeadline) -> Action {
        if bodyDeadline != nil { bodyDeadline = now + limits.requestBodyTimeout }
        if let limit = bodyLimit {
            bodyReceived += Int64(bytes)
            if bodyReceived > limit {
                // A chunked (or HTTP/2) body passed the route's limit while streaming.
                bodyLimit = nil
                keepAlive = false
                if responseStarted { return cut(dropUpstream: true) }
                return answered(Answer(.payloadTooLarge, "request body too large"), dropUpstream: true, linger: true)
            }
        }
        if let held = buffered, phase == .connecting {
            buffered = held + bytes
            if held + bytes >= policy.bufferBytes ?? 0 { stopBuffering() }
        }
        switch phase {
        case .connecting: return .holdBody
        case .forwarding: return .forwardBody
        case .idle, .respondedLocally, .upgrading, .tunnelled, .closed: return .dropBody
        }
    }

    /// The buffer is full or the body complete: the upstream is connected to at the end of this read,
    /// and the client's further bytes wait for it.
    private mutating func stopBuffering() {
        buffered = nil
        connectsAtReadEnd = true
        holdsClientReads = true
    }

    mutating func requestEnd() -> Action {
        requestComplete = true
        bodyDeadline = nil
        if buffered != nil, phase == .connecting { stopBuffering() }
        switch phase {
        case .connecting: return .holdEnd
        case .forwarding: return .forwardEnd
        case .respondedLocally: return .finish(finish())
        case .idle, .upgrading, .tunnelled, .closed: return .wait
        }
    }

    /// The request parts of one client read have been delivered.
    mutating func clientReadComplete() -> Action {
        if connectsAtReadEnd {
            connectsAtReadEnd = false
            return phase == .connecting ? .connect : .wait
        }
        return phase == .forwarding ? .flushUpstream : .wait
    }

    /// The exchange takes the client's bytes again (`hold` false) or not. The client's gap is
    /// counted from when its bytes are taken again.
    mutating func holdClientReads(_ hold: Bool, now: NIODeadline) {
        if !hold, holdsClientReads, bodyDeadline != nil { bodyDeadline = now + limits.requestBodyTimeout }
        holdsClientReads = hold
    }

    /// The client side went away (its connection closed or failed, or the HTTP/2 stream ended):
    /// nothing more is served, and an upstream connection in use cannot be reused.
    mutating func clientGone() {
        phase = .closed
        headerDeadline = nil
        bodyDeadline = nil
        upstreamReadDeadline = nil
        upstreamSendDeadline = nil
    }

    /// Graceful drain: an idle connection closes now; one with a request in flight closes after
    /// its response (which says `Connection: close` if its head is not out yet).
    mutating func beginDrain() -> Action {
        keepAlive = false
        guard phase == .idle else { return .wait }
        phase = .closed
        return .close
    }

    // MARK: Upstream side

    mutating func connected(now: NIODeadline) -> Action {
        guard phase == .connecting else { return .wait }
        phase = .forwarding
        return .attach(armResponseTimer: requestComplete)
    }

    /// A connect failed; `endpoints` is how many the cluster has.
    mutating func connectFailed(_ failure: ConnectFailure, endpoints: Int) -> Action {
        guard phase == .connecting else { return .wait }
        failedAttempts += 1
        let retries = failure == .timedOut ? policy.retryOnTimeout : policy.retryOnRefused
        // nginx's proxy_next_upstream_tries 0: as many attempts as there are endpoints.
        let attempts = policy.maxAttempts == 0 ? endpoints : min(policy.maxAttempts, endpoints)
        if retries, failedAttempts < attempts { return .retry }
        switch failure {
        case .timedOut: return upstreamAnswer(Answer(.gatewayTimeout, "upstream connect timeout"))
        case .refused: return upstreamAnswer(Answer(.badGateway, "upstream connect error"))
        }
    }

    /// No endpoint is left to try; `none` when the cluster has none at all (503).
    mutating func noEndpoint(none: Bool = false) -> Action {
        guard phase == .connecting else { return .wait }
        return upstreamAnswer(none ? Answer(.serviceUnavailable, "no ready endpoints") : Answer(.badGateway, "upstream connect error"))
    }

    /// The response-header timer ran out.
    mutating func responseTimedOut() -> Action {
        guard !responseStarted, phase == .forwarding else { return .wait }
        if let again = resend(policy.retryOnTimeout, dropUpstream: true) { return again }
        return upstreamAnswer(Answer(.gatewayTimeout, "upstream timeout"), dropUpstream: true)
    }

    /// The upstream's response head. `bodyFollows`: its framing says a body may follow.
    mutating func responseHead(status: Int, framing: UpstreamResponseHead.Framing, reusable: Bool, now: NIODeadline) -> Action {
        guard phase == .forwarding else { return .wait }
        if status == 101 {
            guard wantsUpgrade else {
                // 101 to a request that asked for no upgrade: the upstream broke the protocol.
                return answered(Answer(.badGateway, "upstream switched protocols unasked"), dropUpstream: true)
            }
            responseStarted = true
            phase = .upgrading
            return .switchProtocols
        }
        // Interim (100 Continue, 103 Early Hints): the final response follows on the same exchange.
        if status < 200 { return .relayInterim }
        if !policy.retryStatuses.isEmpty, let again = resend(policy.retryStatuses.contains(status), dropUpstream: true) { return again }
        if interceptsPodAnswers, let replaced = errorPage(status, dropUpstream: true) { return replaced }
        responseStarted = true
        responseReusable = reusable
        if framing != .none { upstreamReadDeadline = now + policy.readTimeout }
        var relay = Framing()
        switch framing {
        case .none, .contentLength: break
        case .chunked, .untilClose:
            // No chunked coding for HTTP/1.0: the body ends with the connection.
            if clientIsHTTP10 { keepAlive = false } else { relay.chunked = true }
        }
        relay.close = !keepAlive
        relay.keepAlive = keepAlive && clientIsHTTP10
        return .relayHead(relay)
    }

    mutating func responseBody(now: NIODeadline) -> Action {
        guard phase == .forwarding, responseStarted else { return .wait }
        if upstreamReadDeadline != nil { upstreamReadDeadline = now + policy.readTimeout }
        return .relayBody
    }

    mutating func responseEnd() -> Action {
        guard phase == .forwarding, responseStarted else { return .wait }
        upstreamReadDeadline = nil
        // The upstream answered before the request body ended, or its connection cannot carry
        // another exchange: it is spent.
        let complete = requestComplete
        if !complete { keepAlive = false }
        phase = complete ? .idle : .respondedLocally
        return .relayEnd(reuseUpstream: complete && responseReusable, next: complete ? finish() : nil)
    }

    /// The upstream's response could not be parsed, or its connection closed mid-exchange: a 502
    /// if nothing was answered yet, else the client side ends too, its response cut short.
    mutating func upstreamLost(_ reason: String) -> Action {
        if phase == .upgrading {
            phase = .closed
            return .upgradeCutShort
        }
        guard phase == .forwarding else { return .wait }
        if responseStarted { return cut(dropUpstream: false) }
        if let again = resend(policy.retryOnRefused, dropUpstream: false) { return again }
        return upstreamAnswer(Answer(.badGateway, reason))
    }

    /// The upstream takes more of the request body (or not). While it takes none, it has
    /// `sendTimeout` to take some again.
    mutating func upstreamWritable(_ writable: Bool, now: NIODeadline) {
        holdClientReads(!writable, now: now)
        if writable {
            upstreamSendDeadline = nil
        } else if phase == .forwarding, !requestComplete || upstreamSendDeadline == nil {
            upstreamSendDeadline = now + policy.sendTimeout
        }
    }

    /// The client can take more of the response (or not): the upstream's reads follow. Its gap is
    /// counted from when its reads resume.
    mutating func downstreamWritable(_ writable: Bool, now: NIODeadline) -> Action {
        guard phase == .forwarding else { return .wait }
        let hold = !writable
        if !hold, upstreamReadsHeld, upstreamReadDeadline != nil { upstreamReadDeadline = now + policy.readTimeout }
        upstreamReadsHeld = hold
        return .holdUpstreamReads(hold)
    }

    /// The tunnel is joined: the exchange is over, and the connection belongs to the tunnel.
    mutating func tunnelJoined() {
        phase = .tunnelled
        headerDeadline = nil
    }

    /// The tunnel could not be joined (either side closed meanwhile).
    mutating func tunnelFailed() {
        phase = .closed
    }

    // MARK: Deadlines

    /// The deadline that passed by `now`, if any, and what to do about it.
    mutating func sweep(now: NIODeadline) -> (kind: TimeoutKind, action: Action)? {
        if let deadline = headerDeadline, deadline <= now {
            headerDeadline = nil
            guard phase == .idle else { return nil }
            // No request is in flight (a partial head is not one yet), so there is nothing to
            // answer: like nginx's client_header_timeout and keepalive_timeout, the connection closes.
            phase = .closed
            return (headerDeadlineIsIdle ? .idle : .requestHeader, .close)
        }
        if let deadline = bodyDeadline, deadline <= now, !holdsClientReads {
            bodyDeadline = nil
            // The client stopped sending its request body: 408 if nothing was answered yet, else
            // the exchange is cut. Either way the connection (or stream) carries nothing more.
            keepAlive = false
            if phase == .connecting || phase == .forwarding, !responseStarted {
                return (.requestBody, answered(Answer(.requestTimeout, "request body timeout"), dropUpstream: true, linger: true))
            }
            return (.requestBody, cut(dropUpstream: true))
        }
        if let deadline = upstreamSendDeadline, deadline <= now {
            upstreamSendDeadline = nil
            // The upstream stopped taking the request: 504 if nothing was answered yet, else cut.
            guard phase == .forwarding else { return nil }
            keepAlive = false
            if !responseStarted {
                return (.upstreamSend, answered(Answer(.gatewayTimeout, "upstream send timeout"), dropUpstream: true, linger: !requestComplete))
            }
            return (.upstreamSend, cut(dropUpstream: true))
        }
        if let deadline = upstreamReadDeadline, deadline <= now, !upstreamReadsHeld {
            upstreamReadDeadline = nil
            // The upstream stopped sending its response body: the exchange is cut.
            guard phase == .forwarding else { return nil }
            return (.upstreamRead, cut(dropUpstream: true))
        }
        return nil
    }

    // MARK: Transitions

    /// The statuses `custom-http-errors` replaces for this exchange, and whether the upstream's
    /// answers count (else only the worker's own 502/503/504). Set once the request is routed.
    mutating func interceptErrors(_ statuses: [Int], podAnswers: Bool) {
        interceptedStatuses = statuses
        interceptsPodAnswers = podAnswers
    }

    private var interceptedStatuses: [Int] = []
    private var requestHasBody = false
    /// Set by `allowResending`: the cluster's endpoints (0: a sent request is never sent again), and
    /// whether the method may be repeated (not POST, LOCK, PATCH).
    private var resendEndpoints = 0
    private var methodIsIdempotent = true

    /// The runner can send the request again (it keeps its head): the route's proxy-next-upstream
    /// decides whether it does, among `endpoints`.
    mutating func allowResending(idempotent: Bool, endpoints: Int) {
        methodIsIdempotent = idempotent
        resendEndpoints = endpoints
    }

    /// The request again, to another endpoint, when proxy-next-upstream asks for it: the request has
    /// no body (none is kept to replay), the method may be repeated, nothing was relayed, no error
    /// request went out, and attempts are left (each try counts, connects included).
    private mutating func resend(_ condition: Bool, dropUpstream: Bool) -> Action? {
        guard condition, resendEndpoints > 0, policy.retryAfterSending, !requestHasBody, !wantsUpgrade, !responseStarted, !errorPageSent,
            methodIsIdempotent || policy.retryNonIdempotent
        else { return nil }
        failedAttempts += 1
        let attempts = policy.maxAttempts == 0 ? resendEndpoints : min(policy.maxAttempts, resendEndpoints)
        guard failedAttempts < attempts else { return nil }
        phase = .connecting
        upstreamReadDeadline = nil
        upstreamSendDeadline = nil
        upstreamReadsHeld = false
        return .resend(dropUpstream: dropUpstream)
    }
    private var interceptsPodAnswers = true
    /// One error request per exchange: the default backend's own answer is never replaced.
    private(set) var errorPageSent = false

    /// The error request instead of an answer with `status`, when custom-http-errors lists it, the
    /// request has no body or went out whole (a body is not kept to send again, and the error
    /// request has none) and none was sent yet.
    private mutating func errorPage(_ status: Int, dropUpstream: Bool) -> Action? {
        guard !interceptedStatuses.isEmpty, !errorPageSent, requestComplete || !requestHasBody, !wantsUpgrade,
            interceptedStatuses.contains(status)
        else { return nil }
        errorPageSent = true
        phase = .connecting
        responseStarted = false
        failedAttempts = 0
        upstreamReadDeadline = nil
        upstreamSendDeadline = nil
        upstreamReadsHeld = false
        return .errorPage(status: status, dropUpstream: dropUpstream)
    }

    /// An answer of the worker's own about the upstream (502, 503, 504), unless custom-http-errors
    /// replaces it.
    private mutating func upstreamAnswer(_ answer: Answer, dropUpstream: Bool = false) -> Action {
        errorPage(Int(answer.status.code), dropUpstream: dropUpstream) ?? answered(answer, dropUpstream: dropUpstream)
    }

    private mutating func answered(_ answer: Answer, dropUpstream: Bool = false, linger: Bool = false) -> Action {
        if linger {
            phase = .closed
            return .respond(answer, dropUpstream: dropUpstream, then: .linger)
        }
        phase = .respondedLocally
        holdsClientReads = false
        guard requestComplete else { return .respond(answer, dropUpstream: dropUpstream, then: .dropBody) }
        return .respond(answer, dropUpstream: dropUpstream, then: .finish(finish()))
    }

    private mutating func cut(dropUpstream: Bool) -> Action {
        phase = .closed
        return .cut(dropUpstream: dropUpstream)
    }

    /// Both directions of the exchange are done: ready for the next request, or close.
    private mutating func finish() -> Next {
        bodyDeadline = nil
        upstreamReadDeadline = nil
        upstreamSendDeadline = nil
        upstreamReadsHeld = false
        holdsClientReads = false
        if carrier == .stream {
            phase = .closed
            return .streamEnded
        }
        guard keepAlive else {
            phase = .closed
            return .close
        }
        phase = .idle
        return .nextRequest
    }

    /// The connection waits for its next request: it may stay idle for `idleTimeout`.
    mutating func awaitNextRequest(now: NIODeadline) {
        guard carrier == .connection, phase == .idle else { return }
        headerDeadline = now + limits.idleTimeout
        headerDeadlineIsIdle = true
    }
}
