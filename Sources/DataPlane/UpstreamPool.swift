import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import RouteModel

/// Keep-alive connections to upstream endpoints, per endpoint, for one event loop and one way of
/// speaking to them (`Transport`): the worker's plain HTTP/1.1 pool, and one per TLS or HTTP/2
/// upstream profile (`UpstreamProfile`).
///
/// Idle connections are reused most-recent first, at most `maxIdlePerEndpoint` are kept, and one
/// idle longer than the cluster's idle timeout is closed instead of reused. A connection the
/// upstream closes while idle leaves the pool by itself. On HTTP/2 a "connection" is one stream of
/// the endpoint's shared session (`HTTP2UpstreamSession`); streams are never pooled.
final class UpstreamPool {
    /// A class: the exchange's state holds it and is switched over many times per request, and a
    /// struct's copy retained the channel, the handler and the endpoint's address each time.
    final class Connection {
        let channel: any Channel
        let handler: UpstreamHandler
        let endpoint: Endpoint
        /// Where it goes back to after a clean exchange. The pools live as long as the worker's loop.
        unowned let pool: UpstreamPool

        init(channel: any Channel, handler: UpstreamHandler, endpoint: Endpoint, pool: UpstreamPool) {
            self.channel = channel
            self.handler = handler
            self.endpoint = endpoint
            self.pool = pool
        }
    }

    /// How the pool's connections speak to their endpoints.
    enum Transport {
        /// HTTP/1.1 over TCP.
        case plain
        /// HTTP/1.1 over TLS; `serverName` is sent as SNI (and verified against, if the context verifies).
        case tls(NIOSSLContext, serverName: String?)
        /// HTTP/2, over TLS when a context is given (ALPN h2), else cleartext with prior knowledge.
        /// `grpc`: requests carry `te: trailers`.
        case http2(NIOSSLContext?, serverName: String?, grpc: Bool)
    }

    private struct Idle {
        let connection: Connection
        let since: NIODeadline
    }

    /// A class, so that the dictionary is only read per request: changing a value in place goes
    /// through the dictionary's modify accessors, whose coroutine frames were three mallocs per
    /// request.
    private final class IdleList {
        var entries: [Idle] = []
    }

    let eventLoop: any EventLoop
    let maxIdlePerEndpoint: Int
    let transport: Transport
    private var idle: [Endpoint: IdleList] = [:]
    private var sweepAt = 64
    /// HTTP/2: the session to each endpoint.
    private var sessions: [Endpoint: HTTP2UpstreamSession] = [:]

    /// 512, not nginx's customary 64: an HTTP/2 client runs many requests at once, and a cap below
    /// the concurrency closes connections after each burst only to open them again for the next one
    /// (h2load -c16 -m16 opened an upstream connection per 2.7 requests with 64).
    init(eventLoop: any EventLoop, maxIdlePerEndpoint: Int = 512, transport: Transport = .plain) {
        self.eventLoop = eventLoop
        self.maxIdlePerEndpoint = maxIdlePerEndpoint
        self.transport = transport
    }

    private var isMultiplexed: Bool {
        if case .http2 = transport { return true }
        return false
    }

    /// The most recently idled live connection to `endpoint` within the idle limit, if any; stale
    /// ones met on the way are closed.
    func takeIdle(_ endpoint: Endpoint, timeouts: ClusterTimeouts) -> Connection? {
        eventLoop.preconditionInEventLoop()
        guard let list = idle[endpoint] else { return nil }  // always nil on HTTP/2
        let maxIdle = TimeAmount.milliseconds(Int64(timeouts.idleMilliseconds))
        while let last = list.entries.popLast() {
            if last.connection.channel.isActive, timeouts.idleMilliseconds == 0 || NIODeadline.now() - last.since < maxIdle {
                return last.connection
            }
            last.connection.channel.close(promise: nil)
        }
        return nil
    }

