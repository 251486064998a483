import Foundation
import PorticoCtl
import SnapshotProtocol
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Whether a process with this pid exists (and is not a zombie).
func processExists(_ pid: Int32) -> Bool {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
    return !status.contains("State:\tZ")
}

/// Pids of processes whose command line contains `text`.
func processes(mentioning text: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> Int32? in
        guard let pid = Int32(entry), pid != getpid(),
            let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty
        else { return nil }
        let commandLine = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        return commandLine.contains(text) && processExists(pid) ? pid : nil
    }
}

/// Manifests routing `HOST` → a Service whose one endpoint is 127.0.0.1:PORT, for each pair, plus the IngressClass.
func routeManifests(_ routes: [(host: String, port: Int)], path: String = "/") -> String {
    routes.enumerated().map { index, route in
        """
        apiVersion: v1
        kind: Service
        metadata: {name: s\(index), namespace: default}
        spec:
          ports: [{name: http, port: 80, targetPort: \(route.port)}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: s\(index)-1, namespace: default, labels: {kubernetes.io/service-name: s\(index)}}
        addressType: IPv4
        ports: [{name: http, port: \(route.port), protocol: TCP}]
        endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: r\(index), namespace: default}
        spec:
          ingressClassName: portico
          rules:
          - host: \(route.host)
            http:
              paths: [{path: \(path), pathType: Prefix, backend: {service: {name: s\(index), port: {number: 80}}}}]
        """
    }.joined(separator: "\n---\n") + """

        ---
        apiVersion: networking.k8s.io/v1
        kind: IngressClass
        metadata: {name: portico}
        spec: {controller: portico.io/ingress-controller}
        """
}

/// A control plane and a node agent with its workers, as real processes in a private directory.
final class Fleet: @unchecked Sendable {
    let work: String
    let manifests: String
    let controlPlaneSocket: String
    let agentSocket: String
    let stateDirectory: String
    let httpPort: Int
    let httpsPort: Int
    let workers: Int
    var controlPlane: ChildProcess?
    var agent: ChildProcess?

    init(workers: Int, routes: [(host: String, port: Int)]) throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("portico-fleet-\(UUID().uuidString.prefix(8))").path
        manifests = work + "/manifests"
        try FileManager.default.createDirectory(atPath: manifests, withIntermediateDirectories: true)
        try routeManifests(routes).write(toFile: manifests + "/routes.yaml", atomically: true, encoding: .utf8)
        controlPlaneSocket = work + "/cp/control-plane.sock"
        agentSocket = work + "/agent/data-plane.sock"
        stateDirectory = work + "/state"
        httpPort = try freePort()
        httpsPort = try freePort()
        self.workers = workers
    }

    func startControlPlane() throws {
        controlPlane = try ChildProcess(
            Binaries.portico, ["control-plane", "--manifests", manifests, "--listen", "unix:\(controlPlaneSocket)", "--admin-port", "0", "--admin-bind", "127.0.0.1"])
    }

    func startAgent(drainTimeout: Int = 20) throws {
        agent = try ChildProcess(
            Binaries.portico,
            [
                "data-plane", "--control-plane", "unix:\(controlPlaneSocket)", "--workers", String(workers),
                "--http-port", String(httpPort), "--https-port", String(httpsPort), "--bind", "127.0.0.1",
                "--state-dir", stateDirectory, "--socket-dir", work + "/agent", "--admin-port", "0", "--admin-bind", "127.0.0.1",
                "--node", "test-node", "--drain-timeout", String(drainTimeout),
            ])
    }

    /// The agent's admin port, from its log.
    func adminPort() async throws -> Int {
        var port = 0
        try await eventually("the agent logs its admin port") {
            guard let match = agent?.text.firstMatch(of: /address=127\.0\.0\.1:(\d+) .*admin listening/) else { return false }
            port = Int(match.1)!
            return true
        }
        return port
    }

    static func dump(_ socket: String) async -> Portico_V1_DumpResponse? {
        try? await SourceOptions.fetchDump(from: .unix(path: socket), timeout: 2)
    }

    /// The workers as the control plane sees them (relayed by the agent).
    func relayedWorkers() async -> [Portico_V1_SubscriberStatus]? {
        await Self.dump(controlPlaneSocket)?.subscribers.filter { !$0.relayedBy.isEmpty }
    }

    /// Waits until the control plane sees every worker ACK `version`.
    func waitForWorkers(acking version: UInt64, timeout: Duration = .seconds(60)) async throws {
        try await eventually("all \(workers) workers report version \(version) to the control plane", timeout: timeout) {
            guard let relayed = await relayedWorkers(), relayed.count == workers else { return false }
            return relayed.allSatisfy { $0.ackedVersion == version && $0.pid > 0 }
        }
    }

    func request(host: String, path: String = "/") async throws -> TestResponse {
        try await TestHTTPConnection.with(port: httpPort) { try await $0.request(.GET, path, host: host) }
    }

    /// Starts a backend named "a", and a control plane and an agent with `workers` workers routing
    /// `app.test` to it; runs `body`; stops everything. A failure carries the processes' logs.
    static func withRunning(workers: Int, _ body: (Fleet, TestBackend) async throws -> Void) async throws {
        let backend = try await TestBackend.start(name: "a")
        let fleet = try Fleet(workers: workers, routes: [("app.test", backend.port)])
        do {
            try fleet.startControlPlane()
            try fleet.startAgent()
            try await body(fleet, backend)
        } catch {
            Issue.record("\(fleet.logs)")
            await fleet.tearDown()
            await backend.stop()
            throw error
        }
        await fleet.tearDown()
        await backend.stop()
    }

    var logs: String { "control plane:\n\(controlPlane?.text ?? "-")\nagent:\n\(agent?.text ?? "-")" }

    /// Stops whatever still runs and removes the directory.
    func tearDown() async {
        agent?.signal(SIGTERM)
        _ = try? await agent?.waitForExit()
        controlPlane?.signal(SIGTERM)
        _ = try? await controlPlane?.waitForExit()
        try? FileManager.default.removeItem(atPath: work)
    }
}

/// Requests on fresh connections, one after another, until stopped; counts the outcomes.
final class LoadLoop: @unchecked Sendable {
    struct Outcome: Sendable {
        var ok = 0
        var badStatus: [String] = []
        var connectionErrors: [String] = []
    }

    private let lock = NSLock()
    private var outcome = Outcome()
    private var stopped = false
    private var task: Task<Void, Never>?

    init(port: Int, host: String, path: String = "/", newConnectionEach: Bool = true) {
        task = Task { [self] in
            while !lock.withLock({ stopped }) {
                do {
                    let response = try await TestHTTPConnection.with(port: port) { try await $0.request(.GET, path, host: host) }
                    lock.withLock {
                        if response.status == .ok { outcome.ok += 1 } else { outcome.badStatus.append("\(response.status.code)") }
                    }
                } catch {
                    lock.withLock { outcome.connectionErrors.append("\(error)") }
                }
            }
        }
    }

    var current: Outcome { lock.withLock { outcome } }

    func stop() async -> Outcome {
        lock.withLock { stopped = true }
        await task?.value
        return current
    }
}
