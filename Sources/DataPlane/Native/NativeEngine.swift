#if canImport(Glibc)
import CPorticoNative
import Glibc
import NIOCore
import RouteModel
import Synchronization

/// Where a worker's snapshots meet its native engine, which starts only after the first one:
/// the latest table is kept until then and applied on install.
final class NativeEngineSlot: Sendable {
    private let state = Mutex<(engine: NativeEngine?, table: RouteTable?, version: UInt64)>((nil, nil, 0))

    var engine: NativeEngine? { state.withLock { $0.engine } }

    func apply(_ table: RouteTable, version: UInt64) {
        let engine = state.withLock { state -> NativeEngine? in
            state.table = table
            state.version = version
            return state.engine
        }
        engine?.apply(table, version: version)
    }

    func install(_ engine: NativeEngine) {
        let latest = state.withLock { state -> (RouteTable?, UInt64) in
            state.engine = engine
            return (state.table, state.version)
        }
        if let table = latest.0 { engine.apply(table, version: latest.1) }
    }
}

/// The thread a `NativeEngine` runs on.
public final class NativeEngineThread: @unchecked Sendable {
    private var thread = pthread_t()

    fileprivate init(engine: NativeEngine) {
        let box = Unmanaged.passRetained(engine).toOpaque()
        pthread_create(
            &thread, nil,
            { argument in
                let engine = Unmanaged<NativeEngine>.fromOpaque(argument!).takeRetainedValue()
                engine.run()
                return nil
            }, box)
    }

    /// Waits for the loop to end (after `stop`).
    public func join() {
        pthread_join(thread, nil)
    }
}

/// A socket registered with the native loop: registered once, edge-triggered, for reading and
/// writing (as nginx does), so no epoll_ctl is made per request. The loop calls `handle` with the
/// events epoll reported.
class NativeSocketOwner {
    let fd: Int32
    /// Closed: the fd is gone and the loop lets go of the object after the current batch.
    var isClosed = false

    init(fd: Int32) {
        self.fd = fd
    }

    func handle(_ events: UInt32) {}
}

/// The worker's experimental engine (`portico worker --engine native`): one edge-triggered epoll
/// loop on a thread of its own, plaintext HTTP/1.1 only, with the same request parser
/// (`HTTP1RequestParser`, `HTTP1BodyDecoder`), the same routing (`RequestRouter`) and the same
/// exchange state machine (`ProxyExchange`) as the SwiftNIO engine; reads go until EAGAIN into
/// buffers allocated once per connection, and upstream connections are kept alive in a pool.
///
/// What it does not do yet: TLS, HTTP/2, upgrades (answered 501), timeouts (no deadline is
/// checked), draining (stop closes every connection), metrics and the access log, IPv6 and
/// endpoint names (IPv4 literals only), and request trailers (dropped).
public final class NativeEngine: @unchecked Sendable {
    public struct Settings: Sendable {
        public var host = "127.0.0.1"
        public var port = 0
        /// Where plain-HTTP requests for TLS hosts are redirected.
        public var httpsPort = 443
        public var maxRequestHeaderBytes = 16 << 10
        public var maxRequestHeaderFields = 100
        public var maxConnectAttempts = 3

        public init() {}
    }

    let settings: Settings
    /// Client connections accepted, for `Worker.acceptedConnections`.
    let accepted = AtomicBox()
    /// The bound port.
    public let port: Int
    private let epoll: Int32
    private let listener: Int32
    /// Written to wake the loop for a new table or for stop.
    private let wake: Int32
    private let stopping = Atomic<Bool>(false)
    private let published = Mutex<TableStore.Current>(TableStore.Current(.empty))
    private let publishedVersion = Atomic<UInt64>(0)

    // Loop thread only from here.
    /// The time when the current batch of events was returned: exchanges read it instead of the
    /// clock (nginx's cached time), one clock_gettime per batch instead of several per request.
    private(set) var now = NIODeadline.now()
    private(set) var table = TableStore.Current(.empty)
    private var tableVersion: UInt64 = 0
    let balancer = LoadBalancer()
    /// Idle upstream connections per endpoint, most recently used last.
    private var idle: [Endpoint: IdleList] = [:]
    /// A class, so that taking and returning a connection reads the dictionary and changes the
    /// list in place (a struct value would be copied out and back, an allocation per request).
    private final class IdleList {
        var entries: [NativeUpstream] = []
    }
    private var addresses: [Endpoint: sockaddr_in] = [:]
    /// Every open socket's owner, retained once while registered.
    private var open: [Int32: NativeSocketOwner] = [:]
    private var closing: [NativeSocketOwner] = []
    private static let listenerToken: UInt64 = 1
    private static let wakeToken: UInt64 = 2

    public init(settings: Settings) throws(NativeEngineError) {
        self.settings = settings
        let (listener, port) = try NativeSocket.listen(host: settings.host, port: settings.port)
        self.listener = listener
        self.port = port
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard epoll >= 0, wake >= 0 else { throw .system("epoll_create1/eventfd", errno) }
        watch(listener, token: Self.listenerToken, events: EPOLLIN.rawValue)
        watch(wake, token: Self.wakeToken, events: EPOLLIN.rawValue)
    }

