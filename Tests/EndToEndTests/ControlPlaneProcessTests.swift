import Foundation
import PorticoCtl
import Testing
import TestSupport

/// The built executables, next to this test bundle (`swift build --build-tests` builds them).
enum Binaries {
    static let directory: URL = {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: executable).deletingLastPathComponent()
        // The test runner may live inside PorticoPackageTests.xctest/…; walk up to the build directory.
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("portico").path), url.path != "/" {
            url.deleteLastPathComponent()
        }
        return url
    }()

    static var portico: String { directory.appendingPathComponent("portico").path }
}

/// A child process whose output is collected; killed at the end of the test if still running.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()
    private let lock = NSLock()
    private var collected = Data()

    init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.withLock { self.collected.append(data) }
        }
        try process.run()
    }

    var text: String { lock.withLock { String(decoding: collected, as: UTF8.self) } }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for exit, polling, up to `timeout`; returns the exit status or nil.
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        return process.isRunning ? nil : process.terminationStatus
    }

    deinit {
        if process.isRunning { process.terminate() }
        output.fileHandleForReading.readabilityHandler = nil
    }
}

@Suite(.serialized) struct ControlPlaneProcessTests {
    static let quickstart = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/quickstart").path

    @Test func servesWatchesAndStopsOnSIGTERM() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("portico-e2e-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.copyItem(atPath: Self.quickstart, toPath: work + "/manifests")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let socket = "unix:\(work)/run/cp.sock"
        let controlPlane = try ChildProcess(Binaries.portico, ["control-plane", "--manifests", work + "/manifests", "--listen", socket, "--admin-port", "0", "--admin-bind", "127.0.0.1"])

        func dumpJSON() async throws -> DumpDocument? {
            let result = await (try DumpCommand.parse(["--server", socket, "-o", "json", "--timeout", "2"])).execute()
            guard result.exitCode == 0 else { return nil }
            return try JSONDecoder().decode(DumpDocument.self, from: Data(result.stdout.utf8))
        }
        try await eventually("the control plane answers") { try await dumpJSON()?.version == 1 }
        var adminPort = 0
        try await eventually("the control plane logs its admin port") {
            guard let match = controlPlane.text.firstMatch(of: /address=127\.0\.0\.1:(\d+) .*admin listening/) else { return false }
            adminPort = Int(match.1)!
            return true
        }
        let ready = try await TestHTTPConnection.with(port: adminPort) { try await $0.request(.GET, "/readyz", host: "x") }
        #expect(ready.status == .ok)
        #expect(ready.text == "ready: serving version 1\n")

        let blog = work + "/manifests/blog.yaml"
        try String(contentsOfFile: blog, encoding: .utf8).replacingOccurrences(of: "/feed.xml", with: "/rss.xml")
            .replacingOccurrences(
                of: "  name: blog\n  namespace: default\nspec:\n  rules:",
                with: "  name: blog\n  namespace: default\n  annotations: {nginx.ingress.kubernetes.io/enable-cors: \"true\"}\nspec:\n  rules:")
            .write(toFile: blog, atomically: true, encoding: .utf8)
        try await eventually("the edit is published as version 2") {
            guard let document = try await dumpJSON(), document.version == 2 else { return false }
            return document.virtualHosts.first { $0.host == "blog.example.com" }?.routes.contains { $0.path == "/rss.xml" } == true
        }

        let metrics = try await TestHTTPConnection.with(port: adminPort) { try await $0.request(.GET, "/metrics", host: "x") }
        #expect(metrics.text.contains("portico_control_plane_snapshot_version 2"), "\(metrics.text)")
        #expect(metrics.text.contains("portico_control_plane_rebuilds_total 2"))
        #expect(metrics.text.contains("# TYPE portico_control_plane_nacks_total counter"))
        // The unsupported annotation is counted.
        #expect(metrics.text.contains("portico_control_plane_rejections{reason=\"UnsupportedAnnotation\"} 1"))
        #expect(metrics.text.contains("portico_control_plane_ingress_annotations{status=\"unsupported\"} 1"))

        controlPlane.signal(SIGTERM)
        let status = try await controlPlane.waitForExit()
        #expect(status == 0, "output:\n\(controlPlane.text)")
        #expect(controlPlane.text.contains("manifests loaded"))
        #expect(controlPlane.text.contains("stopping"))
    }

    @Test func aMissingManifestPathIsAClearError() async throws {
        let controlPlane = try ChildProcess(Binaries.portico, ["control-plane", "--manifests", "/nonexistent/portico", "--listen", "unix:/tmp/portico-unused/cp.sock", "--admin-port", "0"])
        let status = try await controlPlane.waitForExit()
        #expect(status == 1)
        #expect(controlPlane.text.contains("error: /nonexistent/portico: no such file or directory"))
    }

    @Test func aBadListenAddressIsAUsageError() async throws {
        let controlPlane = try ChildProcess(Binaries.portico, ["control-plane", "--manifests", Self.quickstart, "--listen", "unix:relative.sock", "--admin-port", "0"])
        let status = try await controlPlane.waitForExit()
        #expect(status == 64)
        #expect(controlPlane.text.contains("a Unix socket path must be absolute"))
    }
}
