@testable import RouteModel
import SwiftProtobuf
import Testing
import TestSupport
@testable import SnapshotProtocol

@Suite struct DeltaTests {
    /// Table `a` with a quarter of its hosts gone, some trimmed, and the hosts, clusters and
    /// certificates of another random table added (theirs win where names meet).
    static func successor(of a: RouteTable, seed: UInt64) -> RouteTable {
        var random = SplitMix64(seed: seed)
        let other = RandomRouteTable.make(seed: seed + 1000, hosts: 6)
        var hosts = a.virtualHosts.filter { _ in random.next() % 4 != 0 }
        for index in hosts.indices where random.next() % 3 == 0 && hosts[index].routes.count > 1 { hosts[index].routes.removeLast() }
        let kept = Set(hosts.map(\.hostname))
        hosts += other.virtualHosts.filter { !kept.contains($0.hostname) }
        func union<T>(_ mine: [T], _ theirs: [T], _ name: (T) -> String) -> [T] {
            let replaced = Set(theirs.map(name))
            return mine.filter { !replaced.contains(name($0)) } + theirs
        }
        return RouteTable(
            virtualHosts: hosts, clusters: union(a.clusters, other.clusters, \.name),
            certificates: union(a.certificates, other.certificates, \.name), defaultCertificate: other.defaultCertificate)
    }

    @Test(arguments: 0..<40)
    func aDeltaTurnsTheOldTableIntoTheNewOneThroughTheWire(_ seed: Int) throws {
        // Up to 320 hosts: small deltas apply edit by edit, large ones (over 64 entries) in one pass.
        let old = RandomRouteTable.make(seed: UInt64(seed), hosts: 8 + seed * 8)
        let new = Self.successor(of: old, seed: UInt64(seed))
        #expect(new.danglingReference == nil)
        let delta = old.delta(to: new)
        let applied = try old.applying(delta)
        #expect(applied == new)
        #expect(applied.contentHash == new.contentHash)

        let bytes: [UInt8] = try Portico_V1_SnapshotDelta(base: 7, contentHash: new.contentHash, changes: delta).serializedBytes()
        let decoded = try Portico_V1_SnapshotDelta(serializedBytes: bytes)
        #expect(decoded.baseVersion == 7)
        let received = try decoded.apply(to: old)
        #expect(received == new)
        #expect(received.defaultCertificate == new.defaultCertificate)
    }

    /// Requests to every host of `table` (and of `others`): each route's path, below it, the root and
    /// a path no route has, with the host in upper case too.
    static func probes(_ table: RouteTable, _ others: [VirtualHost] = []) -> [(host: String, path: String)] {
        var probes: [(String, String)] = [("nowhere.invalid", "/")]
        for host in table.virtualHosts + others {
            let name: String
            switch host.hostname {
            case .exact(let exact): name = exact
            case .wildcard(let suffix): name = "zz." + suffix
            case .any: name = "any-host.invalid"
            }
            for path in host.routes.map(\.match.path) + ["/", "/zz-none"] {
                probes += [(name, path), (name, path + "/x"), (name.uppercased(), path)]
            }
        }
        return probes
    }

