import Foundation
import KubeAPIEmulator
import KubeClient
import KubeTypes
import NIOHTTP1
import Testing
import TestSupport

/// `portico run --kubeconfig` against the API server emulator: objects created, changed and
/// deleted through the API reach a live worker's routes.
@Suite(.serialized) struct KubernetesProcessTests {
    final class Cluster: @unchecked Sendable {
        let server: KubeAPIEmulator
        let client: KubeClient
        let work: String
        let kubeconfig: String

        init() async throws {
            server = try await KubeAPIEmulator.start()
            client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
            work = FileManager.default.temporaryDirectory.appendingPathComponent("portico-kube-e2e-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            kubeconfig = work + "/kubeconfig"
            try server.kubeconfig().write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        }

        func tearDown() async {
            await client.shutdown()
            await server.stop()
            try? FileManager.default.removeItem(atPath: work)
        }
    }

    static func app(_ host: String, service: String, path: String = "/", tlsSecret: String? = nil) -> Ingress {
        Fixture.ingress(
            "app", annotations: ["portico.io/ssl-redirect": "false"],
            tls: tlsSecret.map { [IngressTLS(hosts: [host], secretName: $0)] },
            rules: [Fixture.rule(host, Fixture.path(path, "Prefix", Fixture.backend(service, 80)))])
    }

    static func service(_ name: String, backend: TestBackend) -> (Service, EndpointSlice) {
        (
            Fixture.service(name, ports: [ServicePort(name: "http", port: 80, targetPort: .int(Int32(backend.port)))]),
            Fixture.slice("\(name)-1", service: name, port: Int32(backend.port), endpoints: [("127.0.0.1", true)])
        )
    }

    /// How ingress controller test harnesses start a controller: `portico run --kubeconfig …
    /// --ingress-class … --controller-name … --publish-address …`. The class and controller named
    /// are the ones served, Ingresses of other classes are not, and accepted Ingresses get the
    /// published address in their status.
    @Test(.timeLimit(.minutes(5)))
    func aHarnessStartsPorticoRunWithItsOwnClassAndStatusAddress() async throws {
        let cluster = try await Cluster()
        let backend = try await TestBackend.start(name: "harness")
        let httpPort = try freePort()
        let run = try ChildProcess(
            Binaries.portico,
            [
                "run", "--kubeconfig", cluster.kubeconfig, "--ingress-class", "harness", "--controller-name", "example.com/harness-controller",
                "--publish-address", "127.0.0.9", "--watch-namespace", "default", "--http-port", String(httpPort), "--https-port",
                String(try freePort()), "--workers", "1",
            ])
        func status(_ host: String) async -> HTTPResponseStatus? {
            (try? await TestHTTPConnection.with(port: httpPort) { try await $0.request(.GET, "/", host: host) })?.status
        }
        do {
            try await eventually("portico run is up") { run.text.contains("Portico is running") }
            _ = try await cluster.client.create(Fixture.ingressClass("harness", controller: "example.com/harness-controller"))
            _ = try await cluster.client.create(Fixture.ingressClass("portico"))
            let (service, slice) = Self.service("web", backend: backend)
            _ = try await cluster.client.create(service)
            _ = try await cluster.client.create(slice)
            var ours = Self.app("ours.test", service: "web")
            ours.spec?.ingressClassName = "harness"
            _ = try await cluster.client.create(ours)
            var theirs = Self.app("theirs.test", service: "web").renamed("theirs")
            theirs.spec?.ingressClassName = "portico"
            _ = try await cluster.client.create(theirs)
            try await eventually("the harness class's Ingress is served") { await status("ours.test") == .ok }
            #expect(await status("theirs.test") == .notFound, "an Ingress of another class is not Portico's here")
            try await eventually("its status names the published address") {
                let ingress = try? await cluster.client.get(Ingress.self, namespace: "default", name: "app")
                return ingress?.status?.loadBalancer?.ingress?.compactMap(\.ip) == ["127.0.0.9"]
            }
            let other = try await cluster.client.get(Ingress.self, namespace: "default", name: "theirs")
            #expect(other.status?.loadBalancer?.ingress?.isEmpty ?? true)
        } catch {
            Issue.record("output:\n\(run.text)")
            throw error
        }
        run.signal(SIGINT)
        #expect(try await run.waitForExit(timeout: .seconds(60)) == 0)
        await backend.stop()
        await cluster.tearDown()
    }

