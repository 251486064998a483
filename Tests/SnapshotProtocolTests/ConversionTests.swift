import RouteModel
import SwiftProtobuf
import Testing
import TestSupport
@testable import SnapshotProtocol

@Suite struct ConversionTests {
    @Test(arguments: 0..<50)
    func randomTablesRoundTripThroughTheWire(_ seed: Int) throws {
        let table = RandomRouteTable.make(seed: UInt64(seed), hosts: 5 + seed)
        let snapshot = Portico_V1_Snapshot(version: UInt64(seed + 1), table: table)
        let bytes: [UInt8] = try snapshot.serializedBytes()
        let decoded = try Portico_V1_Snapshot(serializedBytes: bytes).decodeTable()
        #expect(decoded == table)
        #expect(decoded.contentHash == table.contentHash)
        #expect(decoded.defaultCertificate == table.defaultCertificate)
    }

    @Test func dumpFormCarriesNoPrivateKeys() throws {
        let table = (0..<20).lazy.map { RandomRouteTable.make(seed: UInt64($0)) }.first { !$0.certificates.isEmpty }!
        let proto = table.proto(includePrivateKeys: false)
        #expect(!proto.certificates.isEmpty)
        #expect(proto.certificates.allSatisfy { $0.privateKeyPem.isEmpty && !$0.certificateChainPem.isEmpty })
        let text = try proto.jsonString()
        #expect(!text.contains("PRIVATE KEY"))
    }

    @Test func aHashMismatchIsRefused() throws {
        var snapshot = Portico_V1_Snapshot(version: 1, table: RandomRouteTable.make(seed: 3))
        snapshot.contentHash &+= 1
        #expect(throws: SnapshotDecodingError.self) { try snapshot.decodeTable() }
    }

    struct BrokenCase: CustomTestStringConvertible, Sendable {
        let name: String
        let message: String
        let breakIt: @Sendable (inout Portico_V1_RouteTable) -> Void
        var testDescription: String { name }
    }

    static let broken: [BrokenCase] = [
        BrokenCase(name: "route to an unknown cluster", message: "no cluster named nope") { $0.virtualHosts[0].routes[0].backend.cluster = "nope" },
        BrokenCase(name: "host without hostname", message: "no hostname") { $0.virtualHosts[0].hostname = nil },
        BrokenCase(name: "route without match kind", message: "no match kind") { $0.virtualHosts[0].routes[0].kind = .unspecified },
        BrokenCase(name: "route without backend", message: "no backend") { $0.virtualHosts[0].routes[0].clearBackend() },
        BrokenCase(name: "relative path", message: "must start with '/'") { $0.virtualHosts[0].routes[0].path = "api" },
        BrokenCase(name: "endpoint port 0", message: "invalid endpoint") { $0.clusters[0].endpoints[0].port = 0 },
        BrokenCase(name: "cluster name not matching its service", message: "does not match") { $0.clusters[0].name = "x/y:1" },
        BrokenCase(name: "unknown certificate", message: "no certificate named missing") { $0.virtualHosts[0].tls.certificate = "missing" },
        BrokenCase(name: "duplicate host", message: "appears twice") { $0.virtualHosts.append($0.virtualHosts[0]) },
        BrokenCase(name: "regex host with a path RE2 refuses", message: "not a regular expression") {
            $0.virtualHosts[0].regexPaths = true
            $0.virtualHosts[0].routes[0].path = "/(unclosed"
        },
        BrokenCase(name: "rewrite with an unknown variable", message: "options.rewriteTarget") {
            $0.virtualHosts[0].routes[0].backend.options.rewriteTarget = "/$cookie"
        },
        BrokenCase(name: "upstream host with a line break", message: "options.upstreamHost") {
            $0.virtualHosts[0].routes[0].backend.options.upstreamHost = "a\r\nX-Injected: 1"
        },
        BrokenCase(name: "redirect that is not one", message: "is not a redirect") {
            $0.virtualHosts[0].routes[0].backend.options.redirect.status = 200
            $0.virtualHosts[0].routes[0].backend.options.redirect.location = "https://x.test"
        },
        BrokenCase(name: "TLS protocol without TLS settings", message: "needs its TLS settings") {
            $0.virtualHosts[0].routes[0].backend.options.upstreamProtocol = .https
        },
        BrokenCase(name: "upstream TLS name with a line break", message: "upstreamTls.serverName") {
            $0.virtualHosts[0].routes[0].backend.options.upstreamProtocol = .https
            $0.virtualHosts[0].routes[0].backend.options.upstreamTls.serverName = "a\r\nb"
        },
        BrokenCase(name: "client certificate without its key", message: "needs its key") {
            $0.virtualHosts[0].routes[0].backend.options.upstreamProtocol = .grpcs
            $0.virtualHosts[0].routes[0].backend.options.upstreamTls.serverName = "svc.ns.svc"
            $0.virtualHosts[0].routes[0].backend.options.upstreamTls.clientCertificatePem = "-----BEGIN CERTIFICATE-----"
        },
        BrokenCase(name: "default backend to an unknown cluster", message: "defaultBackend: no cluster named nope") {
            $0.virtualHosts[0].routes[0].backend.options.defaultBackend.cluster = "nope"
        },
        BrokenCase(name: "intercepted status that is not an error", message: "interceptedStatuses") {
            $0.virtualHosts[0].routes[0].backend.options.defaultBackend.cluster = "ns/svc:80"
            $0.virtualHosts[0].routes[0].backend.options.defaultBackend.interceptedStatuses = [200]
        },
    ]

