import Foundation
import PorticoCtl
import RouteModel
import SnapshotProtocol
import Testing
import TestSupport
@testable import ControlPlane

/// The control plane's file source end to end: files → versions → subscribers and porticoctl.
@Suite(.serialized) struct ManifestSourceTests {
    static let quickstart = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/quickstart").path

    /// A private copy of the quickstart manifests.
    func copyQuickstart() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("portico-cp-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: Self.quickstart, toPath: directory)
        return directory
    }

    func fastOptions() -> ManifestSource.Options {
        var options = ManifestSource.Options()
        options.pollInterval = .milliseconds(20)
        options.holdOff = .milliseconds(20)
        options.maxHoldOff = .milliseconds(100)
        return options
    }

    @Test func editingAManifestPublishesANewVersionToSubscribers() async throws {
        let directory = try copyQuickstart()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let latest = LatestSnapshot()
        let source = ManifestSource(path: directory, latest: latest, options: fastOptions())
        try source.reload()
        let server = try await startServer(at: Transport.unix.freshAddress(), latest: latest)
        let watcher = Task { await source.watch() }
        let subscriber = RecordingSubscriber(address: server.address, id: "w")
        try await eventually("version 1 is applied") { subscriber.lastVersion == 1 }
        #expect(route(subscriber.lastTable, "blog.example.com", "/archive/2024") == "/")

        let blog = directory + "/blog.yaml"
        let edited = try String(contentsOfFile: blog, encoding: .utf8).replacingOccurrences(
            of: "      - path: /feed.xml", with: "      - path: /archive\n        pathType: Prefix\n        backend:\n          service: {name: blog, port: {number: 80}}\n      - path: /feed.xml")
        try edited.write(toFile: blog, atomically: true, encoding: .utf8)
        try await eventually("the edit reaches the subscriber") { subscriber.lastVersion == 2 }
        #expect(route(subscriber.lastTable, "blog.example.com", "/archive/2024") == "/archive")

        // Touching a file without changing what it means publishes nothing.
        let sequence = source.loop.sequence
        try edited.write(toFile: blog, atomically: true, encoding: .utf8)
        let status = try await rebuilt(source.loop, after: sequence)
        #expect(status.version == 2 && status.unchanged >= 1)

        watcher.cancel()
        await subscriber.stop()
        await server.stop()
    }

    @Test func aBrokenEditKeepsTheFilesLastGoodObjectsAndIsReported() async throws {
        let directory = try copyQuickstart()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let latest = LatestSnapshot()
        let diagnostics = DiagnosticsBoard()
        let source = ManifestSource(path: directory, latest: latest, diagnostics: diagnostics, options: fastOptions())
        try source.reload()
        let before = try #require(latest.current)

        let blog = directory + "/blog.yaml"
        let text = try String(contentsOfFile: blog, encoding: .utf8)
        try text.replacingOccurrences(of: "      - path: /feed.xml", with: "      - path: [unclosed").write(toFile: blog, atomically: true, encoding: .utf8)
        let status = try source.reload()
        #expect(status.version == 1, "nothing the table holds changed")
        #expect(latest.current?.table == before.table)
        #expect(status.errors.count == 1)
        #expect(status.errors.first?.location.file == blog)
        #expect(diagnostics.diagnostics.sourceErrors.first?.contains("blog.yaml: document 3") == true)

        // Fixing the file applies the fixed content.
        try text.replacingOccurrences(of: "/feed.xml", with: "/rss.xml").write(toFile: blog, atomically: true, encoding: .utf8)
        let fixed = try source.reload()
        #expect(fixed.errors.isEmpty)
        #expect(fixed.version == 2)
        #expect(route(latest.current?.table, "blog.example.com", "/rss.xml") == "/rss.xml")
    }

