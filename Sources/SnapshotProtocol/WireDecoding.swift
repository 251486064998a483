import Foundation
import RouteModel
import SwiftProtobuf

/// The fields of one serialised message, in order, read where they lie.
///
/// A table's virtual hosts (with their routes) and clusters (with their endpoints) are built from
/// their bytes by `VirtualHost(wire:)` and `Cluster(wire:)`, with no generated message in between:
/// at 100k Ingresses, parsing into the generated messages, converting them and freeing them were
/// two thirds of a subscriber's decoding (perf of `RouteTable.decoding`), in every node agent and
/// worker on the first table's way. Reading follows protobuf's rules as the generated code applies
/// them: a scalar or string field written more than once reads as its last value, a message field
/// as the merge of its occurrences; a field of an unknown number, or of a known one with another
/// wire type, is skipped; strings must be UTF-8. Groups (which proto3 has not) are refused.
struct WireReader {
    enum Value {
        case varint(UInt64)
        case fixed64
        case fixed32
        case bytes(UnsafeRawBufferPointer)
    }

    private let bytes: UnsafeRawBufferPointer
    private var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// The next field's number and value; nil after the last. Throws, naming `field`, on bytes that
    /// are not a message: a field cut short, a varint of more than ten bytes, field number 0, a group.
    mutating func next(_ field: () -> String) throws(SnapshotDecodingError) -> (number: UInt64, value: Value)? {
        guard offset < bytes.count else { return nil }
        guard let (tag, afterTag) = ProtobufWire.readVarint(bytes, at: offset), tag >> 3 != 0,
            let wireType = ProtobufWire.WireType(rawValue: tag & 7)
        else { throw Self.malformed(field) }
        let value: Value
        switch wireType {
        case .varint:
            guard let (number, next) = ProtobufWire.readVarint(bytes, at: afterTag) else { throw Self.malformed(field) }
            value = .varint(number)
            offset = next
        case .lengthDelimited:
            guard let (length, start) = ProtobufWire.readVarint(bytes, at: afterTag), length <= UInt64(bytes.count - start) else {
                throw Self.malformed(field)
            }
            offset = start + Int(length)
            value = .bytes(UnsafeRawBufferPointer(rebasing: bytes[start..<offset]))
        case .fixed64, .fixed32:
            let size = wireType == .fixed64 ? 8 : 4
            guard afterTag + size <= bytes.count else { throw Self.malformed(field) }
            value = wireType == .fixed64 ? .fixed64 : .fixed32
            offset = afterTag + size
        case .startGroup, .endGroup:
            throw Self.malformed(field)
        }
        return (tag >> 3, value)
    }

    private static func malformed(_ field: () -> String) -> SnapshotDecodingError {
        SnapshotDecodingError("\(field()): a field is cut short or malformed")
    }
}

/// The UTF-8 text of a string field, in storage of its own.
func wireString(_ bytes: UnsafeRawBufferPointer, _ field: @autoclosure () -> String) throws(SnapshotDecodingError) -> String {
    let units = bytes.assumingMemoryBound(to: UInt8.self)
    let text = String(decoding: units, as: UTF8.self)
    // Decoding replaces what is not UTF-8, so the text's bytes differ; ASCII (nearly every name)
    // is UTF-8. (`String(validating:as:)` is generic: a third of its time went to metadata lookups.)
    guard units.allSatisfy({ $0 < 0x80 }) || text.utf8.elementsEqual(units) else {
        throw SnapshotDecodingError("\(field()): not UTF-8")
    }
    return text
}

/// A string field's text, reusing the previous one's storage when the bytes are the same: the
/// routes of a host mostly share their cluster and their Ingress, whose names would otherwise be
/// stored once per route in every worker.
struct WireStringReuse {
    private var last: (bytes: UnsafeRawBufferPointer, text: String)?

    mutating func text(_ bytes: UnsafeRawBufferPointer, _ field: @autoclosure () -> String) throws(SnapshotDecodingError) -> String {
        if let last, last.bytes.count == bytes.count, bytes.isEmpty || memcmp(last.bytes.baseAddress!, bytes.baseAddress!, bytes.count) == 0 {
            return last.text
        }
        let text = try wireString(bytes, field())
        last = (bytes, text)
        return text
    }
}

