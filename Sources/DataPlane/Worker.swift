import AdminHTTP
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOHTTP2
import NIOSSL
import NIOTLS
import Prometheus
import RouteModel
import SnapshotProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One worker process: one event loop, an HTTP listener shared with the other workers through
/// SO_REUSEPORT, and a snapshot subscription that swaps the route table on that loop.
public final class Worker: Sendable {
    public struct Configuration: Sendable {
        public var controlPlane: ServerAddress
        public var bindHost = "0.0.0.0"
        public var httpPort = 80
        /// Where plain-HTTP requests for TLS hosts are redirected.
        public var httpsPort = 443
        /// The largest request line plus header block accepted; larger gets 431.
        public var maxRequestHeaderBytes = 64 << 10
        /// More request header fields than this get 431 (HAProxy allows 101, nginx has no count).
        public var maxRequestHeaderFields = 100
        /// How long a request head may take to arrive whole: from accept, or from its first byte
        /// on a kept-alive connection (slowly sent headers, slowloris).
        public var requestHeaderTimeout: Duration = .seconds(60)
        /// A kept-alive HTTP/1.1 connection with no request, or an HTTP/2 connection with no open
        /// stream, is closed after this long (HTTP/2 with GOAWAY).
        public var idleTimeout: Duration = .seconds(60)
        /// From accept until the TLS handshake completes.
        public var tlsHandshakeTimeout: Duration = .seconds(10)
        /// The longest gap between two reads of a request body (nginx's client_body_timeout):
        /// then 408 if no response started, else the exchange is cut.
        public var requestBodyTimeout: Duration = .seconds(60)
        /// The longest gap between two reads of an upstream's response body: then the exchange
        /// is cut. (The wait for the response head is the cluster's response timeout.)
        public var upstreamReadTimeout: Duration = .seconds(60)
        /// The longest an upstream may take none of the request it is sent (nginx's proxy_send_timeout):
        /// then 504 if no response started, else the exchange is cut.
        public var upstreamSendTimeout: Duration = .seconds(60)
        /// On stop, how long requests in flight may take to finish before their connections are cut.
        public var drainTimeout: Duration = .seconds(25)
        /// The TLS listener's port (0: any free port); nil for no TLS listener.
        public var httpsListenPort: Int?
        /// Served when SNI names no TLS host and the table names no default; nil: one is generated.
        public var defaultCertificate: DefaultCertificate?
        public var http2 = HTTP2Limits()
        public var node = "local"
        public var workerID = "0"
        /// One JSON line per request on stdout (`portico worker` turns it on unless --no-access-log).
        public var accessLog = false
        /// Which engine serves plain HTTP: SwiftNIO's, or the native epoll spike (HTTP/1.1 only;
        /// no TLS listener then). See `NativeEngine` for what it leaves out.
        public var engine = Engine.nio
        /// Called (off the event loop) once table changes pause for `releaseAfterQuiet`: a whole
        /// table's decode leaves several times its size free in malloc's arenas, freed only once
        /// the snapshot's message is gone too, and each delta replaces parts of the table, whose
        /// holes add up. `portico worker` hands the memory back to the kernel.
        public var releaseFreedMemory: (@Sendable () -> Void)?
        public var releaseAfterQuiet: Duration = .seconds(1)

        public enum Engine: String, Sendable, CaseIterable {
            case nio
            case native
        }

        public init(controlPlane: ServerAddress) {
            self.controlPlane = controlPlane
        }
    }

    public let configuration: Configuration
    public let store: TableStore
    /// Metrics and access log.
    public let observability: WorkerObservability
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let acceptedBox = AtomicBox()
    private let boundHTTPSPort = Atomic<Int>(0)
    /// The certificates of the table being served, read by the TLS handshake callback.
    let certificates = CertificateStore()
    /// Touched on the loop only.
    private nonisolated(unsafe) let loop: LoopState
    private let subscriber: SnapshotSubscriber