    @Test(arguments: 0..<4)
    func aChainOfPatchedTablesRoutesAsTablesBuiltAfresh(_ seed: Int) throws {
        // Each table is patched from the one before (never built afresh here), so index entries of
        // replaced and removed hosts pile up until the patch starts over: both paths are taken.
        var current = RandomRouteTable.make(seed: UInt64(seed) * 7919, hosts: 40)
        var patchedSteps = 0
        var restarts = 0
        for step in 0..<120 {
            let fresh = Self.successor(of: current, seed: UInt64(seed * 1000 + step))
            let delta = current.delta(to: fresh)
            let patched = try current.applying(delta)
            #expect(patched == fresh)
            #expect(patched.contentHash == fresh.contentHash)
            if patched.index.garbage > current.index.garbage { patchedSteps += 1 } else if delta.changeCount > 0 { restarts += 1 }
            for (host, path) in Self.probes(fresh, current.virtualHosts) {
                let got = patched.resolve(host: host, path: path)
                let want = fresh.resolve(host: host, path: path)
                #expect(got == want, "step \(step): \(host) \(path)")
                if case .route(let virtualHost, let route) = want {
                    #expect((patched.pathRegex(virtualHost: virtualHost, route: route) == nil) == (fresh.pathRegex(virtualHost: virtualHost, route: route) == nil))
                }
            }
            for cluster in fresh.clusters { #expect(patched.cluster(named: cluster.name) == cluster) }
            for certificate in fresh.certificates { #expect(patched.certificate(named: certificate.name) == certificate) }
            #expect(patched.cluster(named: "no/such:1") == nil)
            current = patched
        }
        #expect(patchedSteps > 50)
        #expect(restarts > 0)
    }

    @Test func anUnchangedTableGivesAnEmptyDelta() {
        let table = RandomRouteTable.make(seed: 5, hosts: 30)
        let copy = RouteTable(
            virtualHosts: table.virtualHosts.reversed(), clusters: table.clusters, certificates: table.certificates,
            defaultCertificate: table.defaultCertificate)
        let delta = table.delta(to: copy)
        #expect(delta.changeCount == 0)
        #expect(delta.defaultCertificate == table.defaultCertificate)
    }

    @Test func aDeltaForAnotherTableIsRefusedWithTheReason() throws {
        let table = RandomRouteTable.make(seed: 9, hosts: 10)
        let host = table.virtualHosts[3]

        var missing = RouteTableDelta(removedHosts: [.exact("not-there.example.com")])
        missing.defaultCertificate = table.defaultCertificate
        #expect(throws: RouteTableDeltaError("removes virtual host not-there.example.com, which the table does not hold")) {
            try table.applying(missing)
        }
        let twice = RouteTableDelta(upsertedHosts: [host, host], defaultCertificate: table.defaultCertificate)
        #expect(throws: RouteTableDeltaError("virtual host \(host.hostname) is upserted twice")) { try table.applying(twice) }

        let used = try #require(host.routes.first?.backend.cluster)
        let dangling = RouteTableDelta(removedClusters: [used], defaultCertificate: table.defaultCertificate)
        let error = #expect(throws: RouteTableDeltaError.self) { try table.applying(dangling) }
        #expect(error?.description.contains("no cluster named \(used)") == true)
        // A certificate a kept host still serves (from a random table that has such a host).
        func servesOwnCertificate(_ host: VirtualHost, in table: RouteTable) -> Bool {
            host.tls?.certificate != nil && host.tls?.certificate != table.defaultCertificate
        }
        let served = try #require(
            (UInt64(1)...50).lazy.map { RandomRouteTable.make(seed: $0, hosts: 40) }.first { table in
                table.virtualHosts.contains { servesOwnCertificate($0, in: table) }
            })
        let certificate = try #require(served.virtualHosts.first { servesOwnCertificate($0, in: served) }?.tls?.certificate)
        let unserved = RouteTableDelta(removedCertificates: [certificate], defaultCertificate: served.defaultCertificate)
        let refused = #expect(throws: RouteTableDeltaError.self) { try served.applying(unserved) }
        #expect(refused?.description.contains("no certificate named \(certificate)") == true)
        // A cluster that only an upserted host names.
        var renamed = host
        renamed.routes[0].backend.cluster = "nowhere/missing:80"
        let upsertedDangling = RouteTableDelta(upsertedHosts: [renamed], defaultCertificate: table.defaultCertificate)
        let upsertError = #expect(throws: RouteTableDeltaError.self) { try table.applying(upsertedDangling) }
        #expect(upsertError?.description.contains("no cluster named nowhere/missing:80") == true)

        // Through the wire, a hash that does not match is refused too.
        var wrongHash = Portico_V1_SnapshotDelta(base: 1, contentHash: table.contentHash &+ 1, changes: RouteTableDelta(defaultCertificate: table.defaultCertificate))
        wrongHash.baseVersion = 1
        let refusal = #expect(throws: SnapshotDecodingError.self) { try wrongHash.apply(to: table) }
        #expect(refusal?.description.contains("content hash mismatch after the delta from version 1") == true)
    }
}