    /// A new connection to `endpoint` (an upgrade request always gets one: it leaves the pool for good).
    func connect(_ endpoint: Endpoint, timeouts: ClusterTimeouts) -> EventLoopFuture<Connection> {
        eventLoop.preconditionInEventLoop()
        if case .http2 = transport { return openStream(to: endpoint, timeouts: timeouts) }
        let handler = UpstreamHandler()
        let boundHandler = NIOLoopBound(handler, eventLoop: eventLoop)
        let handshake: EventLoopPromise<Void>?
        if case .tls = transport { handshake = eventLoop.makePromise() } else { handshake = nil }
        let transport = self.transport
        // ClientBootstrap sets TCP_NODELAY itself. (`.socketOption(.tcp_nodelay)` would not:
        // it is SOL_SOCKET level, where option 1 is SO_DEBUG.)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if case .tls(let context, let serverName) = transport, let handshake {
                        try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                        try sync.addHandler(TLSHandshakeWait(handshake))
                    }
                    // The handler writes requests and parses responses itself.
                    try sync.addHandler(boundHandler.value)
                }
            }
        return dial(endpoint, bootstrap: bootstrap, timeouts: timeouts, handshake: handshake).assumeIsolatedUnsafeUnchecked().map { channel in
            let connection = Connection(channel: channel, handler: handler, endpoint: endpoint, pool: self)
            // Set once: a closure made on every release cost an allocation per request.
            handler.onIdleClose = { [weak self] in self?.remove(connection) }
            return connection
        }.nonisolated()
    }

    /// Connects `bootstrap` to `endpoint`; with `handshake`, the channel is ready when it completes,
    /// within the connect timeout too.
    func dial(
        _ endpoint: Endpoint, bootstrap: ClientBootstrap, timeouts: ClusterTimeouts, handshake: EventLoopPromise<Void>?
    ) -> EventLoopFuture<any Channel> {
        var bootstrap = bootstrap
        if timeouts.connectMilliseconds > 0 { bootstrap = bootstrap.connectTimeout(.milliseconds(Int64(timeouts.connectMilliseconds))) }
        // Endpoint addresses are IP literals (EndpointSlices of type IPv4/IPv6): connecting to the
        // parsed address skips getaddrinfo on NIO's blocking thread pool and happy eyeballs, which
        // showed in the profile and stalled connects when that pool was busy. Names still resolve.
        let connected: EventLoopFuture<any Channel>
        if let address = socketAddress(endpoint) {
            connected = bootstrap.connect(to: address)
        } else {
            connected = bootstrap.connect(host: endpoint.address, port: endpoint.port)
        }
        guard let handshake else { return connected }
        return connected.flatMap { channel in
            // A handshake that does not finish counts as a connect that timed out.
            let deadline: Scheduled<Void>? =
                timeouts.connectMilliseconds > 0
                ? channel.eventLoop.scheduleTask(in: .milliseconds(Int64(timeouts.connectMilliseconds))) {
                    handshake.fail(ChannelError.connectTimeout(.milliseconds(Int64(timeouts.connectMilliseconds))))
                } : nil
            return handshake.futureResult.always { _ in deadline?.cancel() }.map { channel }.flatMapError { error in
                channel.close(promise: nil)
                return channel.eventLoop.makeFailedFuture(error)
            }
        }
    }

    /// HTTP/2: a new stream on the endpoint's session, which is opened first if there is none (or
    /// the one there is going away).
    private func openStream(to endpoint: Endpoint, timeouts: ClusterTimeouts) -> EventLoopFuture<Connection> {
        guard case .http2(let context, let serverName, let grpc) = transport else { preconditionFailure("not an HTTP/2 pool") }
        let session: HTTP2UpstreamSession
        if let existing = sessions[endpoint], existing.isUsable {
            session = existing
        } else {
            session = HTTP2UpstreamSession(
                endpoint: endpoint, pool: self, tls: context, serverName: serverName, idleTimeout: .milliseconds(Int64(timeouts.idleMilliseconds)),
                timeouts: timeouts)
            sessions[endpoint] = session
        }
        return session.openStream(grpc: grpc, secure: context != nil).assumeIsolatedUnsafeUnchecked().map { channel, handler in
            Connection(channel: channel, handler: handler, endpoint: endpoint, pool: self)
        }.nonisolated()
    }

    /// A session closed or is going away: new streams go to a new one.
    func sessionEnded(_ session: HTTP2UpstreamSession) {
        if sessions[session.endpoint] === session { sessions[session.endpoint] = nil }
    }

    private var addresses: [Endpoint: SocketAddress] = [:]

    /// The endpoint's parsed IP address, cached; nil for a name.
    private func socketAddress(_ endpoint: Endpoint) -> SocketAddress? {
        if let known = addresses[endpoint] { return known }
        guard let address = try? SocketAddress(ipAddress: endpoint.address, port: endpoint.port) else { return nil }
        if addresses.count > 4096 { addresses.removeAll(keepingCapacity: true) }
        addresses[endpoint] = address
        return address
    }

    /// Returns a connection whose last exchange completed cleanly.
    func release(_ connection: Connection) {
        eventLoop.preconditionInEventLoop()
        connection.handler.owner = nil
        if isMultiplexed {
            // The stream is over (or is reset now); the session stays.
            connection.channel.close(promise: nil)
            return
        }
        // Whatever backpressure the last client applied ends with its exchange.
        connection.handler.setHoldReads(false)
        guard connection.channel.isActive else {
            connection.channel.close(promise: nil)
            return
        }
        let list: IdleList
        if let existing = idle[connection.endpoint] {
            list = existing
        } else {
            // Emptied lists stay (one request at a time would otherwise make and drop a list each
            // time); they are swept when the dictionary has doubled since the last sweep, so
            // endpoints that left the table do not pile up.
            if idle.count >= sweepAt {
                idle = idle.filter { !$0.value.entries.isEmpty }
                sweepAt = max(64, idle.count * 2)
            }
            list = IdleList()
            idle[connection.endpoint] = list
        }
        guard list.entries.count < maxIdlePerEndpoint else {
            connection.channel.close(promise: nil)
            return
        }
        list.entries.append(Idle(connection: connection, since: .now()))
    }

    private func remove(_ connection: Connection) {
        guard let list = idle[connection.endpoint] else { return }
        list.entries.removeAll { $0.connection.channel === connection.channel }
        if list.entries.isEmpty { idle[connection.endpoint] = nil }
    }

    func closeAll() {
        for list in idle.values { for entry in list.entries { entry.connection.channel.close(promise: nil) } }
        idle.removeAll()
        for session in sessions.values { session.close() }
        sessions.removeAll()
    }
}

