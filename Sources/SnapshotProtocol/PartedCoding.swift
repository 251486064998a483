import Dispatch
import Foundation
import RouteModel
import Synchronization

/// Whole snapshots of large tables, encoded and converted on every core.
///
/// At 100k Ingresses a snapshot is 25 MB: encoding it took the control plane 0.8 s and converting
/// it each subscriber about half a second, one core each, on the first table's way to the workers.
/// Protobuf reads a message written as several encodings of itself one after another as their
/// merge, and a repeated field's entries as appended in order: so a table is encoded in parts
/// (each a `RouteTable` with a run of the virtual hosts, clusters and certificates), concurrently,
/// and the parts are joined.
enum PartedCoding {
    /// Tables with fewer virtual hosts than this are coded in one part: below it, the threads cost
    /// more than they save.
    static let partThreshold = 4096

    /// How many parts a table of `count` entries is coded in.
    static func parts(for count: Int) -> Int {
        guard count >= partThreshold else { return 1 }
        return min(max(ProcessInfo.processInfo.activeProcessorCount, 1), 8)
    }

    /// The part `part` of `parts` of `0..<count`, in order, sizes differing by one at most.
    static func range(_ part: Int, of parts: Int, count: Int) -> Range<Int> {
        (count * part / parts)..<(count * (part + 1) / parts)
    }

    /// Runs `body` for each part on the cores and returns the results in part order.
    static func map<T: Sendable>(parts: Int, _ body: @Sendable (Int) -> T) -> [T] {
        guard parts > 1 else { return [body(0)] }
        let results = PartResults<T>(count: parts)
        DispatchQueue.concurrentPerform(iterations: parts) { part in results.set(part, body(part)) }
        return results.values
    }

    /// A serialised `RouteTable` message of `table`, in parts for a large one.
    static func routeTableBytes(_ table: RouteTable, includePrivateKeys: Bool, parts: Int? = nil) -> [UInt8] {
        let parts = parts ?? Self.parts(for: table.virtualHosts.count)
        let encoded = map(parts: parts) { part -> [UInt8] in
            var message = Portico_V1_RouteTable()
            message.virtualHosts = table.virtualHosts[range(part, of: parts, count: table.virtualHosts.count)].map(\.proto)
            message.clusters = table.clusters[range(part, of: parts, count: table.clusters.count)].map(\.proto)
            message.certificates = table.certificates[range(part, of: parts, count: table.certificates.count)].map {
                $0.proto(includePrivateKey: includePrivateKeys)
            }
            // A string field written more than once reads as its last value: written once.
            if part == parts - 1 { message.defaultCertificate = table.defaultCertificate ?? "" }
            // Serialising a message that holds only set, valid fields cannot fail.
            return (try? message.serializedBytes()) ?? []
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

/// Each part's result, written once by the thread that made it.
private final class PartResults<T: Sendable>: Sendable {
    private let slots: Mutex<[T?]>

    init(count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }

    func set(_ index: Int, _ value: T) { slots.withLock { $0[index] = value } }

    var values: [T] { slots.withLock { $0.map { $0! } } }
}