    @Test(arguments: broken)
    func invalidTablesAreRefusedWithAReason(_ testCase: BrokenCase) throws {
        var proto = Self.wellFormed.proto()
        testCase.breakIt(&proto)
        do {
            _ = try RouteTable(proto: proto)
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains(testCase.message), "\(error)")
        }
    }

    static let wellFormed = RouteTable(
        virtualHosts: [
            VirtualHost(hostname: .any, routes: []),
            VirtualHost(
                hostname: .exact("a.example.com"),
                routes: [Route(match: PathMatch(kind: .prefix, path: "/"), backend: Backend(cluster: "ns/svc:80", source: RouteSource(namespace: "ns", ingress: "i")))],
                tls: TLSBinding(certificate: nil)),
        ],
        clusters: [Cluster(namespace: "ns", service: "svc", servicePort: .number(80), endpoints: [Endpoint(address: "10.0.0.1", port: 8080)])],
        certificates: [])

    @Test func wellFormedFixtureDecodes() throws {
        #expect(try RouteTable(proto: Self.wellFormed.proto()) == Self.wellFormed)
    }
}

@Suite struct ServerAddressTests {
    @Test(arguments: [
        ("unix:/run/portico/cp.sock", ServerAddress.unix(path: "/run/portico/cp.sock")),
        ("unix:///run/x.sock", .unix(path: "/run/x.sock")),
        ("127.0.0.1:9443", .tcp(host: "127.0.0.1", port: 9443)),
        ("[::1]:9443", .tcp(host: "::1", port: 9443)),
        ("control-plane.portico.svc:9443", .tcp(host: "control-plane.portico.svc", port: 9443)),
    ])
    func parses(_ text: String, _ expected: ServerAddress) throws {
        #expect(try ServerAddress(parsing: text) == expected)
        #expect(try ServerAddress(parsing: expected.description) == expected)
    }

    @Test(arguments: ["unix:relative.sock", "localhost", "127.0.0.1:0", "127.0.0.1:70000", ":80", "host:port"])
    func rejects(_ text: String) {
        #expect(throws: ServerAddressError.self) { try ServerAddress(parsing: text) }
    }
}

@Suite struct BackoffTests {
    @Test func growsToTheCapWithJitterAndResets() {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2), multiplier: 2, jitter: 0.2)
        var random = SplitMix64(seed: 1)
        let delays = (0..<8).map { _ in backoff.next(using: &random) }
        let bases: [Double] = [0.1, 0.2, 0.4, 0.8, 1.6, 2, 2, 2]
        for (delay, base) in zip(delays, bases) {
            let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
            #expect(seconds >= base * 0.8 - 1e-9 && seconds <= base * 1.2 + 1e-9, "\(seconds) for \(base)")
        }
        #expect(Set(delays).count > 4, "jitter spreads the delays")
        backoff.reset()
        let first = backoff.next(using: &random)
        #expect(first <= .milliseconds(120))
    }

    @Test func withoutJitterItIsExact() {
        var backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(150), multiplier: 2, jitter: 0)
        #expect((0..<4).map { _ in backoff.next() } == [.milliseconds(50), .milliseconds(100), .milliseconds(150), .milliseconds(150)])
    }
}
