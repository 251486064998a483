import Foundation
import KubeAPIEmulator
import KubeClient
import KubeTypes
import SnapshotProtocol
import Testing
import TestSupport
@testable import ControlPlane

/// A control plane's Kubernetes side, in-process: source, elector and status writer.
private final class Replica: Sendable {
    let client: KubeClient
    let source: KubeSource
    let elector: LeaderElector
    let writer: StatusWriter
    let task: Task<Void, Never>

    init(server: KubeAPIEmulator, identity: String, addresses: [String], releaseOnStop: Bool = true) throws {
        client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
        source = KubeSource(client: client, latest: LatestSnapshot())
        var timings = LeaderElector.Timings()
        timings.leaseDuration = .seconds(2)
        timings.renewDeadline = .milliseconds(1500)
        timings.retryPeriod = .milliseconds(100)
        timings.releaseOnStop = releaseOnStop
        elector = LeaderElector(client: client, namespace: "portico-system", identity: identity, timings: timings)
        writer = StatusWriter(client: client, ingresses: source.ingresses, addresses: .fixed(addresses), elector: elector, instance: identity)
        let (source, elector, writer) = (source, elector, writer)
        source.observe { writer.translated($0) }
        task = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await source.run() }
                group.addTask { await elector.run { _ in writer.poke() } }
                group.addTask { await writer.run() }
            }
        }
    }

    func stop() async {
        task.cancel()
        await task.value
        await client.shutdown()
    }
}

@Suite(.serialized) struct KubeStatusTests {
    static func ingress(_ name: String, className: String = "portico", path: String = "/", pathType: String = "Prefix") -> Ingress {
        Fixture.ingress(name, className: className, rules: [Fixture.rule("\(name).test", Fixture.path(path, pathType, Fixture.backend("web", 80)))])
    }

    static func status(_ server: KubeAPIEmulator, _ name: String) async -> [String] {
        guard let data = await server.json(group: "networking.k8s.io", resource: "ingresses", namespace: "default", name: name),
            let ingress = try? JSONDecoder().decode(Ingress.self, from: data)
        else { return [] }
        return (ingress.status?.loadBalancer?.ingress ?? []).map { $0.ip ?? $0.hostname ?? "?" }
    }

    @Test func onlyTheLeaderWritesStatusAndAnotherTakesOver() async throws {
        let server = try await KubeAPIEmulator.start()
        try await server.apply(Fixture.ingressClass("portico"))
        try await server.apply(Fixture.service("web"))
        try await server.apply(Self.ingress("shop"))
        let first = try Replica(server: server, identity: "replica-a", addresses: ["203.0.113.10"])
        let second = try Replica(server: server, identity: "replica-b", addresses: ["203.0.113.10"])
        try await eventually("one replica leads") { first.elector.isLeader != second.elector.isLeader }
        let (leader, follower) = first.elector.isLeader ? (first, second) : (second, first)
        try await eventually("the leader publishes the address") { await Self.status(server, "shop") == ["203.0.113.10"] }
        // The write lands before the writer has its answer: wait for its count.
        try await eventually("the leader counted its write") { leader.writer.statistics.statusWrites >= 1 }
        #expect(follower.writer.statistics.statusWrites == 0)
        #expect(!follower.elector.isLeader)

        // The leader stops (and releases the Lease): the other takes over and keeps status current.
        await leader.stop()
        try await eventually("the other replica leads") { follower.elector.isLeader }
        try await server.apply(Self.ingress("blog"))
        try await eventually("the new leader writes") { await Self.status(server, "blog") == ["203.0.113.10"] }
        try await eventually("the new leader counted its write") { follower.writer.statistics.statusWrites >= 1 }
        await follower.stop()
        await server.stop()
    }

