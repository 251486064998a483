import Foundation
import NIOCore
import NIOPosix
import Testing
import TestSupport

/// A port that cannot be bound is reported by the command that wanted it, naming who, where and
/// why, and the command exits non-zero.
@Suite(.serialized) struct ListenErrorTests {
    /// Holds 127.0.0.1:`port` busy for the test.
    static func occupy() async throws -> (channel: any Channel, port: Int) {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        return (channel, channel.localAddress!.port!)
    }

    /// Runs `portico arguments` until it exits; what it printed, once `expected` is among it (the
    /// pipe may deliver the last bytes after the exit), or all of it after 10 s.
    static func failure(_ arguments: [String], printing expected: String) async throws -> (status: Int32?, output: String) {
        let child = try ChildProcess(Binaries.portico, arguments)
        let status = try await child.waitForExit(timeout: .seconds(60))
        let deadline = ContinuousClock.now + .seconds(10)
        while !child.text.contains(expected), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        return (status, child.text)
    }

    @Test(.timeLimit(.minutes(3)))
    func everyListenerNamesWhoWantedWhichAddress() async throws {
        let (busy, port) = try await Self.occupy()
        defer { busy.close(promise: nil) }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("portico-listen-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let manifests = RunProcessTests.quickstart
        let inUse = "cannot listen on 127.0.0.1:\(port): address already in use"

        let snapshots = try await Self.failure(
            ["control-plane", "--manifests", manifests, "--listen", "127.0.0.1:\(port)", "--admin-port", "0"], printing: "control plane: \(inUse)")
        #expect(snapshots.status != 0 && snapshots.output.contains("control plane: \(inUse)"), "\(snapshots.output)")

        let admin = try await Self.failure([
            "control-plane", "--manifests", manifests, "--listen", "unix:\(work)/a.sock", "--admin-port", String(port), "--admin-bind", "127.0.0.1",
        ], printing: "control plane admin server: \(inUse)")
        #expect(admin.status != 0 && admin.output.contains("control plane admin server: \(inUse)"), "\(admin.output)")

        let demo = try await Self.failure(["demo-backend", "--listen", "default/shop=127.0.0.1:\(port)"], printing: "demo backend default/shop: \(inUse)")
        #expect(demo.status != 0 && demo.output.contains("demo backend default/shop: \(inUse)"), "\(demo.output)")

        // The worker and the node agent need a control plane to get as far as listening.
        let controlPlane = try ChildProcess(
            Binaries.portico, ["control-plane", "--manifests", manifests, "--listen", "unix:\(work)/cp.sock", "--admin-port", "0"])
        try await eventually("the control plane listens") { FileManager.default.fileExists(atPath: "\(work)/cp.sock") }
        let worker = try await Self.failure([
            "worker", "--control-plane", "unix:\(work)/cp.sock", "--http-port", String(port), "--bind", "127.0.0.1", "--id", "3", "--no-access-log",
        ], printing: "worker 3: \(inUse)")
        #expect(worker.status != 0 && worker.output.contains("worker 3: \(inUse)"), "\(worker.output)")
        let agent = try await Self.failure([
            "data-plane", "--control-plane", "unix:\(work)/cp.sock", "--workers", "1", "--http-port", String(try freePort()), "--bind", "127.0.0.1",
            "--state-dir", "\(work)/state", "--socket-dir", "\(work)/agent", "--admin-port", String(port), "--admin-bind", "127.0.0.1",
        ], printing: "node agent admin server: \(inUse)")
        #expect(agent.status != 0 && agent.output.contains("node agent admin server: \(inUse)"), "\(agent.output)")
        controlPlane.signal(SIGTERM)
        _ = try await controlPlane.waitForExit()
    }
}
