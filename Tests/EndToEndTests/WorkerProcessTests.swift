import Foundation
import NIOHTTP1
import Testing
import TestSupport

/// A real `portico worker` process fed by a real `portico control-plane` process.
@Suite(.serialized) struct WorkerProcessTests {
    /// Manifests routing `big.test` to `bulk` and `slow.test` to `slow`, both on 127.0.0.1.
    static func manifests(bulk: Int, slow: Int) -> String {
        [("big", bulk), ("slow", slow)].map { name, port in
            """
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: default}
            spec:
              ports: [{name: http, port: 80, targetPort: \(port)}]
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: \(name)-1, namespace: default, labels: {kubernetes.io/service-name: \(name)}}
            addressType: IPv4
            ports: [{name: http, port: \(port), protocol: TCP}]
            endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
            ---
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: \(name), namespace: default}
            spec:
              ingressClassName: portico
              rules:
              - host: \(name).test
                http:
                  paths: [{path: /, pathType: Prefix, backend: {service: {name: \(name), port: {number: 80}}}}]
            """
        }.joined(separator: "\n---\n") + """

            ---
            apiVersion: networking.k8s.io/v1
            kind: IngressClass
            metadata: {name: portico}
            spec: {controller: portico.io/ingress-controller}
            """
    }

    /// The worker process's resident set and its peak, in bytes, from /proc.
    static func memory(of pid: Int32) -> (current: Int, peak: Int)? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Int? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 * 1024 }
        }
        guard let current = field("VmRSS"), let peak = field("VmHWM") else { return nil }
        return (current, peak)
    }

    /// 1 GiB each way streams through the worker while its peak memory grows by far less than
    /// that; then SIGTERM lets a request in flight finish and the process exits cleanly.
    @Test(.timeLimit(.minutes(10)))
    func aGibibyteStreamsBothWaysInBoundedMemoryThenSIGTERMDrains() async throws {
        let bulk = try await TestBackend.start(name: "bulk")
        let slow = try await TestBackend.start(name: "slow")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("portico-e2e-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: work + "/manifests", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try Self.manifests(bulk: bulk.port, slow: slow.port).write(toFile: work + "/manifests/routes.yaml", atomically: true, encoding: .utf8)
        let socket = "unix:\(work)/run/cp.sock"
        let controlPlane = try ChildProcess(Binaries.portico, ["control-plane", "--manifests", work + "/manifests", "--listen", socket, "--admin-port", "0", "--admin-bind", "127.0.0.1"])
        let worker = try ChildProcess(
            Binaries.portico, ["worker", "--control-plane", socket, "--http-port", "0", "--bind", "127.0.0.1", "--drain-timeout", "20"])
        var port = 0
        try await eventually("the worker logs its port") {
            guard let match = worker.text.firstMatch(of: /address=127\.0\.0\.1:(\d+)/) else { return false }
            port = Int(match.1)!
            return true
        }
        do {
            try await eventually("the worker serves the routes") {
                let response = try? await TestHTTPConnection.with(port: port) { try await $0.request(.GET, "/", host: "big.test") }
                return response?.status == .ok
            }
        } catch {
            Issue.record("control plane:\n\(controlPlane.text)\nworker:\n\(worker.text)")
            throw error
        }
        let pid = worker.process.processIdentifier
        let before = try #require(Self.memory(of: pid))

        let size = 1 << 30
        try await TestHTTPConnection.with(port: port) { client in
            let download = try await client.request(.GET, "/bytes/\(size)", host: "big.test")
            #expect(download.status == .ok)
            #expect(download.bodyCount == size)
            let upload = try await client.request(.POST, "/count", host: "big.test", uploadBytes: size)
            #expect(upload.text == "received=\(size)\n")
        }
        let after = try #require(Self.memory(of: pid))
        let growth = after.peak - before.current
        print("worker memory: \(before.current >> 20) MiB before, peak \(after.peak >> 20) MiB while 2 GiB passed through")
        #expect(growth < 64 << 20, "the worker's peak grew by \(growth >> 20) MiB for 1 GiB each way")

        // A request in flight when SIGTERM arrives completes; then the worker exits by itself.
        let inFlight = Task { try await TestHTTPConnection.with(port: port) { try await $0.request(.GET, "/sleep/1500", host: "slow.test") } }
        try await eventually("the slow request reached its backend") { slow.acceptedConnections == 1 }
        worker.signal(SIGTERM)
        let response = try await inFlight.value
        #expect(response.status == .ok)
        #expect(response.headers["connection"].contains("close"), "the drained connection says it closes")
        let status = try await worker.waitForExit(timeout: .seconds(30))
        #expect(status == 0, "output:\n\(worker.text)")
        #expect(worker.text.contains("draining"))
        controlPlane.signal(SIGTERM)
        _ = try await controlPlane.waitForExit()
        await bulk.stop()
        await slow.stop()
    }
}
