import Foundation
import PorticoCtl
import NIOHTTP1
import SnapshotProtocol
import Testing
import TestSupport

/// `portico data-plane` with its workers and a `portico control-plane`, all real processes.
@Suite(.serialized) struct NodeAgentProcessTests {
    /// A new snapshot reaches all N workers, each ACKs it, and the control plane's Dump shows them
    /// under the agent; the admin port answers /healthz and /readyz.
    @Test(.timeLimit(.minutes(5)))
    func snapshotsReachEveryWorkerAndTheControlPlaneSeesThem() async throws {
        let backend = try await TestBackend.start(name: "a")
        let other = try await TestBackend.start(name: "b")
        let fleet = try Fleet(workers: 3, routes: [("app.test", backend.port)])
        try fleet.startControlPlane()
        try fleet.startAgent()
        do {
            try await fleet.waitForWorkers(acking: 1)
            let dump = try #require(await Fleet.dump(fleet.controlPlaneSocket))
            let agent = try #require(dump.subscribers.first { $0.kind == .nodeAgent })
            #expect(agent.node == "test-node")
            #expect(agent.ackedVersion == 1)
            let relayed = dump.subscribers.filter { $0.relayedBy == agent.id }
            #expect(Set(relayed.map(\.workerID)) == ["0", "1", "2"])
            #expect(Set(relayed.map(\.pid)).count == 3)

            // The agent's own Dump on its socket lists its workers.
            let local = try #require(await Fleet.dump(fleet.agentSocket))
            #expect(local.subscribers.filter { $0.kind == .worker && $0.ackedVersion == 1 }.count == 3)
            #expect(local.snapshot.version == 1)

            let admin = try await fleet.adminPort()
            let health = try await TestHTTPConnection.with(port: admin) { try await $0.request(.GET, "/healthz", host: "x") }
            #expect(health.status == .ok)
            let ready = try await TestHTTPConnection.with(port: admin) { try await $0.request(.GET, "/readyz", host: "x") }
            #expect(ready.status == .ok, "\(ready.text)")
            #expect(ready.text.contains("3/3 workers"))

            let response = try await fleet.request(host: "app.test")
            #expect(response.echoed["backend"] == "a")

            // The agent gives all its workers one generated default certificate: whichever worker
            // takes a connection, an unknown name gets the same one.
            var serials = Set<String>()
            for _ in 0..<12 {
                let handshake = try await TLSTestClient.handshake(port: fleet.httpsPort, serverName: "unknown.test")
                #expect(handshake.certificate.commonName.contains("Portico Default Certificate (self-signed)"))
                serials.insert(handshake.certificate.serialNumber)
            }
            #expect(serials.count == 1)

            // A manifest edit: version 2 reaches every worker, as a delta on both hops.
            try routeManifests([("app.test", other.port)]).write(toFile: fleet.manifests + "/routes.yaml", atomically: true, encoding: .utf8)
            try await fleet.waitForWorkers(acking: 2)
            let after = try #require(await Fleet.dump(fleet.controlPlaneSocket))
            #expect(after.subscribers.first { $0.kind == .nodeAgent }?.deltasSent == 1)
            #expect(after.subscribers.filter { !$0.relayedBy.isEmpty }.map(\.deltasSent) == [1, 1, 1])
            for _ in 0..<6 {
                let moved = try await fleet.request(host: "app.test")
                #expect(moved.echoed["backend"] == "b")
            }
        } catch {
            Issue.record("\(fleet.logs)")
            throw error
        }
        await fleet.tearDown()
        await backend.stop()
        await other.stop()
    }

