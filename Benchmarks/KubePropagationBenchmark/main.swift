// Propagation from a Kubernetes API change to every worker serving it: a real `portico run
// --kubeconfig` against the in-process API server emulator holding N Ingresses (with their Services
// and EndpointSlices). Each round makes five changes through the API, each waiting until every
// worker has ACKed the version it produced (as the control plane's Dump reports, polled without the
// table): an Ingress's path edited, a Pod added to an EndpointSlice, a new Ingress (with TLS whose
// Secret is missing), its TLS Secret created, and that Ingress deleted. Prints one table per size.
// Usage: KubePropagationBenchmark PATH/TO/portico [--ingresses N,N] [--changes N] [--workers N]

import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KubeAPIEmulator
import KubeTypes
import NIOHTTP1
import PorticoCtl
import SnapshotProtocol
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

func option(_ name: String, _ fallback: String) -> String {
    let arguments = Array(CommandLine.arguments.dropFirst())
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return fallback }
    return arguments[index + 1]
}

guard CommandLine.arguments.count > 1, !CommandLine.arguments[1].hasPrefix("--") else {
    FileHandle.standardError.write(Data("usage: KubePropagationBenchmark PATH/TO/portico [--ingresses 1000,10000] [--changes 20] [--workers 2]\n".utf8))
    exit(64)
}
let portico = CommandLine.arguments[1]
let sizes = option("--ingresses", "1000,10000").split(separator: ",").compactMap { Int($0) }
let changes = Int(option("--changes", "20")) ?? 20
let workers = Int(option("--workers", "2")) ?? 2


func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

/// Median, p99 (nearest rank) and maximum in milliseconds; NaN without samples.
func percentiles(_ samples: [Duration]) -> (p50: Double, p99: Double, max: Double) {
    let sorted = samples.map(milliseconds).sorted()
    guard !sorted.isEmpty else { return (.nan, .nan, .nan) }
    let p99 = sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.99).rounded(.up)) - 1)]
    return (sorted[sorted.count / 2], p99, sorted.last!)
}