    /// The leader dies without giving the Lease up: the other replica takes over once the lease
    /// time has passed since it last saw a renewal.
    @Test func aCrashedLeaderIsReplacedWithinTheLeaseTime() async throws {
        let server = try await KubeAPIEmulator.start()
        try await server.apply(Fixture.ingressClass("portico"))
        try await server.apply(Fixture.service("web"))
        try await server.apply(Self.ingress("shop"))
        let first = try Replica(server: server, identity: "replica-a", addresses: ["203.0.113.10"], releaseOnStop: false)
        let second = try Replica(server: server, identity: "replica-b", addresses: ["203.0.113.10"], releaseOnStop: false)
        try await eventually("one replica leads") { first.elector.isLeader != second.elector.isLeader }
        let (leader, follower) = first.elector.isLeader ? (first, second) : (second, first)
        let crashed = ContinuousClock.now
        await leader.stop()
        try await eventually("the other replica leads") { follower.elector.isLeader }
        let takeover = ContinuousClock.now - crashed
        // Lease 2 s, plus up to one retry period (100 ms) and the time to notice.
        print("leader takeover after a crash: \(takeover) (lease 2 s)")
        #expect(takeover < .seconds(5), "took over after \(takeover)")
        #expect(takeover >= .milliseconds(1500), "not before the lease could have expired (\(takeover))")
        await follower.stop()
        await server.stop()
    }

    @Test func statusIsClearedWhenAnIngressStopsBeingOursAndRejectionsBecomeEvents() async throws {
        let server = try await KubeAPIEmulator.start()
        try await server.apply(Fixture.ingressClass("portico"))
        try await server.apply(Fixture.service("web"))
        try await server.apply(Self.ingress("shop"))
        try await server.apply(Self.ingress("theirs", className: "other"))
        let replica = try Replica(server: server, identity: "only", addresses: ["lb.example.net"])
        try await eventually("status is set") { await Self.status(server, "shop") == ["lb.example.net"] }
        #expect(await Self.status(server, "theirs").isEmpty, "an Ingress of another class gets no status")

        // Moved to another controller's class: our address is removed.
        try await server.apply(Self.ingress("shop", className: "other"))
        try await eventually("status is cleared") { await Self.status(server, "shop").isEmpty }

        // A rejected Ingress gets a Warning Event naming the reason, once.
        try await server.apply(Self.ingress("broken", path: "no-leading-slash", pathType: "Exact"))
        try await eventually("an Event is posted") { !(await server.list(group: "", resource: "events")).isEmpty }
        let events = await server.list(group: "", resource: "events").compactMap { try? JSONDecoder().decode(KubeEvent.self, from: $0) }
        let event = try #require(events.first)
        #expect(event.involvedObject.name == "broken")
        #expect(event.involvedObject.kind == "Ingress")
        #expect(event.type == "Warning")
        #expect(event.reason == "InvalidPath")
        #expect(await Self.status(server, "broken").isEmpty)
        // Rebuilds that change nothing post nothing more.
        let sequence = replica.source.loop.sequence
        try await server.apply(Fixture.service("other"))
        _ = try await rebuilt(replica.source.loop, after: sequence)
        #expect(await server.list(group: "", resource: "events").count == 1)
        await replica.stop()
        await server.stop()
    }
}

@Suite struct KubeSourceTests {
    /// proxy-ssl-secret is usually an Opaque Secret with ca.crt: it is watched and read; Secrets
    /// Portico cannot use (a token, a Helm release) are not kept.
    @Test func anOpaqueProxySSLSecretReachesTheTable() async throws {
        let server = try await KubeAPIEmulator.start()
        try await server.apply(Fixture.ingressClass("portico"))
        try await server.apply(Fixture.service("web"))
        let ca = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
        try await server.apply(Secret(metadata: Fixture.meta("pod-ca"), type: "Opaque", data: ["ca.crt": Base64Data(Array(ca.utf8))]))
        try await server.apply(Secret(metadata: Fixture.meta("token"), type: "Opaque", data: ["token": Base64Data(Array("x".utf8))]))
        var ingress = KubeStatusTests.ingress("secure")
        ingress.metadata.annotations = [
            "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS", "nginx.ingress.kubernetes.io/proxy-ssl-verify": "on",
            "nginx.ingress.kubernetes.io/proxy-ssl-secret": "default/pod-ca",
        ]
        try await server.apply(ingress)
        let client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
        let latest = LatestSnapshot()
        let source = KubeSource(client: client, latest: latest)
        let run = Task { await source.run() }
        try await eventually("the CA is in the table") {
            latest.current?.table.virtualHosts.first?.routes.first?.backend.options.upstreamTLS?.trustedCertificatesPEM == ca
        }
        #expect(source.secrets.objects.map(\.name) == ["pod-ca"])
        run.cancel()
        await run.value
        await client.shutdown()
        await server.stop()
    }