/// A `Backend` message as read, its strings not yet made: occurrences of it merge.
private struct WireBackend {
    var cluster = UnsafeRawBufferPointer(start: nil, count: 0)
    var namespace = UnsafeRawBufferPointer(start: nil, count: 0)
    var ingress = UnsafeRawBufferPointer(start: nil, count: 0)
    var httpsRedirect = false
    /// The options' bytes; occurrences of a message field merge as their concatenation parses.
    var options: [UInt8]?

    mutating func merge(_ bytes: UnsafeRawBufferPointer, _ field: () -> String) throws(SnapshotDecodingError) {
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next(field) {
            switch (number, value) {
            case (1, .bytes(let bytes)): cluster = bytes
            case (2, .bytes(let bytes)): namespace = bytes
            case (3, .bytes(let bytes)): ingress = bytes
            case (4, .varint(let value)): httpsRedirect = value != 0
            case (5, .bytes(let bytes)): options = (options ?? []) + Array(bytes)
            default: break
            }
        }
    }

    func backend(
        _ field: () -> String, clusters: (String) -> Bool, reuse: inout (cluster: WireStringReuse, namespace: WireStringReuse, ingress: WireStringReuse)
    ) throws(SnapshotDecodingError) -> Backend {
        let cluster = try reuse.cluster.text(self.cluster, "\(field()).cluster")
        guard clusters(cluster) else { throw SnapshotDecodingError("\(field()): no cluster named \(cluster)") }
        let source = RouteSource(
            namespace: try reuse.namespace.text(namespace, "\(field()).namespace"), ingress: try reuse.ingress.text(ingress, "\(field()).ingress"))
        // Empty options are the default ones: written by senders that set a field to its default.
        guard let options, !options.isEmpty else { return Backend(cluster: cluster, source: source, httpsRedirect: httpsRedirect) }
        let message: Portico_V1_RouteOptions
        do {
            message = try Portico_V1_RouteOptions(serializedBytes: options)
        } catch {
            throw SnapshotDecodingError("\(field()).options: \(error)")
        }
        return Backend(
            cluster: cluster, source: source, httpsRedirect: httpsRedirect, options: try RouteOptions(proto: message, field: field(), clusters: clusters))
    }
}

