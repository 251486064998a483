import RouteModel

/// Writes protobuf's wire form straight from model values: the mirror of `WireReader`, for the
/// entries of a whole snapshot (virtual hosts and clusters), which are most of its bytes. The
/// bytes are the ones swift-protobuf writes for the same messages (fields in number order, proto3
/// defaults left out, a set oneof member always written), so either side may read the other's;
/// the tests compare them byte for byte. Building the generated messages first and serialising them
/// was most of the control plane's encoding of a 100k-Ingress table. Route options, which few
/// routes carry, still go through the generated message.
struct WireWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    @inline(__always)
    mutating func varint(_ value: UInt64) { ProtobufWire.appendVarint(value, to: &bytes) }

    @inline(__always)
    mutating func tag(_ field: UInt64, _ wireType: ProtobufWire.WireType) {
        varint(ProtobufWire.tag(field: field, wireType: wireType))
    }

    /// A varint field, left out when 0 unless `always` (a oneof member).
    mutating func uint(_ field: UInt64, _ value: UInt64, always: Bool = false) {
        guard value != 0 || always else { return }
        tag(field, .varint)
        varint(value)
    }

    mutating func bool(_ field: UInt64, _ value: Bool, always: Bool = false) {
        guard value || always else { return }
        tag(field, .varint)
        bytes.append(value ? 1 : 0)
    }

    /// A string field, left out when empty unless `always` (a oneof member).
    mutating func string(_ field: UInt64, _ value: String, always: Bool = false) {
        guard !value.isEmpty || always else { return }
        tag(field, .lengthDelimited)
        var value = value
        value.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// A length-delimited field holding `payload` as it is (a message serialised elsewhere).
    mutating func raw(_ field: UInt64, _ payload: [UInt8]) {
        tag(field, .lengthDelimited)
        varint(UInt64(payload.count))
        bytes.append(contentsOf: payload)
    }

    /// A message field whose fields `body` writes. Its length goes before it: one byte is kept for
    /// it, and the body moved along in the rare case of a message of 128 bytes or more.
    mutating func message(_ field: UInt64, _ body: (inout WireWriter) -> Void) {
        tag(field, .lengthDelimited)
        let start = bytes.count
        bytes.append(0)
        body(&self)
        let length = bytes.count - start - 1
        if length < 0x80 {
            bytes[start] = UInt8(length)
            return
        }
        var prefix: [UInt8] = []
        ProtobufWire.appendVarint(UInt64(length), to: &prefix)
        bytes[start] = prefix[0]
        bytes.insert(contentsOf: prefix[1...], at: start + 1)
    }
}

extension VirtualHost {
    /// This host's `VirtualHost` message fields, as `proto`'s serialisation writes them.
    func write(to writer: inout WireWriter) {
        switch hostname {
        case .exact(let name): writer.string(1, name, always: true)
        case .wildcard(let suffix): writer.string(2, suffix, always: true)
        case .any: writer.bool(3, true, always: true)
        }
        for route in routes {
            writer.message(4) { writer in
                writer.uint(1, UInt64(route.match.kind.proto.rawValue))
                writer.string(2, route.match.path)
                writer.message(3) { route.backend.write(to: &$0) }
            }
        }
        if let defaultBackend { writer.message(5) { defaultBackend.write(to: &$0) } }
        if let tls {
            writer.message(6) { writer in
                writer.string(1, tls.certificate ?? "")
                if let hsts = tls.hsts {
                    writer.message(2) { writer in
                        writer.uint(1, UInt64(UInt32(clamping: hsts.maxAgeSeconds)))
                        writer.bool(2, hsts.includeSubdomains)
                        writer.bool(3, hsts.preload)
                    }
                }
            }
        }
        writer.bool(7, regexPaths)
        writer.string(8, redirectToHost ?? "")
    }
}

extension Backend {
    func write(to writer: inout WireWriter) {
        writer.string(1, cluster)
        writer.string(2, source.namespace)
        writer.string(3, source.ingress)
        writer.bool(4, httpsRedirect)
        // Default options (nearly every route) are no message at all, as in `proto`.
        guard options != RouteOptions() else { return }
        let message = proto
        // Serialising a message that holds only set, valid fields cannot fail.
        if message.hasOptions, let payload: [UInt8] = try? message.options.serializedBytes() { writer.raw(5, payload) }
    }
}

extension Cluster {
    /// This cluster's `Cluster` message fields, as `proto`'s serialisation writes them.
    func write(to writer: inout WireWriter) {
        writer.string(1, name)
        writer.string(2, namespace)
        writer.string(3, service)
        switch servicePort {
        case .number(let number): writer.uint(4, UInt64(UInt32(clamping: number)), always: true)
        case .name(let name): writer.string(5, name, always: true)
        }
        for endpoint in endpoints {
            writer.message(6) { writer in
                writer.string(1, endpoint.address)
                writer.uint(2, UInt64(UInt32(clamping: endpoint.port)))
            }
        }
        writer.uint(7, loadBalancing == .roundRobin ? 0 : UInt64(Portico_V1_LoadBalancingPolicy.leastRequest.rawValue))
        writer.message(8) { writer in
            writer.uint(1, UInt64(UInt32(clamping: timeouts.connectMilliseconds)))
            writer.uint(2, UInt64(UInt32(clamping: timeouts.responseHeaderMilliseconds)))
            writer.uint(3, UInt64(UInt32(clamping: timeouts.idleMilliseconds)))
        }
    }
}