    /// kill -9 of one worker: the agent restarts it, and requests through the shared port keep
    /// succeeding meanwhile, apart from connections the killed worker held or had queued.
    @Test(.timeLimit(.minutes(5)))
    func aKilledWorkerIsRestartedWhileTheOthersServe() async throws {
        try await Fleet.withRunning(workers: 2) { fleet, backend in
            try await fleet.waitForWorkers(acking: 1)
            let before = try #require(await fleet.relayedWorkers())
            let victim = try #require(before.first { $0.workerID == "0" })
            let load = LoadLoop(port: fleet.httpPort, host: "app.test")
            try await eventually("the load runs") { load.current.ok >= 20 }

            let killedAt = ContinuousClock.now
            kill(Int32(victim.pid), SIGKILL)
            var restartedAfter: Duration = .zero
            try await eventually("worker 0 is back with a new process that applied the snapshot", timeout: .seconds(60)) {
                guard let slot = await fleet.relayedWorkers()?.first(where: { $0.workerID == "0" }) else { return false }
                guard slot.pid != victim.pid, slot.pid > 0, slot.ackedVersion == 1 else { return false }
                restartedAfter = ContinuousClock.now - killedAt
                return slot.restarts == 1
            }
            print("worker restart: \(restartedAfter) from kill -9 to the new worker having applied the snapshot")
            let okBeforeEnd = load.current.ok
            try await eventually("the load goes on after the restart") { load.current.ok >= okBeforeEnd + 50 }
            let outcome = await load.stop()
            #expect(outcome.badStatus.isEmpty, "HTTP errors: \(outcome.badStatus)")
            // Only connections on the killed worker may fail: the one in flight and its accept queue.
            #expect(outcome.connectionErrors.count <= 3, "\(outcome.connectionErrors)")
            #expect(!processExists(Int32(victim.pid)))
            #expect(fleet.agent?.text.contains("worker exited; restarting") == true)
        }
    }

    /// kill -9 of the control plane under load fails no request; a new control plane on the same
    /// socket gets the agent back, with its workers.
    @Test(.timeLimit(.minutes(5)))
    func theControlPlaneKilledDuringLoadFailsNoRequest() async throws {
        try await Fleet.withRunning(workers: 2) { fleet, backend in
            try await fleet.waitForWorkers(acking: 1)
            let fresh = LoadLoop(port: fleet.httpPort, host: "app.test")
            let kept = LoadLoop(port: fleet.httpPort, host: "app.test")
            try await eventually("the load runs") { fresh.current.ok >= 20 }
            kill(fleet.controlPlane!.process.processIdentifier, SIGKILL)
            _ = try await fleet.controlPlane?.waitForExit()
            let atKill = fresh.current.ok + kept.current.ok
            try await eventually("300 more requests are answered without the control plane") { fresh.current.ok + kept.current.ok >= atKill + 300 }
            try fleet.startControlPlane()
            try await eventually("the agent resubscribes to the new control plane") {
                await Fleet.dump(fleet.controlPlaneSocket)?.subscribers.contains { $0.kind == .nodeAgent && $0.ackedVersion == 1 } == true
            }
            try await fleet.waitForWorkers(acking: 1)
            for loop in [fresh, kept] {
                let outcome = await loop.stop()
                #expect(outcome.badStatus.isEmpty && outcome.connectionErrors.isEmpty, "\(outcome)")
            }
        }
    }

    /// The agent restarted while the control plane is down: its workers serve the saved snapshot.
    @Test(.timeLimit(.minutes(5)))
    func anAgentRestartedWithoutTheControlPlaneServesTheSavedSnapshot() async throws {
        try await Fleet.withRunning(workers: 2) { fleet, backend in
            try await fleet.waitForWorkers(acking: 1)
            fleet.agent?.signal(SIGTERM)
            #expect(try await fleet.agent?.waitForExit() == 0)
            fleet.controlPlane?.signal(SIGTERM)
            _ = try await fleet.controlPlane?.waitForExit()

            try fleet.startAgent()
            try await eventually("the restarted agent's workers serve the saved table") {
                (try? await fleet.request(host: "app.test"))?.echoed["backend"] == "a"
            }
            #expect(fleet.agent?.text.contains("serving the saved snapshot") == true)
            let admin = try await fleet.adminPort()
            try await eventually("the agent is ready without a control plane") {
                (try? await TestHTTPConnection.with(port: admin) { try await $0.request(.GET, "/readyz", host: "x") })?.status == .ok
            }
            let local = try #require(await Fleet.dump(fleet.agentSocket))
            #expect(local.snapshot.version == 1)
        }
    }