    /// Whether the snapshot stream to the control plane (or node agent) is up: a worker whose node
    /// agent is gone keeps serving, and watches this to know whether a new agent took it over.
    public var isSubscribed: Bool { subscriber.currentStatus.connected }

    /// Client connections accepted since start.
    public var acceptedConnections: Int {
        acceptedBox.value.load(ordering: .relaxed) + (nativeEngine.engine?.accepted.value.load(ordering: .relaxed) ?? 0)
    }
    /// The native engine, when `configuration.engine` is `.native`, once listening.
    private let nativeEngine = NativeEngineSlot()

    /// The bound TLS port once listening (0 before, or without TLS).
    public var httpsPort: Int { boundHTTPSPort.load(ordering: .relaxed) }

    public init(configuration: Configuration, logger: Logger = Logger(label: "portico.worker")) {
        self.configuration = configuration
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let eventLoop = group.next()
        self.store = TableStore(eventLoop: eventLoop)
        self.observability = WorkerObservability(accessLog: configuration.accessLog)
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.workerID)"
        self.logger = logger
        self.loop = LoopState(store: store, observability: observability, logger: logger)
        self.subscriber = SnapshotSubscriber(
            address: configuration.controlPlane,
            identity: SubscriberIdentity(node: configuration.node, workerID: configuration.workerID, kind: .worker),
            logger: logger)
    }

    /// What the worker has answered so far.
    public func counters() async -> ProxyCounters {
        (try? await store.eventLoop.submit { self.loop.counters.value }.get()) ?? ProxyCounters()
    }

    /// The worker's metrics in the Prometheus text format: the per-route instruments and gauges,
    /// and the loop's counters.
    public func exposition() async -> String {
        observability.exposition() + (await counters()).exposition
    }

    /// Subscribes; once the first table is applied, binds the listeners and calls `onListening` with
    /// the bound plain-HTTP port (`httpsPort` has the TLS one); serves and follows snapshots until
    /// cancelled, then drains.
    public func run(onListening: @Sendable (Int) -> Void = { _ in }) async throws {
        let eventLoop = store.eventLoop
        // The pool, balancer and open connections belong to the loop; handlers reach them through this box.
        let loopBound = try await eventLoop.submit {
            NIOLoopBound(self.loop, eventLoop: eventLoop)
        }.get()
        var settings = ProxySettings()
        settings.httpsPort = configuration.httpsPort
        settings.maxRequestHeaderFields = configuration.maxRequestHeaderFields
        settings.requestHeaderTimeout = TimeAmount(configuration.requestHeaderTimeout)
        settings.idleTimeout = TimeAmount(configuration.idleTimeout)
        settings.requestBodyTimeout = TimeAmount(configuration.requestBodyTimeout)
        settings.upstreamReadTimeout = TimeAmount(configuration.upstreamReadTimeout)
        settings.upstreamSendTimeout = TimeAmount(configuration.upstreamSendTimeout)
        let sweepInterval = OpenConnections.sweepInterval(
            for: min(
                settings.requestHeaderTimeout, settings.idleTimeout, settings.requestBodyTimeout, settings.upstreamReadTimeout,
                settings.upstreamSendTimeout))
        let sweep = eventLoop.scheduleRepeatedTask(initialDelay: sweepInterval, delay: sweepInterval) { _ in
            loopBound.value.connections.sweep(now: .now())
        }
        // Cancelled before the loop shuts down (a cancel after would be scheduled on a dead loop),
        // or on the way out when run ends early.
        var sweepCancelled = false
        defer { if !sweepCancelled { sweep.cancel() } }
        let maxHeadBytes = configuration.maxRequestHeaderBytes
        let subscriber = self.subscriber
        let store = self.store
        let certificates = self.certificates
        let logger = self.logger
        let (applied, appliedSink) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let observability = self.observability
        let release = configuration.releaseFreedMemory.map { ReleaseAfterChanges(release: $0, quiet: configuration.releaseAfterQuiet) }
        var servers: [any Channel] = []
        // The native engine, once listening, gets every table too.
        let native = nativeEngine
        var nativeThread: NativeEngineThread?
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                await subscriber.run { snapshot in
                    native.apply(snapshot.table, version: snapshot.version)
                    let started = ContinuousClock.now
                    // Certificates are parsed here, off the event loop, and swapped in before the
                    // table that names them.
                    let (set, problems) = CertificateSet.build(
                        from: snapshot.table, version: snapshot.version, delta: snapshot.delta, previous: certificates.current)
                    for problem in problems { logger.warning("\(problem)") }
                    certificates.replace(with: set)
                    try await store.apply(snapshot.table, version: snapshot.version)
                    observability.snapshotApply.record(ContinuousClock.now - started)
                    observability.snapshotVersion.set(Int64(snapshot.version))
                    appliedSink.yield()
                    release?.changed()
                }
            }
            // Listen only once there is a table: a worker started (or restarted) by the node agent
            // must not take connections from its siblings on the shared port just to answer 404.
            var firstTable = applied.makeAsyncIterator()
            guard await firstTable.next() != nil, !Task.isCancelled else { return }
            if configuration.engine == .native {
                var settings = NativeEngine.Settings()
                settings.host = configuration.bindHost
                settings.port = configuration.httpPort
                settings.httpsPort = configuration.httpsPort
                settings.maxRequestHeaderBytes = min(configuration.maxRequestHeaderBytes, 16 << 10)
                settings.maxRequestHeaderFields = configuration.maxRequestHeaderFields
                let engine: NativeEngine
                do {
                    engine = try NativeEngine(settings: settings)
                } catch {
                    throw ListenError(owner: "worker \(configuration.workerID) (native engine)", address: "\(configuration.bindHost):\(configuration.httpPort)", cause: error)
                }
                native.install(engine)
                nativeThread = engine.start()
                logger.info("worker listening (native engine)", metadata: ["address": "\(configuration.bindHost):\(engine.port)"])
                onListening(engine.port)
                do {
                    try await group.waitForAll()
                } catch {
                    engine.stop()
                    nativeThread?.join()
                    throw error
                }
                return
            }
            let plain = try await listen(port: configuration.httpPort, tls: nil, settings: settings, maxHeadBytes: maxHeadBytes, loopBound: loopBound)
            servers.append(plain)
            let port = plain.localAddress?.port ?? configuration.httpPort
            logger.info("worker listening", metadata: ["address": "\(configuration.bindHost):\(port)"])
            if let tlsPort = configuration.httpsListenPort {
                let fallback = try configuration.defaultCertificate ?? DefaultCertificate.generate()
                let context = try NIOSSLContext(configuration: TLSSettings.server(default: fallback, certificates: certificates))
                var tlsSettings = settings
                tlsSettings.scheme = "https"
                let secure = try await listen(port: tlsPort, tls: context, settings: tlsSettings, maxHeadBytes: maxHeadBytes, loopBound: loopBound)
                servers.append(secure)
                let bound = secure.localAddress?.port ?? tlsPort
                boundHTTPSPort.store(bound, ordering: .relaxed)
                logger.info("worker listening for TLS", metadata: ["address": "\(configuration.bindHost):\(bound)"])
            }
            onListening(port)
            try await group.waitForAll()
        }
        if let engine = native.engine {
            // The native engine does not drain yet: it closes every connection now.
            engine.stop()
            nativeThread?.join()
            sweep.cancel()
            sweepCancelled = true
            try? await self.group.shutdownGracefully()
            return
        }
        // Stopped: drain. No new connections; idle ones close now, busy ones after their response.
        // This runs in its own task: the current one is cancelled, and its sleeps would not wait.
        let drainTimeout = configuration.drainTimeout
        await Task {
            await Self.drain(servers: servers, eventLoop: eventLoop, connections: loopBound, timeout: drainTimeout, logger: logger)
        }.value
        sweep.cancel()
        sweepCancelled = true
        try? await self.group.shutdownGracefully()
    }

    /// An HTTP/1.1 connection: HTTP1ServerHandler, which reads requests, then ProxyHandler.
    private static func configureHTTP1(
        _ channel: any Channel, settings: ProxySettings, maxHeadBytes: Int, loop: LoopState,
        store: TableStore, logger: Logger
    ) throws {
        // ProxyHandler orders pipelined requests itself and writes every response as bytes (relayed
        // ones and its own), so there is no response encoder, pipelining helper or upgrade handler.
        // The reader stops at an upgrade request and holds what follows for the tunnel.
        let sync = channel.pipeline.syncOperations
        let reader = HTTP1ServerHandler(maxHeadBytes: maxHeadBytes, maxFields: settings.maxRequestHeaderFields, counters: loop.counters)
        try sync.addHandler(reader)
        let handler = ProxyHandler(services: loop.services, settings: settings, requestReader: reader)
        try sync.addHandler(handler)
        loop.connections.add(channel, handler)
    }

    /// An HTTP/2 connection: NIOHTTP2's handler, then `HTTP2ProxyConnection`, which gives each
    /// stream its own HTTP2Stream (in no pipeline), so streams go through the same core as
    /// HTTP/1.1 requests, to HTTP/1.1 upstreams.
    private static func configureHTTP2(
        _ channel: any Channel, settings: ProxySettings, http2: HTTP2Limits, loop: LoopState, store: TableStore, logger: Logger
    ) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        // HTTP2ProxyConnection checks request fields as it converts them, and responses come
        // from the upstream parser, which has checked theirs: NIOHTTP2 need not check both again.
        connection.headerBlockValidation = .disabled
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: http2.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: http2.maxHeaderListSize),
            HTTP2Setting(parameter: .initialWindowSize, value: HTTP2ProxyConnection.streamWindowTarget),
        ]
        var stream = NIOHTTP2Handler.StreamConfiguration()
        // CVE-2023-44487 (rapid reset): more than this many RST_STREAM frames from the client in
        // the window close the connection with GOAWAY ENHANCE_YOUR_CALM. HTTP2ProxyConnection
        // counts them together with the resets the client makes the server send (MadeYouReset);
        // NIOHTTP2's own counts stay as a second line.
        stream.streamResetFrameRateLimit.maximumCount = http2.maxResetsPerWindow
        stream.streamResetFrameRateLimit.windowLength = http2.resetWindow
        var streamSettings = settings
        streamSettings.connectionClientAddress = channel.remoteAddress?.ipAddress
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(FlushCoalescingHandler())
        let watch = FrameWatch()
        try sync.addHandler(NIOHTTP2Handler(mode: .server, frameDelegate: watch, connectionConfiguration: connection, streamConfiguration: stream))
        let streams = HTTP2ProxyConnection(
            resets: ResetBudget(limit: http2.maxResetsPerWindow, window: http2.resetWindow), idleTimeout: settings.idleTimeout, counters: loop.counters
        ) { connection, id in
            HTTP2Stream(connection: connection, id: id, services: loop.services, settings: streamSettings)
        }
        watch.connection = streams
        try sync.addHandler(streams)
        // NIOHTTP2 answers a connection error (a rapid-reset flood among them) with GOAWAY and
        // reports it; closing is the application's part.
        try sync.addHandler(CloseOnError())
        // Draining an HTTP/2 connection: GOAWAY, so the client opens no new streams here; the ones
        // under way finish, and the connection closes when they have (or at the deadline).
        loop.connections.add(channel, streams)
    }

    /// One listener: plain HTTP, or TLS first when `tls` is given.
    private func listen(
        port: Int, tls: NIOSSLContext?, settings: ProxySettings, maxHeadBytes: Int,
        loopBound: NIOLoopBound<LoopState>
    ) async throws -> any Channel {
        let store = self.store
        let logger = self.logger
        let accepted = self.acceptedBox
        let http2 = configuration.http2
        let http2Limits = http2
        let certificates = self.certificates
        let handshakeTimeout = TimeAmount(configuration.tlsHandshakeTimeout)
        let owner = "worker \(configuration.workerID)" + (tls == nil ? "" : " (TLS)")
        return try await ListenError.naming(owner, "\(configuration.bindHost):\(port)") {
            try await ServerBootstrap(group: store.eventLoop)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
                // TCP_NODELAY: ServerBootstrap sets it on the listener, and Linux hands it on to every
                // accepted socket; no setsockopt per connection. (`.socketOption(.tcp_nodelay)`, here
                // before, set SO_DEBUG instead: it is SOL_SOCKET level, where option 1 is SO_DEBUG.)
                // No child channel options at all (remote half-closure is off by default): each one is
                // applied to every accepted connection through a future.
                .childChannelInitializer { channel in
                    accepted.value.add(1, ordering: .relaxed)
                    return channel.eventLoop.makeCompletedFuture {
                        var connectionSettings = settings
                        connectionSettings.serverPort = channel.localAddress?.port ?? settings.serverPort
                        guard let tls else {
                            // HTTP/1.1, or HTTP/2 with prior knowledge (h2c, as gRPC clients speak without TLS).
                            let detector = PlainProtocolDetector(headTimeout: connectionSettings.requestHeaderTimeout) { http2 in
                                let loop = loopBound.value
                                if http2 {
                                    try Self.configureHTTP2(channel, settings: connectionSettings, http2: http2Limits, loop: loop, store: store, logger: logger)
                                } else {
                                    try Self.configureHTTP1(
                                        channel, settings: connectionSettings, maxHeadBytes: maxHeadBytes, loop: loop, store: store, logger: logger)
                                }
                            }
                            try channel.pipeline.syncOperations.addHandler(detector)
                            loopBound.value.connections.add(channel, detector)
                            return
                        }
                        // From accept until the handshake completes (the negotiation below runs then).
                        let handshakeDeadline = channel.eventLoop.scheduleTask(in: handshakeTimeout) {
                            loopBound.value.counters.timedOut(.tlsHandshake)
                            channel.close(promise: nil)
                        }
                        channel.closeFuture.whenComplete { _ in handshakeDeadline.cancel() }
                        // The ClientHello's server name, kept for the 421 check on HTTP/2 requests.
                        let serverName = NIOLoopBoundBox<String?>(nil, eventLoop: channel.eventLoop)
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(
                                SNIHandler { result in
                                    if case .hostname(let name) = result { serverName.value = name.lowercased() }
                                    return channel.eventLoop.makeSucceededVoidFuture()
                                }))
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                        // After the handshake: HTTP/2 when the client chose h2 by ALPN, else HTTP/1.1.
                        let negotiation = ApplicationProtocolNegotiationHandler { result, channel in
                            handshakeDeadline.cancel()
                            return channel.eventLoop.makeCompletedFuture {
                                if case .negotiated("h2") = result {
                                    var streamSettings = connectionSettings
                                    streamSettings.tlsServerName = .some(serverName.value)
                                    streamSettings.certificates = certificates
                                    try Self.configureHTTP2(
                                        channel, settings: streamSettings, http2: http2, loop: loopBound.value, store: store, logger: logger)
                                } else {
                                    try Self.configureHTTP1(
                                        channel, settings: connectionSettings, maxHeadBytes: maxHeadBytes, loop: loopBound.value, store: store, logger: logger)
                                }
                            }
                        }
                        try channel.pipeline.syncOperations.addHandler(negotiation)
                    }
                }
                .bind(host: configuration.bindHost, port: port).get()
        }
    }

    private static func drain(
        servers: [any Channel], eventLoop: any EventLoop, connections loopBound: NIOLoopBound<LoopState>,
        timeout: Duration, logger: Logger
    ) async {
        for server in servers { try? await server.close() }
        let remaining = try? await eventLoop.submit { () -> Int in
            loopBound.value.connections.drainAll()
            return loopBound.value.connections.count
        }.get()
        logger.info("draining", metadata: ["connections": "\(remaining ?? 0)"])
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, (try? await eventLoop.submit({ loopBound.value.connections.count }).get()) ?? 0 > 0 {
            try? await Task.sleep(for: .milliseconds(10))
        }
        try? await eventLoop.submit {
            loopBound.value.connections.closeAll()
            loopBound.value.services.connector.closeAll()
        }.get()
        logger.info("stopped")
    }
}

