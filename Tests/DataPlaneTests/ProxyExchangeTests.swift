import NIOCore
import NIOHTTP1
import RouteModel
import Testing

@testable import DataPlane

/// `ProxyExchange` as sequences of events and the actions they return: no socket, no clock (time
/// is the `now` each event is given), no timer waited on.
@Suite struct ProxyExchangeTests {
    static let cluster = Cluster(
        namespace: "default", service: "web", servicePort: .number(80),
        endpoints: [Endpoint(address: "10.0.0.1", port: 80), Endpoint(address: "10.0.0.2", port: 80), Endpoint(address: "10.0.0.3", port: 80)])
    static let forward = RouteDecision.forward(
        cluster: cluster, backend: Backend(cluster: cluster.name, source: RouteSource(namespace: "default", ingress: "web")), target: "/")
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let limits = ProxyExchange.Limits(
        requestHeaderTimeout: .seconds(10), idleTimeout: .seconds(30), requestBodyTimeout: .seconds(5), upstreamReadTimeout: .seconds(7),
        maxConnectAttempts: 3)

    var exchange = ProxyExchange(carrier: .connection, limits: limits)
    var now = start

    /// A GET routed to the cluster, on a keep-alive HTTP/1.1 connection.
    mutating func routeGET(body: RequestFacts.Body = .none, bodyLimit: Int64? = nil, keepAlive: Bool = true, upgrade: Bool = false) -> ProxyExchange.Action {
        exchange.requestHead(keepAlive: keepAlive, isHTTP10: false, isHead: false, upgrade: upgrade, now: now)
        return exchange.route(.routed(Self.forward, body: body, bodyLimit: bodyLimit), bodyFollows: nil, now: now)
    }

    mutating func advance(_ amount: TimeAmount) { now = now + amount }

    @Test mutating func aKeepAliveExchangeEndsReadyForTheNextRequest() {
        exchange.connectionOpened(now: now)
        #expect(exchange.headerDeadline == now + .seconds(10))
        #expect(routeGET() == .prepareUpstream(connectNow: true))
        #expect(exchange.headerDeadline == nil, "a head arrived: no head deadline while it is served")
        #expect(exchange.holdsClientReads, "no body is read while connecting")
        #expect(exchange.requestEnd() == .holdEnd)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true), "the request is complete: the response timer starts")
        #expect(exchange.responseHead(status: 200, framing: .contentLength(5), reusable: true, now: now) == .relayHead(.init()))
        #expect(exchange.responseBody(now: now) == .relayBody)
        #expect(exchange.responseEnd() == .relayEnd(reuseUpstream: true, next: .nextRequest))
        #expect(exchange.isIdle)
        exchange.awaitNextRequest(now: now)
        #expect(exchange.headerDeadline == now + .seconds(30), "the idle timeout runs between requests")
    }

    /// Pipelining: the connection holds a second head until the first exchange is over (the
    /// exchange takes no head while one is in flight), then serves it the same way.
    /// custom-http-errors: a listed status of the Pod's, or a 502 of the worker's, turns the
    /// exchange back to connecting (to the default backend), once; the default backend's own
    /// answer is relayed whatever its status.
    @Test mutating func anInterceptedStatusSendsOneErrorRequest() {
        #expect(routeGET() == .prepareUpstream(connectNow: true))
        exchange.interceptErrors([404, 502], podAnswers: true)
        #expect(exchange.requestEnd() == .holdEnd)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true))
        #expect(exchange.responseHead(status: 404, framing: .contentLength(5), reusable: true, now: now) == .errorPage(status: 404, dropUpstream: true))
        #expect(exchange.phase == .connecting)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true))
        #expect(exchange.responseHead(status: 404, framing: .contentLength(5), reusable: true, now: now) == .relayHead(.init()), "asked once")
        #expect(exchange.responseEnd() == .relayEnd(reuseUpstream: true, next: .nextRequest))

        // The next exchange starts without the rule; with it and without Pod answers, only the worker's own.
        #expect(routeGET() == .prepareUpstream(connectNow: true))
        #expect(exchange.requestEnd() == .holdEnd)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true))
        #expect(exchange.responseHead(status: 404, framing: .contentLength(5), reusable: true, now: now) == .relayHead(.init()))
        #expect(exchange.responseEnd() == .relayEnd(reuseUpstream: true, next: .nextRequest))

        #expect(routeGET() == .prepareUpstream(connectNow: true))
        exchange.interceptErrors([404, 502, 503], podAnswers: false)
        #expect(exchange.requestEnd() == .holdEnd)
        #expect(exchange.noEndpoint(none: true) == .errorPage(status: 503, dropUpstream: false))
        #expect(exchange.connectFailed(.refused, endpoints: 1) == .respond(ProxyExchange.Answer(.badGateway, "upstream connect error"), dropUpstream: false, then: .finish(.nextRequest)), "the error request's own failure is answered")
    }