    @Test(.timeLimit(.minutes(5)))
    func objectsWrittenThroughTheAPIReachTheWorkers() async throws {
        let cluster = try await Cluster()
        let first = try await TestBackend.start(name: "first")
        let second = try await TestBackend.start(name: "second")
        let httpPort = try freePort()
        let httpsPort = try freePort()
        let run = try ChildProcess(
            Binaries.portico,
            ["run", "--kubeconfig", cluster.kubeconfig, "--http-port", String(httpPort), "--https-port", String(httpsPort), "--workers", "1"])
        func get(_ path: String = "/") async -> TestResponse? {
            try? await TestHTTPConnection.with(port: httpPort) { try await $0.request(.GET, path, host: "app.test") }
        }
        do {
            try await eventually("portico run is up") { run.text.contains("Portico is running") }
            #expect(await get()?.status == .notFound)

            // Create, through the API as kubectl would.
            _ = try await cluster.client.create(Fixture.ingressClass("portico", isDefault: true))
            let (service, slice) = Self.service("web", backend: first)
            _ = try await cluster.client.create(service)
            _ = try await cluster.client.create(slice)
            _ = try await cluster.client.create(Self.app("app.test", service: "web"))
            try await eventually("the Ingress routes to the first backend") { await get()?.echoed["backend"] == "first" }

            // Update: the EndpointSlice moves to the second backend.
            var moved = try await cluster.client.get(EndpointSlice.self, namespace: "default", name: "web-1")
            moved.ports = [EndpointSlicePort(name: "http", port: Int32(second.port), protocol: "TCP")]
            _ = try await cluster.client.replace(moved)
            var movedService = try await cluster.client.get(Service.self, namespace: "default", name: "web")
            movedService.spec?.ports = [ServicePort(name: "http", port: 80, targetPort: .int(Int32(second.port)))]
            _ = try await cluster.client.replace(movedService)
            try await eventually("the update reaches the worker") { await get()?.echoed["backend"] == "second" }

            // A TLS Secret and the Ingress naming it: HTTPS with SNI gets its certificate.
            let certificate = try TestCertificate(commonName: "app.test", dnsNames: ["app.test"])
            _ = try await cluster.client.create(
                Fixture.tlsSecret("app-tls", certificatePEM: certificate.certificatePEM, keyPEM: certificate.privateKeyPEM))
            var ingress = try await cluster.client.get(Ingress.self, namespace: "default", name: "app")
            ingress.spec = Self.app("app.test", service: "web", tlsSecret: "app-tls").spec
            _ = try await cluster.client.replace(ingress)
            try await eventually("the Secret's certificate is served") {
                (try? await TLSTestClient.handshake(port: httpsPort, serverName: "app.test"))?.certificate.commonName.contains("app.test") == true
            }

            // Delete: the route goes.
            try await cluster.client.delete(Ingress.self, namespace: "default", name: "app")
            try await eventually("the deletion reaches the worker") { await get()?.status == .notFound }
        } catch {
            Issue.record("output:\n\(run.text)")
            throw error
        }
        run.signal(SIGTERM)
        #expect(try await run.waitForExit(timeout: .seconds(60)) == 0)
        await first.stop()
        await second.stop()
        await cluster.tearDown()
    }

    /// Watches cut mid-way lose no update; a forced 410 relists, and an object deleted while the
    /// control plane could not watch disappears from the routes.
    @Test(.timeLimit(.minutes(5)))
    func cutWatchesAndExpiredVersionsLoseNothing() async throws {
        let cluster = try await Cluster()
        let backend = try await TestBackend.start(name: "a")
        try await cluster.server.apply(Fixture.ingressClass("portico", isDefault: true))
        let (service, slice) = Self.service("web", backend: backend)
        try await cluster.server.apply(service)
        try await cluster.server.apply(slice)
        try await cluster.server.apply(Self.app("app.test", service: "web"))
        let httpPort = try freePort()
        let run = try ChildProcess(
            Binaries.portico,
            ["run", "--kubeconfig", cluster.kubeconfig, "--http-port", String(httpPort), "--https-port", String(try freePort()), "--workers", "1"])
        func status(_ host: String) async -> HTTPResponseStatus? {
            (try? await TestHTTPConnection.with(port: httpPort) { try await $0.request(.GET, "/", host: host) })?.status
        }
        do {
            try await eventually("the route is served") { await status("app.test") == .ok }
            // Five Ingresses, each created right after every watch was cut.
            for index in 0..<5 {
                try await eventually("the control plane watches again") { await cluster.server.openWatches >= 5 }
                await cluster.server.cutWatches()
                try await cluster.server.apply(Self.app("host\(index).test", service: "web").renamed("app-\(index)"))
            }
            for index in 0..<5 {
                try await eventually("host\(index).test is served") { await status("host\(index).test") == .ok }
            }

            // Cut, delete, compact: resuming gets 410, and the relist drops the deleted Ingress.
            await cluster.server.cutWatches()
            try await cluster.server.delete(Ingress.self, name: "app")
            await cluster.server.compact()
            try await eventually("the deleted Ingress's route is gone after the relist") { await status("app.test") == .notFound }
            #expect(await status("host0.test") == .ok)
        } catch {
            Issue.record("output:\n\(run.text)")
            throw error
        }
        run.signal(SIGTERM)
        #expect(try await run.waitForExit(timeout: .seconds(60)) == 0)
        await backend.stop()
        await cluster.tearDown()
    }