/// What the handlers of the worker's one loop share; used on that loop only.
final class LoopState {
    let pool: UpstreamPool
    let connections: OpenConnections
    let counters: CounterBox
    /// What every exchange on the loop shares.
    let services: ExchangeServices

    init(store: TableStore, observability: WorkerObservability, logger: Logger) {
        pool = UpstreamPool(eventLoop: store.eventLoop)
        counters = CounterBox()
        connections = OpenConnections(gauge: observability.activeConnections)
        let connector = UpstreamConnector(pool: pool, balancer: LoadBalancer(), counters: counters, observability: observability, logger: logger)
        services = ExchangeServices(store: store, connector: connector, counters: counters, observability: observability, logger: logger)
    }
}

/// A client connection's handler, as the loop's registry of open connections sees it.
protocol ServedConnection: AnyObject {
    /// Finish what is under way, then close (graceful drain).
    func beginDrain()
    /// The loop's periodic sweep: a connection whose request-head deadline has passed closes.
    func sweep(now: NIODeadline)
}

/// The worker's open client connections, on its loop: for draining, and for the sweep of
/// request-head deadlines.
final class OpenConnections {
    private var entries: [ObjectIdentifier: (connection: any ServedConnection, channel: any Channel)] = [:]
    private var draining = false
    private let gauge: Gauge