/// Picks endpoints for one event loop: round robin, or power-of-two-choices least-request, never an
/// ejected endpoint while a healthy one is left (with all ejected it falls back to all of them, as
/// Envoy's panic threshold does rather than failing every request).
///
/// Passive outlier ejection: `ejectAfter` consecutive connect failures eject an endpoint for
/// `baseEjection`, doubled on each further ejection up to `maxEjection`; a success resets it.
final class LoadBalancer {
    struct Policy {
        var ejectAfter = 3
        var baseEjection = TimeAmount.seconds(5)
        var maxEjection = TimeAmount.seconds(60)
    }

    private struct Health {
        var consecutiveFailures = 0
        var ejections = 0
        var ejectedUntil = NIODeadline.distantPast
    }

    private let policy: Policy
    private var next: [String: Int] = [:]
    private var health: [Endpoint: Health] = [:]
    /// Requests in flight per endpoint, for least-request.
    private var active: [Endpoint: Int] = [:]
    /// Seeded once from the system: a getrandom call per request showed up in the proxy profile.
    private var random = FastRandom()

    /// A request ID from the loop's generator.
    func nextRequestID() -> RequestID { RequestID(using: &random) }

    init(policy: Policy = Policy()) {
        self.policy = policy
    }

    func pick(_ cluster: Cluster, skipping tried: [Endpoint] = [], now: NIODeadline = .now()) -> Endpoint? {
        if tried.isEmpty, health.isEmpty, cluster.loadBalancing == .roundRobin, !cluster.endpoints.isEmpty {
            // The usual case, with nothing to filter: no allocation, and no counter for one endpoint.
            if cluster.endpoints.count == 1 { return cluster.endpoints[0] }
            let start = Self.advance(&next[cluster.name, default: 0])
            return cluster.endpoints[start % cluster.endpoints.count]
        }
        let untried = cluster.endpoints.filter { !tried.contains($0) }
        guard !untried.isEmpty else { return nil }
        let healthy = untried.filter { (health[$0]?.ejectedUntil ?? .distantPast) <= now }
        let candidates = healthy.isEmpty ? untried : healthy
        switch cluster.loadBalancing {
        case .roundRobin:
            let start = Self.advance(&next[cluster.name, default: 0])
            return candidates[start % candidates.count]
        case .leastRequest:
            guard candidates.count > 1 else { return candidates[0] }
            let first = Int(random.next() % UInt64(candidates.count))
            var second = Int(random.next() % UInt64(candidates.count - 1))
            if second >= first { second += 1 }
            let a = candidates[first], b = candidates[second]
            return active[a, default: 0] <= active[b, default: 0] ? a : b
        }
    }

    /// The counter's value before it moves on; through the dictionary's in-place accessor, so
    /// the name is hashed once.
    private static func advance(_ counter: inout Int) -> Int {
        defer { counter &+= 1 }
        return counter
    }

    func started(_ endpoint: Endpoint) { active[endpoint, default: 0] += 1 }

    func finished(_ endpoint: Endpoint) {
        let count = active[endpoint, default: 1] - 1
        active[endpoint] = count > 0 ? count : nil
    }

    func connectSucceeded(_ endpoint: Endpoint) {
        guard !health.isEmpty else { return }
        health[endpoint]?.consecutiveFailures = 0
    }

    /// Returns true when this failure ejected the endpoint.
    @discardableResult
    func connectFailed(_ endpoint: Endpoint, now: NIODeadline = .now()) -> Bool {
        var state = health[endpoint] ?? Health()
        state.consecutiveFailures += 1
        var ejected = false
        if state.consecutiveFailures >= policy.ejectAfter {
            let factor = Int64(1) << min(state.ejections, 20)
            let duration = TimeAmount.nanoseconds(min(policy.baseEjection.nanoseconds * factor, policy.maxEjection.nanoseconds))
            state.ejectedUntil = now + duration
            state.ejections += 1
            state.consecutiveFailures = 0
            ejected = true
        }
        health[endpoint] = state
        return ejected
    }

    func isEjected(_ endpoint: Endpoint, now: NIODeadline = .now()) -> Bool {
        (health[endpoint]?.ejectedUntil ?? .distantPast) > now
    }
}

/// xoshiro256** seeded from the system's generator: unpredictable enough for request IDs and
/// load-balancing draws, and free of system calls.
struct FastRandom: RandomNumberGenerator {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    init() {
        var system = SystemRandomNumberGenerator()
        state = (system.next(), system.next(), system.next(), system.next() | 1)
    }

    mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }
}