    /// A token the server refuses: the control plane says so, naming the request and the status,
    /// and keeps retrying with a growing delay instead of failing; it still stops cleanly.
    @Test(.timeLimit(.minutes(5)))
    func aWrongTokenIsAClearErrorAndRetried() async throws {
        let cluster = try await Cluster()
        try cluster.server.kubeconfig().replacingOccurrences(of: cluster.server.token!, with: "wrong-token")
            .write(toFile: cluster.kubeconfig, atomically: true, encoding: .utf8)
        let controlPlane = try ChildProcess(
            Binaries.portico,
            ["control-plane", "--kubeconfig", cluster.kubeconfig, "--listen", "unix:\(cluster.work)/cp.sock", "--admin-port", "0", "--admin-bind", "127.0.0.1"])
        try await eventually("the control plane retried ingresses several times") {
            controlPlane.text.components(separatedBy: "GET /apis/networking.k8s.io/v1/ingresses: 401 Unauthorized").count > 4
        }
        #expect(controlPlane.process.isRunning)
        let delays = controlPlane.text.matches(of: /delay=([0-9.]+) seconds error=GET \/apis\/networking.k8s.io\/v1\/ingresses/).compactMap { Double($0.1) }
        #expect(delays.count >= 4 && delays[3] > delays[0], "the retry delay grows: \(delays)")
        controlPlane.signal(SIGTERM)
        #expect(try await controlPlane.waitForExit() == 0, "\(controlPlane.text)")
        await cluster.tearDown()
    }

    /// The emulator is faithful enough for the real kubectl to create and list objects in it.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl") || FileManager.default.isExecutableFile(atPath: "/usr/local/bin/kubectl")))
    func kubectlCreatesAndListsInTheEmulator() async throws {
        let cluster = try await Cluster()
        let manifest = cluster.work + "/ingress.yaml"
        try """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: default}
        spec:
          ports: [{name: http, port: 80, targetPort: 8080}]
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: web, namespace: default}
        spec:
          rules:
          - host: web.test
            http:
              paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
        """.write(toFile: manifest, atomically: true, encoding: .utf8)
        let kubectl = FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl") ? "/usr/bin/kubectl" : "/usr/local/bin/kubectl"
        defer { Task { await cluster.tearDown() } }
        let create = try ChildProcess(kubectl, ["--kubeconfig", cluster.kubeconfig, "create", "-f", manifest, "--validate=false"])
        #expect(try await create.waitForExit() == 0, "\(create.text)")
        #expect(create.text.contains("ingress.networking.k8s.io/web created"))
        let get = try ChildProcess(kubectl, ["--kubeconfig", cluster.kubeconfig, "get", "ingresses,services", "-A"])
        #expect(try await get.waitForExit() == 0, "\(get.text)")
        #expect(get.text.contains("ingress.networking.k8s.io/web"))
        #expect(get.text.contains("service/web"))
        let host = try ChildProcess(kubectl, ["--kubeconfig", cluster.kubeconfig, "get", "ingress", "web", "-o", "jsonpath={.spec.rules[0].host}"])
        #expect(try await host.waitForExit() == 0, "\(host.text)")
        #expect(host.text == "web.test")
        let stored = try? await cluster.client.get(Ingress.self, namespace: "default", name: "web")
        #expect(stored?.spec?.rules?.first?.host == "web.test")
    }
}

extension Ingress {
    func renamed(_ name: String) -> Ingress {
        var copy = self
        copy.metadata.name = name
        return copy
    }
}
