import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import RouteModel
@testable import SnapshotProtocol
import Synchronization
import Testing
@testable import ControlPlane

/// The two transports every protocol test runs over.
enum Transport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case unix, tcp
    var testDescription: String { rawValue }

    /// A fresh address: a socket in a new private directory, or an ephemeral loopback port.
    func freshAddress() -> ServerAddress {
        switch self {
        case .unix: .unix(path: "/tmp/portico-test-\(UUID().uuidString.prefix(8))/run/cp.sock")
        case .tcp: .tcp(host: "127.0.0.1", port: 0)
        }
    }
}

/// A snapshot server running in a task; `stop()` cancels it and waits.
struct RunningServer {
    let address: ServerAddress
    let latest: LatestSnapshot
    let registry: SubscriberRegistry
    let task: Task<Void, any Error>

    func stop() async {
        task.cancel()
        _ = await task.result
        // The private directory freshAddress() made up (/tmp/portico-test-…/run/cp.sock), socket and all.
        if case .unix(let path) = address, path.hasPrefix("/tmp/portico-test-") {
            try? FileManager.default.removeItem(at: URL(fileURLWithPath: path).deletingLastPathComponent().deletingLastPathComponent())
        }
    }

    func subscriber(_ id: String) -> SubscriberRegistry.Record? { registry.all.first { $0.identity.workerID == id } }
}

func startServer(
    at address: ServerAddress, latest: LatestSnapshot = LatestSnapshot(), diagnostics: DiagnosticsBoard? = nil, maxMessageBytes: Int = 64 << 20
) async throws -> RunningServer {
    let registry = SubscriberRegistry()
    let server = SnapshotServer(
        service: SnapshotService(latest: latest, registry: registry, diagnostics: diagnostics, maxMessageBytes: maxMessageBytes),
        addresses: [address])
    let listening = OneShot<ServerAddress>()
    let task = Task {
        do {
            try await server.run { addresses in listening.fulfil(.success(addresses[0])) }
        } catch {
            listening.fulfil(.failure(error))
            throw error
        }
    }
    return RunningServer(address: try await listening.value, latest: latest, registry: registry, task: task)
}

/// A value delivered once, awaited by one task.
final class OneShot<Value: Sendable>: Sendable {
    private let state = Mutex<(result: Result<Value, any Error>?, waiter: CheckedContinuation<Value, any Error>?)>((nil, nil))

    func fulfil(_ result: Result<Value, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Value, any Error>? in
            guard state.result == nil else { return nil }
            state.result = result
            return state.waiter.take()
        }
        waiter?.resume(with: result)
    }

    var value: Value {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let ready = state.withLock { state -> Result<Value, any Error>? in
                    if let result = state.result { return result }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        }
    }
}

/// A subscriber task recording what it applied.
final class RecordingSubscriber: Sendable {
    let subscriber: SnapshotSubscriber
    let applied = Mutex<[ReceivedSnapshot]>([])
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(
        address: ServerAddress, id: String, refuse: (@Sendable (ReceivedSnapshot) -> String?)? = nil,
        forward: SnapshotSubscriber.Forward? = nil
    ) {
        subscriber = SnapshotSubscriber(
            address: address, identity: SubscriberIdentity(node: "node-a", workerID: id, kind: .worker),
            backoff: Backoff(initial: .milliseconds(20), maximum: .milliseconds(200)))
        let started = Task { [self] in
            await subscriber.run(forward: forward) { snapshot in
                if let reason = refuse?(snapshot) { throw RefusedSnapshot(reason: reason) }
                self.applied.withLock { $0.append(snapshot) }
            }
        }
        task.withLock { $0 = started }
    }

    var lastVersion: UInt64? { applied.withLock { $0.last?.version } }
    var lastTable: RouteTable? { applied.withLock { $0.last?.table } }

    func stop() async {
        let task = task.withLock { $0 }
        task?.cancel()
        await task?.value
    }
}

struct RefusedSnapshot: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}

/// A table whose content depends on `version`, with `hosts` virtual hosts of four routes each.
func table(version: UInt64, hosts: Int = 3) -> RouteTable {
    let cluster = Cluster(
        namespace: "default", service: "web", servicePort: .number(80), endpoints: [Endpoint(address: "10.0.0.\(version % 250 + 1)", port: 8080)])
    let backend = Backend(cluster: cluster.name, source: RouteSource(namespace: "default", ingress: "web"))
    return RouteTable(
        virtualHosts: (0..<hosts).map { index in
            VirtualHost(
                hostname: .exact("host-\(index).example.com"),
                routes: ["/", "/api/v\(version)", "/static/assets/\(index)", "/healthz"].map { path in
                    Route(match: PathMatch(kind: path == "/healthz" ? .exact : .prefix, path: path), backend: backend)
                })
        },
        clusters: [cluster], certificates: [])
}

func watchRequest(_ build: (inout Portico_V1_WatchRequest) -> Void) -> Portico_V1_WatchRequest {
    var request = Portico_V1_WatchRequest()
    build(&request)
    return request
}

func clientTransport(_ address: ServerAddress, windowSize: Int? = nil) throws -> HTTP2ClientTransport.Posix {
    var config = HTTP2ClientTransport.Posix.Config.defaults
    if let windowSize { config.http2.targetWindowSize = windowSize }
    return try HTTP2ClientTransport.Posix(target: address.target, transportSecurity: .plaintext, config: config)
}

extension LatestSnapshot {
    /// A version that is corrupt in both forms, for tests of subscribers' checks: the whole
    /// snapshot claims another content hash, and the delta's changes turn the current table into
    /// one without `table`'s last host, so its result does not hash to `table`'s hash either.
    func publishCorrupted(version: UInt64, table: RouteTable) {
        var snapshot = Portico_V1_Snapshot(version: version, table: table)
        snapshot.contentHash &+= 1
        let short = RouteTable(virtualHosts: Array(table.virtualHosts.dropLast()), clusters: table.clusters, certificates: table.certificates)
        let delta = current.map { (base: $0.version, changes: $0.table.delta(to: short)) }
        let encoded = EncodedSnapshot(version: version, bytes: try! snapshot.serializedBytes())
        publish(PublishedSnapshot(version: version, table: table, encoded: encoded, delta: delta))
    }
}
