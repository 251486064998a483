import GRPCCore
import GRPCProtobuf
import RouteModel

/// A serialised `Snapshot` message as it came off the wire, with the version its own `version` field
/// holds. A relay passes these bytes on (to its subscribers and to its state file) instead of
/// encoding the decoded table again: at 100k Ingresses each encoding took the node agent about a
/// second of CPU, on the first table's way to the workers.
public struct EncodedSnapshot: Sendable, Equatable {
    public var version: UInt64
    public var bytes: [UInt8]

    public init(version: UInt64, bytes: [UInt8]) {
        self.version = version
        self.bytes = bytes
    }

    /// `table` at `version`, encoded (in parts on every core for a large table, see `PartedCoding`).
    public init(version: UInt64, encoding table: RouteTable) {
        self.init(version: version, bytes: PartedCoding.snapshotBytes(version: version, table: table))
    }

    /// A serialised `WatchResponse` with `version` and these bytes as its `snapshot`, or nil when
    /// they carry another version than `version` (the caller then encodes the table itself).
    func watchResponse(version: UInt64) -> [UInt8]? {
        guard version == self.version else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(self.bytes.count + 2 * ProtobufWire.maxVarintBytes + 2)
        ProtobufWire.appendVarint(ProtobufWire.tag(field: 1, wireType: .varint), to: &bytes)
        ProtobufWire.appendVarint(version, to: &bytes)
        ProtobufWire.appendVarint(ProtobufWire.tag(field: 3, wireType: .lengthDelimited), to: &bytes)
        ProtobufWire.appendVarint(UInt64(self.bytes.count), to: &bytes)
        bytes += self.bytes
        return bytes
    }
}

/// The little of protobuf's wire format that finding one field's bytes needs.
enum ProtobufWire {
    enum WireType: UInt64 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    static let maxVarintBytes = 10

    static func tag(field: UInt64, wireType: WireType) -> UInt64 { field << 3 | wireType.rawValue }

    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// The varint at `offset`, and the offset after it; nil when it runs past the end or over ten bytes.
    static func readVarint(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> (value: UInt64, next: Int)? {
        var value: UInt64 = 0
        var offset = offset
        for shift in stride(from: 0, to: 64, by: 7) {
            guard offset < bytes.count else { return nil }
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7f) << UInt64(shift)
            if byte < 0x80 { return (value, offset) }
        }
        return nil
    }

    /// The byte range of the one length-delimited top-level field `field` in a serialised message;
    /// nil when it is absent, appears more than once (protobuf merges repeated occurrences of a
    /// message field, so no single range holds it), or the bytes are not well-formed.
    static func onlyLengthDelimitedField(_ field: UInt64, in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        var found: Range<Int>?
        var offset = 0
        while offset < bytes.count {
            guard let (tag, afterTag) = readVarint(bytes, at: offset), let wireType = WireType(rawValue: tag & 7) else { return nil }
            offset = afterTag
            switch wireType {
            case .varint:
                guard let (_, next) = readVarint(bytes, at: offset) else { return nil }
                offset = next
            case .fixed64:
                offset += 8
            case .fixed32:
                offset += 4
            case .lengthDelimited:
                guard let (length, start) = readVarint(bytes, at: offset), length <= UInt64(bytes.count - start) else { return nil }
                offset = start + Int(length)
                if tag >> 3 == field {
                    guard found == nil else { return nil }
                    found = start..<offset
                }
            case .startGroup, .endGroup:
                return nil  // proto3 has no groups
            }
            guard offset <= bytes.count else { return nil }
        }
        return found
    }
}

/// A `WatchResponse` as received, with its `snapshot` field's bytes when the subscriber relays.
struct ReceivedWatchResponse: Sendable {
    var message: Portico_V1_WatchResponse
    /// The serialised `snapshot` field, kept only when asked for and only for a whole snapshot.
    var encodedSnapshot: EncodedSnapshot?
}

/// Decodes `WatchResponse`s as the generated code does, and keeps the `snapshot` field's bytes
/// when `keepsEncodedSnapshots` (node agents).
struct WatchResponseDeserializer: MessageDeserializer {
    let keepsEncodedSnapshots: Bool

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> ReceivedWatchResponse {
        let message = try ProtobufDeserializer<Portico_V1_WatchResponse>().deserialize(serializedMessageBytes)
        guard keepsEncodedSnapshots, message.hasSnapshot else { return ReceivedWatchResponse(message: message) }
        let bytes = serializedMessageBytes.withUnsafeBytes { raw in
            ProtobufWire.onlyLengthDelimitedField(3, in: raw).map { Array(raw[$0]) }
        }
        return ReceivedWatchResponse(message: message, encodedSnapshot: bytes.map { EncodedSnapshot(version: message.snapshot.version, bytes: $0) })
    }
}
