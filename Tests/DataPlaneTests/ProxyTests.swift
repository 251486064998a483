import ControlPlane
import Foundation
import NIOHTTP1
import RouteModel
import SnapshotProtocol
import Synchronization
import Testing
import TestSupport
@testable import DataPlane

/// A worker in this process, fed by a real snapshot server over a Unix socket.
final class LiveProxy: Sendable {
    let worker: Worker
    let port: Int
    let latest: LatestSnapshot
    let tasks: [Task<Void, any Error>]
    let version = Atomic<UInt64>(0)
    /// The snapshot server's private directory, removed by stop().
    let socketDirectory: String

    init(worker: Worker, port: Int, latest: LatestSnapshot, tasks: [Task<Void, any Error>], socketDirectory: String) {
        self.worker = worker
        self.port = port
        self.latest = latest
        self.tasks = tasks
        self.socketDirectory = socketDirectory
    }

    static func start(
        _ table: RouteTable, port: Int = 0, configure: (inout Worker.Configuration) -> Void = { _ in }
    ) async throws -> LiveProxy {
        let latest = LatestSnapshot()
        latest.publish(version: 1, table: table)
        let directory = "/tmp/portico-proxy-\(UUID().uuidString.prefix(8))"
        let socket = ServerAddress.unix(path: directory + "/cp.sock")
        let server = SnapshotServer(service: SnapshotService(latest: latest), addresses: [socket])
        let listening = Atomic<Bool>(false)
        let serverTask = Task { try await server.run { _ in listening.store(true, ordering: .relaxed) } }
        try await eventually("the snapshot server listens") { listening.load(ordering: .relaxed) }
        var configuration = Worker.Configuration(controlPlane: socket)
        configuration.bindHost = "127.0.0.1"
        configuration.httpPort = port
        configure(&configuration)
        let worker = Worker(configuration: configuration)
        let bound = Atomic<Int>(0)
        let workerTask = Task { try await worker.run { bound.store($0, ordering: .relaxed) } }
        try await eventually("the worker listens") { bound.load(ordering: .relaxed) != 0 }
        try await eventually("the worker applies version 1") { await worker.store.appliedVersion == 1 }
        let proxy = LiveProxy(
            worker: worker, port: bound.load(ordering: .relaxed), latest: latest, tasks: [serverTask, workerTask], socketDirectory: directory)
        proxy.version.store(1, ordering: .relaxed)
        return proxy
    }

    /// Publishes `table` and waits until the worker serves it.
    func publish(_ table: RouteTable) async throws {
        let next = version.add(1, ordering: .relaxed).newValue
        latest.publish(version: next, table: table)
        try await eventually("the worker applies version \(next)") { await worker.store.appliedVersion == next }
    }

    func stop() async {
        for task in tasks.reversed() {
            task.cancel()
            _ = await task.result
        }
        try? FileManager.default.removeItem(atPath: socketDirectory)
    }
}

/// Routes `host` + prefix `path` to the given endpoint ports on 127.0.0.1.
func proxyTable(
    _ routes: [(host: String, path: String, ports: [Int])], redirect: Bool = false, timeouts: ClusterTimeouts = .standard
) -> RouteTable {
    var clusters: [Cluster] = []
    var hosts: [String: [Route]] = [:]
    for (index, route) in routes.enumerated() {
        let cluster = Cluster(
            namespace: "default", service: "svc\(index)", servicePort: .number(80),
            endpoints: route.ports.map { Endpoint(address: "127.0.0.1", port: $0) }, timeouts: timeouts)
        clusters.append(cluster)
        hosts[route.host, default: []].append(
            Route(
                match: PathMatch(kind: .prefix, path: route.path),
                backend: Backend(cluster: cluster.name, source: RouteSource(namespace: "default", ingress: "ing\(index)"), httpsRedirect: redirect)))
    }
    return RouteTable(
        virtualHosts: hosts.map { VirtualHost(hostname: .exact($0.key), routes: $0.value, tls: redirect ? TLSBinding(certificate: nil) : nil) },
        clusters: clusters, certificates: [])
}

/// A port nothing listens on, nor can while the tests run (a stopped backend's port could be
/// handed to another test's listener meanwhile).
func closedPort() throws -> Int {
    try refusingPort()
}