/// The wire-format scan that lets a relay keep a received snapshot's bytes.
@Suite struct EncodedSnapshotTests {
    @Test func theSnapshotFieldIsFoundAndWrappedIntoAResponseAgain() throws {
        let table = RandomRouteTable.make(seed: 3)
        var response = Portico_V1_WatchResponse()
        response.version = 300  // a two-byte varint before the field
        response.nonce = "300-s1"
        response.snapshot = Portico_V1_Snapshot(version: 300, table: table)
        let bytes: [UInt8] = try response.serializedBytes()
        let range = try #require(bytes.withUnsafeBytes { ProtobufWire.onlyLengthDelimitedField(3, in: $0) }).payload
        let snapshotBytes = Array(bytes[range])
        #expect(snapshotBytes == (try response.snapshot.serializedBytes() as [UInt8]))

        let encoded = EncodedSnapshot(version: 300, bytes: snapshotBytes)
        let wrapped = try Portico_V1_WatchResponse(serializedBytes: try #require(encoded.watchResponse(version: 300)))
        #expect(wrapped.version == 300)
        #expect(wrapped.nonce.isEmpty)
        #expect(wrapped.snapshot == response.snapshot)
        #expect(encoded.watchResponse(version: 301) == nil, "its own version field would say 300")
    }

    @Test func malformedOrRepeatedFieldsYieldNothing() throws {
        func scan(_ bytes: [UInt8]) -> Range<Int>? { bytes.withUnsafeBytes { ProtobufWire.onlyLengthDelimitedField(3, in: $0)?.payload } }
        #expect(scan([0x1a, 0x02, 0x08, 0x01]) == 2..<4)
        #expect(scan([0x08, 0x01]) == nil, "absent")
        #expect(scan([0x1a, 0x02, 0x08, 0x01, 0x1a, 0x00]) == nil, "twice: protobuf would merge the two")
        #expect(scan([0x1a, 0x05, 0x08]) == nil, "longer than the message")
        #expect(scan([0x08, 0x80]) == nil, "a varint cut short")
        #expect(scan([0x0b]) == nil, "a group")
        #expect(scan([0x09, 0, 0, 0]) == nil, "a fixed64 cut short")
    }
}

/// Large tables are encoded and converted in parts on every core; the parts must make the same
/// message and the same table as one pass, and the same error for a bad one.
@Suite struct PartedCodingTests {
    @Test(arguments: 0..<6)
    func aTableEncodedInPartsReadsAsTheWholeEncoding(_ seed: Int) throws {
        let table = RandomRouteTable.make(seed: UInt64(seed), hosts: 40)
        let whole = Portico_V1_Snapshot(version: 9, table: table)
        for parts in [1, 2, 3, 7] {
            var parted = Portico_V1_Snapshot()
            parted.version = 9
            parted.contentHash = table.contentHash
            parted.table = try Portico_V1_RouteTable(serializedBytes: PartedCoding.routeTableBytes(table, includePrivateKeys: true, parts: parts))
            #expect(parted == whole, "\(parts) parts")
            #expect(try RouteTable(proto: parted.table, parts: parts) == table)
        }
        let snapshot = try Portico_V1_Snapshot(serializedBytes: PartedCoding.snapshotBytes(version: 9, table: table))
        #expect(snapshot == whole)
        #expect(try snapshot.decodeTable().defaultCertificate == table.defaultCertificate)
    }

