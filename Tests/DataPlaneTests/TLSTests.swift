import Foundation
import NIOHTTP1
import RouteModel
import Testing
import TestSupport
@testable import DataPlane

/// A table routing every host of `hosts` to `backend`, each with the given certificate (nil: the
/// default one).
func tlsTable(
    backend: Int, hosts: [(HostPattern, String?)], certificates: [TLSCertificate], defaultCertificate: String? = nil,
    timeouts: ClusterTimeouts = .standard
) -> RouteTable {
    let cluster = Cluster(
        namespace: "default", service: "app", servicePort: .number(80), endpoints: [Endpoint(address: "127.0.0.1", port: backend)],
        timeouts: timeouts)
    let source = RouteSource(namespace: "default", ingress: "tls")
    let virtualHosts = hosts.map { pattern, certificate in
        VirtualHost(
            hostname: pattern, routes: [Route(match: PathMatch(kind: .prefix, path: "/"), backend: Backend(cluster: cluster.name, source: source))],
            tls: TLSBinding(certificate: certificate))
    }
    return RouteTable(virtualHosts: virtualHosts, clusters: [cluster], certificates: certificates, defaultCertificate: defaultCertificate)
}

extension TLSCertificate {
    /// A routable certificate made from a test certificate.
    init(name: String, _ test: TestCertificate) {
        self.init(
            name: name, certificateChainPEM: test.certificatePEM, privateKeyPEM: test.privateKeyPEM,
            metadata: CertificateMetadata(subject: "CN=\(test.commonName)", issuer: "", dnsNames: [], serialNumber: "", notBefore: 0, notAfter: 0))
    }
}

