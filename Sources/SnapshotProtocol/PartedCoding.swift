import Foundation
import RouteModel
import SwiftProtobuf

/// Whole snapshots of large tables, encoded and converted on every core.
///
/// At 100k Ingresses a snapshot is 25 MB: encoding it took the control plane 0.8 s and converting
/// it each subscriber about half a second, one core each, on the first table's way to the workers.
/// Protobuf reads a message written as several encodings of itself one after another as their
/// merge, and a repeated field's entries as appended in order: so a table is encoded in parts
/// (each a `RouteTable` with a run of the virtual hosts, clusters and certificates), concurrently,
/// and the parts are joined.
enum PartedCoding {
    /// `convert` of every index in `0..<count`, in order, done in `parts` (by default one per core for
    /// a large count) concurrently; the error of the lowest index that fails is thrown, as one pass would.
    static func convert<T: Sendable>(
        count: Int, parts: Int?, _ convert: @Sendable (Int) throws(SnapshotDecodingError) -> T
    ) throws(SnapshotDecodingError) -> [T] {
        let parts = parts ?? PartedWork.parts(for: count)
        let converted = PartedWork.map(parts: parts) { part -> Result<[T], SnapshotDecodingError> in
            let range = PartedWork.range(part, of: parts, count: count)
            var values: [T] = []
            values.reserveCapacity(range.count)
            for index in range {
                do throws(SnapshotDecodingError) {
                    values.append(try convert(index))
                } catch {
                    return .failure(error)
                }
            }
            return .success(values)
        }
        var values: [T] = []
        values.reserveCapacity(count)
        for part in converted { values += try part.get() }
        return values
    }

    /// A serialised `RouteTable` message of `table`, in parts for a large one.
    static func routeTableBytes(_ table: RouteTable, includePrivateKeys: Bool, parts: Int? = nil) -> [UInt8] {
        let parts = parts ?? PartedWork.parts(for: table.virtualHosts.count)
        let encoded = PartedWork.map(parts: parts) { part -> [UInt8] in
            let hosts = PartedWork.range(part, of: parts, count: table.virtualHosts.count)
            // Hosts and clusters straight to the wire (see `WireWriter`), in the order the generated
            // message writes its fields; certificates, few, through it.
            var writer = WireWriter(capacity: hosts.count * 256)
            table.virtualHosts.withUnsafeBufferPointer { virtualHosts in
                for index in hosts { writer.message(1) { virtualHosts[index].write(to: &$0) } }
            }
            table.clusters.withUnsafeBufferPointer { clusters in
                for index in PartedWork.range(part, of: parts, count: clusters.count) { writer.message(2) { clusters[index].write(to: &$0) } }
            }
            var message = Portico_V1_RouteTable()
            message.certificates = table.certificates[PartedWork.range(part, of: parts, count: table.certificates.count)].map {
                $0.proto(includePrivateKey: includePrivateKeys)
            }
            // A string field written more than once reads as its last value: written once.
            if part == parts - 1 { message.defaultCertificate = table.defaultCertificate ?? "" }
            // Serialising a message that holds only set, valid fields cannot fail.
            writer.bytes += (try? message.serializedBytes() as [UInt8]) ?? []
            return writer.bytes
        }
        guard encoded.count > 1 else { return encoded[0] }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(encoded.reduce(0) { $0 + $1.count })
        for part in encoded { bytes += part }
        return bytes
    }

    /// A serialised `Snapshot` of `table` at `version`, as `Portico_V1_Snapshot(version:table:)`
    /// serialises (its fields perhaps in another order, which protobuf allows).
    static func snapshotBytes(version: UInt64, table: RouteTable, includePrivateKeys: Bool = true) -> [UInt8] {
        let tableBytes = routeTableBytes(table, includePrivateKeys: includePrivateKeys)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tableBytes.count + 32)
        if version != 0 {
            ProtobufWire.appendVarint(ProtobufWire.tag(field: 1, wireType: .varint), to: &bytes)
            ProtobufWire.appendVarint(version, to: &bytes)
        }
        if table.contentHash != 0 {
            ProtobufWire.appendVarint(ProtobufWire.tag(field: 2, wireType: .fixed64), to: &bytes)
            withUnsafeBytes(of: table.contentHash.littleEndian) { bytes += $0 }
        }
        ProtobufWire.appendVarint(ProtobufWire.tag(field: 3, wireType: .lengthDelimited), to: &bytes)
        ProtobufWire.appendVarint(UInt64(tableBytes.count), to: &bytes)
        bytes += tableBytes
        return bytes
    }
}

/// The entries of a table to convert, however they are held: a decoded message's arrays, or the
/// entries of the received bytes, each read only when converted (see `WireReader`), so that no
/// decoded message of the whole table exists beside the table being built (at 10k Ingresses that
/// was a worker's peak).
struct TableSource: Sendable {
    var clusterCount: Int
    /// Cluster `index`, decoded and checked.
    var cluster: @Sendable (_ index: Int) throws(SnapshotDecodingError) -> Cluster
    var certificates: [Portico_V1_Certificate]
    var hostCount: Int
    /// Virtual host `index`, decoded and checked against the table's cluster and certificate names.
    var host:
        @Sendable (_ index: Int, _ hasCluster: (String) -> Bool, _ hasCertificate: (String) -> Bool) throws(SnapshotDecodingError) -> VirtualHost
    var defaultCertificate: String