    @Test func aBadEntryInAnyPartIsReportedAsInOnePass() throws {
        let table = RandomRouteTable.make(seed: 5, hosts: 30)
        var proto = table.proto()
        proto.virtualHosts[17].routes[0].backend.cluster = "no-such-cluster"
        proto.clusters[proto.clusters.count - 1].endpoints = [Portico_V1_Endpoint()]
        func error(_ parts: Int) -> String? {
            do {
                _ = try RouteTable(proto: proto, parts: parts)
                return nil
            } catch {
                return error.description
            }
        }
        let expected = try #require(error(1))
        #expect(expected.hasPrefix("clusters[\(proto.clusters.count - 1)].endpoints[0]"), "\(expected)")
        for parts in [2, 3, 5] { #expect(error(parts) == expected) }
        proto.clusters = table.proto().clusters
        let hostError = try #require(error(1))
        #expect(hostError.hasPrefix("virtualHosts[17].routes[0]"), "\(hostError)")
        for parts in [2, 3, 5] { #expect(error(parts) == hostError) }
    }
}

@Suite struct DecodedStringTests {
    /// The storage of a native string, for telling copies from shared ones.
    static func storage(_ text: String) -> UnsafeRawPointer? {
        var text = text
        return text.withUTF8 { UnsafeRawPointer($0.baseAddress) }
    }

    /// A table decoded from a message shares no string storage with it: the message's objects are
    /// freed after decoding, and strings kept from among them pinned that memory in small holes.
    @Test func aDecodedTableKeepsNoneOfTheMessagesLongStrings() throws {
        let table = RandomRouteTable.make(seed: 11, hosts: 12)
        let proto = table.proto()
        let decoded = try RouteTable(proto: proto)
        #expect(decoded == table)
        var compared = 0
        for (host, message) in zip(decoded.virtualHosts, proto.virtualHosts) {
            if case .exact(let name) = host.hostname, name.utf8.count > 15 {
                #expect(Self.storage(name) != Self.storage(message.exact))
                compared += 1
            }
            for (route, routeMessage) in zip(host.routes, message.routes) where route.backend.cluster.utf8.count > 15 {
                #expect(Self.storage(route.backend.cluster) != Self.storage(routeMessage.backend.cluster))
                compared += 1
            }
        }
        #expect(compared > 0, "the random table has long names to compare")
        #expect(owned("short") == "short")
        let long = String(repeating: "x", count: 40)
        #expect(owned(long) == long)
        #expect(Self.storage(owned(long)) != Self.storage(long))
    }
}

/// Whole snapshots are decoded from their bytes entry by entry, never as one message.
@Suite struct EntryByEntryDecodingTests {
    @Test(arguments: 0..<4)
    func bytesDecodeAsTheMessageDoes(_ seed: Int) throws {
        let table = RandomRouteTable.make(seed: UInt64(seed) + 20, hosts: 30)
        let canonical: [UInt8] = try Portico_V1_Snapshot(version: 4, table: table).serializedBytes()
        for bytes in [canonical, PartedCoding.snapshotBytes(version: 4, table: table)] {
            let (version, decoded) = try RouteTable.decoding(serializedSnapshot: bytes)
            #expect(version == 4)
            #expect(decoded == table)
            #expect(decoded.defaultCertificate == table.defaultCertificate)
        }
    }

    @Test func aBadSnapshotIsRefusedWithWhatIsWrong() throws {
        let table = RandomRouteTable.make(seed: 3, hosts: 10)
        var snapshot = Portico_V1_Snapshot(version: 2, table: table)
        snapshot.contentHash &+= 1
        func refusal(_ bytes: [UInt8]) -> String? {
            do {
                _ = try RouteTable.decoding(serializedSnapshot: bytes)
                return nil
            } catch {
                return error.description
            }
        }
        #expect(refusal(try snapshot.serializedBytes())?.hasPrefix("content hash mismatch") == true)
        var proto = table.proto()
        proto.virtualHosts[3].routes[0].backend.cluster = "nowhere"
        snapshot.table = proto
        #expect(refusal(try snapshot.serializedBytes())?.hasPrefix("virtualHosts[3].routes[0].backend: no cluster named nowhere") == true)
        // A host entry whose bytes do not parse: field 1 of the table, 2 bytes of garbage.
        let garbage: [UInt8] = [0x08, 0x02, 0x1a, 0x04, 0x0a, 0x02, 0xff, 0xff]
        #expect(refusal(garbage)?.hasPrefix("virtualHosts[0]:") == true, "\(refusal(garbage) ?? "")")
        #expect(refusal([0x1a, 0x09, 0x0a]) == "snapshot: a field is cut short or malformed")
        #expect(refusal([0x1a, 0x03, 0x0a, 0x05, 0x00]) == "table: a field is cut short or malformed")
    }
}