    /// Swaps in `table` for requests that start from the loop's next wakeup. From any thread.
    public func apply(_ table: RouteTable, version: UInt64) {
        let current = TableStore.Current(table)
        let newer = published.withLock { published -> Bool in
            // An older table applied late (from another thread) never replaces a newer one.
            guard version >= publishedVersion.load(ordering: .acquiring) else { return false }
            published = current
            publishedVersion.store(version, ordering: .releasing)
            return true
        }
        if newer { signal() }
    }

    public var appliedVersion: UInt64 { publishedVersion.load(ordering: .acquiring) }

    /// Stops the loop; `run` returns once every socket is closed. From any thread.
    /// Runs the loop on a thread of its own; `stop` ends it, and the returned thread's join waits.
    public func start() -> NativeEngineThread {
        NativeEngineThread(engine: self)
    }

    public func stop() {
        stopping.store(true, ordering: .releasing)
        signal()
    }

    private func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(wake, &one, 8)
    }

    /// Runs the loop on the calling thread until `stop`.
    public func run() {
        let capacity = 512
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while !stopping.load(ordering: .acquiring) {
            let count = epoll_wait(epoll, events, Int32(capacity), -1)
            if count < 0 {
                if errno == EINTR { continue }
                break
            }
            now = .now()
            refreshTable()
            for index in 0..<Int(count) {
                let event = events[index]
                switch event.data.u64 {
                case Self.listenerToken: acceptAll()
                case Self.wakeToken:
                    var value: UInt64 = 0
                    _ = Glibc.read(wake, &value, 8)
                default:
                    // The object's address; held by `open` until after this batch, so it is alive
                    // even if an earlier event of the batch closed it.
                    let owner = Unmanaged<NativeSocketOwner>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(event.data.u64))!)
                    owner._withUnsafeGuaranteedRef { if !$0.isClosed { $0.handle(event.events) } }
                }
            }
            if !closing.isEmpty { closing.removeAll(keepingCapacity: true) }
        }
        for owner in open.values where !owner.isClosed { Glibc.close(owner.fd) }
        open.removeAll()
        idle.removeAll()
        Glibc.close(listener)
        Glibc.close(wake)
        Glibc.close(epoll)
    }

    private func refreshTable() {
        let version = publishedVersion.load(ordering: .acquiring)
        guard version != tableVersion else { return }
        tableVersion = version
        table = published.withLock { $0 }
    }

    private func watch(_ fd: Int32, token: UInt64, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = token
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
    }

    /// Registers `owner`'s socket once, for reading, writing and the peer's close, edge-triggered.
    func register(_ owner: NativeSocketOwner) {
        open[owner.fd] = owner
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        event.data.u64 = UInt64(UInt(bitPattern: Unmanaged.passUnretained(owner).toOpaque()))
        epoll_ctl(epoll, EPOLL_CTL_ADD, owner.fd, &event)
    }

    /// Closes `owner`'s socket; the object goes after the current batch of events.
    func close(_ owner: NativeSocketOwner) {
        guard !owner.isClosed else { return }
        owner.isClosed = true
        Glibc.close(owner.fd)
        if let kept = open.removeValue(forKey: owner.fd) { closing.append(kept) }
    }

    private func acceptAll() {
        while true {
            let fd = c_portico_accept4(listener, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            guard fd >= 0 else { return }  // EAGAIN, or an error the next accept reports again
            accepted.value.add(1, ordering: .relaxed)
            let client = NativeClient(fd: fd, engine: self)
            register(client)
        }
    }

    // MARK: Upstream connections

    /// An idle pooled connection to `endpoint`, if one is alive.
    func takeIdle(_ endpoint: Endpoint) -> NativeUpstream? {
        guard let list = idle[endpoint] else { return nil }
        while let last = list.entries.popLast() {
            if !last.isClosed { return last }
        }
        return nil
    }

    /// A new connection to `endpoint`, connecting; nil when it failed at once.
    func connect(_ endpoint: Endpoint) -> NativeUpstream? {
        let address: sockaddr_in
        if let known = addresses[endpoint] {
            address = known
        } else {
            guard let parsed = NativeSocket.ipv4(endpoint.address, endpoint.port) else { return nil }
            addresses[endpoint] = parsed
            address = parsed
        }
        let fd = NativeSocket.connect(to: address)
        guard fd >= 0 else { return nil }
        let upstream = NativeUpstream(fd: fd, endpoint: endpoint, engine: self)
        register(upstream)
        return upstream
    }

    /// Keeps a connection whose exchange ended cleanly; at most 512 per endpoint.
    func release(_ upstream: NativeUpstream) {
        guard !upstream.isClosed else { return }
        upstream.client = nil
        let list: IdleList
        if let existing = idle[upstream.endpoint] {
            list = existing
        } else {
            list = IdleList()
            idle[upstream.endpoint] = list
        }
        guard list.entries.count < 512 else {
            close(upstream)
            return
        }
        list.entries.append(upstream)
    }

    /// A pooled connection the upstream closed (or wrote to while idle) leaves the pool.
    func forget(_ upstream: NativeUpstream) {
        close(upstream)
        idle[upstream.endpoint]?.entries.removeAll { $0 === upstream }
    }
}
#endif