extension VirtualHost {
    /// Decodes and checks a serialised `VirtualHost` (see `WireReader`). `hasCluster` and
    /// `hasCertificate` say whether a name the host uses is in its table.
    init(
        wire bytes: UnsafeRawBufferPointer, field: () -> String, hasCluster: (String) -> Bool, hasCertificate: (String) -> Bool
    ) throws(SnapshotDecodingError) {
        // First the host's own fields, then its routes in a second pass: whether paths are
        // regular expressions may come after them.
        enum Name { case exact(UnsafeRawBufferPointer), wildcard(UnsafeRawBufferPointer), any(Bool) }
        var name: Name?
        var routeCount = 0
        var defaultBackend: WireBackend?
        var tls: (certificate: UnsafeRawBufferPointer, hsts: HSTSPolicy?)?
        var regexPaths = false
        var redirectToHost = UnsafeRawBufferPointer(start: nil, count: 0)
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next(field) {
            switch (number, value) {
            case (1, .bytes(let bytes)): name = .exact(bytes)
            case (2, .bytes(let bytes)): name = .wildcard(bytes)
            case (3, .varint(let value)): name = .any(value != 0)
            case (4, .bytes): routeCount += 1
            case (5, .bytes(let bytes)):
                var backend = defaultBackend ?? WireBackend()
                try backend.merge(bytes) { "\(field()).defaultBackend" }
                defaultBackend = backend
            case (6, .bytes(let bytes)):
                var binding = tls ?? (UnsafeRawBufferPointer(start: nil, count: 0), nil)
                var tlsReader = WireReader(bytes)
                let tlsField = { "\(field()).tls" }
                while let (number, value) = try tlsReader.next(tlsField) {
                    switch (number, value) {
                    case (1, .bytes(let bytes)): binding.certificate = bytes
                    case (2, .bytes(let bytes)):
                        var hsts = binding.hsts ?? HSTSPolicy(maxAgeSeconds: 0, includeSubdomains: false, preload: false)
                        var hstsReader = WireReader(bytes)
                        let hstsField = { "\(field()).tls.hsts" }
                        while let (number, value) = try hstsReader.next(hstsField) {
                            switch (number, value) {
                            case (1, .varint(let value)): hsts.maxAgeSeconds = Int(UInt32(truncatingIfNeeded: value))
                            case (2, .varint(let value)): hsts.includeSubdomains = value != 0
                            case (3, .varint(let value)): hsts.preload = value != 0
                            default: break
                            }
                        }
                        binding.hsts = hsts
                    default: break
                    }
                }
                tls = binding
            case (7, .varint(let value)): regexPaths = value != 0
            case (8, .bytes(let bytes)): redirectToHost = bytes
            default: break
            }
        }
        let hostname: HostPattern
        switch name {
        case .exact(let bytes)?:
            guard !bytes.isEmpty else { throw SnapshotDecodingError("\(field()): empty host") }
            hostname = .exact(try wireString(bytes, field()))
        case .wildcard(let bytes)?:
            guard !bytes.isEmpty else { throw SnapshotDecodingError("\(field()): empty wildcard suffix") }
            hostname = .wildcard(suffix: try wireString(bytes, field()))
        case .any(true)?: hostname = .any
        case .any(false)?, nil: throw SnapshotDecodingError("\(field()): no hostname")
        }

        var reuse = (cluster: WireStringReuse(), namespace: WireStringReuse(), ingress: WireStringReuse())
        var routes: [Route] = []
        routes.reserveCapacity(routeCount)
        reader = WireReader(bytes)
        while let (number, value) = try reader.next(field) {
            guard number == 4, case .bytes(let routeBytes) = value else { continue }
            let routeIndex = routes.count
            // Rendered only for an error: 225k routes at 100k Ingresses made as many strings.
            func routeField() -> String { "\(field()).routes[\(routeIndex)]" }
            var kind: PathMatchKind?
            var path = UnsafeRawBufferPointer(start: nil, count: 0)
            var backend: WireBackend?
            var routeReader = WireReader(routeBytes)
            while let (number, value) = try routeReader.next(routeField) {
                switch (number, value) {
                case (1, .varint(let value)): kind = PathMatchKind(wire: UInt32(truncatingIfNeeded: value))
                case (2, .bytes(let bytes)): path = bytes
                case (3, .bytes(let bytes)):
                    var merged = backend ?? WireBackend()
                    try merged.merge(bytes, routeField)
                    backend = merged
                default: break
                }
            }
            guard let kind else { throw SnapshotDecodingError("\(routeField()): no match kind") }
            let pathText = try wireString(path, "\(routeField()).path")
            guard pathText.hasPrefix("/") else { throw SnapshotDecodingError("\(routeField()): path must start with '/'") }
            guard let backend else { throw SnapshotDecodingError("\(routeField()): no backend") }
            if regexPaths {
                do {
                    _ = try PathRegex.compile(pathText, caseInsensitive: true)
                } catch {
                    throw SnapshotDecodingError("\(routeField()).path: not a regular expression: \(error)")
                }
            }
            routes.append(
                Route(
                    match: PathMatch(kind: kind, path: pathText),
                    backend: try backend.backend({ "\(routeField()).backend" }, clusters: hasCluster, reuse: &reuse)))
        }

        let redirect = try wireString(redirectToHost, "\(field()).redirectToHost")
        if !redirect.isEmpty, (try? HostPattern.parse(redirect)).map({ $0 != .exact(redirect) }) ?? true {
            throw SnapshotDecodingError("\(field()).redirectToHost: \"\(redirect)\" is not a host name")
        }
        var binding: TLSBinding?
        if let tls {
            let name = try wireString(tls.certificate, "\(field()).tls.certificate")
            guard name.isEmpty || hasCertificate(name) else {
                throw SnapshotDecodingError("\(field()).tls: no certificate named \(name)")
            }
            binding = TLSBinding(certificate: name.isEmpty ? nil : name, hsts: tls.hsts)
        }
        self.init(
            hostname: hostname, routes: routes,
            defaultBackend: try defaultBackend?.backend({ "\(field()).defaultBackend.backend" }, clusters: hasCluster, reuse: &reuse),
            tls: binding, regexPaths: regexPaths, redirectToHost: redirect.isEmpty ? nil : redirect)
    }
}