    init(_ proto: Portico_V1_RouteTable) {
        clusterCount = proto.clusters.count
        cluster = { index throws(SnapshotDecodingError) in try Cluster(proto: proto.clusters[index], field: "clusters[\(index)]") }
        certificates = proto.certificates
        hostCount = proto.virtualHosts.count
        host = { index, hasCluster, hasCertificate throws(SnapshotDecodingError) in
            try VirtualHost(proto: proto.virtualHosts[index], field: "virtualHosts[\(index)]", hasCluster: hasCluster, hasCertificate: hasCertificate)
        }
        defaultCertificate = proto.defaultCertificate
    }

    /// The entries of a serialised `RouteTable` found in `bytes[table]`.
    init(serialized bytes: [UInt8], table: Range<Int>) throws(SnapshotDecodingError) {
        var hosts: [Range<Int>] = []
        var clusters: [Range<Int>] = []
        var certificates: [Portico_V1_Certificate] = []
        var defaultCertificate = ""
        var problem: SnapshotDecodingError?
        let wellFormed = bytes.withUnsafeBytes { raw in
            ProtobufWire.forEachField(in: UnsafeRawBufferPointer(rebasing: raw[table])) { field in
                let payload = field.payload.map { (table.lowerBound + $0.lowerBound)..<(table.lowerBound + $0.upperBound) }
                switch (field.number, payload) {
                case (1, let payload?): hosts.append(payload)
                case (2, let payload?): clusters.append(payload)
                case (3, let payload?):
                    do {
                        certificates.append(try Portico_V1_Certificate(serializedBytes: Array(bytes[payload])))
                    } catch {
                        problem = SnapshotDecodingError("certificates[\(certificates.count)]: \(error)")
                    }
                case (4, let payload?): defaultCertificate = String(decoding: bytes[payload], as: UTF8.self)
                case (1...4, nil): problem = SnapshotDecodingError("table: field \(field.number) has the wrong wire type")
                default: break  // a field this version does not know
                }
                return problem == nil
            }
        }
        if let problem { throw problem }
        guard wellFormed else { throw SnapshotDecodingError("table: a field is cut short or malformed") }
        clusterCount = clusters.count
        cluster = { [clusters] index throws(SnapshotDecodingError) in
            try Self.reading(bytes, clusters[index]) { entry throws(SnapshotDecodingError) in
                try Cluster(wire: entry, field: { "clusters[\(index)]" })
            }
        }
        self.certificates = certificates
        hostCount = hosts.count
        host = { [hosts] index, hasCluster, hasCertificate throws(SnapshotDecodingError) in
            try Self.reading(bytes, hosts[index]) { entry throws(SnapshotDecodingError) in
                try VirtualHost(wire: entry, field: { "virtualHosts[\(index)]" }, hasCluster: hasCluster, hasCertificate: hasCertificate)
            }
        }
        self.defaultCertificate = defaultCertificate
    }

    /// `body` with `bytes[range]`, where it lies.
    private static func reading<T>(
        _ bytes: [UInt8], _ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws(SnapshotDecodingError) -> T
    ) throws(SnapshotDecodingError) -> T {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(SnapshotDecodingError) in try body(UnsafeRawBufferPointer(rebasing: raw[range])) }
        }.get()
    }
}

/// The top-level fields of a serialised `Snapshot`, read without decoding its table: what a relay
/// needs to pass the bytes on before it decodes them.
public struct SnapshotHeader: Sendable, Equatable {
    /// The snapshot's own `version` field.
    public var version: UInt64
    /// The content hash the sender computed; the decoded table must hash to it.
    public var contentHash: UInt64
    /// Where the serialised `RouteTable` lies in the bytes.
    var table: Range<Int>

    public init(serializedSnapshot bytes: [UInt8]) throws(SnapshotDecodingError) {
        var version: UInt64 = 0
        var contentHash: UInt64 = 0
        var table: Range<Int> = 0..<0
        var problem: SnapshotDecodingError?
        let wellFormed = bytes.withUnsafeBytes { raw in
            ProtobufWire.forEachField(in: raw) { field in
                switch (field.number, field.wireType) {
                case (1, .varint): version = ProtobufWire.readVarint(raw, at: field.valueStart)?.value ?? 0
                case (2, .fixed64): contentHash = raw.loadUnaligned(fromByteOffset: field.valueStart, as: UInt64.self).littleEndian
                case (3, .lengthDelimited):
                    // Written more than once, the parts would merge: not what any sender writes.
                    if table.isEmpty, let payload = field.payload { table = payload } else { problem = SnapshotDecodingError("snapshot: the table appears twice") }
                case (1...3, _): problem = SnapshotDecodingError("snapshot: field \(field.number) has the wrong wire type")
                default: break
                }
                return problem == nil
            }
        }
        if let problem { throw problem }
        guard wellFormed else { throw SnapshotDecodingError("snapshot: a field is cut short or malformed") }
        self.version = version
        self.contentHash = contentHash
        self.table = table
    }
}

extension RouteTable {
    /// Decodes a serialised `Snapshot` entry by entry (see `TableSource`) and checks it against the
    /// content hash the sender computed; returns the snapshot's own version with the table.
    /// `onEveryCore` off: on the calling thread alone.
    public static func decoding(
        serializedSnapshot bytes: [UInt8], onEveryCore: Bool = true
    ) throws(SnapshotDecodingError) -> (version: UInt64, table: RouteTable) {
        let header = try SnapshotHeader(serializedSnapshot: bytes)
        let decoded = try RouteTable(source: try TableSource(serialized: bytes, table: header.table), parts: onEveryCore ? nil : 1)
        guard decoded.contentHash == header.contentHash else {
            throw SnapshotDecodingError(
                "content hash mismatch: the snapshot says \(String(header.contentHash, radix: 16)), the table hashes to \(decoded.contentHashHex)")
        }
        return (header.version, decoded)
    }
}