    /// A corrupt state file is reported by name and ignored: the agent is not ready until the
    /// control plane answers, then serves what it sends.
    @Test(.timeLimit(.minutes(5)))
    func aCorruptStateFileIsReportedAndIgnored() async throws {
        let backend = try await TestBackend.start(name: "a")
        let fleet = try Fleet(workers: 1, routes: [("app.test", backend.port)])
        try FileManager.default.createDirectory(atPath: fleet.stateDirectory, withIntermediateDirectories: true)
        try Data("not a snapshot at all".utf8).write(to: URL(fileURLWithPath: fleet.stateDirectory + "/snapshot.pb"))
        try fleet.startAgent()
        do {
            try await eventually("the agent reports the corrupt file") {
                fleet.agent?.text.contains("state file \(fleet.stateDirectory)/snapshot.pb is corrupt") == true
            }
            let admin = try await fleet.adminPort()
            let notReady = try await TestHTTPConnection.with(port: admin) { try await $0.request(.GET, "/readyz", host: "x") }
            #expect(notReady.status == .serviceUnavailable)
            #expect(notReady.text.contains("0/1 workers"))

            try fleet.startControlPlane()
            try await fleet.waitForWorkers(acking: 1)
            let response = try await fleet.request(host: "app.test")
            #expect(response.echoed["backend"] == "a")
        } catch {
            Issue.record("\(fleet.logs)")
            throw error
        }
        await fleet.tearDown()
        await backend.stop()
    }