print("commit \(ProcessInfo.processInfo.environment["PORTICO_COMMIT"] ?? "?"), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(workers) workers")
for size in sizes {
    let server = try await KubeAPIEmulator.start(bookmarkInterval: .seconds(5))
    try await server.apply(IngressClass(metadata: ObjectMeta(name: "portico"), spec: IngressClassSpec(controller: "portico.io/ingress-controller")))
    let objects = GeneratedCluster.objects(count: size)
    for service in objects.services { try await server.apply(service) }
    for slice in objects.endpointSlices { try await server.apply(slice) }
    for ingress in objects.ingresses { try await server.apply(ingress) }
    // A real API server runs on machines of its own; this one shares the two cores. Each object's
    // JSON is made before Portico starts, so that the first table's time holds Portico's work and
    // the emulator's serving of stored bytes, not its one-time encoding of 300k objects.
    await server.encodeEverything()

    let work = FileManager.default.temporaryDirectory.appendingPathComponent("portico-kube-bench-\(getpid())-\(size)").path
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    try server.kubeconfig().write(toFile: work + "/kubeconfig", atomically: true, encoding: .utf8)
    let started = ContinuousClock.now
    let run = try PorticoRun.start(
        executable: portico,
        arguments: [
            "--kubeconfig", work + "/kubeconfig", "--workers", String(workers), "--http-port", String(try freePort()),
            "--https-port", String(try freePort()), "--log-level", ProcessInfo.processInfo.environment["BENCH_LOG_LEVEL"] ?? "error",
        ])
    let controlPlane = ServerAddress.unix(path: run.controlPlaneSocket)

    // One connection for all the polling (every 2 ms): a connection per poll cost the machine
    // more than the changes being measured.
    let client = GRPCClient(transport: try HTTP2ClientTransport.Posix(target: controlPlane.target, transportSecurity: .plaintext))
    let connections = Task { try await client.runConnections() }
    let snapshots = Portico_V1_Snapshots.Client(wrapping: client)
    struct Fleet {
        var dump = Portico_V1_DumpResponse()
        var version: UInt64 { dump.snapshot.version }
        var agent: Portico_V1_SubscriberStatus? { dump.subscribers.first { $0.kind == .nodeAgent } }
        var workers: [Portico_V1_SubscriberStatus] { dump.subscribers.filter { !$0.relayedBy.isEmpty } }
    }
    func fleet() async -> Fleet {
        var request = Portico_V1_DumpRequest()
        request.subscribersOnly = true
        var options = CallOptions.defaults
        options.timeout = .seconds(5)
        return Fleet(dump: (try? await snapshots.dump(request, options: options)) ?? .init())
    }
    func waitUntil(_ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return false
    }
    guard await waitUntil({ let state = await fleet(); return state.workers.count == workers && state.workers.allSatisfy { $0.ackedVersion == state.version } }) else {
        fatalError("the workers never applied the first table")
    }
    let firstTable = ContinuousClock.now - started
    // From the control plane's own start, which the kernel dates: spawning `portico run` from this
    // process (several GB of emulated objects at 100k) took seconds before any portico code ran.
    let controlPlaneAge = ProcessMemory.secondsSinceStart(ofRole: "control-plane", descendantsOf: run.process.processIdentifier)
    let firstTableStages = stages(of: await fleet())
    let controlPlaneMetrics = await ControlPlaneMetricsScrape(descendantsOf: run.process.processIdentifier)
    let verificationsBefore = await controlPlaneMetrics?.verifications()

    /// One change: when the control plane published it, the agent and every worker ACKed it (as
    /// polled), and each stage as the processes timed it themselves (from the last poll's Dump).
    struct Sample {
        var total: Duration
        var published: Duration?
        var agent: Duration?
        var stages: [String: Duration] = [:]
    }
    func micros(_ value: UInt64) -> Duration { .microseconds(Int64(value)) }
    func stages(of state: Fleet) -> [String: Duration] {
        var stages: [String: Duration] = [:]
        let publish = state.dump.publishTiming
        stages["CP hold-off wait"] = micros(publish.waitedMicros)
        stages["CP translate"] = micros(publish.translatedMicros)
        stages["CP publish (hash, delta)"] = micros(publish.publishedMicros)
        if let agent = state.agent, agent.ackedVersion == state.version {
            stages["CP → agent ACK round trip"] = micros(agent.ackRoundTripMicros)
            stages["  agent decode + patch"] = micros(agent.ackedTiming.decodeMicros)
            stages["  agent relay"] = micros(agent.ackedTiming.applyMicros)
        }
        // The slowest worker of each stage.
        let relayed = state.workers
        if !relayed.isEmpty {
            stages["agent → worker ACK round trip"] = micros(relayed.map(\.ackRoundTripMicros).max()!)
            stages["  worker decode + patch"] = micros(relayed.map(\.ackedTiming.decodeMicros).max()!)
            stages["  worker apply (certs, index)"] = micros(relayed.map(\.ackedTiming.applyMicros).max()!)
        }
        return stages
    }

    /// Applies one change and waits until every worker ACKed the version it produced.
    func measure(_ change: () async throws -> Void) async throws -> Sample {
        let before = (await fleet()).version
        let start = ContinuousClock.now
        try await change()
        var publishedAt: Duration?
        var agentAt: Duration?
        var last = Fleet()
        let done = await waitUntil {
            let state = await fleet()
            last = state
            if publishedAt == nil, state.version > before { publishedAt = ContinuousClock.now - start }
            if agentAt == nil, state.version > before, state.agent?.ackedVersion == state.version { agentAt = ContinuousClock.now - start }
            return state.version > before && state.workers.count == workers && state.workers.allSatisfy { $0.ackedVersion == state.version }
        }
        guard done else { fatalError("a change did not reach every worker within 60 s") }
        let total = ContinuousClock.now - start
        // Past the hold-off, so that each change is a first change after a quiet spell.
        try await Task.sleep(for: .milliseconds(300))
        return Sample(total: total, published: publishedAt, agent: agentAt, stages: stages(of: last))
    }

    var samples: [String: [Sample]] = [:]
    func record(_ kind: String, _ sample: Sample) { samples[kind, default: []].append(sample) }
    // Past the hold-off of the first table's rebuild too (the first sample would wait it out).
    try await Task.sleep(for: .milliseconds(300))
    let kinds = ["Ingress path edited", "Pod added to an EndpointSlice", "new Ingress", "new TLS Secret", "Ingress deleted"]
    for change in 1...changes {
        var ingress = objects.ingresses[change * 37 % size]
        ingress.spec?.rules?[0].http?.paths[1].path = "/changed-\(change)"
        record("Ingress path edited", try await measure { try await server.apply(ingress) })

        var slice = objects.endpointSlices[change * 53 % size]
        slice.endpoints?.append(
            EndpointSliceEndpoint(addresses: ["10.250.\(change / 250).\(change % 250)"], conditions: EndpointConditions(ready: true)))
        record("Pod added to an EndpointSlice", try await measure { try await server.apply(slice) })

        // A new app on an existing Service (team-0's app-0), whose TLS Secret comes next.
        let name = "new-\(change)"
        let host = "\(name).example.com"
        let backend = IngressBackend(service: IngressServiceBackend(name: "app-0", port: ServiceBackendPort(number: 80)))
        let added = Ingress(
            metadata: ObjectMeta(name: name, namespace: "team-0"),
            spec: IngressSpec(
                ingressClassName: "portico", tls: [IngressTLS(hosts: [host], secretName: name + "-tls")],
                rules: [IngressRule(host: host, http: HTTPIngressRuleValue(paths: [HTTPIngressPath(path: "/", pathType: "Prefix", backend: backend)]))]))
        record("new Ingress", try await measure { try await server.apply(added) })
        let certificate = try TestCertificate(commonName: host, dnsNames: [host])
        let secret = Fixture.tlsSecret(name + "-tls", namespace: "team-0", certificatePEM: certificate.certificatePEM, keyPEM: certificate.privateKeyPEM)
        record("new TLS Secret", try await measure { try await server.apply(secret) })
        record("Ingress deleted", try await measure { try await server.delete(Ingress.self, namespace: "team-0", name: name) })
    }
    print("\(size) Ingresses: API change → control plane published / node agent applied / every worker applied, ms")
    print("  change                          n   published p50/p99   agent p50/p99   workers p50/p99/max")
    for kind in kinds {
        guard let measured = samples[kind] else { continue }
        let published = percentiles(measured.compactMap(\.published))
        let agent = percentiles(measured.compactMap(\.agent))
        let total = percentiles(measured.map(\.total))
        print(
            "  " + kind.padding(toLength: 30, withPad: " ", startingAt: 0)
                + String(format: "%3d   %6.0f %6.0f     %6.0f %6.0f   %6.0f %6.0f %6.0f", measured.count, published.p50, published.p99, agent.p50, agent.p99, total.p50, total.p99, total.max))
    }
    // Each process's own timing of the version it ACKed; round trips include the next hop's
    // decode and apply (the rest of a round trip is transport and scheduling).
    print("  per stage, p50/p99 ms          " + ["edit", "endpoint", "new Ingress", "new Secret", "deleted"].map { $0.padding(toLength: 13, withPad: " ", startingAt: 0) }.joined())
    let stageNames = [
        "CP hold-off wait", "CP translate", "CP publish (hash, delta)", "CP → agent ACK round trip", "  agent decode + patch", "  agent relay",
        "agent → worker ACK round trip", "  worker decode + patch", "  worker apply (certs, index)",
    ]
    for stage in stageNames {
        var line = "  " + stage.padding(toLength: 30, withPad: " ", startingAt: 0)
        for kind in kinds {
            let values = percentiles((samples[kind] ?? []).compactMap { $0.stages[stage] })
            line += String(format: "%5.1f/%5.1f  ", values.p50, values.p99)
        }
        print(line)
    }
    print(
        String(
            format: "  start → every worker applied the first table: %.0f ms from `portico run`, %.0f ms from the control plane's start",
            milliseconds(firstTable), (controlPlaneAge ?? .nan) * 1000))
    // Where the first table's time after the translation goes (the lists and the translation are
    // in the control plane's log line "cluster objects translated").
    let firstStage = { (name: String) in firstTableStages[name].map(milliseconds) ?? .nan }
    print(
        String(
            format: "  the first table's stages, ms: CP translate %.0f, CP → agent ACK %.0f (agent decode %.0f, relay %.0f), agent → worker ACK %.0f (worker decode %.0f, apply %.0f)",
            firstStage("CP translate"), firstStage("CP → agent ACK round trip"), firstStage("  agent decode + patch"), firstStage("  agent relay"),
            firstStage("agent → worker ACK round trip"), firstStage("  worker decode + patch"), firstStage("  worker apply (certs, index)")))
    // Item 2 of issue 20: what the full translations beside the rebuild loop cost during the changes.
    if let before = verificationsBefore, let after = await controlPlaneMetrics?.verifications() {
        let runs = after.runs - before.runs
        let seconds = after.seconds - before.seconds
        print(
            String(
                format: "  verification (full translations beside the rebuild loop) during the changes: %d runs, %.2f s in all (wall time, mostly at idle priority), %.0f ms each",
                runs, seconds, runs > 0 ? seconds / Double(runs) * 1000 : 0))
    } else {
        print("  verification: the control plane's metrics were not found")
    }
    print("  memory right after the changes (RSS now / peak (own now)): " + ProcessMemory.describe(descendantsOf: run.process.processIdentifier))
    // Steady state: workers hand the garbage of a burst of deltas back once changes pause for 1 s.
    try? await Task.sleep(for: .seconds(2))
    print("  memory 2 s later, steady (RSS now / peak (own now)):    " + ProcessMemory.describe(descendantsOf: run.process.processIdentifier))
    client.beginGracefulShutdown()
    _ = try? await connections.value
    run.stop()
    await server.stop()
    try? FileManager.default.removeItem(atPath: work)
}