    init(gauge: Gauge) {
        self.gauge = gauge
    }

    var count: Int { entries.count }

    /// Tracks `channel`, served by `connection`, until it closes.
    func add(_ channel: any Channel, _ connection: any ServedConnection) {
        let key = ObjectIdentifier(channel)
        if entries[key] != nil {
            // The handler that decided the connection's protocol hands it on to the one serving it.
            entries[key] = (connection, channel)
            if draining { connection.beginDrain() }
            return
        }
        entries[key] = (connection, channel)
        gauge.increment()
        let gauge = self.gauge
        channel.closeFuture.assumeIsolatedUnsafeUnchecked().whenComplete { [weak self] _ in
            self?.entries[key] = nil
            gauge.decrement()
        }
        if draining { connection.beginDrain() }
    }

    func drainAll() {
        draining = true
        for entry in entries.values { entry.connection.beginDrain() }
    }

    /// Deadlines (request head, idle, request body, upstream read) are checked here, every
    /// `sweepInterval`, instead of by timers per connection: a scheduled task was seven mallocs
    /// and a timer-heap insert and removal per connection, a sweep is a comparison per open
    /// connection (as Kestrel's heartbeat does).
    func sweep(now: NIODeadline) {
        for entry in entries.values { entry.connection.sweep(now: now) }
    }