    /// SIGTERM to the agent during load: a request in flight completes, then the workers and the
    /// agent exit.
    @Test(.timeLimit(.minutes(5)))
    func sigtermDrainsInFlightRequestsThenEverythingExits() async throws {
        let backend = try await TestBackend.start(name: "a")
        let slowBackend = try await TestBackend.start(name: "slow")
        let fleet = try Fleet(workers: 2, routes: [("app.test", backend.port), ("slow.test", slowBackend.port)])
        try fleet.startControlPlane()
        try fleet.startAgent()
        do {
            try await fleet.waitForWorkers(acking: 1)
            let pids = try #require(await fleet.relayedWorkers()).map { Int32($0.pid) }
            let load = LoadLoop(port: fleet.httpPort, host: "app.test")
            let inFlight = Task { try await fleet.request(host: "slow.test", path: "/sleep/1500") }
            try await eventually("the load runs and the slow request reached its backend") {
                load.current.ok >= 20 && slowBackend.acceptedConnections == 1
            }
            fleet.agent?.signal(SIGTERM)
            let slow = try await inFlight.value
            #expect(slow.status == .ok)
            let status = try await fleet.agent?.waitForExit(timeout: .seconds(60))
            #expect(status == 0)
            let outcome = await load.stop()
            #expect(outcome.badStatus.isEmpty, "\(outcome.badStatus)")
            for pid in pids { #expect(!processExists(pid), "worker \(pid) is gone") }
            #expect(fleet.agent?.text.contains("node agent stopped") == true)
        } catch {
            Issue.record("\(fleet.logs)")
            throw error
        }
        await fleet.tearDown()
        await backend.stop()
        await slowBackend.stop()
    }

    /// The agent's /metrics merges its workers' (each sample labelled with its worker, each family
    /// declared once) and the workers write one JSON access-log line per request.
    @Test(.timeLimit(.minutes(5)))
    func metricsAreAggregatedAndRequestsLogged() async throws {
        try await Fleet.withRunning(workers: 2) { fleet, backend in
            try await fleet.waitForWorkers(acking: 1)
            for _ in 0..<20 {
                #expect(try await fleet.request(host: "app.test").status == .ok)
            }
            let admin = try await fleet.adminPort()
            var text = ""
            try await eventually("the workers' counts add up to the 20 requests") {
                text = (try? await TestHTTPConnection.with(port: admin) { try await $0.request(.GET, "/metrics", host: "x") })?.text ?? ""
                let samples = text.split(separator: "\n").filter {
                    $0.hasPrefix("portico_requests_total{worker=") && $0.contains(#"ingress="r0",service="s0",code="200"}"#)
                }
                return samples.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +) == 20
            }
            #expect(text.components(separatedBy: "# TYPE portico_requests_total counter").count == 2, "declared once")
            #expect(text.contains("portico_agent_workers_ready{node=\"test-node\"} 2"))
            #expect(text.contains("portico_snapshot_version{worker=\"0\"} 1"))

            var lines: [[String: Any]] = []
            try await eventually("20 access-log lines") {
                lines = fleet.agent!.text.split(separator: "\n").filter { $0.hasPrefix("{") }.compactMap {
                    try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                }.filter { $0["host"] as? String == "app.test" }
                return lines.count == 20
            }
            #expect(lines.allSatisfy { $0["status"] as? Int == 200 && $0["upstream"] as? String == "127.0.0.1:\(backend.port)" })
            #expect(lines.allSatisfy { ($0["request_id"] as? String)?.count == 32 })
        }
    }

    /// `porticoctl status`, `dump --section` and `explain` against a live control plane with an
    /// agent, its workers, and a subscriber that refuses every snapshot.
    @Test(.timeLimit(.minutes(5)))
    func porticoctlShowsTheFleetAndWhoRefused() async throws {
        let backend = try await TestBackend.start(name: "a")
        let fleet = try Fleet(workers: 2, routes: [("app.test", backend.port)])
        try fleet.startControlPlane()
        try fleet.startAgent()
        let refuser = SnapshotSubscriber(
            address: .unix(path: fleet.controlPlaneSocket), identity: SubscriberIdentity(node: "odd-node", workerID: "x", kind: .worker))
        let refusing = Task { await refuser.run { _ in throw RefusedForTheTest() } }
        do {
            try await fleet.waitForWorkers(acking: 1)
            try await eventually("the refusal is recorded") { refuser.currentStatus.nacks >= 1 }
            let server = "unix:\(fleet.controlPlaneSocket)"

            let json = await (try StatusCommand.parse(["--server", server, "-o", "json"])).execute()
            #expect(json.exitCode == 2, "a NACK makes status fail")
            let status = try JSONDecoder().decode(StatusCommand.Fleet.self, from: Data(json.stdout.utf8))
            #expect(status.version == 1)
            #expect(status.nodes.map(\.node) == ["test-node"])
            #expect(status.nodes.first?.workers.map(\.worker) == ["0", "1"])
            #expect(status.nodes.first?.workers.allSatisfy { $0.lag == 0 && $0.pid != nil && $0.restarts == 0 } == true)
            let odd = try #require(status.others.first)
            #expect(odd.lastNack?.contains("refused for the test") == true)
            #expect(odd.lag == 1)
            #expect(status.nacked == 1)

            let table = await (try StatusCommand.parse(["--server", server])).execute()
            #expect(table.stdout.contains("1 node, 2 workers, 1 behind, 1 with a NACK"), "\(table.stdout)")
            #expect(table.stdout.contains("worker 1"))
            #expect(table.stdout.contains("current"))

            let subscribers = await (try DumpCommand.parse(["--server", server, "--section", "subscribers"])).execute()
            #expect(subscribers.stdout.contains("RESTARTS"))
            #expect(!subscribers.stdout.contains("HOST "), "no routes section")
            let routes = await (try DumpCommand.parse(["--server", server, "--section", "routes", "-o", "json"])).execute()
            let document = try JSONDecoder().decode(DumpDocument.self, from: Data(routes.stdout.utf8))
            #expect(document.subscribers == nil)
            #expect(document.virtualHosts.map(\.host) == ["app.test"])

            // The agent answers the same questions for its node.
            let agentStatus = await (try StatusCommand.parse(["--server", "unix:\(fleet.agentSocket)", "-o", "json"])).execute()
            #expect(agentStatus.exitCode == 0, "\(agentStatus.stdout)")

            let explain = await (try ExplainCommand.parse(["--server", server, "--host", "app.test", "--path", "/x", "-o", "json"])).execute()
            #expect(explain.stdout.contains("\"result\" : \"route\"") || explain.stdout.contains("\"result\":\"route\""), "\(explain.stdout)")
        } catch {
            Issue.record("\(fleet.logs)")
            throw error
        }
        refusing.cancel()
        await refusing.value
        await fleet.tearDown()
        await backend.stop()
    }
}

struct RefusedForTheTest: Error, CustomStringConvertible {
    var description: String { "refused for the test" }
}