extension Cluster {
    /// Decodes and checks a serialised `Cluster` (see `WireReader`).
    init(wire bytes: UnsafeRawBufferPointer, field: () -> String) throws(SnapshotDecodingError) {
        var name = UnsafeRawBufferPointer(start: nil, count: 0)
        var namespace = name
        var service = name
        enum Port { case number(UInt32), name(UnsafeRawBufferPointer) }
        var port: Port?
        var endpoints: [Endpoint] = []
        var loadBalancingValue: UInt32 = 0
        var timeouts: ClusterTimeouts?
        var reader = WireReader(bytes)
        while let (number, value) = try reader.next(field) {
            switch (number, value) {
            case (1, .bytes(let bytes)): name = bytes
            case (2, .bytes(let bytes)): namespace = bytes
            case (3, .bytes(let bytes)): service = bytes
            case (4, .varint(let value)): port = .number(UInt32(truncatingIfNeeded: value))
            case (5, .bytes(let bytes)): port = .name(bytes)
            case (6, .bytes(let bytes)):
                let endpointIndex = endpoints.count
                func endpointField() -> String { "\(field()).endpoints[\(endpointIndex)]" }
                var address = UnsafeRawBufferPointer(start: nil, count: 0)
                var endpointPort: UInt32 = 0
                var endpointReader = WireReader(bytes)
                while let (number, value) = try endpointReader.next(endpointField) {
                    switch (number, value) {
                    case (1, .bytes(let bytes)): address = bytes
                    case (2, .varint(let value)): endpointPort = UInt32(truncatingIfNeeded: value)
                    default: break
                    }
                }
                let text = try wireString(address, "\(endpointField()).address")
                guard (1...65535).contains(endpointPort), !text.isEmpty else {
                    throw SnapshotDecodingError("\(endpointField()): invalid endpoint \(text):\(endpointPort)")
                }
                endpoints.append(Endpoint(address: text, port: Int(endpointPort)))
            case (7, .varint(let value)): loadBalancingValue = UInt32(truncatingIfNeeded: value)
            case (8, .bytes(let bytes)):
                var merged = timeouts ?? ClusterTimeouts(connectMilliseconds: 0, responseHeaderMilliseconds: 0, idleMilliseconds: 0)
                var timeoutsReader = WireReader(bytes)
                let timeoutsField = { "\(field()).timeouts" }
                while let (number, value) = try timeoutsReader.next(timeoutsField) {
                    switch (number, value) {
                    case (1, .varint(let value)): merged.connectMilliseconds = Int(UInt32(truncatingIfNeeded: value))
                    case (2, .varint(let value)): merged.responseHeaderMilliseconds = Int(UInt32(truncatingIfNeeded: value))
                    case (3, .varint(let value)): merged.idleMilliseconds = Int(UInt32(truncatingIfNeeded: value))
                    default: break
                    }
                }
                timeouts = merged
            default: break
            }
        }
        let servicePort: ServicePortReference
        switch port {
        case .number(let number)?: servicePort = .number(Int(number))
        case .name(let bytes)?: servicePort = .name(try wireString(bytes, "\(field()).portName"))
        case nil: throw SnapshotDecodingError("\(field()): no service port")
        }
        let loadBalancing: LoadBalancingPolicy
        switch loadBalancingValue {
        case 0: loadBalancing = .roundRobin
        case 1: loadBalancing = .leastRequest
        default: throw SnapshotDecodingError("\(field()): unknown load-balancing policy \(Int32(bitPattern: loadBalancingValue))")
        }
        self.init(
            namespace: try wireString(namespace, "\(field()).namespace"), service: try wireString(service, "\(field()).service"),
            servicePort: servicePort, endpoints: endpoints, loadBalancing: loadBalancing, timeouts: timeouts ?? .standard)
        let given = try wireString(name, "\(field()).name")
        guard self.name == given else {
            throw SnapshotDecodingError("\(field()): name \(given) does not match \(self.namespace)/\(self.service):\(servicePort)")
        }
    }
}

extension PathMatchKind {
    /// The kind a `PathMatchKind` enum value on the wire names; nil for none or one this version does not know.
    init?(wire value: UInt32) {
        switch value {
        case UInt32(Portico_V1_PathMatchKind.exact.rawValue): self = .exact
        case UInt32(Portico_V1_PathMatchKind.prefix.rawValue): self = .prefix
        case UInt32(Portico_V1_PathMatchKind.implementationSpecific.rawValue): self = .implementationSpecific
        default: return nil
        }
    }
}
