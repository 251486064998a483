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

/// The little of protobuf's wire format that passing a field's bytes on and reading a table entry
/// by entry need.
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

    /// Where the field whose value starts at `offset` ends, and a length-delimited one's payload;
    /// nil when it runs past the end (or is a group, which proto3 has not).
    static func skip(_ wireType: WireType, in bytes: UnsafeRawBufferPointer, at offset: Int) -> (offset: Int, payload: Range<Int>?)? {
        switch wireType {
        case .varint:
            return readVarint(bytes, at: offset).map { ($0.next, nil) }
        case .fixed64:
            return offset + 8 <= bytes.count ? (offset + 8, nil) : nil
        case .fixed32:
            return offset + 4 <= bytes.count ? (offset + 4, nil) : nil
        case .lengthDelimited:
            guard let (length, start) = readVarint(bytes, at: offset), length <= UInt64(bytes.count - start) else { return nil }
            return (start + Int(length), start..<(start + Int(length)))
        case .startGroup, .endGroup:
            return nil
        }
    }

    /// One top-level field of a serialised message.
    struct Field {
        var number: UInt64
        var wireType: WireType
        /// From its tag to its end.
        var bytes: Range<Int>
        /// Where its value starts.
        var valueStart: Int
        /// A length-delimited field's payload.
        var payload: Range<Int>?
    }

    /// Calls `body` with each top-level field of a serialised message in order, until it returns
    /// false. Returns whether the bytes it went over were well-formed (no field cut short, no varint
    /// over ten bytes, no group, which proto3 has not).
    @discardableResult
    static func forEachField(in bytes: UnsafeRawBufferPointer, _ body: (Field) -> Bool) -> Bool {
        var offset = 0
        while offset < bytes.count {
            guard let (tag, afterTag) = readVarint(bytes, at: offset), let wireType = WireType(rawValue: tag & 7),
                let next = skip(wireType, in: bytes, at: afterTag)
            else { return false }
            let field = Field(number: tag >> 3, wireType: wireType, bytes: offset..<next.offset, valueStart: afterTag, payload: next.payload)
            guard body(field) else { return true }
            offset = next.offset
        }
        return true
    }

    /// The one length-delimited top-level field `number` of a serialised message: its bytes (tag and
    /// length included) and its payload's. Nil when it is absent, appears more than once (protobuf
    /// merges repeated occurrences of a message field, so no single range holds it), or the bytes are
    /// not well-formed.
    static func onlyLengthDelimitedField(_ number: UInt64, in bytes: UnsafeRawBufferPointer) -> (field: Range<Int>, payload: Range<Int>)? {
        var found: (field: Range<Int>, payload: Range<Int>)?
        var repeated = false
        let wellFormed = forEachField(in: bytes) { field in
            guard field.number == number, let payload = field.payload else { return true }
            guard found == nil else {
                repeated = true
                return false
            }
            found = (field.bytes, payload)
            return true
        }
        return wellFormed && !repeated ? found : nil
    }
}

/// A `WatchResponse` as received: a whole snapshot's bytes apart, unparsed, for `RouteTable.decoding`.
struct ReceivedWatchResponse: Sendable {
    /// Without its `snapshot` when `snapshotBytes` holds it.
    var message: Portico_V1_WatchResponse
    /// The serialised `snapshot` field.
    var snapshotBytes: [UInt8]?
}

/// Decodes `WatchResponse`s as the generated code does, except that a whole snapshot is left as
/// bytes: parsed entry by entry as the table is built, no message of the whole table is ever held.
struct WatchResponseDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> ReceivedWatchResponse {
        let split = serializedMessageBytes.withUnsafeBytes { raw -> (rest: [UInt8], snapshot: [UInt8])? in
            guard let (field, payload) = ProtobufWire.onlyLengthDelimitedField(3, in: raw) else { return nil }
            return (Array(raw[..<field.lowerBound]) + Array(raw[field.upperBound...]), Array(raw[payload]))
        }
        guard let split else {
            return ReceivedWatchResponse(message: try ProtobufDeserializer<Portico_V1_WatchResponse>().deserialize(serializedMessageBytes))
        }
        return ReceivedWatchResponse(message: try ProtobufDeserializer<Portico_V1_WatchResponse>().deserialize(split.rest), snapshotBytes: split.snapshot)
    }
}