@Suite(.serialized) struct ProxyTests {
    /// Also on the native engine (`--engine native`), which serves plain HTTP/1.1.
    @Test(arguments: Worker.Configuration.Engine.allCases)
    func routesByHostAndPathAndRewritesHeaders(engine: Worker.Configuration.Engine) async throws {
        let a = try await TestBackend.start(name: "a")
        let b = try await TestBackend.start(name: "b")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port]), ("a.test", "/api", [b.port]), ("b.test", "/", [b.port])])) { $0.engine = engine }
        try await TestHTTPConnection.with(port: proxy.port) { client in
            let root = try await client.request(.GET, "/x/../index.html", host: "a.test")
            #expect(root.status == .ok)
            #expect(root.headers["x-backend"] == ["a"])
            #expect(root.echoed["target"] == "/index.html", "the normalised target is what the backend gets")
            #expect(root.echoed["host"] == "a.test", "Host is preserved")
            #expect(root.echoed["x-forwarded-for"] == "127.0.0.1")
            #expect(root.echoed["x-forwarded-proto"] == "http")
            #expect(root.echoed["x-forwarded-host"] == "a.test")
            #expect(root.echoed["x-forwarded-port"] == String(proxy.port))
            #expect(root.echoed["x-request-id"]?.count == 32)

            let api = try await client.request(
                .GET, "/api/v1?q=1", host: "A.TEST",
                headers: [("X-Request-ID", "given-id"), ("Connection", "keep-alive, X-Hop"), ("X-Hop", "secret"), ("Keep-Alive", "timeout=5")])
            #expect(api.headers["x-backend"] == ["b"])
            #expect(api.echoed["target"] == "/api/v1?q=1")
            #expect(api.echoed["x-request-id"] == "given-id")
            #expect(api.echoed["x-hop"] == nil && api.echoed["keep-alive"] == nil && api.echoed["connection"] == nil)

            let other = try await client.request(.GET, "/", host: "b.test:\(proxy.port)")
            #expect(other.headers["x-backend"] == ["b"])
        }
        await proxy.stop()
        await a.stop()
        await b.stop()
    }

    @Test func localAnswers404And503And502And504() async throws {
        let slow = try await TestBackend.start(name: "slow")
        let dead = try closedPort()
        let table = proxyTable(
            [("idle.test", "/", []), ("dead.test", "/", [dead]), ("slow.test", "/", [slow.port])],
            timeouts: ClusterTimeouts(connectMilliseconds: 1000, responseHeaderMilliseconds: 300, idleMilliseconds: 60_000))
        let proxy = try await LiveProxy.start(table)
        try await TestHTTPConnection.with(port: proxy.port) { client in
            #expect(try await client.request(.GET, "/", host: "unknown.test").status == .notFound)
            #expect(try await client.request(.GET, "/", host: "idle.test").status == .serviceUnavailable)
            #expect(try await client.request(.GET, "/", host: "dead.test").status == .badGateway)
            let timedOut = try await client.request(.GET, "/sleep/3000", host: "slow.test")
            #expect(timedOut.status == .gatewayTimeout)
            #expect(timedOut.text == "504 upstream timeout\n")
            // The connection is still usable after each local answer.
            #expect(try await client.request(.GET, "/sleep/1", host: "slow.test").status == .ok)
        }
        let counters = await proxy.worker.counters()
        #expect(counters.localAnswers == [404: 1, 503: 1, 502: 1, 504: 1], "each local answer is counted once")
        #expect(counters.upstreamAnswers == [200: 1])
        #expect(counters.connectFailures == 1)
        await proxy.stop()
        await slow.stop()
    }

    /// Also on the native engine (`--engine native`), which serves plain HTTP/1.1.
    @Test(arguments: Worker.Configuration.Engine.allCases)
    func aFailedConnectIsRetriedOnAnotherEndpoint(engine: Worker.Configuration.Engine) async throws {
        let live = try await TestBackend.start(name: "live")
        let dead = try closedPort()
        let proxy = try await LiveProxy.start(proxyTable([("h.test", "/", [dead, live.port])])) { $0.engine = engine }
        try await TestHTTPConnection.with(port: proxy.port) { client in
            for _ in 0..<6 {
                let response = try await client.request(.GET, "/", host: "h.test")
                #expect(response.headers["x-backend"] == ["live"])
            }
        }
        await proxy.stop()
        await live.stop()
    }

    /// Also on the native engine (`--engine native`), which serves plain HTTP/1.1.
    @Test(arguments: Worker.Configuration.Engine.allCases)
    func plainHTTPForATLSHostIsRedirected(engine: Worker.Configuration.Engine) async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("secure.test", "/", [a.port])], redirect: true)) { $0.engine = engine }
        try await TestHTTPConnection.with(port: proxy.port) { client in
            let response = try await client.request(.GET, "/p?q=1", host: "secure.test")
            #expect(response.status == .permanentRedirect)
            #expect(response.headers["location"] == ["https://secure.test/p?q=1"])
        }
        await proxy.stop()
        await a.stop()
    }

    /// Also on the native engine (`--engine native`), which serves plain HTTP/1.1.
    @Test(arguments: Worker.Configuration.Engine.allCases)
    func keepAliveReusesOneUpstreamConnection(engine: Worker.Configuration.Engine) async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port])])) { $0.engine = engine }
        try await TestHTTPConnection.with(port: proxy.port) { client in
            for index in 0..<20 {
                let response = try await client.request(.GET, "/\(index)", host: "a.test")
                #expect(response.status == .ok)
            }
        }
        let again = try await TestHTTPConnection.with(port: proxy.port) { client in
            try await client.request(.GET, "/again", host: "a.test")
        }
        #expect(again.status == .ok)
        #expect(a.acceptedConnections == 1, "21 requests over two client connections used one pooled upstream connection")
        await proxy.stop()
        await a.stop()
    }

    /// Also on the native engine (`--engine native`), which serves plain HTTP/1.1.
    @Test(arguments: Worker.Configuration.Engine.allCases)
    func bodiesStreamBothWays(engine: Worker.Configuration.Engine) async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port])])) { $0.engine = engine }
        let size = 64 << 20
        try await TestHTTPConnection.with(port: proxy.port) { client in
            let download = try await client.request(.GET, "/bytes/\(size)", host: "a.test")
            #expect(download.status == .ok)
            #expect(download.bodyCount == size)
            let upload = try await client.request(.POST, "/count", host: "a.test", uploadBytes: size)
            #expect(upload.text == "received=\(size)\n")
            let small = try await client.request(.PUT, "/count", host: "a.test", body: Array(repeating: 7, count: 1000))
            #expect(small.text == "received=1000\n")
        }
        await proxy.stop()
        await a.stop()
    }

    /// Four clients send requests back to back while the table changes 100 times: every request
    /// succeeds, and established connections stay open across every swap.
    /// Also on the native engine (`--engine native`), which serves plain HTTP/1.1.
    @Test(arguments: Worker.Configuration.Engine.allCases)
    func tableSwapsDuringLoadFailNothing(engine: Worker.Configuration.Engine) async throws {
        let a = try await TestBackend.start(name: "a")
        let b = try await TestBackend.start(name: "b")
        let proxy = try await LiveProxy.start(proxyTable([("h.test", "/", [a.port])])) { $0.engine = engine }
        let stop = StopFlag()
        let clients = (0..<4).map { _ in
            Task {
                try await TestHTTPConnection.with(port: proxy.port) { client in
                    var statuses: [UInt] = []
                    while !stop.isSet || statuses.count < 10 {
                        statuses.append(try await client.request(.GET, "/", host: "h.test").status.code)
                        if statuses.count >= 2000 { break }
                    }
                    return statuses
                }
            }
        }
        for round in 0..<100 {
            try await proxy.publish(proxyTable([("h.test", "/", round % 2 == 0 ? [b.port] : [a.port, b.port])]))
        }
        stop.set()
        var total = 0
        for client in clients {
            let statuses = try await client.value
            total += statuses.count
            #expect(statuses.allSatisfy { $0 == 200 }, "statuses: \(Set(statuses))")
        }
        #expect(total >= 40)
        #expect(proxy.worker.acceptedConnections == 4, "no client connection was closed by a swap")
        await proxy.stop()
        await a.stop()
        await b.stop()
    }

    @Test func twoWorkersShareOnePort() async throws {
        let a = try await TestBackend.start(name: "a")
        let table = proxyTable([("h.test", "/", [a.port])])
        let first = try await LiveProxy.start(table)
        let second = try await LiveProxy.start(table, port: first.port)
        for _ in 0..<60 {
            let response = try await TestHTTPConnection.with(port: first.port) { client in
                try await client.request(.GET, "/", host: "h.test")
            }
            #expect(response.status == .ok)
        }
        #expect(first.worker.acceptedConnections + second.worker.acceptedConnections == 60)
        #expect(first.worker.acceptedConnections > 0, "the kernel spread connections over both workers")
        #expect(second.worker.acceptedConnections > 0)
        await first.stop()
        await second.stop()
        await a.stop()
    }
}