    /// How often the sweep runs for the shortest timeout: a timeout fires at most a quarter of
    /// it late (a second at most).
    static func sweepInterval(for timeout: TimeAmount) -> TimeAmount {
        min(.seconds(1), max(.milliseconds(10), .nanoseconds(timeout.nanoseconds / 4)))
    }

    func closeAll() {
        for entry in entries.values { entry.channel.close(promise: nil) }
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        self = .nanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }
}

/// HTTP/2 limits per connection.
public struct HTTP2Limits: Sendable {
    public var maxConcurrentStreams = 128
    /// SETTINGS_MAX_HEADER_LIST_SIZE advertised to clients.
    public var maxHeaderListSize = 64 << 10
    /// Rapid-reset defence: RST_STREAM frames allowed per window before the connection is closed.
    public var maxResetsPerWindow = 200
    public var resetWindow = TimeAmount.seconds(30)

    public init() {}
}

final class AtomicBox: Sendable {
    let value = Atomic<Int>(0)
}

/// The current certificate set, replaced per snapshot and read by each TLS handshake.
final class CertificateStore: Sendable {
    private let box = Mutex(CertificateSet.empty)

    var current: CertificateSet { box.withLock { $0 } }

    func replace(with new: CertificateSet) { box.withLock { $0 = new } }
}

