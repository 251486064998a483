import Foundation
import PorticoCtl
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
            try await poll("portico run says it is running") { run.text.contains("Portico is running") }
            #expect(run.text.contains("curl -H 'Host: app.test' http://127.0.0.1:\(httpPort)/"))
            #expect(await get("/")?.echoed["backend"] == "first")

            try routeManifests([("app.test", second.port)], path: "/v2").write(toFile: work + "/routes.yaml", atomically: true, encoding: .utf8)
            try await poll("the edit is live", timeout: .seconds(30)) { await get("/v2")?.echoed["backend"] == "second" }
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
            try await poll("portico run says it is running") { run.text.contains("Portico is running") }
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
