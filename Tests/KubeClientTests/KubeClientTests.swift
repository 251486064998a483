import Foundation
import KubeAPIEmulator
import KubeClient
import KubeTypes
import Synchronization
import Testing
import TestSupport

private func temporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("portico-kube-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite struct KubeConfigTests {
    @Test func readsTheCurrentContextWithDataAndFiles() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ca = try TestCertificate(commonName: "kube.test", dnsNames: ["kube.test"])
        try ca.certificatePEM.write(toFile: directory + "/ca.pem", atomically: true, encoding: .utf8)
        let key = Data(ca.privateKeyPEM.utf8).base64EncodedString()
        let certificate = Data(ca.certificatePEM.utf8).base64EncodedString()
        try """
        apiVersion: v1
        kind: Config
        current-context: prod
        clusters:
        - name: c1
          cluster: {server: "https://kube.test:6443/", certificate-authority: ca.pem}
        - name: c2
          cluster: {server: "https://other:6443", insecure-skip-tls-verify: true}
        users:
        - name: tokens
          user: {tokenFile: token.txt}
        - name: certs
          user: {client-certificate-data: \(certificate), client-key-data: \(key)}
        contexts:
        - name: prod
          context: {cluster: c1, user: certs, namespace: shop}
        - name: dev
          context: {cluster: c2, user: tokens}
        """.write(toFile: directory + "/config", atomically: true, encoding: .utf8)

        let prod = try KubeConfig.load(kubeconfig: directory + "/config")
        #expect(prod.server == "https://kube.test:6443")
        #expect(prod.certificateAuthorityPEM == ca.certificatePEM)
        #expect(prod.namespace == "shop")
        guard case .clientCertificate(let pem, let keyPEM) = prod.credentials else { Issue.record("client certificate"); return }
        #expect(pem == ca.certificatePEM)
        #expect(keyPEM == ca.privateKeyPEM)

        let dev = try KubeConfig.load(kubeconfig: directory + "/config", context: "dev")
        #expect(dev.insecureSkipTLSVerify)
        guard case .tokenFile(let file) = dev.credentials else { Issue.record("token file"); return }
        #expect(file == directory + "/token.txt")
    }

    @Test func problemsNameTheFileAndWhatIsWrong() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try """
        apiVersion: v1
        kind: Config
        current-context: missing
        clusters: []
        contexts: []
        """.write(toFile: directory + "/config", atomically: true, encoding: .utf8)
        #expect(throws: KubeConfigError.self) { try KubeConfig.load(kubeconfig: directory + "/config") }
        do {
            _ = try KubeConfig.load(kubeconfig: directory + "/config")
        } catch {
            #expect(error.description == "\(directory)/config: has no context \"missing\"")
        }
        do {
            _ = try KubeConfig.load(kubeconfig: directory + "/absent")
        } catch {
            #expect(error.description.hasPrefix("\(directory)/absent: cannot be read"))
        }
    }

    @Test func inClusterUsesTheServiceAccount() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "abc\n".write(toFile: directory + "/token", atomically: true, encoding: .utf8)
        try "portico-system\n".write(toFile: directory + "/namespace", atomically: true, encoding: .utf8)
        let config = try KubeConfig.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"], directory: directory)
        #expect(config.server == "https://10.96.0.1:443")
        #expect(config.namespace == "portico-system")
        guard case .tokenFile(let file) = config.credentials else { Issue.record("token file"); return }
        #expect(file == directory + "/token")
        #expect(throws: KubeConfigError.self) { try KubeConfig.inCluster(environment: [:], directory: directory) }
    }
}

@Suite struct KubeClientTests {
    static func service(_ name: String, namespace: String = "default", port: Int32 = 80) -> Service {
        Fixture.service(name, namespace: namespace, ports: [ServicePort(name: "http", port: port, targetPort: .int(8080))])
    }

    @Test func listsInPagesAndAuthenticates() async throws {
        let server = try await KubeAPIEmulator.start()
        for index in 0..<25 { try await server.apply(Self.service("svc-\(index)")) }
        try await server.apply(Self.service("elsewhere", namespace: "other"))
        let client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
        let all = try await client.list(Service.self, limit: 10)
        #expect(all.items.count == 26)
        #expect(Set(all.items.map(\.name)).count == 26)
        let scoped = try await client.list(Service.self, namespace: "other")
        #expect(scoped.items.map(\.name) == ["elsewhere"])
        // Page by page, each with what the server says follows it (the informers size their caches so).
        var pages: [(count: Int, remaining: Int?)] = []
        _ = try await client.listPages(Service.self, limit: 10) { items, remaining in pages.append((items.count, remaining)) }
        #expect(pages.map(\.count) == [10, 10, 6])
        #expect(pages.map(\.remaining) == [16, 6, 0])

        let stranger = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token("wrong")))
        do {
            _ = try await stranger.list(Service.self)
            Issue.record("a wrong token is refused")
        } catch let error as KubeAPIError {
            #expect(error.status == 401)
            #expect(error.description.contains("GET /api/v1/services: 401"))
        }
        await client.shutdown()
        await stranger.shutdown()
        await server.stop()
    }

    @Test func anExecPluginSuppliesTheToken() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try await KubeAPIEmulator.start(token: "from-plugin")
        let plugin = directory + "/credential.sh"
        try """
        #!/bin/sh
        echo "$KUBERNETES_EXEC_INFO" > \(directory)/exec-info.json
        echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-plugin"}}'
        """.write(toFile: plugin, atomically: true, encoding: .utf8)
        chmod(plugin, 0o755)
        let client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .exec(ExecCredentialPlugin(command: plugin))))
        #expect(try await client.list(Service.self).items.isEmpty)
        let info = try String(contentsOfFile: directory + "/exec-info.json", encoding: .utf8)
        #expect(info.contains("\"kind\":\"ExecCredential\""))
        await client.shutdown()
        await server.stop()
    }

    @Test func watchStreamsChangesAndBookmarks() async throws {
        let server = try await KubeAPIEmulator.start(bookmarkInterval: .milliseconds(50))
        let client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
        let start = try await client.list(Service.self)
        let events = client.watch(Service.self, resourceVersion: start.metadata.resourceVersion!, timeoutSeconds: 30)
        let seen = Task {
            var changes: [String] = []
            var bookmarks = 0
            for try await event in events {
                switch event {
                case .added(let service): changes.append("added \(service.name)")
                case .modified(let service): changes.append("modified \(service.name)")
                case .deleted(let service): changes.append("deleted \(service.name)")
                case .bookmark: bookmarks += 1
                case .error(let status): changes.append("error \(status.code ?? 0)")
                }
                if changes.count == 3, bookmarks > 0 { break }
            }
            return (changes, bookmarks)
        }
        try await eventually("the watch is open") { await server.openWatches == 1 }
        try await server.apply(Self.service("a"))
        try await server.apply(Self.service("a", port: 81))
        try await server.delete(Service.self, name: "a")
        let (changes, bookmarks) = try await seen.value
        #expect(changes == ["added a", "modified a", "deleted a"])
        #expect(bookmarks > 0)
        await client.shutdown()
        await server.stop()
    }
}