/// TLS settings for the listener.
enum TLSSettings {
    /// TLS 1.2 and 1.3 with forward-secret AEAD suites only (TLS 1.3's are fixed by BoringSSL),
    /// ALPN h2 and http/1.1, and the certificate chosen per ClientHello from `certificates`.
    static func server(default fallback: DefaultCertificate, certificates: CertificateStore) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: fallback.chain.map { .certificate($0) }, privateKey: .privateKey(fallback.key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.cipherSuiteValues = [
            .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ]
        configuration.applicationProtocols = ["h2", "http/1.1"]
        configuration.sslContextCallback = { values, promise in
            guard let entry = certificates.current.lookup(serverName: values.serverHostname) else {
                promise.succeed(.noChanges)
                return
            }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = entry.chain.map { .certificate($0) }
            override.privateKey = .privateKey(entry.key)
            promise.succeed(override)
        }
        return configuration
    }
}

/// Tells an HTTP/2 connection's handler about every frame NIOHTTP2 writes, its own included.
final class FrameWatch: NIOHTTP2FrameDelegate {
    weak var connection: HTTP2ProxyConnection?

    func wroteFrame(_ frame: HTTP2Frame) {
        connection?.wroteFrame(frame)
    }
}

/// Closes its connection on any error that reaches it, after flushing what is written: NIOHTTP2
/// writes its GOAWAY before it reports a connection error, and inside a read it would only be
/// flushed at the read's end.
final class CloseOnError: ChannelInboundHandler, Sendable {
    typealias InboundIn = Any

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.flush()
        context.close(promise: nil)
    }
}

