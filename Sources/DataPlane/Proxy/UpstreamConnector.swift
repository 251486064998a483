import Logging
import NIOCore
import RouteModel

/// Upstream selection for one event loop's exchanges: picks an endpoint of a cluster (skipping the
/// ones that failed this exchange), takes an idle pooled connection to it or opens one, and keeps
/// the books of each outcome: connect failures, retries and ejections are counted and logged, and
/// least-request sees each exchange start and finish. Whether to retry is the exchange's decision
/// (`ProxyExchange.connectFailed`); this only carries it out.
final class UpstreamConnector {
    let pool: UpstreamPool
    let balancer: LoadBalancer
    private let counters: CounterBox
    private let observability: WorkerObservability
    private let logger: Logger

    init(pool: UpstreamPool, balancer: LoadBalancer, counters: CounterBox, observability: WorkerObservability, logger: Logger) {
        self.pool = pool
        self.balancer = balancer
        self.counters = counters
        self.observability = observability
        self.logger = logger
    }

    enum Attempt {
        /// An idle pooled connection, taken at once (no future, no callback).
        case ready(UpstreamPool.Connection, Endpoint)
        /// A new connection to `Endpoint` is being opened.
        case opening(EventLoopFuture<UpstreamPool.Connection>, Endpoint)
        /// Every endpoint was tried.
        case noEndpoint
    }

    /// A connection for an exchange to `cluster`. `fresh`: never a pooled one (an upgrade leaves
    /// the pool for good).
    /// `profile`: the route's TLS or HTTP/2 pool; nil for plain HTTP/1.1.
    func connect(to cluster: Cluster, fresh: Bool, skipping tried: [Endpoint], profile: UpstreamProfile? = nil) -> Attempt {
        guard let endpoint = balancer.pick(cluster, skipping: tried) else { return .noEndpoint }
        let pool = profile?.pool ?? self.pool
        if !fresh, let connection = pool.takeIdle(endpoint, timeouts: cluster.timeouts) { return .ready(connection, endpoint) }
        return .opening(pool.connect(endpoint, timeouts: cluster.timeouts), endpoint)
    }

    private var profiles: [UpstreamProfile.Key: Result<UpstreamProfile, UpstreamProfile.Failure>] = [:]
    /// The profile asked for last: hashing a key hashes its PEMs (kilobytes) on every request,
    /// while comparing it with the same route's key is a storage-identity check.
    private var last: (key: UpstreamProfile.Key, profile: Result<UpstreamProfile, UpstreamProfile.Failure>)?

    /// The pool for routes with these options (`backend-protocol` other than HTTP), made once per
    /// loop; a TLS setting that cannot be used (a CA or client key OpenSSL refuses) is a failure.
    func profile(for options: RouteOptions) -> Result<UpstreamProfile, UpstreamProfile.Failure> {
        let key = UpstreamProfile.Key(upstreamProtocol: options.upstreamProtocol, tls: options.upstreamTLS)
        if let last, last.key == key { return last.profile }
        if let known = profiles[key] {
            last = (key, known)
            return known
        }
        if profiles.count >= 256 {
            // Settings of tables long gone: their pools close, the current ones are made again.
            for case .success(let profile) in profiles.values { profile.pool.closeAll() }
            profiles.removeAll()
        }
        let made = UpstreamProfile.make(key, eventLoop: pool.eventLoop)
        if case .failure(let failure) = made {
            logger.warning("upstream TLS settings unusable", metadata: ["error": "\(failure.message)"])
        }
        profiles[key] = made
        last = (key, made)
        return made
    }

    func closeAll() {
        pool.closeAll()
        for case .success(let profile) in profiles.values { profile.pool.closeAll() }
    }

    /// The exchange got its connection to `endpoint`; returns whether least-request counts it busy
    /// (then `finished` must follow).
    func succeeded(_ endpoint: Endpoint, in cluster: Cluster) -> Bool {
        balancer.connectSucceeded(endpoint)
        guard cluster.loadBalancing == .leastRequest else { return false }
        balancer.started(endpoint)
        return true
    }

    /// The exchange that `succeeded` counted busy is over.
    func finished(_ endpoint: Endpoint) {
        balancer.finished(endpoint)
    }

    /// Books a failed connect: counted, logged, and the endpoint ejected after enough in a row.
    func failed(_ endpoint: Endpoint, in cluster: Cluster, error: any Error) -> ProxyExchange.ConnectFailure {
        counters.value.connectFailures += 1
        if balancer.connectFailed(endpoint) {
            counters.value.ejections += 1
            logger.warning("endpoint ejected after consecutive connect failures", metadata: ["endpoint": "\(endpoint)", "cluster": "\(cluster.name)"])
        }
        logger.info("upstream connect failed", metadata: ["endpoint": "\(endpoint)", "cluster": "\(cluster.name)", "error": "\(error)"])
        if let error = error as? ChannelError, case .connectTimeout = error { return .timedOut }
        return .refused
    }

    /// Books a retry on another endpoint.
    func retrying() {
        counters.value.retries += 1
    }

    /// A connection whose exchange ended cleanly goes back to the pool.
    func release(_ connection: UpstreamPool.Connection) {
        connection.pool.release(connection)
    }

    /// A connection that cannot finish its exchange cleanly is closed.
    func drop(_ connection: UpstreamPool.Connection) {
        connection.handler.owner = nil
        connection.channel.close(promise: nil)
    }
}
