// The node agent's two speed numbers, measured on a real `portico run`:
// - propagation: from a manifest file edit to every worker having applied the new table (each
//   worker's ACK, as the control plane's Dump reports it), over 20 edits;
// - restart: from kill -9 of a worker to its replacement having applied the table, over 10 kills.
// Usage: FleetBenchmark PATH/TO/portico [--workers N] [--edits N] [--kills N]

import Foundation
import PorticoCtl
import SnapshotProtocol
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
guard let portico = arguments.first else {
    FileHandle.standardError.write(Data("usage: FleetBenchmark PATH/TO/portico [--workers N] [--edits N] [--kills N]\n".utf8))
    exit(64)
}
func option(_ name: String, _ fallback: Int, in arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Int {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let value = Int(arguments[index + 1]) else { return fallback }
    return value
}
let workers = option("--workers", 4)
let edits = option("--edits", 20)
let kills = option("--kills", 10)


func manifests(path: String) -> String {
    """
    apiVersion: v1
    kind: Service
    metadata: {name: app, namespace: default}
    spec:
      ports: [{name: http, port: 80, targetPort: 9}]
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: app-1, namespace: default, labels: {kubernetes.io/service-name: app}}
    addressType: IPv4
    ports: [{name: http, port: 9, protocol: TCP}]
    endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
    ---
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata: {name: app, namespace: default}
    spec:
      ingressClassName: portico
      rules:
      - host: app.test
        http:
          paths: [{path: \(path), pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}]
    ---
    apiVersion: networking.k8s.io/v1
    kind: IngressClass
    metadata: {name: portico}
    spec: {controller: portico.io/ingress-controller}
    """
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

func summary(_ samples: [Duration]) -> String {
    let sorted = samples.map(milliseconds).sorted()
    guard !sorted.isEmpty else { return "no samples" }
    return String(format: "median %.0f ms, max %.0f ms, min %.0f ms (n=%d)", sorted[sorted.count / 2], sorted.last!, sorted.first!, sorted.count)
}

let work = FileManager.default.temporaryDirectory.appendingPathComponent("portico-fleet-bench-\(getpid())").path
try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: work) }
try manifests(path: "/v0").write(toFile: work + "/app.yaml", atomically: true, encoding: .utf8)

let run = try PorticoRun.start(
    executable: portico,
    arguments: [
        "--manifests", work, "--workers", String(workers), "--http-port", String(try freePort()), "--https-port", String(try freePort()),
        "--log-level", "error",
    ])
let controlPlane = ServerAddress.unix(path: run.controlPlaneSocket)

func relayedWorkers() async -> [Portico_V1_SubscriberStatus] {
    (try? await SourceOptions.fetchDump(from: controlPlane, timeout: 2))?.subscribers.filter { !$0.relayedBy.isEmpty } ?? []
}

func waitUntil(_ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(30)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return false
}

print("commit \(ProcessInfo.processInfo.environment["PORTICO_COMMIT"] ?? "?"), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(workers) workers")
_ = await waitUntil { await relayedWorkers().count == workers }

var propagation: [Duration] = []
for edit in 1...edits {
    let version = UInt64(edit + 1)
    try manifests(path: "/v\(edit)").write(toFile: work + "/app.yaml", atomically: true, encoding: .utf8)
    let start = ContinuousClock.now
    let done = await waitUntil {
        let relayed = await relayedWorkers()
        return relayed.count == workers && relayed.allSatisfy { $0.ackedVersion == version }
    }
    guard done else { fatalError("edit \(edit): not every worker applied version \(version) within 30 s") }
    propagation.append(ContinuousClock.now - start)
}

var restarts: [Duration] = []
for kill in 0..<kills {
    let slot = String(kill % workers)
    guard let victim = await relayedWorkers().first(where: { $0.workerID == slot }) else { fatalError("no worker \(slot)") }
    Glibc.kill(Int32(victim.pid), SIGKILL)
    let start = ContinuousClock.now
    let back = await waitUntil {
        guard let worker = await relayedWorkers().first(where: { $0.workerID == slot }) else { return false }
        return worker.pid != victim.pid && worker.pid > 0 && worker.ackedVersion > 0
    }
    guard back else { fatalError("worker \(slot) was not back within 30 s") }
    restarts.append(ContinuousClock.now - start)
    // Restarts close together are delayed on purpose (backoff for crash loops); space the kills out.
    try await Task.sleep(for: .seconds(11))
}

run.stop()
print("propagation, file edit → every worker applied: \(summary(propagation))")
if kills > 0 { print("worker restart, kill -9 → replacement applied the table: \(summary(restarts))") }