/// The resident memory of `portico run`'s processes, from /proc: each descendant's VmRSS, VmHWM and
/// RssAnon, named by its subcommand (control-plane, data-plane for the node agent, worker).
enum ProcessMemory {
    /// How long ago the descendant running `role` started (from /proc: its start time in clock
    /// ticks since boot, against the uptime now); nil when there is none.
    static func secondsSinceStart(ofRole role: String, descendantsOf root: Int32) -> Double? {
        guard let pid = descendants(of: root).first(where: { self.role(of: $0) == role }),
            let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")"),
            let uptime = (try? String(contentsOfFile: "/proc/uptime", encoding: .utf8))?.split(separator: " ").first.flatMap({ Double($0) })
        else { return nil }
        // After "pid (comm) ", field 22 (starttime) is the 20th.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        return uptime - ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The subcommand a portico process runs (control-plane, data-plane, worker, demo-backend).
    static func role(of pid: Int32) -> String? {
        guard let command = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return nil }
        return command.split(separator: "\0").map(String.init).dropFirst().first { ["control-plane", "data-plane", "worker", "demo-backend"].contains($0) }
    }

    static func descendants(of root: Int32) -> [Int32] {
        var parents: [Int32: Int32] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // After "pid (comm) ": state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { parents[pid] = parent }
        }
        func isDescendant(_ pid: Int32) -> Bool {
            var current = pid
            while let parent = parents[current], parent > 1 {
                if parent == root { return true }
                current = parent
            }
            return false
        }
        return parents.keys.sorted().filter(isDescendant)
    }

    static func describe(descendantsOf root: Int32) -> String {
        var parts: [String] = []
        for pid in descendants(of: root) {
            guard let role = role(of: pid), let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { continue }
            func kilobytes(_ field: String) -> Int {
                status.split(separator: "\n").first { $0.hasPrefix(field + ":") }
                    .flatMap { Int($0.split(whereSeparator: { $0 == " " || $0 == "\t" })[1]) } ?? 0
            }
            let name = role == "data-plane" ? "node agent" : role
            // RssAnon is the process's own memory; the rest of VmRSS is mostly the binary's pages,
            // which every portico process maps and the kernel keeps once (an empty worker: 39 MB
            // of VmRSS, 4 MB of it its own).
            parts.append("\(name) \(kilobytes("VmRSS") / 1024) / \(kilobytes("VmHWM") / 1024) (own \(kilobytes("RssAnon") / 1024)) MB")
        }
        return parts.isEmpty ? "not found" : parts.joined(separator: ", ")
    }
}