    /// Under steady churn the table stays unverified past `maxUnverified`, and still no full
    /// translation runs in the rebuild loop: verifications run beside it, and one is adopted once
    /// the changes pause.
    @Test func verificationNeverRunsInTheRebuildLoop() async throws {
        let server = try await KubeAPIEmulator.start()
        try await server.apply(Fixture.ingressClass("portico"))
        try await server.apply(Fixture.service("web"))
        for index in 0..<20 { try await server.apply(KubeStatusTests.ingress("app-\(index)")) }
        let client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
        let latest = LatestSnapshot()
        var options = KubeSource.Options()
        options.holdOff = .milliseconds(1)
        options.verifyAfter = .milliseconds(5)
        options.maxUnverified = .milliseconds(20)
        let source = KubeSource(client: client, latest: latest, options: options)
        let run = Task { await source.run() }
        try await eventually("the first table is published") { latest.current?.table.virtualHosts.count == 20 }
        for edit in 0..<30 {
            try await server.apply(KubeStatusTests.ingress("app-\(edit % 20)", path: "/edit-\(edit)"))
            try await eventually("edit \(edit) is published") {
                latest.current?.table.virtualHosts.first { $0.hostname == .exact("app-\(edit % 20).test") }?.routes.map(\.match.path) == ["/edit-\(edit)"]
            }
        }
        try await eventually("a verification is adopted") { source.status.verifications > 0 && source.status.rebuilds > source.status.incrementalRebuilds + 1 }
        #expect(source.status.fullRebuilds == 1, "only the first table was translated in full in the loop")
        #expect(source.status.incrementalRebuilds == 30)
        #expect(source.status.incrementalMismatches == 0)
        #expect(source.status.verificationSeconds > 0)
        var sample = ControlPlaneMetrics.Sample()
        sample.verifications = source.status.verifications
        sample.verificationSeconds = source.status.verificationSeconds
        #expect(ControlPlaneMetrics.render(sample).contains("portico_control_plane_verifications_total \(source.status.verifications)\n"))
        run.cancel()
        await run.value
        await client.shutdown()
        await server.stop()
    }

    /// A burst of changes is batched into few rebuilds, and the last table holds all of them; a
    /// rebuild that changes nothing publishes no version.
    @Test func aBurstIsBatchedAndOnlyNewContentIsPublished() async throws {
        let server = try await KubeAPIEmulator.start()
        try await server.apply(Fixture.ingressClass("portico"))
        try await server.apply(Fixture.service("web"))
        let client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
        let latest = LatestSnapshot()
        var options = KubeSource.Options()
        // No verification rebuilds within the test: only changes start rebuilds.
        options.verifyAfter = .seconds(600)
        options.maxUnverified = .seconds(600)
        let source = KubeSource(client: client, latest: latest, options: options)
        let run = Task { await source.run() }
        try await eventually("the first table is published") { latest.current?.version == 1 }
        // Its rebuild counts once it has finished, a little after publishing.
        let before = try await rebuilt(source.loop, after: 0).rebuilds

        // The burst is sent at once; how fast it arrives depends on the machine's load, so the bound
        // is the schedule's own: rebuilds for changes start at least `holdOff` apart.
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<40 { group.addTask { try await server.apply(KubeStatusTests.ingress("burst-\(index)")) } }
            try await group.waitForAll()
        }
        try await eventually("every Ingress of the burst is in the table") {
            latest.current?.table.virtualHosts.count == 40
        }
        let elapsed = ContinuousClock.now - started
        let rebuilds = source.status.rebuilds - before
        #expect(rebuilds <= 1 + Int(elapsed / options.holdOff), "40 changes took \(rebuilds) rebuilds in \(elapsed)")
        #expect(rebuilds < 40, "40 changes took \(rebuilds) rebuilds in \(elapsed)")