/// Runs `release` once changes pause for `quiet`: a burst of changes is followed by one release,
/// not one per change, and a release waits until what the change left behind is freed (a whole
/// snapshot's message outlives the table's apply). Changes that never pause (endpoint churn) get
/// one at least every `cap`, as the rebuild loop caps its hold-off.
final class ReleaseAfterChanges: Sendable {
    private let release: @Sendable () -> Void
    private let quiet: Duration
    private let cap: Duration
    private let state = Mutex<(pending: Task<Void, Never>?, since: ContinuousClock.Instant?)>((nil, nil))

    init(release: @escaping @Sendable () -> Void, quiet: Duration, cap: Duration = .seconds(30)) {
        self.release = release
        self.quiet = quiet
        self.cap = cap
    }

    func changed() {
        let now = ContinuousClock.now
        let delay = state.withLock { state -> Duration in
            let since = state.since ?? now
            state.since = since
            return now - since >= cap ? .zero : quiet
        }
        let next = Task { [self] in
            if delay > .zero {
                do { try await Task.sleep(for: delay) } catch { return }
            }
            // A later change may have replaced this task meanwhile; it then releases instead.
            guard !Task.isCancelled else { return }
            state.withLock { $0.since = nil }
            release()
        }
        state.withLock { state in
            state.pending?.cancel()
            state.pending = next
        }
    }

    deinit { state.withLock { $0.pending?.cancel() } }
}
