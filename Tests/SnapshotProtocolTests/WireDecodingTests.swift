import RouteModel
import SwiftProtobuf
import Testing
import TestSupport
@testable import SnapshotProtocol

/// Protobuf's field encodings, for bytes the generated code would not write.
private func varint(_ number: UInt64, _ value: UInt64) -> [UInt8] {
    var bytes: [UInt8] = []
    ProtobufWire.appendVarint(ProtobufWire.tag(field: number, wireType: .varint), to: &bytes)
    ProtobufWire.appendVarint(value, to: &bytes)
    return bytes
}

private func field(_ number: UInt64, _ payload: [UInt8]) -> [UInt8] {
    var bytes: [UInt8] = []
    ProtobufWire.appendVarint(ProtobufWire.tag(field: number, wireType: .lengthDelimited), to: &bytes)
    ProtobufWire.appendVarint(UInt64(payload.count), to: &bytes)
    return bytes + payload
}

private func field(_ number: UInt64, _ text: String) -> [UInt8] { field(number, Array(text.utf8)) }

/// `VirtualHost(wire:)` and `Cluster(wire:)` read entries as protobuf does: what the generated code
/// makes of the same bytes is the reference.
@Suite struct WireDecodingTests {
    /// Fields of numbers no version uses, of every wire type: skipped.
    static let unknown: [UInt8] = varint(99, 7) + field(100, "later") + [0x99, 0x06] + Array(repeating: 1, count: 8) + [0xa5, 0x06, 1, 2, 3, 4]