    @Test func aDeletedFileRemovesItsObjects() async throws {
        let directory = try copyQuickstart()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let latest = LatestSnapshot()
        let source = ManifestSource(path: directory, latest: latest, options: fastOptions())
        try source.reload()
        try FileManager.default.removeItem(atPath: directory + "/blog.yaml")
        let status = try source.reload()
        #expect(status.version == 2)
        #expect(latest.current?.table.virtualHost(forHost: "blog.example.com").map { latest.current!.table.virtualHosts[$0].hostname } == .any)
    }

    @Test func porticoctlShowsVersionSubscribersAndNacks() async throws {
        let directory = try copyQuickstart()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let latest = LatestSnapshot()
        let diagnostics = DiagnosticsBoard()
        let source = ManifestSource(path: directory, latest: latest, diagnostics: diagnostics, options: fastOptions())
        try source.reload()
        let server = try await startServer(at: Transport.unix.freshAddress(), latest: latest, diagnostics: diagnostics)
        let good = RecordingSubscriber(address: server.address, id: "good")
        let picky = RecordingSubscriber(address: server.address, id: "picky") { _ in "cannot bind 443: permission denied" }
        try await eventually("the good subscriber ACKs and the picky one NACKs") {
            server.subscriber("good")?.ackedVersion == 1 && server.subscriber("picky")?.lastNack != nil
        }

        let table = await (try DumpCommand.parse(["--server", server.address.description])).execute()
        #expect(table.exitCode == 0)
        #expect(table.stdout.hasPrefix("\(server.address)  version 1, hash \(latest.current!.table.contentHashHex)"))
        #expect(table.stdout.contains("shop.example.com"))
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("SUBSCRIBER") && $0.contains("LAST NACK") })
        #expect(lines.contains { $0.contains("good") && $0.contains("worker") && !$0.contains("NACK") })
        #expect(lines.contains { $0.contains("picky") && $0.contains("version 1 at") && $0.contains("cannot bind 443: permission denied") })
        #expect(table.stderr.contains("NACKed version 1: cannot bind 443"))

        let strict = await (try DumpCommand.parse(["--server", server.address.description, "--strict"])).execute()
        #expect(strict.exitCode == CommandResult.problemsFound)

        let json = await (try DumpCommand.parse(["--server", server.address.description, "-o", "json"])).execute()
        let document = try JSONDecoder().decode(DumpDocument.self, from: Data(json.stdout.utf8))
        #expect(document.version == 1)
        let pickyEntry = try #require(document.subscribers?.first { $0.worker == "picky" })
        #expect(pickyEntry.ackedVersion == 0)
        #expect(pickyEntry.lag == 1)
        #expect(pickyEntry.lastNack?.error == "cannot bind 443: permission denied")
        #expect(document.subscribers?.first { $0.worker == "good" }?.lag == 0)
        #expect(document.summary.acceptedIngresses == 3)
        #expect(document.certificates.first?.dnsNames == ["shop.example.com", "www.shop.example.com"])
        #expect(!json.stdout.contains("PRIVATE KEY"))

        let explain = await (try ExplainCommand.parse(["--server", server.address.description, "--host", "shop.example.com", "--path", "/api/v1", "-o", "json"])).execute()
        #expect(explain.stdout.hasPrefix(#"{"result":"route","namespace":"shop","ingress":"shop","service":"api","servicePort":8080"#))

        await good.stop()
        await picky.stop()
        await server.stop()
    }

    @Test func anUnreachableServerIsExitOne() async throws {
        let result = await (try DumpCommand.parse(["--server", "unix:/tmp/portico-nowhere-\(UUID().uuidString.prefix(6)).sock", "--timeout", "2"])).execute()
        #expect(result.exitCode == CommandResult.inputError)
        #expect(result.stderr.hasPrefix("error: cannot get a dump from unix:/tmp/portico-nowhere"))
    }
}

/// The path of the route a request reaches, or "404".
func route(_ table: RouteTable?, _ host: String, _ path: String) -> String {
    guard let table else { return "no table" }
    switch table.resolve(host: host, path: path) {
    case .route(let h, let r): return table.virtualHosts[h].routes[r].match.path
    case .defaultBackend: return "default"
    case .notFound: return "404"
    }
}
