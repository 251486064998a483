import NIOCore
import NIOHTTP1
import NIOPosix
import RouteModel

/// Keep-alive connections to upstream endpoints, per endpoint, for one event loop.
///
/// Idle connections are reused most-recent first, at most `maxIdlePerEndpoint` are kept, and one
/// idle longer than the cluster's idle timeout is closed instead of reused. A connection the
/// upstream closes while idle leaves the pool by itself.
final class UpstreamPool {
    struct Connection {
        let channel: any Channel
        let handler: UpstreamHandler
        let endpoint: Endpoint
    }

    private struct Idle {
        let connection: Connection
        let since: NIODeadline
    }

    let eventLoop: any EventLoop
    let maxIdlePerEndpoint: Int
    private var idle: [Endpoint: [Idle]] = [:]

    init(eventLoop: any EventLoop, maxIdlePerEndpoint: Int = 64) {
        self.eventLoop = eventLoop
        self.maxIdlePerEndpoint = maxIdlePerEndpoint
    }

    var idleCount: Int { idle.values.reduce(0) { $0 + $1.count } }

    /// An idle connection to `endpoint`, or a new one.
    func acquire(_ endpoint: Endpoint, timeouts: ClusterTimeouts) -> EventLoopFuture<Connection> {
        eventLoop.preconditionInEventLoop()
        let maxIdle = TimeAmount.milliseconds(Int64(timeouts.idleMilliseconds))
        while var list = idle[endpoint], let last = list.popLast() {
            idle[endpoint] = list.isEmpty ? nil : list
            if last.connection.channel.isActive, timeouts.idleMilliseconds == 0 || NIODeadline.now() - last.since < maxIdle {
                return eventLoop.makeSucceededFuture(last.connection)
            }
            last.connection.channel.close(promise: nil)
        }
        let handler = UpstreamHandler()
        var bootstrap = ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        if timeouts.connectMilliseconds > 0 { bootstrap = bootstrap.connectTimeout(.milliseconds(Int64(timeouts.connectMilliseconds))) }
        return bootstrap.connect(host: endpoint.address, port: endpoint.port).map { channel in
            Connection(channel: channel, handler: handler, endpoint: endpoint)
        }
    }

    /// Returns a connection whose last exchange completed cleanly.
    func release(_ connection: Connection) {
        eventLoop.preconditionInEventLoop()
        connection.handler.owner = nil
        guard connection.channel.isActive, (idle[connection.endpoint]?.count ?? 0) < maxIdlePerEndpoint else {
            connection.channel.close(promise: nil)
            return
        }
        idle[connection.endpoint, default: []].append(Idle(connection: connection, since: .now()))
        connection.handler.onIdleClose = { [weak self] in self?.remove(connection) }
    }

    private func remove(_ connection: Connection) {
        idle[connection.endpoint]?.removeAll { $0.connection.channel === connection.channel }
        if idle[connection.endpoint]?.isEmpty == true { idle[connection.endpoint] = nil }
    }

    func closeAll() {
        for list in idle.values { for entry in list { entry.connection.channel.close(promise: nil) } }
        idle.removeAll()
    }
}

/// Round robin over a cluster's endpoints, per event loop.
final class LoadBalancer {
    private var next: [String: Int] = [:]

    func pick(_ cluster: Cluster, skipping tried: Set<Endpoint> = []) -> Endpoint? {
        let endpoints = cluster.endpoints
        guard !endpoints.isEmpty else { return nil }
        let start = next[cluster.name, default: 0]
        for offset in 0..<endpoints.count {
            let endpoint = endpoints[(start + offset) % endpoints.count]
            if !tried.contains(endpoint) {
                next[cluster.name] = (start + offset + 1) % endpoints.count
                return endpoint
            }
        }
        return nil
    }
}