@Suite(.serialized, .timeLimit(.minutes(1))) struct TLSTests {
    @Test func sniPicksTheHostsCertificateExactThenWildcardElseTheDefault() async throws {
        let a = try await TestBackend.start(name: "a")
        let certificateA = try TestCertificate(commonName: "a", dnsNames: ["a.test"])
        let certificateW = try TestCertificate(commonName: "w", dnsNames: ["*.w.test"])
        let certificateX = try TestCertificate(commonName: "x", dnsNames: ["x.w.test"])
        let table = tlsTable(
            backend: a.port,
            hosts: [(.exact("a.test"), "default/a"), (.wildcard(suffix: "w.test"), "default/w"), (.exact("x.w.test"), "default/x"), (.exact("b.test"), nil)],
            certificates: [TLSCertificate(name: "default/a", certificateA), TLSCertificate(name: "default/w", certificateW), TLSCertificate(name: "default/x", certificateX)])
        let proxy = try await LiveProxy.start(table) { $0.httpsListenPort = 0 }
        let port = proxy.worker.httpsPort
        #expect(try await TLSTestClient.handshake(port: port, serverName: "a.test").certificate.dnsNames == ["a.test"])
        #expect(try await TLSTestClient.handshake(port: port, serverName: "A.Test").certificate.dnsNames == ["a.test"], "SNI is case-insensitive")
        #expect(try await TLSTestClient.handshake(port: port, serverName: "y.w.test").certificate.dnsNames == ["*.w.test"])
        #expect(try await TLSTestClient.handshake(port: port, serverName: "x.w.test").certificate.dnsNames == ["x.w.test"], "exact beats wildcard")
        for name in ["b.test", "unknown.test", "deep.y.w.test", nil] {
            let served = try await TLSTestClient.handshake(port: port, serverName: name).certificate
            #expect(served.commonName.contains(DefaultCertificate.generatedCommonName), "\(name ?? "no SNI") gets the default certificate")
        }
        try await TestHTTPConnection.with(port: port, tls: "a.test") { client in
            let response = try await client.request(.GET, "/", host: "a.test")
            #expect(response.status == .ok)
            #expect(response.echoed["x-forwarded-proto"] == "https")
            #expect(response.echoed["x-forwarded-port"] == String(port))
        }
        await proxy.stop()
        await a.stop()
    }

    @Test func theTablesDefaultCertificateReplacesTheWorkersOwn() async throws {
        let a = try await TestBackend.start(name: "a")
        let fallback = try TestCertificate(commonName: "table default", dnsNames: ["fallback.test"])
        let table = tlsTable(
            backend: a.port, hosts: [(.exact("a.test"), nil)], certificates: [TLSCertificate(name: "ops/fallback", fallback)],
            defaultCertificate: "ops/fallback")
        let proxy = try await LiveProxy.start(table) { $0.httpsListenPort = 0 }
        for name in ["a.test", "other.test", nil] {
            #expect(try await TLSTestClient.handshake(port: proxy.worker.httpsPort, serverName: name).certificate.dnsNames == ["fallback.test"])
        }
        await proxy.stop()
        await a.stop()
    }

    /// A snapshot with a new certificate takes effect for the next handshake; a connection already
    /// open keeps its session and keeps working.
    @Test func aRotatedCertificateServesNewHandshakesWhileOpenConnectionsContinue() async throws {
        let a = try await TestBackend.start(name: "a")
        let first = try TestCertificate(commonName: "first", dnsNames: ["a.test"])
        let second = try TestCertificate(commonName: "second", dnsNames: ["a.test"])
        let proxy = try await LiveProxy.start(
            tlsTable(backend: a.port, hosts: [(.exact("a.test"), "default/a")], certificates: [TLSCertificate(name: "default/a", first)])
        ) { $0.httpsListenPort = 0 }
        let port = proxy.worker.httpsPort
        try await TestHTTPConnection.with(port: port, tls: "a.test") { client in
            #expect(try await client.request(.GET, "/", host: "a.test").status == .ok)
            #expect(try await client.peerCertificate()?.commonName.contains("first") == true)
            try await proxy.publish(
                tlsTable(backend: a.port, hosts: [(.exact("a.test"), "default/a")], certificates: [TLSCertificate(name: "default/a", second)]))
            #expect(try await TLSTestClient.handshake(port: port, serverName: "a.test").certificate.commonName.contains("second"))
            #expect(try await client.request(.GET, "/again", host: "a.test").status == .ok, "the open connection continues")
        }
        #expect(proxy.worker.acceptedConnections == 2)
        await proxy.stop()
        await a.stop()
    }

    @Test func alpnSelectsHTTP1() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(tlsTable(backend: a.port, hosts: [(.exact("a.test"), nil)], certificates: [])) {
            $0.httpsListenPort = 0
        }
        #expect(try await TLSTestClient.handshake(port: proxy.worker.httpsPort, serverName: "a.test", alpn: ["http/1.1"]).alpn == "http/1.1")
        await proxy.stop()
        await a.stop()
    }

    /// A client that kept its session resumes it instead of a full handshake, over TLS 1.2
    /// (session ticket) and TLS 1.3 (NewSessionTicket, PSK). `openssl s_client` is the client:
    /// swift-nio-ssl's client keeps no sessions. scripts/test.sh installs it where it is missing.
    @Test(arguments: ["-tls1_2", "-tls1_3"])
    func aSessionIsResumed(version: String) async throws {
        let a = try await TestBackend.start(name: "a")
        let certificate = try TestCertificate(commonName: "a", dnsNames: ["a.test"])
        let table = tlsTable(backend: a.port, hosts: [(.exact("a.test"), "default/a")], certificates: [TLSCertificate(name: "default/a", certificate)])
        let proxy = try await LiveProxy.start(table) { $0.httpsListenPort = 0 }
        let session = FileManager.default.temporaryDirectory.appendingPathComponent("portico-session-\(UUID().uuidString.prefix(8)).pem").path
        defer { try? FileManager.default.removeItem(atPath: session) }
        let connect = ["s_client", version, "-connect", "127.0.0.1:\(proxy.worker.httpsPort)", "-servername", "a.test", "-ign_eof"]
        let request = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        let first = try await Self.openssl(connect + ["-sess_out", session], input: request)
        #expect(first.contains("\nNew, TLSv1."), "first connection: a full handshake")
        #expect(first.contains("backend=a"), "and the request was answered")
        let second = try await Self.openssl(connect + ["-sess_in", session], input: request)
        #expect(second.contains("\nReused, TLSv1."), "second connection resumed: \(second.prefix(600))")
        #expect(second.contains("backend=a"))
        await proxy.stop()
        await a.stop()
    }

    /// Runs the openssl command line with `input` on stdin (then closed), for at most 20 s.
    static func openssl(_ arguments: [String], input: String) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = ["timeout", "20", "openssl"] + arguments
                let stdin = Pipe()
                let stdout = Pipe()
                process.standardInput = stdin
                process.standardOutput = stdout
                process.standardError = FileHandle.nullDevice
                do {
                    try process.run()
                } catch {
                    continuation.resume(throwing: error)
                    return
                }
                stdin.fileHandleForWriting.write(Data(input.utf8))
                try? stdin.fileHandleForWriting.close()
                let output = stdout.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                continuation.resume(returning: String(decoding: output, as: UTF8.self))
            }
        }
    }

    @Test func aCertificateThatDoesNotLoadLeavesItsHostsOnTheDefault() throws {
        let good = try TestCertificate(commonName: "good", dnsNames: ["good.test"])
        let broken = TLSCertificate(
            name: "default/broken", certificateChainPEM: "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
            privateKeyPEM: good.privateKeyPEM, metadata: CertificateMetadata(subject: "", issuer: "", dnsNames: [], serialNumber: "", notBefore: 0, notAfter: 0))
        let table = tlsTable(
            backend: 1, hosts: [(.exact("good.test"), "default/good"), (.exact("broken.test"), "default/broken")],
            certificates: [TLSCertificate(name: "default/good", good), broken])
        let (set, problems) = CertificateSet.build(from: table)
        #expect(problems.count == 1)
        #expect(problems.first?.contains("default/broken") == true)
        #expect(set.lookup(serverName: "broken.test") == nil, "nil: the worker's default")
        #expect(set.lookup(serverName: "good.test")?.source.name == "default/good")
        // Unchanged certificates are not parsed again for the next table.
        let (next, _) = CertificateSet.build(from: table, previous: set)
        #expect(next.lookup(serverName: "good.test")?.chain.first === set.lookup(serverName: "good.test")?.chain.first)
    }

    @Test func aDeltaUpdatesTheSetItWasBuiltForAndOnlyThatOne() throws {
        let a = try TestCertificate(commonName: "a", dnsNames: ["a.test"])
        let b = try TestCertificate(commonName: "b", dnsNames: ["b.test"])
        let wild = try TestCertificate(commonName: "wild", dnsNames: ["*.w.test"])
        let table = tlsTable(
            backend: 1, hosts: [(.exact("a.test"), "default/a"), (.exact("gone.test"), "default/a"), (.wildcard(suffix: "w.test"), "default/wild")],
            certificates: [TLSCertificate(name: "default/a", a), TLSCertificate(name: "default/wild", wild)])
        let (set, _) = CertificateSet.build(from: table, version: 4)
        let route = table.virtualHosts[0].routes
        // A new host with a new certificate, one host gone, the wildcard's certificate removed.
        let changes = RouteTableDelta(
            upsertedHosts: [VirtualHost(hostname: .exact("b.test"), routes: route, tls: TLSBinding(certificate: "default/b"))],
            removedHosts: [.exact("gone.test"), .wildcard(suffix: "w.test")], upsertedCertificates: [TLSCertificate(name: "default/b", b)],
            removedCertificates: ["default/wild"], defaultCertificate: "default/b")
        let newer = try table.applying(changes)
        let (next, problems) = CertificateSet.build(from: newer, version: 5, delta: (4, changes), previous: set)
        #expect(problems.isEmpty)
        #expect(next.lookup(serverName: "B.test.")?.source.name == "default/b")
        #expect(next.lookup(serverName: "a.test")?.chain.first === set.lookup(serverName: "a.test")?.chain.first, "kept, not parsed again")
        #expect(next.lookup(serverName: "gone.test")?.source.name == "default/b", "removed: the table's default now")
        #expect(next.lookup(serverName: "x.w.test")?.source.name == "default/b")
        #expect(next.lookup(serverName: nil)?.source.name == "default/b")
        // The same lookups as a set built from the whole table.
        let (whole, _) = CertificateSet.build(from: newer)
        for name in ["a.test", "b.test", "gone.test", "x.w.test", "other.test"] {
            #expect(next.lookup(serverName: name)?.source.name == whole.lookup(serverName: name)?.source.name)
        }
        // A delta from a version this set was not built for is not trusted: the whole table is read.
        let stale = RouteTableDelta(defaultCertificate: "default/b")
        let (rebuilt, _) = CertificateSet.build(from: newer, version: 6, delta: (99, stale), previous: set)
        #expect(rebuilt.lookup(serverName: "b.test")?.source.name == "default/b")
        #expect(rebuilt.lookup(serverName: "gone.test")?.source.name == "default/b")
    }

    @Test func httpsResponsesOfAnHSTSHostCarryStrictTransportSecurity() async throws {
        let a = try await TestBackend.start(name: "a")
        var table = tlsTable(backend: a.port, hosts: [(.exact("a.test"), nil), (.exact("plain.test"), nil)], certificates: [])
        var hosts = table.virtualHosts
        hosts[0].tls?.hsts = HSTSPolicy(maxAgeSeconds: 600, includeSubdomains: true)
        table = RouteTable(virtualHosts: hosts, clusters: table.clusters, certificates: [])
        let proxy = try await LiveProxy.start(table) { $0.httpsListenPort = 0 }
        try await TestHTTPConnection.with(port: proxy.worker.httpsPort, tls: "a.test") { client in
            let response = try await client.request(.GET, "/", host: "a.test")
            #expect(response.headers["strict-transport-security"] == ["max-age=600; includeSubDomains"])
            let other = try await client.request(.GET, "/", host: "plain.test")
            #expect(other.headers["strict-transport-security"].isEmpty)
        }
        try await TestHTTPConnection.with(port: proxy.port) { client in
            // Never over plain HTTP (RFC 6797 §7.2).
            let response = try await client.request(.GET, "/", host: "a.test")
            #expect(response.headers["strict-transport-security"].isEmpty)
        }
        await proxy.stop()
        await a.stop()
    }
}