    static func host(_ bytes: [UInt8]) throws(SnapshotDecodingError) -> VirtualHost {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(SnapshotDecodingError) in
                try VirtualHost(wire: raw, field: { "host" }, hasCluster: { !$0.hasPrefix("nope") }, hasCertificate: { $0 == "cert" })
            }
        }.get()
    }

    static func cluster(_ bytes: [UInt8]) throws(SnapshotDecodingError) -> Cluster {
        try bytes.withUnsafeBytes { raw in Result { () throws(SnapshotDecodingError) in try Cluster(wire: raw, field: { "cluster" }) } }.get()
    }

    /// The bytes as the generated code reads them, written again: merged, last values kept.
    static func canonical(_ bytes: [UInt8]) throws -> [UInt8] {
        try Portico_V1_VirtualHost(serializedBytes: bytes).serializedBytes()
    }

    static let backendA = field(1, "ns/svc:80") + field(2, "ns")
    static let backendB = field(3, "web") + varint(4, 1) + field(5, field(2, "/v2"))
    static let route = varint(1, 2) + field(2, "/a") + field(3, backendA) + unknown + field(3, backendB)

    @Test func aMessageFieldWrittenTwiceReadsAsTheirMerge() throws {
        let bytes = field(1, "a.test") + field(4, Self.route) + field(6, field(1, "cert")) + field(6, field(2, varint(1, 600)))
        let decoded = try Self.host(bytes)
        #expect(try decoded == Self.host(Self.canonical(bytes)))
        let backend = try #require(decoded.routes.first?.backend)
        #expect(backend.cluster == "ns/svc:80" && backend.source == RouteSource(namespace: "ns", ingress: "web") && backend.httpsRedirect)
        #expect(backend.options.rewriteTarget == "/v2")
        #expect(decoded.tls == TLSBinding(certificate: "cert", hsts: HSTSPolicy(maxAgeSeconds: 600)))
    }

    @Test func aScalarWrittenTwiceReadsAsTheLastAndUnknownFieldsAreSkipped() throws {
        let bytes =
            Self.unknown + field(1, "a.test") + field(2, "b.test") + field(4, Self.route) + varint(7, 1) + varint(7, 0) + Self.unknown
            + field(8, "x.test") + field(8, "")
        let decoded = try Self.host(bytes)
        #expect(try decoded == Self.host(Self.canonical(bytes)))
        #expect(decoded.hostname == .wildcard(suffix: "b.test") && !decoded.regexPaths && decoded.redirectToHost == nil)

        let endpoint = field(1, "10.0.0.1") + varint(2, 8080)
        let clusterBytes =
            field(1, "ns/svc:http") + field(2, "ns") + field(3, "svc") + varint(4, 80) + field(5, "http") + Self.unknown + field(6, endpoint + Self.unknown)
            + field(8, varint(1, 5)) + field(8, varint(3, 9))
        let cluster = try Self.cluster(clusterBytes)
        #expect(try cluster == Self.cluster(Portico_V1_Cluster(serializedBytes: clusterBytes).serializedBytes()))
        #expect(cluster.servicePort == .name("http") && cluster.endpoints == [Endpoint(address: "10.0.0.1", port: 8080)])
        #expect(cluster.timeouts == ClusterTimeouts(connectMilliseconds: 5, responseHeaderMilliseconds: 0, idleMilliseconds: 9))
    }

    @Test func routesOfAHostWhosePathsAreRegularExpressionsAreCheckedWhereverTheFlagComes() throws {
        let bad = varint(1, 3) + field(2, "/(open") + field(3, Self.backendA)
        #expect(throws: SnapshotDecodingError.self) { try Self.host(field(1, "a.test") + field(4, bad) + varint(7, 1)) }
        #expect(try Self.host(field(1, "a.test") + field(4, bad)).routes.count == 1)
    }

    @Test func routesShareTheStorageOfTheNamesTheyRepeat() throws {
        // Longer than the 15 bytes a string holds inline.
        let backend = field(1, "a-namespace/a-service:8080") + field(2, "a-namespace") + field(3, "an-ingress-of-some-length")
        let bytes = field(1, "a.test") + field(4, varint(1, 2) + field(2, "/a") + field(3, backend)) + field(4, varint(1, 2) + field(2, "/b") + field(3, backend))
        let routes = try Self.host(bytes).routes
        func storage(_ text: String) -> UnsafePointer<UInt8>? { text.utf8.withContiguousStorageIfAvailable(\.baseAddress) ?? nil }
        #expect(routes.count == 2)
        #expect(storage(routes[0].backend.cluster) == storage(routes[1].backend.cluster))
        #expect(storage(routes[0].backend.source.ingress) == storage(routes[1].backend.source.ingress))
        #expect(storage(routes[0].backend.cluster) != nil)
    }

    @Test(arguments: [
        ("not UTF-8", field(1, [0x61, 0xff]), "host: not UTF-8"),
        ("cut short", field(1, "a.test").dropLast(2).map { $0 }, "host: a field is cut short or malformed"),
        ("field number 0", [0x00, 0x01], "host: a field is cut short or malformed"),
        ("route path not UTF-8", field(1, "a.test") + field(4, varint(1, 2) + field(2, [0x2f, 0xc3]) + field(3, backendA)), "host.routes[0].path: not UTF-8"),
        ("route cut short", field(1, "a.test") + field(4, [0x08]), "host.routes[0]: a field is cut short or malformed"),
    ])
    func bytesThatAreNotAHostAreRefusedNamingTheField(_ name: String, _ bytes: [UInt8], _ message: String) {
        #expect(throws: SnapshotDecodingError(message), "\(name)") { try Self.host(bytes) }
        // Where the generated code refuses too (it does for each of these), both agree.
        #expect(throws: (any Error).self) { try Portico_V1_VirtualHost(serializedBytes: bytes) }
    }

    @Test func aKnownFieldOfAnotherWireTypeIsSkippedAsTheGeneratedCodeSkipsIt() throws {
        // The wildcard as a varint, the regex flag and a route's match kind as bytes.
        let bytes = field(1, "a.test") + varint(2, 5) + field(7, "x") + field(4, field(1, "y") + varint(1, 1) + field(2, "/") + field(3, Self.backendA))
        let decoded = try Self.host(bytes)
        #expect(try decoded == Self.host(Self.canonical(bytes)))
        #expect(decoded.hostname == .exact("a.test") && !decoded.regexPaths && decoded.routes[0].match.kind == .exact)
    }

    @Test func groupsWhichProto3HasNotAreRefused() {
        // The generated code would skip them as unknown fields; no sender writes them.
        #expect(throws: SnapshotDecodingError("host: a field is cut short or malformed")) { try Self.host(field(1, "a.test") + [0x0b, 0x0c]) }
    }

    @Test func emptyOptionsAreTheDefaultOnesAndDefaultOptionsAreNotWritten() throws {
        let withEmpty = field(1, "a.test") + field(4, varint(1, 2) + field(2, "/") + field(3, Self.backendA + field(5, [])))
        #expect(try Self.host(withEmpty).routes[0].backend.options == RouteOptions())
        let backend = Backend(cluster: "ns/svc:80", source: RouteSource(namespace: "ns", ingress: "i"))
        #expect(!backend.proto.hasOptions)
    }
}