@Suite struct InformerTests {
    /// The watch is cut while changes happen; the informer resumes from its last version and ends
    /// up with exactly the server's objects.
    @Test func aCutWatchLosesNoUpdate() async throws {
        let server = try await KubeAPIEmulator.start()
        try await server.apply(KubeClientTests.service("kept"))
        try await server.apply(KubeClientTests.service("removed"))
        let client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
        let informer = Informer<Service>(client: client)
        let changes = Atomic<Int>(0)
        let run = Task { await informer.run { changes.add(1, ordering: .relaxed) } }
        try await eventually("the informer listed and watches") {
            let watches = await server.openWatches
            return informer.hasSynced && watches == 1
        }
        #expect(informer.objects.map(\.name).sorted() == ["kept", "removed"])

        for round in 0..<5 {
            try await eventually("the informer watches again") { await server.openWatches >= 1 }
            await server.cutWatches()
            // Changes while the watch is down (the informer reconnects within its backoff).
            try await server.apply(KubeClientTests.service("added-\(round)"))
            try await server.apply(KubeClientTests.service("kept", port: Int32(100 + round)))
        }
        try await server.delete(Service.self, name: "removed")
        try await eventually("the informer caught up") {
            informer.objects.map(\.name).sorted() == ["added-0", "added-1", "added-2", "added-3", "added-4", "kept"]
                && informer.objects.first { $0.name == "kept" }?.spec?.ports?.first?.port == 104
        }
        #expect(informer.statistics.lists == 1, "resumed from its version: no relist")
        #expect(informer.statistics.watches >= 6)
        run.cancel()
        await run.value
        await client.shutdown()
        await server.stop()
    }

    /// With `keep`, only the accepted objects are cached: one that stops being accepted is dropped,
    /// and changes to ones never cached wake nobody.
    @Test func onlyKeptObjectsAreCached() async throws {
        let server = try await KubeAPIEmulator.start()
        try await server.apply(KubeClientTests.service("wanted", port: 443))
        try await server.apply(KubeClientTests.service("ignored", port: 80))
        let client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
        let informer = Informer<Service>(client: client, keep: { $0.spec?.ports?.first?.port == 443 })
        let changes = Atomic<Int>(0)
        let run = Task { await informer.run { changes.add(1, ordering: .relaxed) } }
        try await eventually("the informer watches") {
            let watches = await server.openWatches
            return informer.hasSynced && watches == 1
        }
        #expect(informer.objects.map(\.name) == ["wanted"])
        let afterList = changes.load(ordering: .relaxed)
        try await server.apply(KubeClientTests.service("ignored", port: 81))
        try await server.apply(KubeClientTests.service("added", port: 443))
        try await eventually("the new wanted one is cached") { informer.objects.map(\.name).sorted() == ["added", "wanted"] }
        #expect(changes.load(ordering: .relaxed) == afterList + 1, "the ignored one's change woke nobody")
        try await server.apply(KubeClientTests.service("wanted", port: 80))
        try await eventually("the one no longer wanted is dropped") { informer.objects.map(\.name) == ["added"] }
        run.cancel()
        await run.value
        await client.shutdown()
        await server.stop()
    }

    /// 410 Gone: the informer relists, and an object deleted meanwhile disappears from its cache.
    @Test func expiredVersionsRelistAndDropDeletedObjects() async throws {
        let server = try await KubeAPIEmulator.start()
        try await server.apply(KubeClientTests.service("stays"))
        try await server.apply(KubeClientTests.service("goes"))
        let client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
        let informer = Informer<Service>(client: client)
        let run = Task { await informer.run {} }
        try await eventually("the informer watches") {
            let watches = await server.openWatches
            return informer.hasSynced && watches == 1
        }

        // While the informer is cut off, an object goes and history is compacted past its version.
        await server.cutWatches()
        try await server.delete(Service.self, name: "goes")
        await server.compact()
        try await eventually("the informer relisted") { informer.statistics.lists == 2 }
        #expect(informer.objects.map(\.name).sorted() == ["stays"])
        #expect(informer.statistics.expired >= 1)
        run.cancel()
        await run.value
        await client.shutdown()
        await server.stop()
    }
}