        // A change that does not alter the table (an unrelated label) rebuilds but publishes nothing.
        let version = latest.current!.version
        var service = Fixture.service("web")
        service.metadata.labels = ["team": "a"]
        let rebuildsNow = source.loop.sequence
        try await server.apply(service)
        _ = try await rebuilt(source.loop, after: rebuildsNow)
        #expect(latest.current?.version == version)
        run.cancel()
        await run.value
        await client.shutdown()
        await server.stop()
    }

    /// An Ingress edit is translated for its own hosts only, the full translation that follows finds
    /// the same table, new endpoints re-resolve only their cluster, and a change reaching other hosts
    /// (a catch-all default backend) goes the full way.
    @Test func ingressEditsAreTranslatedIncrementallyAndVerified() async throws {
        let server = try await KubeAPIEmulator.start()
        try await server.apply(Fixture.ingressClass("portico"))
        try await server.apply(Fixture.service("web"))
        for index in 0..<30 { try await server.apply(KubeStatusTests.ingress("app-\(index)")) }
        let client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
        let latest = LatestSnapshot()
        var options = KubeSource.Options()
        options.verifyAfter = .milliseconds(100)
        options.maxUnverified = .seconds(1)
        let source = KubeSource(client: client, latest: latest, options: options)
        let run = Task { await source.run() }
        try await eventually("the first table is published") { latest.current?.table.virtualHosts.count == 30 }

        try await server.apply(KubeStatusTests.ingress("app-7", path: "/edited"))
        try await eventually("the edit is published") {
            latest.current?.table.virtualHosts.first { $0.hostname == .exact("app-7.test") }?.routes.map(\.match.path) == ["/edited"]
        }
        #expect(source.status.incrementalRebuilds == 1)
        let versionAfterEdit = latest.current!.version
        let verificationsBefore = source.status.verifications
        try await eventually("a full translation follows") { source.status.verifications > verificationsBefore }
        #expect(source.status.incrementalMismatches == 0)
        #expect(latest.current?.version == versionAfterEdit, "the full translation found the same table")

        // New endpoints: only the Service's cluster is resolved again.
        try await server.apply(Fixture.slice("web-a", service: "web", endpoints: [("10.1.1.1", true), ("10.1.1.2", false)]))
        try await eventually("the endpoints are published") {
            latest.current?.table.cluster(named: "default/web:80")?.endpoints.map(\.address) == ["10.1.1.1"]
        }
        #expect(source.status.incrementalRebuilds == 2)

        var catchAll = KubeStatusTests.ingress("catch-all")
        catchAll.spec?.defaultBackend = Fixture.backend("web", 80)
        try await server.apply(catchAll)
        try await eventually("the catch-all is published") { latest.current?.table.virtualHosts.contains { $0.hostname == .any } == true }
        #expect(source.status.incrementalRebuilds == 2, "a default backend is translated in full")

        // What /metrics shows of it.
        var sample = ControlPlaneMetrics.Sample()
        sample.incrementalRebuilds = source.status.incrementalRebuilds
        sample.incrementalMismatches = source.status.incrementalMismatches
        let metrics = ControlPlaneMetrics.render(sample)
        #expect(metrics.contains("portico_control_plane_incremental_rebuilds_total 2\n"))
        #expect(metrics.contains("portico_control_plane_incremental_mismatches_total 0\n"))
        run.cancel()
        await run.value
        await client.shutdown()
        await server.stop()
    }
}
