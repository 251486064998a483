import Foundation
import PorticoCtl
import SnapshotProtocol
import Synchronization
import NIOHTTP1
import Testing
import TestSupport

/// `portico run`: the whole system on one machine, as a new user starts it.
@Suite(.serialized) struct RunProcessTests {
    static let quickstart = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/quickstart").path

    /// The run directory `portico run` printed (in its porticoctl hint).
    static func runDirectory(in output: String) -> String? {
        output.firstMatch(of: /unix:(\/tmp\/portico-run\.[A-Za-z0-9]+)\/control-plane\.sock/).map { String($0.1) }
    }

    /// A manifest edit goes live; Ctrl-C (SIGINT) stops every process and removes the run directory.
    @Test(.timeLimit(.minutes(5)))
    func editsGoLiveAndCtrlCLeavesNothingBehind() async throws {
        let first = try await TestBackend.start(name: "first")
        let second = try await TestBackend.start(name: "second")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("portico-run-test-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try routeManifests([("app.test", first.port)]).write(toFile: work + "/routes.yaml", atomically: true, encoding: .utf8)
        let httpPort = try freePort()
        let run = try ChildProcess(
            Binaries.portico,
            ["run", "--manifests", work, "--http-port", String(httpPort), "--https-port", String(try freePort()), "--workers", "2"])
        func get(_ path: String) async -> TestResponse? {
            try? await TestHTTPConnection.with(port: httpPort) { try await $0.request(.GET, path, host: "app.test") }
        }
        do {
            try await eventually("portico run says it is running") { run.text.contains("Portico is running") }
            #expect(run.text.contains("curl -H 'Host: app.test' http://127.0.0.1:\(httpPort)/"))
            #expect(await get("/")?.echoed["backend"] == "first")

            try routeManifests([("app.test", second.port)], path: "/v2").write(toFile: work + "/routes.yaml", atomically: true, encoding: .utf8)
            try await eventually("the edit is live", timeout: .seconds(30)) { await get("/v2")?.echoed["backend"] == "second" }
            #expect(await get("/")?.status == .notFound)
        } catch {
            Issue.record("output:\n\(run.text)")
            throw error
        }
        let runDirectory = try #require(Self.runDirectory(in: run.text))
        #expect(FileManager.default.fileExists(atPath: runDirectory + "/sockets/data-plane.sock"))
        // The porticoctl hints work as printed, pasted into a shell (porticoctl is not on PATH here).
        let hints = run.text.split(separator: "\n").filter { $0.contains(" --server unix:") }.map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(hints.count == 3, "\(run.text)")
        for hint in hints {
            let shell = Process()
            shell.executableURL = URL(fileURLWithPath: "/bin/sh")
            shell.arguments = ["-c", hint]
            shell.standardOutput = FileHandle.nullDevice
            try shell.run()
            shell.waitUntilExit()
            #expect(shell.terminationStatus == 0, "\(hint)")
        }
        #expect(processes(mentioning: runDirectory).count == 4, "control plane, agent, two workers")

        run.signal(SIGINT)
        let status = try await run.waitForExit(timeout: .seconds(60))
        #expect(status == 0, "output:\n\(run.text)")
        #expect(run.text.contains("Stopped."))
        #expect(!FileManager.default.fileExists(atPath: runDirectory))
        #expect(processes(mentioning: runDirectory).isEmpty)
        await first.stop()
        await second.stop()
    }

    /// `portico run` heals itself: kill -9 of the control plane or of the node agent under load
    /// fails no request. The control plane is restarted at once (status answers again within 2 s);
    /// the workers keep serving the last table meanwhile. A killed node agent's workers are not
    /// restarted: they serve on, orphaned, and the restarted agent adopts them (same pids), so not
    /// even their requests in flight fail.
    @Test(.timeLimit(.minutes(5)))
    func killedChildrenAreRestartedAndServingNeverStops() async throws {
        let backend = try await TestBackend.start(name: "app")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("portico-heal-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try routeManifests([("app.test", backend.port)]).write(toFile: work + "/routes.yaml", atomically: true, encoding: .utf8)
        let httpPort = try freePort()
        let run = try ChildProcess(
            Binaries.portico, ["run", "--manifests", work, "--http-port", String(httpPort), "--https-port", String(try freePort()), "--workers", "2"])
        do {
            try await eventually("portico run says it is running") { run.text.contains("Portico is running") }
            let runDirectory = try #require(Self.runDirectory(in: run.text))
            let controlPlane = ServerAddress.unix(path: runDirectory + "/control-plane.sock")
            let agent = ServerAddress.unix(path: runDirectory + "/sockets/data-plane.sock")
            let workers = processes(mentioning: "worker --control-plane unix:\(runDirectory)/").sorted()
            #expect(workers.count == 2)

            // Bounded load: two clients, a new connection per request, until told to stop.
            let stop = StopFlag()
            let load = (0..<2).map { _ in
                Task { () -> (ok: Int, failed: [String]) in
                    var ok = 0
                    var failed: [String] = []
                    while !stop.value.load(ordering: .relaxed), ok + failed.count < 20_000 {
                        do {
                            let response = try await TestHTTPConnection.with(port: httpPort) { try await $0.request(.GET, "/", host: "app.test") }
                            if response.status == .ok { ok += 1 } else { failed.append("\(response.status)") }
                            stop.completed.add(1, ordering: .relaxed)
                        } catch {
                            failed.append("\(error)")
                        }
                    }
                    return (ok, failed)
                }
            }
            for (role, pattern) in [("control plane", "control-plane --manifests \(work)"), ("node agent", "data-plane --control-plane unix:\(runDirectory)")] {
                let pid = try #require(processes(mentioning: pattern).first, "\(role)")
                let before = stop.completed.load(ordering: .relaxed)
                try await eventually("requests flow") { stop.completed.load(ordering: .relaxed) > before + 100 }
                kill(pid, SIGKILL)
                let killed = ContinuousClock.now
                try await eventually("the \(role) is replaced") { processes(mentioning: pattern).contains { $0 != pid } }
                try await eventually("the control plane answers") { (try? await SourceOptions.fetchDump(from: controlPlane, timeout: 1)) != nil }
                let back = ContinuousClock.now - killed
                print("\(role) killed: the control plane answered again after \(back)")
                if role == "control plane" { #expect(back < .seconds(2), "the control plane is back within 2 s: \(back)") }
                try await eventually("both workers are subscribed to the agent") {
                    let dump = try? await SourceOptions.fetchDump(from: agent, timeout: 1)
                    return dump?.subscribers.filter { $0.kind == .worker && $0.ackedVersion > 0 }.count == 2
                }
                let after = stop.completed.load(ordering: .relaxed)
                try await eventually("requests flow after the \(role) came back") { stop.completed.load(ordering: .relaxed) > after + 100 }
            }
            stop.value.store(true, ordering: .relaxed)
            var ok = 0
            var failed: [String] = []
            for task in load {
                let result = await task.value
                ok += result.ok
                failed += result.failed
            }
            print("requests during the kills: \(ok) ok, \(failed.count) failed")
            #expect(failed.isEmpty, "\(failed.prefix(5))")
            #expect(ok > 0)
            #expect(processes(mentioning: "worker --control-plane unix:\(runDirectory)/").sorted() == workers, "the workers were adopted, not restarted")
        } catch {
            Issue.record("output:\n\(run.text)")
            throw error
        }
        run.signal(SIGINT)
        #expect(try await run.waitForExit(timeout: .seconds(60)) == 0, "output:\n\(run.text)")
        await backend.stop()
    }

    /// The README's quickstart: demo backends answer the routed requests over HTTP and HTTPS.
    @Test(.timeLimit(.minutes(5)))
    func theQuickstartAnswersOverHTTPAndHTTPS() async throws {
        let httpPort = try freePort()
        let httpsPort = try freePort()
        let run = try ChildProcess(
            Binaries.portico,
            [
                "run", "--manifests", Self.quickstart, "--demo-backends", "--http-port", String(httpPort), "--https-port", String(httpsPort),
                "--workers", "1",
            ])
        do {
            try await eventually("portico run says it is running") { run.text.contains("Portico is running") }
            #expect(run.text.contains("curl -k --resolve shop.example.com:\(httpsPort):127.0.0.1 https://shop.example.com:\(httpsPort)/"))
            let blog = try await TestHTTPConnection.with(port: httpPort) { try await $0.request(.GET, "/feed.xml", host: "blog.example.com") }
            #expect(blog.status == .ok)
            #expect(blog.text.hasPrefix("Hello from default/blog"))
            #expect(blog.text.contains("GET /feed.xml"))
            let redirect = try await TestHTTPConnection.with(port: httpPort) { try await $0.request(.GET, "/", host: "shop.example.com") }
            #expect(redirect.status == .permanentRedirect)
            let shop = try await TestHTTPConnection.with(port: httpsPort, tls: "shop.example.com") {
                try await $0.request(.GET, "/api/items", host: "shop.example.com")
            }
            #expect(shop.status == .ok)
            #expect(shop.text.hasPrefix("Hello from shop/api"))
            #expect(shop.text.contains("x-forwarded-proto: https"))

            // No private key bytes in any log or dump: the quickstart's Secret carries one.
            let manifest = try String(contentsOfFile: Self.quickstart + "/shop-tls.yaml", encoding: .utf8)
            let keyLines = manifest.split(separator: "\n").drop { !$0.contains("BEGIN PRIVATE KEY") && !$0.contains("BEGIN EC PRIVATE KEY") }
                .dropFirst().prefix(2).map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(keyLines.count == 2 && keyLines.allSatisfy { $0.count > 40 }, "the quickstart Secret holds a key")
            let runDirectory = try #require(Self.runDirectory(in: run.text))
            var outputs = [run.text]
            for socket in [runDirectory + "/control-plane.sock", runDirectory + "/sockets/data-plane.sock"] {
                for format in ["table", "json", "yaml"] {
                    let dump = await (try DumpCommand.parse(["--server", "unix:" + socket, "-o", format])).execute()
                    #expect(dump.exitCode == 0)
                    outputs.append(dump.stdout + dump.stderr)
                }
            }
            #expect(outputs[1].contains("shop/shop-tls"), "the dump does show the certificate")
            for output in outputs {
                for line in keyLines { #expect(!output.contains(line), "a private key line leaked") }
                #expect(!output.contains("PRIVATE KEY"))
            }
        } catch {
            Issue.record("output:\n\(run.text)")
            throw error
        }
        run.signal(SIGTERM)
        #expect(try await run.waitForExit(timeout: .seconds(60)) == 0, "output:\n\(run.text)")
    }
}

private final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
    /// Requests answered (or failed) so far.
    let completed = Atomic<Int>(0)
}
