import Foundation
import KubeAPIEmulator
import KubeClient
import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import ControlPlane
@testable import SnapshotProtocol

@Suite(.serialized) struct MTLSTests {
    /// The bootstrap makes the CA and the agents' certificate once; an agent holding that
    /// certificate gets snapshots over TCP, and a certificate from another CA, or none, gets nothing.
    @Test func bootstrappedCertificatesAloneConnect() async throws {
        let server = try await KubeAPIEmulator.start()
        let client = try KubeClient(config: KubeConfig(server: server.url, certificateAuthorityPEM: server.certificateAuthorityPEM, credentials: .token(server.token!)))
        let first = try await MTLSBootstrap.run(client: client, namespace: "portico-system")
        let agentSecret = try await client.get(Secret.self, namespace: "portico-system", name: MTLSBootstrap.dataPlaneSecret)
        let second = try await MTLSBootstrap.run(client: client, namespace: "portico-system")
        #expect(first.certificateAuthorityPEM == second.certificateAuthorityPEM, "a second replica reuses the CA")
        #expect(first.certificateChainPEM != second.certificateChainPEM, "each replica issues its own serving certificate")
        let again = try await client.get(Secret.self, namespace: "portico-system", name: MTLSBootstrap.dataPlaneSecret)
        #expect(again.metadata.resourceVersion == agentSecret.metadata.resourceVersion, "a valid agent certificate is kept")
        #expect(agentSecret.type == Secret.tlsType)

        // A control plane reachable as 127.0.0.1, with a serving certificate from the same CA.
        let caSecret = try await client.get(Secret.self, namespace: "portico-system", name: MTLSBootstrap.caSecret)
        let authority = try CertificateAuthority(
            certificatePEM: String(decoding: caSecret.value("ca.crt")!, as: UTF8.self), keyPEM: String(decoding: caSecret.value("ca.key")!, as: UTF8.self))
        let serving = try authority.issue(commonName: "localhost", dnsNames: ["localhost"], ipAddresses: [[127, 0, 0, 1]], server: true, client: false)
        let latest = LatestSnapshot()
        latest.publish(version: 1, table: RandomRouteTable.make(seed: 5))
        let snapshots = SnapshotServer(
            service: SnapshotService(latest: latest), addresses: [.tcp(host: "127.0.0.1", port: 0)],
            tls: SnapshotTLS(certificateChainPEM: serving.certificatePEM, privateKeyPEM: serving.keyPEM, certificateAuthorityPEM: authority.certificatePEM))
        let bound = BoundAddresses()
        let serverTask = Task { try await snapshots.run { bound.set($0) } }
        try await eventually("the snapshot server listens") { bound.get != nil }
        let address = try #require(bound.get?.first)

        func subscriber(_ tls: SnapshotTLS?, _ name: String) -> (SnapshotSubscriber, Task<Void, Never>) {
            let subscriber = SnapshotSubscriber(
                address: address, identity: SubscriberIdentity(node: name, kind: .nodeAgent),
                backoff: Backoff(initial: .milliseconds(20), maximum: .milliseconds(100)), tls: tls)
            return (subscriber, Task { await subscriber.run { _ in } })
        }
        let agentTLS = SnapshotTLS(
            certificateChainPEM: String(decoding: agentSecret.value(Secret.certificateKey)!, as: UTF8.self),
            privateKeyPEM: String(decoding: agentSecret.value(Secret.privateKeyKey)!, as: UTF8.self),
            certificateAuthorityPEM: String(decoding: agentSecret.value("ca.crt")!, as: UTF8.self))
        let (agent, agentTask) = subscriber(agentTLS, "agent")
        try await eventually("the agent with the bootstrapped certificate gets version 1") { agent.currentStatus.appliedVersion == 1 }

        let rogueAuthority = try CertificateAuthority.generate(commonName: "someone else")
        let rogueLeaf = try rogueAuthority.issue(commonName: "portico-data-plane", server: false, client: true)
        // Trusts the real CA (so the server checks the client), but presents a certificate of another CA.
        let (rogue, rogueTask) = subscriber(
            SnapshotTLS(certificateChainPEM: rogueLeaf.certificatePEM, privateKeyPEM: rogueLeaf.keyPEM, certificateAuthorityPEM: authority.certificatePEM), "rogue")
        let (plain, plainTask) = subscriber(nil, "plain")
        try await eventually("both failed to connect a few times") { rogue.currentStatus.lastError != nil && plain.currentStatus.lastError != nil }
        #expect(rogue.currentStatus.appliedVersion == nil)
        #expect(plain.currentStatus.appliedVersion == nil)
        #expect(snapshots.service.registry.all.map(\.identity.node) == ["agent"])

        for task in [agentTask, rogueTask, plainTask] {
            task.cancel()
            await task.value
        }
        // The refused clients' last connection attempts may still be in flight: the server stops
        // accepting before it closes (see ServerShutdownTests).
        serverTask.cancel()
        _ = try? await serverTask.value
        await client.shutdown()
        await server.stop()
    }
}

private final class BoundAddresses: Sendable {
    private let value = Mutex<[ServerAddress]?>(nil)
    func set(_ addresses: [ServerAddress]) { value.withLock { $0 = addresses } }
    var get: [ServerAddress]? { value.withLock { $0 } }
}

import Synchronization