    /// proxy-next-upstream after sending: a listed status, a lost connection or a late head sends
    /// the bodiless request to the next endpoint, within the tries; then the last answer is relayed.
    @Test mutating func aSentRequestIsSentAgainWhereTheRouteAsks() {
        let route = UpstreamOptions(retryAfterSending: true, retryStatuses: [502])
        let decision = RouteDecision.forward(
            cluster: Self.cluster, backend: Backend(cluster: Self.cluster.name, source: RouteSource(namespace: "default", ingress: "web"),
            options: RouteOptions(upstream: route)), target: "/")
        func start(idempotent: Bool) -> ProxyExchange.Action {
            exchange.requestHead(keepAlive: true, isHTTP10: false, isHead: false, upgrade: false, now: now)
            let action = exchange.route(.routed(decision, body: .none, bodyLimit: nil), bodyFollows: nil, now: now)
            exchange.allowResending(idempotent: idempotent, endpoints: 3)
            return action
        }
        #expect(start(idempotent: true) == .prepareUpstream(connectNow: true))
        #expect(exchange.requestEnd() == .holdEnd)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true))
        #expect(exchange.responseHead(status: 502, framing: .contentLength(1), reusable: true, now: now) == .resend(dropUpstream: true))
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true))
        #expect(exchange.upstreamLost("upstream closed the connection") == .resend(dropUpstream: false), "error: the connection failed after sending")
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true))
        #expect(
            exchange.responseHead(status: 502, framing: .contentLength(1), reusable: true, now: now) == .relayHead(.init()),
            "three tries in all: the third answer is relayed")
        #expect(exchange.responseEnd() == .relayEnd(reuseUpstream: true, next: .nextRequest))

        // A POST is not sent twice.
        #expect(start(idempotent: false) == .prepareUpstream(connectNow: true))
        #expect(exchange.requestEnd() == .holdEnd)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true))
        #expect(exchange.responseHead(status: 502, framing: .contentLength(1), reusable: true, now: now) == .relayHead(.init()))
    }

    /// A request whose body is still coming cannot be sent again: its error answer is relayed.
    @Test mutating func anIncompleteRequestIsNotSentToTheDefaultBackend() {
        #expect(routeGET(body: .length(10)) == .prepareUpstream(connectNow: true))
        exchange.interceptErrors([404], podAnswers: true)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: false))
        #expect(exchange.responseHead(status: 404, framing: .contentLength(5), reusable: true, now: now) == .relayHead(.init()))
    }

    @Test mutating func pipelinedRequestsAreServedOneAfterAnother() {
        #expect(routeGET() == .prepareUpstream(connectNow: true))
        #expect(exchange.requestEnd() == .holdEnd)
        #expect(!exchange.isIdle, "a second head now waits in the connection's queue")
        exchange.requestHead(keepAlive: true, isHTTP10: false, isHead: true, upgrade: false, now: now)
        #expect(!exchange.requestIsHead, "a head that arrives mid-exchange changes nothing")
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true))
        #expect(exchange.responseHead(status: 204, framing: .none, reusable: true, now: now) == .relayHead(.init()))
        #expect(exchange.responseEnd() == .relayEnd(reuseUpstream: true, next: .nextRequest))
        // The queued head is replayed.
        #expect(routeGET() == .prepareUpstream(connectNow: true))
        #expect(exchange.requestEnd() == .holdEnd)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true))
        #expect(exchange.responseHead(status: 200, framing: .chunked, reusable: true, now: now) == .relayHead(.init(chunked: true)))
        #expect(exchange.responseEnd() == .relayEnd(reuseUpstream: true, next: .nextRequest))
    }

    @Test mutating func aBodyOverTheLimitByItsLengthIs413WithoutReadingIt() {
        let action = routeGET(body: .length(2000), bodyLimit: 1000)
        #expect(action == .respond(.init(.payloadTooLarge, "request body too large"), dropUpstream: false, then: .linger))
        #expect(!exchange.keepAlive)
        #expect(exchange.phase == .closed)
    }

    @Test mutating func aChunkedBodyPassingTheLimitIs413AndDropsTheUpstream() {
        #expect(routeGET(body: .chunked, bodyLimit: 1000) == .prepareUpstream(connectNow: true))
        #expect(exchange.requestBody(600, now: now) == .holdBody)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: false))
        #expect(exchange.requestBody(300, now: now) == .forwardBody)
        #expect(exchange.requestBody(200, now: now) == .respond(.init(.payloadTooLarge, "request body too large"), dropUpstream: true, then: .linger))
    }

    @Test mutating func aBodyPassingTheLimitAfterTheResponseStartedCutsTheExchange() {
        _ = routeGET(body: .chunked, bodyLimit: 1000)
        _ = exchange.connected(now: now)
        #expect(exchange.responseHead(status: 200, framing: .chunked, reusable: true, now: now) == .relayHead(.init(chunked: true)))
        #expect(exchange.requestBody(1001, now: now) == .cut(dropUpstream: true))
    }

    @Test mutating func anUpgradeSwitchesProtocolsAndNeverReadsAnotherRequest() {
        #expect(routeGET(upgrade: true) == .prepareUpstream(connectNow: true))
        #expect(!exchange.keepAlive, "after an upgrade request no further request is read")
        #expect(exchange.wantsUpgrade, "an upgrade gets a fresh connection")
        _ = exchange.requestEnd()
        _ = exchange.connected(now: now)
        #expect(exchange.responseHead(status: 101, framing: .none, reusable: false, now: now) == .switchProtocols)
        #expect(exchange.phase == .upgrading)
        exchange.tunnelJoined()
        #expect(exchange.phase == .tunnelled)
        #expect(exchange.sweep(now: now + .hours(2)) == nil, "a tunnel has no exchange deadlines")
    }

    @Test mutating func anUpstreamThatClosesBeforeTheTunnelIsJoinedStillGetsItsBytesThrough() {
        _ = routeGET(upgrade: true)
        _ = exchange.requestEnd()
        _ = exchange.connected(now: now)
        _ = exchange.responseHead(status: 101, framing: .none, reusable: false, now: now)
        #expect(exchange.upstreamLost("upstream closed the connection") == .upgradeCutShort)
        #expect(exchange.phase == .closed)
    }

    @Test mutating func a101ToARequestThatAskedForNoUpgradeIs502() {
        _ = routeGET()
        _ = exchange.requestEnd()
        _ = exchange.connected(now: now)
        #expect(
            exchange.responseHead(status: 101, framing: .none, reusable: false, now: now)
                == .respond(.init(.badGateway, "upstream switched protocols unasked"), dropUpstream: true, then: .finish(.nextRequest)))
    }

    @Test mutating func interimResponsesPassAndTheFinalOneFollows() {
        _ = routeGET()
        _ = exchange.requestEnd()
        _ = exchange.connected(now: now)
        #expect(exchange.responseHead(status: 100, framing: .none, reusable: true, now: now) == .relayInterim)
        #expect(exchange.responseHead(status: 103, framing: .none, reusable: true, now: now) == .relayInterim)
        #expect(!exchange.responseStarted)
        #expect(exchange.responseHead(status: 200, framing: .contentLength(2), reusable: true, now: now) == .relayHead(.init()))
    }

    @Test mutating func aFailedConnectIsRetriedOnAnotherEndpointThenAnswered() {
        _ = routeGET()
        _ = exchange.requestEnd()
        #expect(exchange.connectFailed(.refused, endpoints: 3) == .retry)
        #expect(exchange.connectFailed(.refused, endpoints: 3) == .retry)
        #expect(exchange.connectFailed(.refused, endpoints: 3) == .respond(.init(.badGateway, "upstream connect error"), dropUpstream: false, then: .finish(.nextRequest)))
        #expect(exchange.failedAttempts == 3)
    }

    @Test mutating func retriesStopAtTheClustersEndpointsAndATimedOutConnectIs504() {
        _ = routeGET()
        _ = exchange.requestEnd()
        #expect(exchange.connectFailed(.timedOut, endpoints: 1) == .respond(.init(.gatewayTimeout, "upstream connect timeout"), dropUpstream: false, then: .finish(.nextRequest)))
    }

    @Test mutating func aRetryThatConnectsServesTheRequest() {
        _ = routeGET()
        _ = exchange.requestEnd()
        #expect(exchange.connectFailed(.refused, endpoints: 3) == .retry)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true))
        #expect(exchange.responseHead(status: 200, framing: .contentLength(0), reusable: true, now: now) == .relayHead(.init()))
    }

    @Test mutating func noResponseHeadInTimeIs504AndTheUpstreamIsDropped() {
        _ = routeGET()
        _ = exchange.requestEnd()
        _ = exchange.connected(now: now)
        #expect(exchange.responseTimedOut() == .respond(.init(.gatewayTimeout, "upstream timeout"), dropUpstream: true, then: .finish(.nextRequest)))
        #expect(exchange.responseTimedOut() == .wait, "once")
    }

    @Test mutating func aResponseTimerFiringAfterTheHeadDoesNothing() {
        _ = routeGET()
        _ = exchange.requestEnd()
        _ = exchange.connected(now: now)
        _ = exchange.responseHead(status: 200, framing: .contentLength(1), reusable: true, now: now)
        #expect(exchange.responseTimedOut() == .wait)
    }

    @Test mutating func anIdleConnectionClosesWhenDrainedAndABusyOneAfterItsResponse() {
        #expect(exchange.beginDrain() == .close)
        var busy = ProxyExchange(carrier: .connection, limits: Self.limits)
        busy.requestHead(keepAlive: true, isHTTP10: false, isHead: false, upgrade: false, now: now)
        _ = busy.route(.routed(Self.forward, body: .none, bodyLimit: nil), bodyFollows: nil, now: now)
        _ = busy.requestEnd()
        _ = busy.connected(now: now)
        #expect(busy.beginDrain() == .wait, "the request in flight finishes")
        #expect(busy.responseHead(status: 200, framing: .contentLength(1), reusable: true, now: now) == .relayHead(.init(close: true)))
        #expect(busy.responseEnd() == .relayEnd(reuseUpstream: true, next: .close))
    }

    @Test mutating func aSilentConnectionTimesOutAndAPartialHeadGetsTheHeadTimeout() {
        exchange.connectionOpened(now: now)
        #expect(exchange.sweep(now: now + .seconds(9)) == nil)
        #expect(exchange.sweep(now: now + .seconds(10))?.kind == .requestHeader)
        var idle = ProxyExchange(carrier: .connection, limits: Self.limits)
        idle.awaitNextRequest(now: now)
        // Bytes of a next request after 25 s of the 30 s idle time: the head gets 10 s from then.
        idle.nextRequestStarted(now: now + .seconds(25))
        #expect(idle.sweep(now: now + .seconds(34)) == nil, "the idle deadline is gone")
        let timeout = idle.sweep(now: now + .seconds(35))
        #expect(timeout?.kind == .requestHeader && timeout?.action == .close)
    }

    @Test mutating func anIdleKeptAliveConnectionTimesOutAsIdle() {
        exchange.awaitNextRequest(now: now)
        let timeout = exchange.sweep(now: now + .seconds(30))
        #expect(timeout?.kind == .idle && timeout?.action == .close)
    }

    @Test mutating func aStalledRequestBodyIs408AndTheClockStopsWhileTheUpstreamHoldsReads() {
        _ = routeGET(body: .length(100))
        _ = exchange.connected(now: now)
        exchange.upstreamWritable(false, now: now)
        #expect(
            exchange.sweep(now: now + .seconds(59)) == nil,
            "the wait is the upstream's while it holds the client's reads: its send timeout (60 s) applies, not the body's 5 s")
        advance(.seconds(59))
        exchange.upstreamWritable(true, now: now)
        #expect(exchange.sweep(now: now + .seconds(4)) == nil, "the gap counts from when reads resume")
        let timeout = exchange.sweep(now: now + .seconds(5))
        #expect(timeout?.kind == .requestBody)
        #expect(timeout?.action == .respond(.init(.requestTimeout, "request body timeout"), dropUpstream: true, then: .linger))
    }

    @Test mutating func eachBodyReadMovesTheBodyDeadline() {
        _ = routeGET(body: .chunked)
        _ = exchange.connected(now: now)
        exchange.upstreamWritable(true, now: now)
        advance(.seconds(4))
        #expect(exchange.requestBody(10, now: now) == .forwardBody)
        #expect(exchange.sweep(now: now + .seconds(4))?.kind == nil)
        #expect(exchange.sweep(now: now + .seconds(5))?.kind == .requestBody)
    }

    @Test mutating func aStalledResponseBodyIsCutButNotWhileTheClientHoldsItBack() {
        _ = routeGET()
        _ = exchange.requestEnd()
        _ = exchange.connected(now: now)
        _ = exchange.responseHead(status: 200, framing: .contentLength(1 << 20), reusable: true, now: now)
        #expect(exchange.downstreamWritable(false, now: now) == .holdUpstreamReads(true))
        #expect(exchange.sweep(now: now + .seconds(60)) == nil, "the client's backpressure is not the upstream's stall")
        advance(.seconds(60))
        #expect(exchange.downstreamWritable(true, now: now) == .holdUpstreamReads(false))
        #expect(exchange.sweep(now: now + .seconds(6)) == nil)
        let timeout = exchange.sweep(now: now + .seconds(7))
        #expect(timeout?.kind == .upstreamRead && timeout?.action == .cut(dropUpstream: true))
    }

    @Test mutating func anUpstreamLostBeforeItsHeadIs502AndAfterItCutsTheClient() {
        _ = routeGET()
        _ = exchange.requestEnd()
        _ = exchange.connected(now: now)
        #expect(exchange.upstreamLost("upstream closed the connection") == .respond(.init(.badGateway, "upstream closed the connection"), dropUpstream: false, then: .finish(.nextRequest)))
        _ = routeGET()
        _ = exchange.requestEnd()
        _ = exchange.connected(now: now)
        _ = exchange.responseHead(status: 200, framing: .contentLength(10), reusable: true, now: now)
        #expect(exchange.upstreamLost("upstream closed the connection") == .cut(dropUpstream: false))
    }

    @Test mutating func aResponseBeforeTheRequestBodyEndedSpendsTheUpstreamAndTheConnection() {
        _ = routeGET(body: .length(100))
        _ = exchange.connected(now: now)
        _ = exchange.responseHead(status: 200, framing: .contentLength(1), reusable: true, now: now)
        #expect(exchange.responseEnd() == .relayEnd(reuseUpstream: false, next: nil))
        #expect(exchange.requestBody(100, now: now) == .dropBody)
        #expect(exchange.requestEnd() == .finish(.close))
    }

    @Test mutating func refusedAndMisdirectedHeadsAndLocalAnswers() {
        exchange.requestHead(keepAlive: true, isHTTP10: false, isHead: false, upgrade: false, now: now)
        #expect(
            exchange.route(.refused(.badRequest, reason: "bad"), bodyFollows: nil, now: now)
                == .respond(.init(.badRequest, "bad"), dropUpstream: false, then: .linger))
        var stream = ProxyExchange(carrier: .stream, limits: Self.limits)
        stream.requestHead(keepAlive: true, isHTTP10: false, isHead: false, upgrade: false, now: now)
        #expect(
            stream.route(.refused(.badRequest, reason: "bad"), bodyFollows: false, now: now)
                == .respond(.init(.badRequest, "bad"), dropUpstream: false, then: .dropBody), "a stream without a body has nothing to drain")
        #expect(stream.requestEnd() == .finish(.streamEnded))
        var local = ProxyExchange(carrier: .connection, limits: Self.limits)
        local.requestHead(keepAlive: true, isHTTP10: false, isHead: false, upgrade: false, now: now)
        #expect(local.route(.routed(.respond(.notFound, reason: "no route"), body: .none, bodyLimit: nil), bodyFollows: nil, now: now)
            == .respond(.init(.notFound, "no route"), dropUpstream: false, then: .dropBody))
        #expect(local.requestEnd() == .finish(.nextRequest), "404 keeps the connection")
        local.requestHead(keepAlive: true, isHTTP10: false, isHead: false, upgrade: false, now: now)
        _ = local.route(.misdirected(host: "b.test"), bodyFollows: nil, now: now)
        #expect(local.requestEnd() == .finish(.nextRequest))
        local.requestHead(keepAlive: true, isHTTP10: false, isHead: false, upgrade: false, now: now)
        #expect(local.route(.routed(.redirect(location: "https://a.test/"), body: .none, bodyLimit: nil), bodyFollows: nil, now: now)
            == .respond(.init(redirectTo: "https://a.test/"), dropUpstream: false, then: .dropBody))
    }

    @Test mutating func anHTTP2StreamConnectsAtTheEndOfTheReadThatOpenedIt() {
        var stream = ProxyExchange(carrier: .stream, limits: Self.limits)
        stream.connectionOpened(now: now)
        #expect(stream.headerDeadline == nil, "a stream exists once its head arrived")
        stream.requestHead(keepAlive: false, isHTTP10: false, isHead: false, upgrade: false, now: now)
        #expect(stream.keepAlive, "a stream's connection is not the exchange's to close")
        #expect(stream.route(.routed(Self.forward, body: .none, bodyLimit: nil), bodyFollows: true, now: now) == .prepareUpstream(connectNow: false))
        #expect(stream.bodyDeadline == now + .seconds(5), "DATA follows the HEADERS")
        #expect(stream.clientReadComplete() == .connect)
        #expect(stream.clientReadComplete() == .wait, "once")
        _ = stream.connected(now: now)
        #expect(stream.clientReadComplete() == .flushUpstream)
        _ = stream.requestEnd()
        _ = stream.responseHead(status: 200, framing: .chunked, reusable: true, now: now)
        #expect(stream.responseEnd() == .relayEnd(reuseUpstream: true, next: .streamEnded))
    }

    @Test mutating func anHTTP10ClientGetsAClosingResponseForABodyWithoutLength() {
        exchange.requestHead(keepAlive: true, isHTTP10: true, isHead: false, upgrade: false, now: now)
        _ = exchange.route(.routed(Self.forward, body: .none, bodyLimit: nil), bodyFollows: nil, now: now)
        _ = exchange.requestEnd()
        _ = exchange.connected(now: now)
        #expect(exchange.responseHead(status: 200, framing: .untilClose, reusable: false, now: now) == .relayHead(.init(close: true)))
        var lengthKnown = ProxyExchange(carrier: .connection, limits: Self.limits)
        lengthKnown.requestHead(keepAlive: true, isHTTP10: true, isHead: false, upgrade: false, now: now)
        _ = lengthKnown.route(.routed(Self.forward, body: .none, bodyLimit: nil), bodyFollows: nil, now: now)
        _ = lengthKnown.requestEnd()
        _ = lengthKnown.connected(now: now)
        #expect(lengthKnown.responseHead(status: 200, framing: .contentLength(3), reusable: true, now: now) == .relayHead(.init(keepAlive: true)))
    }

    @Test mutating func theClientLeavingEndsEverything() {
        _ = routeGET(body: .chunked)
        _ = exchange.connected(now: now)
        exchange.clientGone()
        #expect(exchange.phase == .closed)
        #expect(exchange.requestBody(10, now: now) == .dropBody)
        #expect(exchange.responseHead(status: 200, framing: .none, reusable: true, now: now) == .wait)
        #expect(exchange.sweep(now: now + .hours(1)) == nil)
    }

    // MARK: ingress-nginx's per-route proxy-* settings

    /// A request routed with the route's own upstream options.
    mutating func route(_ options: UpstreamOptions, body: RequestFacts.Body = .none) -> ProxyExchange.Action {
        let decision = RouteDecision.forward(
            cluster: Self.cluster,
            backend: Backend(cluster: Self.cluster.name, source: RouteSource(namespace: "default", ingress: "web"), options: RouteOptions(upstream: options)),
            target: "/")
        exchange.requestHead(keepAlive: true, isHTTP10: false, isHead: false, upgrade: false, now: now)
        return exchange.route(.routed(decision, body: body, bodyLimit: nil), bodyFollows: nil, now: now)
    }

    @Test mutating func proxyNextUpstreamOffAndTriesBoundRetries() {
        _ = route(UpstreamOptions(retryOnConnectError: false))
        _ = exchange.requestEnd()
        #expect(exchange.connectFailed(.refused, endpoints: 3) == .respond(.init(.badGateway, "upstream connect error"), dropUpstream: false, then: .finish(.nextRequest)))

        exchange = ProxyExchange(carrier: .connection, limits: Self.limits)
        _ = route(UpstreamOptions(retryOnConnectError: false, retryOnConnectTimeout: true))
        _ = exchange.requestEnd()
        #expect(exchange.connectFailed(.timedOut, endpoints: 3) == .retry, "timeout is still a condition")
        #expect(exchange.connectFailed(.refused, endpoints: 3) == .respond(.init(.badGateway, "upstream connect error"), dropUpstream: false, then: .finish(.nextRequest)))

        exchange = ProxyExchange(carrier: .connection, limits: Self.limits)
        _ = route(UpstreamOptions(maxAttempts: 2))
        _ = exchange.requestEnd()
        #expect(exchange.connectFailed(.refused, endpoints: 3) == .retry)
        #expect(exchange.connectFailed(.refused, endpoints: 3) == .respond(.init(.badGateway, "upstream connect error"), dropUpstream: false, then: .finish(.nextRequest)))

        exchange = ProxyExchange(carrier: .connection, limits: Self.limits)
        _ = route(UpstreamOptions(maxAttempts: 0))
        _ = exchange.requestEnd()
        #expect(exchange.connectFailed(.refused, endpoints: 3) == .retry)
        #expect(exchange.connectFailed(.refused, endpoints: 3) == .retry, "0 tries: every endpoint")
        #expect(exchange.connectFailed(.refused, endpoints: 3) != .retry)
        // The next exchange on the connection is the worker's again.
        _ = exchange.responseEnd()
        exchange = ProxyExchange(carrier: .connection, limits: Self.limits)
        _ = routeGET()
        #expect(exchange.policy == ProxyExchange.Policy(Self.limits))
    }

    @Test mutating func theRoutesReadTimeoutCutsAStalledResponseBody() {
        _ = route(UpstreamOptions(readTimeoutMilliseconds: 2000))
        _ = exchange.requestEnd()
        _ = exchange.connected(now: now)
        _ = exchange.responseHead(status: 200, framing: .contentLength(100), reusable: true, now: now)
        #expect(exchange.upstreamReadDeadline == now + .seconds(2), "the route's, not the worker's 7 s")
        #expect(exchange.sweep(now: now + .milliseconds(1999)) == nil)
        #expect(exchange.sweep(now: now + .seconds(2))?.kind == .upstreamRead)
    }

    @Test mutating func anUpstreamThatTakesNoneOfTheBodyIs504AfterTheSendTimeout() {
        _ = route(UpstreamOptions(sendTimeoutMilliseconds: 3000), body: .length(1 << 20))
        _ = exchange.connected(now: now)
        #expect(exchange.requestBody(65536, now: now) == .forwardBody)
        exchange.upstreamWritable(false, now: now)
        #expect(exchange.holdsClientReads)
        #expect(exchange.upstreamSendDeadline == now + .seconds(3))
        advance(.seconds(2))
        exchange.upstreamWritable(true, now: now)
        #expect(exchange.upstreamSendDeadline == nil, "it took some: the clock stops")
        exchange.upstreamWritable(false, now: now)
        #expect(exchange.sweep(now: now + .milliseconds(2999)) == nil)
        let swept = exchange.sweep(now: now + .seconds(3))
        #expect(swept?.kind == .upstreamSend)
        #expect(swept?.action == .respond(.init(.gatewayTimeout, "upstream send timeout"), dropUpstream: true, then: .linger))
    }

    @Test mutating func requestBufferingReadsTheBodyBeforeConnecting() {
        #expect(route(UpstreamOptions(requestBufferBytes: 1000), body: .length(1500)) == .prepareUpstream(connectNow: false))
        #expect(!exchange.holdsClientReads, "the body is read while nothing is connected")
        #expect(exchange.requestBody(600, now: now) == .holdBody)
        #expect(exchange.clientReadComplete() == .wait, "not full yet: no connect")
        #expect(exchange.requestBody(600, now: now) == .holdBody)
        #expect(exchange.holdsClientReads, "full: the rest waits for the upstream")
        #expect(exchange.clientReadComplete() == .connect)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: false))
        #expect(exchange.requestBody(300, now: now) == .forwardBody)

        // A body shorter than the buffer connects once it ends.
        exchange = ProxyExchange(carrier: .connection, limits: Self.limits)
        _ = route(UpstreamOptions(requestBufferBytes: 1000), body: .length(10))
        #expect(exchange.requestBody(10, now: now) == .holdBody)
        #expect(exchange.requestEnd() == .holdEnd)
        #expect(exchange.clientReadComplete() == .connect)
        #expect(exchange.connected(now: now) == .attach(armResponseTimer: true))

        // Without a body there is nothing to wait for.
        exchange = ProxyExchange(carrier: .connection, limits: Self.limits)
        #expect(route(UpstreamOptions(requestBufferBytes: 1000)) == .prepareUpstream(connectNow: true))
    }
}