final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

@Suite(.serialized) struct DrainTests {
    /// Stopping the worker lets requests in flight finish, closes idle keep-alive connections at
    /// once, and stops accepting.
    @Test func stoppingDrainsInFlightRequests() async throws {
        let a = try await TestBackend.start(name: "a")
        let b = try await TestBackend.start(name: "b")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port]), ("b.test", "/", [b.port])])) {
            $0.drainTimeout = .seconds(20)
        }
        let inFlight = Task {
            try await TestHTTPConnection.with(port: proxy.port) { client in
                try await client.request(.GET, "/sleep/2000", host: "a.test")
            }
        }
        // An idle keep-alive connection: after one request it waits; the drain must close it.
        let idleClosed = Task {
            try await RawConnection.exchange(port: proxy.port, send: ["GET / HTTP/1.1\r\nHost: b.test\r\n\r\n"])
        }
        try await eventually("both connections are open") { proxy.worker.acceptedConnections == 2 }
        try await eventually("both requests reached their backends") { a.acceptedConnections == 1 && b.acceptedConnections == 1 }
        let workerTask = proxy.tasks[1]
        workerTask.cancel()
        let slow = try await inFlight.value
        #expect(slow.status == .ok)
        #expect(slow.text == "slept\n")
        #expect(slow.headers["connection"] == ["close"], "a draining worker closes after the response")
        let idle = try await idleClosed.value
        #expect(idle.hasPrefix("HTTP/1.1 200 OK"))
        _ = await workerTask.result
        await #expect(throws: (any Error).self) {
            try await TestHTTPConnection.with(port: proxy.port) { client in try await client.request(.GET, "/", host: "a.test") }
        }
        await proxy.stop()
        await a.stop()
        await b.stop()
    }
}