/// The control plane's /metrics, fetched from its admin port: the TCP port it listens on (from
/// /proc: its sockets' inodes among the listening ones).
struct ControlPlaneMetricsScrape {
    let port: Int

    init?(descendantsOf root: Int32) async {
        guard let pid = ProcessMemory.descendants(of: root).first(where: { ProcessMemory.role(of: $0) == "control-plane" }) else { return nil }
        let inodes = Set(
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap { fd -> String? in
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                    target.hasPrefix("socket:[")
                else { return nil }
                return String(target.dropFirst(8).dropLast())
            })
        let table = (try? String(contentsOfFile: "/proc/\(pid)/net/tcp", encoding: .utf8)) ?? ""
        // "sl local_address rem_address st ... inode": listening (st 0A) sockets of this process.
        let ports = table.split(separator: "\n").dropFirst().compactMap { line -> Int? in
            let fields = line.split(separator: " ")
            guard fields.count > 9, fields[3] == "0A", inodes.contains(String(fields[9])),
                let port = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) })
            else { return nil }
            return port
        }
        for port in ports where await Self.metrics(port: port)?.contains("portico_control_plane_") == true {
            self.port = port
            return
        }
        return nil
    }

    /// Verifications run and their seconds so far.
    func verifications() async -> (runs: Int, seconds: Double)? {
        guard let text = await Self.metrics(port: port) else { return nil }
        func value(_ name: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        return (Int(value("portico_control_plane_verifications_total") ?? 0), value("portico_control_plane_verification_seconds_total") ?? 0)
    }

    /// The body of GET /metrics on 127.0.0.1:`port`, or nil.
    static func metrics(port: Int) async -> String? {
        let response = try? await TestHTTPConnection.with(port: port) { try await $0.request(.GET, "/metrics", host: "127.0.0.1") }
        return response.flatMap { $0.status == .ok ? $0.text : nil }
    }
}
