import RouteModel
import SwiftProtobuf
import Testing
import TestSupport
@testable import SnapshotProtocol

/// `WireWriter` writes hosts and clusters as swift-protobuf serialises their generated messages:
/// byte for byte, so the reference is the generated code's own output.
@Suite struct WireEncodingTests {
    static func bytes(_ host: VirtualHost) -> [UInt8] {
        var writer = WireWriter()
        host.write(to: &writer)
        return writer.bytes
    }

    static func bytes(_ cluster: Cluster) -> [UInt8] {
        var writer = WireWriter()
        cluster.write(to: &writer)
        return writer.bytes
    }

    @Test(arguments: 0..<40)
    func randomTablesEncodeAsTheGeneratedMessages(_ seed: UInt64) throws {
        let table = RandomRouteTable.make(seed: seed, hosts: 30)
        for host in table.virtualHosts { #expect(Self.bytes(host) == (try host.proto.serializedBytes() as [UInt8]), "\(host.hostname)") }
        for cluster in table.clusters { #expect(Self.bytes(cluster) == (try cluster.proto.serializedBytes() as [UInt8]), "\(cluster.name)") }
        // The whole table in one part is the generated message's bytes; in parts, it reads back.
        let whole: [UInt8] = try table.proto(includePrivateKeys: true).serializedBytes()
        #expect(PartedCoding.routeTableBytes(table, includePrivateKeys: true, parts: 1) == whole)
        let parted = PartedCoding.routeTableBytes(table, includePrivateKeys: true, parts: 3)
        #expect(try RouteTable(proto: Portico_V1_RouteTable(serializedBytes: parted)) == table)
    }

    /// Messages of 128 bytes and more need a longer length prefix, which moves the body along; and
    /// every kind of hostname, port and option is written as the generated code writes it.
    @Test func longMessagesAndEveryVariantMatch() throws {
        let cluster = Cluster(
            namespace: "default", service: String(repeating: "s", count: 300), servicePort: .name("http"),
            endpoints: (0..<40).map { Endpoint(address: "10.0.\($0 / 250).\($0 % 250)", port: 8080) })
        let source = RouteSource(namespace: "default", ingress: "web")
        var options = RouteOptions()
        options.rewriteTarget = "/$1"
        options.redirect = RedirectRule(status: 301, location: "https://example.com/")
        options.upstreamProtocol = .grpc
        let long = String(repeating: "p", count: 20_000)
        let hosts = [
            VirtualHost(
                hostname: .exact("app.example.com"),
                routes: (0..<30).map { Route(match: PathMatch(kind: .prefix, path: "/r\($0)"), backend: Backend(cluster: cluster.name, source: source)) }
                    + [Route(match: PathMatch(kind: .exact, path: "/" + long), backend: Backend(cluster: cluster.name, source: source, httpsRedirect: true, options: options))],
                defaultBackend: Backend(cluster: cluster.name, source: source),
                tls: TLSBinding(certificate: "cert", hsts: HSTSPolicy(maxAgeSeconds: 0, includeSubdomains: true, preload: false))),
            VirtualHost(hostname: .wildcard(suffix: "example.com"), tls: TLSBinding(certificate: nil), regexPaths: true),
            VirtualHost(hostname: .any, redirectToHost: "www.example.com"),
        ]
        for host in hosts { #expect(Self.bytes(host) == (try host.proto.serializedBytes() as [UInt8]), "\(host.hostname)") }
        let numbered = Cluster(
            namespace: "default", service: "web", servicePort: .number(0), endpoints: cluster.endpoints, loadBalancing: .leastRequest,
            timeouts: ClusterTimeouts(connectMilliseconds: 0, responseHeaderMilliseconds: 70_000, idleMilliseconds: 5))
        for cluster in [cluster, numbered] { #expect(Self.bytes(cluster) == (try cluster.proto.serializedBytes() as [UInt8])) }
    }
}
