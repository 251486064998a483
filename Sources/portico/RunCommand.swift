import ArgumentParser
import Foundation
import KubeTypes
import Logging
import Manifests
import NodeAgent
import PorticoCtl
import RouteModel
import SnapshotProtocol
import Synchronization
import Translator

#if canImport(Glibc)
import Glibc
#endif

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run all of Portico on this machine: control plane, node agent and workers, from manifest files or a cluster.",
        discussion: """
            Each part runs as its own process, as in a cluster, talking over Unix sockets in a private run \
            directory (0700) that is removed on exit. Edits to the manifests go live. With --demo-backends, \
            every loopback address the manifests' EndpointSlices name is answered by Portico's demo backend, \
            so the quickstart works with no cluster and no Pods. A part that exits is restarted, and serving \
            never stops meanwhile. Ctrl-C stops everything: the workers drain, and no process or socket is left behind.
            """)

    @Option(help: "A manifest file or directory (YAML or JSON), watched for changes.")
    var manifests: String?

    @Option(help: "Instead of manifests: watch the cluster this kubeconfig's current context names.")
    var kubeconfig: String?

    @Option(help: "With --kubeconfig: the context to use instead of the current one.")
    var context: String?

    @Option(help: "The plain-HTTP port.")
    var httpPort: Int = 8080

    @Option(help: "The TLS port.")
    var httpsPort: Int = 8443

    @Option(help: "The address the workers bind.")
    var bind: String = "127.0.0.1"

    @Option(help: "Worker processes (default: the number of CPUs).")
    var workers: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "The node agent's admin port, /healthz and /readyz (0: any free port).")
    var adminPort: Int = 0

    @Flag(help: "Answer the loopback endpoints the manifests name with Portico's demo backend.")
    var demoBackends = false

    @Option(help: "On Ctrl-C, seconds that requests in flight may take to finish.")
    var drainTimeout: Double = 5

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .notice

    @OptionGroup(title: "Passed on to the control plane") var ingresses: IngressOptions

    @OptionGroup(title: "Passed on to the workers") var timeouts: WorkerTimeoutOptions

    func validate() throws {
        guard (manifests == nil) != (kubeconfig == nil) else { throw ValidationError("give --manifests PATH or --kubeconfig PATH") }
        if demoBackends, manifests == nil { throw ValidationError("--demo-backends reads the endpoints of --manifests") }
        if context != nil, kubeconfig == nil { throw ValidationError("--context goes with --kubeconfig") }
        if manifests != nil { try ingresses.validateWithoutCluster() }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        guard (1...65535).contains(httpPort), (1...65535).contains(httpsPort) else {
            throw ValidationError("--http-port and --https-port must be from 1 to 65535")
        }
    }

    func run() async throws {
        bootstrapLogging(level: logLevel)
        var manifestSet = ManifestSet()
        var source: [String] = []
        if let manifests {
            do {
                manifestSet = try ManifestLoader.load(path: manifests)
            } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                throw ExitCode(1)
            }
            source = ["--manifests", absolutePath(manifests)]
        } else if let kubeconfig {
            source = ["--kubeconfig", absolutePath(kubeconfig)] + (context.map { ["--context", $0] } ?? [])
        }
        var template = Array("/tmp/portico-run.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            FileHandle.standardError.write(Data("error: cannot create a run directory in /tmp: \(String(cString: strerror(errno)))\n".utf8))
            throw ExitCode(1)
        }
        let runDirectory = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: runDirectory) }
        let controlPlaneSocket = "unix:\(runDirectory)/control-plane.sock"
        let agentSocket = NodeAgent.Configuration.socketPath(in: runDirectory + "/sockets")
        let me = String(getpid())
        let executable = currentExecutable()
        let children = ChildProcesses()

        var stopReason = "stopped"
        var failed = false
        do {
            if demoBackends {
                let configuration = TranslatorConfiguration(controllerName: ingresses.controllerName, ingressClassName: ingresses.ingressClass)
                let listeners = Self.loopbackEndpoints(in: manifestSet.objects, configuration: configuration)
                if listeners.isEmpty {
                    say("--demo-backends: the manifests name no loopback endpoints (127.0.0.0/8); starting no demo backend")
                } else {
                    children.start(
                        "demo backends", executable,
                        ["demo-backend", "--parent-pid", me] + listeners.flatMap { ["--listen", $0] })
                }
            }
            children.start(
                "control plane", executable,
                ["control-plane"] + source + ingresses.arguments + ["--listen", controlPlaneSocket, "--admin-port", "0", "--admin-bind", "127.0.0.1", "--parent-pid", me, "--log-level", logLevel.rawValue])
            // The agent would connect at once and retry; waiting for the control plane keeps the log clean.
            try await waitForControlPlane(socket: runDirectory + "/control-plane.sock", children: children)
            children.start(
                "node agent", executable,
                [
                    "data-plane", "--control-plane", controlPlaneSocket, "--workers", String(workers),
                    "--http-port", String(httpPort), "--https-port", String(httpsPort), "--bind", bind,
                    "--state-dir", runDirectory + "/state", "--socket-dir", runDirectory + "/sockets",
                    "--admin-port", String(adminPort), "--admin-bind", "127.0.0.1", "--node", "local",
                    "--drain-timeout", String(drainTimeout), "--parent-pid", me, "--log-level", logLevel.rawValue,
                ] + timeouts.workerArguments)

            let ready = try await waitUntilReady(agentSocket: agentSocket, children: children)
            say(
                Self.banner(
                    dump: ready, runDirectory: runDirectory, agentSocket: agentSocket, httpPort: httpPort, httpsPort: httpsPort, bind: bind,
                    workers: workers, porticoctl: porticoctlCommand()))

            // From here on a child that exits is restarted (with backoff, as the node agent restarts
            // workers), and the workers serve the last table meanwhile: only a signal stops it all.
            children.startedUp()
            stopReason = "signal \(await waitForSignal([SIGINT, SIGTERM]) ?? 0)"
        } catch {
            stopReason = "\(error)"
            failed = true
        }
        if failed { FileHandle.standardError.write(Data("error: \(stopReason); stopping everything\n".utf8)) }
        say("Stopping Portico (\(stopReason))…")
        // The agent first, so the workers drain while the control plane is still up; then the rest.
        await children.stop("node agent", timeout: .seconds(drainTimeout + 10))
        await children.stopAll(timeout: .seconds(10))
        if failed { throw ExitCode(1) }
        say("Stopped.")
    }

    private func waitForControlPlane(socket: String, children: ChildProcesses) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let exited = children.exited.first { throw RunError("the \(exited) exited during start-up; its log is above") }
            if (try? await SourceOptions.fetchDump(from: .unix(path: socket), timeout: 1, subscribersOnly: true)) != nil { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw RunError("the control plane did not answer within 60 s; see the logs above")
    }


    /// Polls the node agent's Dump until every worker applied a snapshot, then returns a Dump with
    /// the table's first virtual hosts (a few times `bannerHosts`: wildcard hosts are not shown). The polls ask for the
    /// subscribers only: a Dump with the whole table converts and encodes all of it, and at 100k
    /// Ingresses polls every 50 ms kept a core busy while the workers were decoding their first table;
    /// one whole Dump for the banner still took the agent and this process a core-second each.
    private func waitUntilReady(agentSocket: String, children: ChildProcesses) async throws -> Portico_V1_DumpResponse {
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if let exited = children.exited.first { throw RunError("the \(exited) exited during start-up; its log is above") }
            if let dump = try? await SourceOptions.fetchDump(from: .unix(path: agentSocket), timeout: 1, subscribersOnly: true) {
                let serving = dump.subscribers.filter { $0.kind == .worker && $0.ackedVersion > 0 }
                if serving.count >= workers {
                    let preview = try? await SourceOptions.fetchDump(
                        from: .unix(path: agentSocket), timeout: 30, virtualHostLimit: 8 * Self.bannerHosts)
                    return preview ?? dump
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RunError("the workers did not apply a snapshot within 120 s; see the logs above")
    }

    /// `NAMESPACE/SERVICE=127.x.y.z:PORT` for every ready loopback endpoint, one per address and port,
    /// with `/PROTOCOL` after it where the routes to it ask for another than HTTP (`backend-protocol`).
    static func loopbackEndpoints(in objects: KubeObjects, configuration: TranslatorConfiguration = .init()) -> [String] {
        let table = Translator.translate(objects, configuration: configuration).table
        let clusters = Dictionary(table.clusters.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var protocols: [String: UpstreamProtocol] = [:]
        for virtualHost in table.virtualHosts {
            for route in virtualHost.routes where route.backend.options.upstreamProtocol != .http {
                for endpoint in clusters[route.backend.cluster]?.endpoints ?? [] {
                    protocols["\(endpoint.address):\(endpoint.port)"] = route.backend.options.upstreamProtocol
                }
            }
        }
        var seen = Set<String>()
        var listeners: [String] = []
        for slice in objects.endpointSlices {
            let name = "\(slice.metadata.namespace ?? "default")/\(slice.serviceName ?? slice.metadata.name)"
            for endpoint in slice.endpoints ?? [] where endpoint.conditions?.ready != false {
                for address in endpoint.addresses where address.hasPrefix("127.") {
                    for port in slice.ports ?? [] {
                        guard let number = port.port, (port.protocol ?? "TCP") == "TCP" else { continue }
                        let key = "\(address):\(number)"
                        guard seen.insert(key).inserted else { continue }
                        listeners.append("\(name)=\(key)" + (protocols[key].map { "/\($0.rawValue.lowercased())" } ?? ""))
                    }
                }
            }
        }
        return listeners
    }

    /// Hosts the banner suggests a `curl` for, at most (a few of the Dump's first virtual hosts).
    static let bannerHosts = 8

    static func banner(
        dump: Portico_V1_DumpResponse, runDirectory: String, agentSocket: String, httpPort: Int, httpsPort: Int, bind: String, workers: Int,
        porticoctl: String
    ) -> String {
        let address = bind == "0.0.0.0" ? "127.0.0.1" : bind
        var lines = [
            "",
            "Portico is running: a control plane, a node agent and \(workers) worker\(workers == 1 ? "" : "s"), serving version \(dump.snapshot.version).",
            "Try:",
        ]
        var hosts = 0
        for virtualHost in dump.snapshot.table.virtualHosts {
            guard case .exact(let host)? = virtualHost.hostname else { continue }
            hosts += 1
            if hosts > bannerHosts { break }
            lines.append("  curl -H 'Host: \(host)' http://\(address):\(httpPort)/")
            if virtualHost.hasTls {
                lines.append("  curl -k --resolve \(host):\(httpsPort):\(address) https://\(host):\(httpsPort)/")
            }
        }
        if hosts == 0 { lines.append("  curl http://\(address):\(httpPort)/") }
        lines += [
            "What each part holds:",
            "  \(porticoctl) dump --server unix:\(runDirectory)/control-plane.sock",
            "  \(porticoctl) dump --server unix:\(agentSocket)",
            "  \(porticoctl) status --server unix:\(runDirectory)/control-plane.sock",
            "Changes to the manifests or cluster go live. Ctrl-C stops everything.",
            "",
        ]
        return lines.joined(separator: "\n")
    }
}

/// A line on stdout, written at once (stdout may be a pipe, where print buffers).
private func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

struct RunError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The processes `portico run` started, by role, each kept running by a supervisor of its own:
/// one that exits is restarted, at once and then with a growing delay if it keeps exiting.
final class ChildProcesses: Sendable {
    private struct Child {
        let role: String
        let supervisor: WorkerSupervisor
        let task: Task<Void, Never>
    }

    private let children = Mutex<[Child]>([])
    /// Until start-up is over, a child that exits is a failure of `portico run` (a port in use, a
    /// bad manifest path): restarting it would only hide the error.
    private let startingUp = Atomic<Bool>(true)

    func start(_ role: String, _ executable: String, _ arguments: [String]) {
        var configuration = WorkerSupervisor.Configuration(count: 1, executable: executable) { _ in arguments }
        configuration.role = role
        let supervisor = WorkerSupervisor(configuration: configuration, logger: Logger(label: "portico.run"))
        let task = Task { await supervisor.run() }
        children.withLock { $0.append(Child(role: role, supervisor: supervisor, task: task)) }
    }

    func startedUp() { startingUp.store(false, ordering: .relaxed) }

    /// Roles of the children that have exited during start-up.
    var exited: [String] {
        guard startingUp.load(ordering: .relaxed) else { return [] }
        return children.withLock { $0.filter { $0.supervisor.workers[0].lastExit != nil }.map(\.role) }
    }

    /// SIGTERM to `role`, then waits for it to exit; SIGKILL after `timeout`.
    func stop(_ role: String, timeout: Duration) async {
        await Self.terminate(children.withLock { $0.filter { $0.role == role } }, timeout: timeout)
    }

    func stopAll(timeout: Duration) async {
        await Self.terminate(children.withLock { $0 }, timeout: timeout)
    }

    private static func terminate(_ children: [Child], timeout: Duration) async {
        for child in children { child.supervisor.stop() }
        let deadline = ContinuousClock.now + timeout
        while children.contains(where: { $0.supervisor.workers[0].pid != 0 }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for child in children {
            let pid = child.supervisor.workers[0].pid
            if pid != 0 { kill(pid, SIGKILL) }
        }
        for child in children { await child.task.value }
    }
}
