import Foundation

/// Reading LIST pages, WATCH events and objects from an API server's JSON with `KubeJSONReader`.
///
/// Each reader below gives what the type's Codable conformance gives for the same document (tested
/// against JSONDecoder); Codable stays for manifests, writes and every other type.
public enum KubeJSON {
    /// A LIST response.
    /// `capacity`: how many items to make room for at once (a page's `limit`): grown step by step,
    /// a page of 500 large objects was copied nine times.
    public static func list<Object: KubeObject>(
        _: Object.Type, from bytes: UnsafeRawBufferPointer, capacity: Int = 0
    ) throws(KubeJSONError) -> KubeList<Object> {
        try document(bytes) { reader throws(KubeJSONError) in
            try reader.beginObject()
            var metadata = ListMeta()
            var items: [Object] = []
            while let key = try reader.nextKey() {
                switch key {
                case "metadata": if !reader.null() { metadata = try ListMeta(kubeJSON: &reader) }
                case "items":
                    guard !reader.null() else { continue }
                    try reader.beginArray()
                    items.reserveCapacity(capacity)
                    while try reader.nextElement() { items.append(try Object.read(kubeJSON: &reader)) }
                default: try reader.skipValue()
                }
            }
            return KubeList(metadata: metadata, items: items)
        }
    }

    /// A LIST response's metadata, read without its items when it comes before them (as API
    /// servers write it); nil when the items come first or there is no metadata.
    public static func listMetadata(from bytes: UnsafeRawBufferPointer) throws(KubeJSONError) -> ListMeta? {
        var reader = KubeJSONReader(bytes)
        try reader.beginObject()
        while let key = try reader.nextKey() {
            switch key {
            case "metadata": return reader.null() ? nil : try ListMeta(kubeJSON: &reader)
            case "items": return nil
            default: try reader.skipValue()
            }
        }
        return nil
    }

    /// One line of a WATCH stream.
    public static func watchEvent<Object: KubeObject>(_: Object.Type, from bytes: UnsafeRawBufferPointer) throws(KubeJSONError) -> WatchEvent<Object> {
        try document(bytes) { reader throws(KubeJSONError) in
            let start = reader.index
            try reader.beginObject()
            var type: String?
            var event: WatchEvent<Object>?
            // The object is read where it stands when its type came first (as API servers write
            // events); else its place is kept and it is read once the type is known.
            var objectAt: Int?
            while let key = try reader.nextKey() {
                switch key {
                case "type": type = try reader.string()
                case "object":
                    if let type {
                        event = try watchObject(type, &reader)
                    } else {
                        objectAt = try reader.valueRange().lowerBound
                    }
                default: try reader.skipValue()
                }
            }
            guard let type else { throw reader.failure("missing required field \"type\"", at: start) }
            if let event { return event }
            guard let objectAt else { throw reader.failure("missing required field \"object\"", at: start) }
            var objectReader = KubeJSONReader(reader.bytes, at: objectAt)
            return try watchObject(type, &objectReader)
        }
    }

    private static func watchObject<Object: KubeObject>(_ type: String, _ reader: inout KubeJSONReader) throws(KubeJSONError) -> WatchEvent<Object> {
        switch type {
        case "ADDED": return .added(try Object.read(kubeJSON: &reader))
        case "MODIFIED": return .modified(try Object.read(kubeJSON: &reader))
        case "DELETED": return .deleted(try Object.read(kubeJSON: &reader))
        case "BOOKMARK":
            // Only metadata.resourceVersion is set in a bookmark's object.
            var resourceVersion: String?
            try reader.beginObject()
            while let key = try reader.nextKey() {
                guard case "metadata" = key, !reader.null() else {
                    try reader.skipValue()
                    continue
                }
                try reader.beginObject()
                while let field = try reader.nextKey() {
                    if case "resourceVersion" = field { resourceVersion = try reader.optionalString() } else { try reader.skipValue() }
                }
            }
            return .bookmark(resourceVersion: resourceVersion ?? "")
        case "ERROR": return .error(try KubeStatus(kubeJSON: &reader))
        default: throw reader.failure("unknown watch event type \(type)")
        }
    }

    /// One object.
    public static func object<Object: KubeObject>(_: Object.Type, from bytes: UnsafeRawBufferPointer) throws(KubeJSONError) -> Object {
        try document(bytes) { reader throws(KubeJSONError) in try Object.read(kubeJSON: &reader) }
    }

    /// `body` over the whole of `bytes`; an error gets the field path to where it happened.
    private static func document<T>(
        _ bytes: UnsafeRawBufferPointer, _ body: (inout KubeJSONReader) throws(KubeJSONError) -> T
    ) throws(KubeJSONError) -> T {
        var reader = KubeJSONReader(bytes)
        do {
            let value = try body(&reader)
            try reader.finish()
            return value
        } catch {
            var located = error
            located.fieldPath = KubeJSONReader.fieldPath(to: error.offset, in: bytes)
            throw located
        }
    }
}

extension KubeObject {
    /// Through JSONDecoder, for the kinds without a reader of their own (Lease, Event).
    public static func read(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) -> Self {
        let range = try reader.valueRange()
        do {
            return try JSONDecoder().decode(Self.self, from: Data(UnsafeRawBufferPointer(rebasing: reader.bytes[range])))
        } catch let error as DecodingError {
            let path = error.fieldPath
            throw reader.failure((path.isEmpty ? "" : "\(path): ") + error.problem, at: range.lowerBound)
        } catch {
            throw reader.failure("\(error)", at: range.lowerBound)
        }
    }
}

extension KubeJSONReader {
    /// The reading position after whitespace: where the next value starts, for messages.
    mutating func valueStart() -> Int {
        skipWhitespace()
        return index
    }

    func required<T>(_ value: T?, _ field: StaticString, of start: Int) throws(KubeJSONError) -> T {
        guard let value else { throw failure("missing required field \"\(field)\"", at: start) }
        return value
    }

    /// An object of type `T` or null.
    mutating func optional<T>(_ read: (inout KubeJSONReader) throws(KubeJSONError) -> T) throws(KubeJSONError) -> T? {
        null() ? nil : try read(&self)
    }

    mutating func optionalStrings() throws(KubeJSONError) -> [String]? {
        try optionalArray { reader throws(KubeJSONError) in try reader.string() }
    }
}

// MARK: - Metadata and lists

extension ObjectMeta {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        let start = reader.valueStart()
        try reader.beginObject()
        var name: String?
        self.init(name: "")
        while let key = try reader.nextKey() {
            switch key {
            case "name": name = try reader.string()
            case "namespace": namespace = try reader.optionalString()
            case "uid": uid = try reader.optionalString()
            case "resourceVersion": resourceVersion = try reader.optionalString()
            case "generation": generation = try reader.optionalInteger(Int64.self)
            case "creationTimestamp": creationTimestamp = try reader.optional { reader throws(KubeJSONError) in try KubeTime(kubeJSON: &reader) }
            case "labels": labels = try reader.optionalStringMap()
            case "annotations": annotations = try reader.optionalStringMap()
            default: try reader.skipValue()
            }
        }
        self.name = try reader.required(name, "name", of: start)
    }
}

extension ListMeta {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init()
        while let key = try reader.nextKey() {
            switch key {
            case "resourceVersion": resourceVersion = try reader.optionalString()
            case "continue": self.continue = try reader.optionalString()
            case "remainingItemCount": remainingItemCount = try reader.optionalInteger(Int.self)
            default: try reader.skipValue()
            }
        }
    }
}

extension KubeStatus {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init(code: nil, reason: nil, message: nil)
        while let key = try reader.nextKey() {
            switch key {
            case "code": code = try reader.optionalInteger(Int.self)
            case "reason": reason = try reader.optionalString()
            case "message": message = try reader.optionalString()
            default: try reader.skipValue()
            }
        }
    }
}

extension KubeTime {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        let start = reader.valueStart()
        let text = try reader.string()
        guard let time = KubeTime(rfc3339: text) else {
            throw reader.failure("expected an RFC 3339 time such as 2024-01-02T15:04:05Z, found \"\(text)\"", at: start)
        }
        self = time
    }
}

// MARK: - Ingress and IngressClass

extension Ingress {
    public static func read(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) -> Ingress {
        let start = reader.valueStart()
        try reader.beginObject()
        var metadata: ObjectMeta?
        var ingress = Ingress(metadata: ObjectMeta(name: ""))
        while let key = try reader.nextKey() {
            switch key {
            case "metadata": metadata = try ObjectMeta(kubeJSON: &reader)
            case "spec": ingress.spec = try reader.optional { reader throws(KubeJSONError) in try IngressSpec(kubeJSON: &reader) }
            case "status": ingress.status = try reader.optional { reader throws(KubeJSONError) in try IngressStatus(kubeJSON: &reader) }
            default: try reader.skipValue()
            }
        }
        ingress.metadata = try reader.required(metadata, "metadata", of: start)
        return ingress
    }
}

extension IngressSpec {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init()
        while let key = try reader.nextKey() {
            switch key {
            case "ingressClassName": ingressClassName = try reader.optionalString()
            case "defaultBackend": defaultBackend = try reader.optional { reader throws(KubeJSONError) in try IngressBackend(kubeJSON: &reader) }
            case "tls": tls = try reader.optionalArray { reader throws(KubeJSONError) in try IngressTLS(kubeJSON: &reader) }
            case "rules": rules = try reader.optionalArray { reader throws(KubeJSONError) in try IngressRule(kubeJSON: &reader) }
            default: try reader.skipValue()
            }
        }
    }
}

extension IngressBackend {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init()
        while let key = try reader.nextKey() {
            switch key {
            case "service": service = try reader.optional { reader throws(KubeJSONError) in try IngressServiceBackend(kubeJSON: &reader) }
            case "resource": resource = try reader.optional { reader throws(KubeJSONError) in try TypedLocalObjectReference(kubeJSON: &reader) }
            default: try reader.skipValue()
            }
        }
    }
}

extension IngressServiceBackend {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        let start = reader.valueStart()
        try reader.beginObject()
        var name: String?
        var port: ServiceBackendPort?
        while let key = try reader.nextKey() {
            switch key {
            case "name": name = try reader.string()
            case "port": port = try reader.optional { reader throws(KubeJSONError) in try ServiceBackendPort(kubeJSON: &reader) }
            default: try reader.skipValue()
            }
        }
        self.init(name: try reader.required(name, "name", of: start), port: port)
    }
}

extension ServiceBackendPort {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init()
        while let key = try reader.nextKey() {
            switch key {
            case "name": name = try reader.optionalString()
            case "number": number = try reader.optionalInteger(Int32.self)
            default: try reader.skipValue()
            }
        }
    }
}

extension TypedLocalObjectReference {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        let start = reader.valueStart()
        try reader.beginObject()
        var apiGroup: String?
        var kind: String?
        var name: String?
        while let key = try reader.nextKey() {
            switch key {
            case "apiGroup": apiGroup = try reader.optionalString()
            case "kind": kind = try reader.string()
            case "name": name = try reader.string()
            default: try reader.skipValue()
            }
        }
        self.init(apiGroup: apiGroup, kind: try reader.required(kind, "kind", of: start), name: try reader.required(name, "name", of: start))
    }
}

extension IngressTLS {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init()
        while let key = try reader.nextKey() {
            switch key {
            case "hosts": hosts = try reader.optionalStrings()
            case "secretName": secretName = try reader.optionalString()
            default: try reader.skipValue()
            }
        }
    }
}

extension IngressRule {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init()
        while let key = try reader.nextKey() {
            switch key {
            case "host": host = try reader.optionalString()
            case "http": http = try reader.optional { reader throws(KubeJSONError) in try HTTPIngressRuleValue(kubeJSON: &reader) }
            default: try reader.skipValue()
            }
        }
    }
}

extension HTTPIngressRuleValue {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        let start = reader.valueStart()
        try reader.beginObject()
        var paths: [HTTPIngressPath]?
        while let key = try reader.nextKey() {
            switch key {
            case "paths": paths = try reader.array { reader throws(KubeJSONError) in try HTTPIngressPath(kubeJSON: &reader) }
            default: try reader.skipValue()
            }
        }
        self.init(paths: try reader.required(paths, "paths", of: start))
    }
}

extension HTTPIngressPath {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        let start = reader.valueStart()
        try reader.beginObject()
        var path: String?
        var pathType: String?
        var backend: IngressBackend?
        while let key = try reader.nextKey() {
            switch key {
            case "path": path = try reader.optionalString()
            case "pathType": pathType = try reader.optionalString()
            case "backend": backend = try IngressBackend(kubeJSON: &reader)
            default: try reader.skipValue()
            }
        }
        self.init(path: path, pathType: pathType, backend: try reader.required(backend, "backend", of: start))
    }
}

extension IngressStatus {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init()
        while let key = try reader.nextKey() {
            switch key {
            case "loadBalancer":
                loadBalancer = try reader.optional { reader throws(KubeJSONError) in
                    try reader.beginObject()
                    var status = IngressLoadBalancerStatus()
                    while let key = try reader.nextKey() {
                        switch key {
                        case "ingress": status.ingress = try reader.optionalArray { reader throws(KubeJSONError) in try IngressLoadBalancerIngress(kubeJSON: &reader) }
                        default: try reader.skipValue()
                        }
                    }
                    return status
                }
            default: try reader.skipValue()
            }
        }
    }
}

extension IngressLoadBalancerIngress {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init()
        while let key = try reader.nextKey() {
            switch key {
            case "ip": ip = try reader.optionalString()
            case "hostname": hostname = try reader.optionalString()
            case "ports":
                ports = try reader.optionalArray { reader throws(KubeJSONError) in
                    let start = reader.valueStart()
                    try reader.beginObject()
                    var port: Int32?
                    var portProtocol: String?
                    var error: String?
                    while let key = try reader.nextKey() {
                        switch key {
                        case "port": port = try reader.integer(Int32.self)
                        case "protocol": portProtocol = try reader.string()
                        case "error": error = try reader.optionalString()
                        default: try reader.skipValue()
                        }
                    }
                    return IngressPortStatus(
                        port: try reader.required(port, "port", of: start), protocol: try reader.required(portProtocol, "protocol", of: start),
                        error: error)
                }
            default: try reader.skipValue()
            }
        }
    }
}

extension IngressClass {
    public static func read(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) -> IngressClass {
        let start = reader.valueStart()
        try reader.beginObject()
        var metadata: ObjectMeta?
        var spec: IngressClassSpec?
        while let key = try reader.nextKey() {
            switch key {
            case "metadata": metadata = try ObjectMeta(kubeJSON: &reader)
            case "spec": spec = try reader.optional { reader throws(KubeJSONError) in try IngressClassSpec(kubeJSON: &reader) }
            default: try reader.skipValue()
            }
        }
        return IngressClass(metadata: try reader.required(metadata, "metadata", of: start), spec: spec)
    }
}

extension IngressClassSpec {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init()
        while let key = try reader.nextKey() {
            switch key {
            case "controller": controller = try reader.optionalString()
            case "parameters":
                parameters = try reader.optional { reader throws(KubeJSONError) in
                    let start = reader.valueStart()
                    try reader.beginObject()
                    var apiGroup: String?
                    var kind: String?
                    var name: String?
                    var namespace: String?
                    var scope: String?
                    while let key = try reader.nextKey() {
                        switch key {
                        case "apiGroup": apiGroup = try reader.optionalString()
                        case "kind": kind = try reader.string()
                        case "name": name = try reader.string()
                        case "namespace": namespace = try reader.optionalString()
                        case "scope": scope = try reader.optionalString()
                        default: try reader.skipValue()
                        }
                    }
                    return IngressClassParametersReference(
                        apiGroup: apiGroup, kind: try reader.required(kind, "kind", of: start),
                        name: try reader.required(name, "name", of: start), namespace: namespace, scope: scope)
                }
            default: try reader.skipValue()
            }
        }
    }
}

// MARK: - Service

extension Service {
    public static func read(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) -> Service {
        let start = reader.valueStart()
        try reader.beginObject()
        var metadata: ObjectMeta?
        var service = Service(metadata: ObjectMeta(name: ""))
        while let key = try reader.nextKey() {
            switch key {
            case "metadata": metadata = try ObjectMeta(kubeJSON: &reader)
            case "spec": service.spec = try reader.optional { reader throws(KubeJSONError) in try ServiceSpec(kubeJSON: &reader) }
            case "status":
                service.status = try reader.optional { reader throws(KubeJSONError) in
                    try reader.beginObject()
                    var status = ServiceStatus()
                    while let key = try reader.nextKey() {
                        guard case "loadBalancer" = key else {
                            try reader.skipValue()
                            continue
                        }
                        status.loadBalancer = try reader.optional { reader throws(KubeJSONError) in
                            try reader.beginObject()
                            var balancer = LoadBalancerStatus()
                            while let key = try reader.nextKey() {
                                guard case "ingress" = key else {
                                    try reader.skipValue()
                                    continue
                                }
                                balancer.ingress = try reader.optionalArray { reader throws(KubeJSONError) in
                                    try reader.beginObject()
                                    var ingress = LoadBalancerIngress()
                                    while let key = try reader.nextKey() {
                                        switch key {
                                        case "ip": ingress.ip = try reader.optionalString()
                                        case "hostname": ingress.hostname = try reader.optionalString()
                                        default: try reader.skipValue()
                                        }
                                    }
                                    return ingress
                                }
                            }
                            return balancer
                        }
                    }
                    return status
                }
            default: try reader.skipValue()
            }
        }
        service.metadata = try reader.required(metadata, "metadata", of: start)
        return service
    }
}

extension ServiceSpec {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init()
        while let key = try reader.nextKey() {
            switch key {
            case "type": type = try reader.optionalString()
            case "externalName": externalName = try reader.optionalString()
            case "ports": ports = try reader.optionalArray { reader throws(KubeJSONError) in try ServicePort(kubeJSON: &reader) }
            case "clusterIP": clusterIP = try reader.optionalString()
            case "externalIPs": externalIPs = try reader.optionalStrings()
            case "selector": selector = try reader.optionalStringMap()
            default: try reader.skipValue()
            }
        }
    }
}

extension ServicePort {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        let start = reader.valueStart()
        try reader.beginObject()
        var port: Int32?
        var name: String?
        var targetPort: IntOrString?
        var portProtocol: String?
        var appProtocol: String?
        while let key = try reader.nextKey() {
            switch key {
            case "name": name = try reader.optionalString()
            case "port": port = try reader.integer(Int32.self)
            case "targetPort": targetPort = try reader.optional { reader throws(KubeJSONError) in try IntOrString(kubeJSON: &reader) }
            case "protocol": portProtocol = try reader.optionalString()
            case "appProtocol": appProtocol = try reader.optionalString()
            default: try reader.skipValue()
            }
        }
        self.init(
            name: name, port: try reader.required(port, "port", of: start), targetPort: targetPort, protocol: portProtocol,
            appProtocol: appProtocol)
    }
}

extension IntOrString {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        reader.skipWhitespace()
        switch reader.peek() {
        case UInt8(ascii: "\""): self = .string(try reader.string())
        case UInt8(ascii: "-"), .some(UInt8(ascii: "0")...UInt8(ascii: "9")): self = .int(try reader.integer(Int32.self))
        default: throw reader.mismatch("an integer or a string")
        }
    }
}

// MARK: - EndpointSlice

extension EndpointSlice {
    public static func read(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) -> EndpointSlice {
        let start = reader.valueStart()
        try reader.beginObject()
        var metadata: ObjectMeta?
        var addressType: String?
        var endpoints: [EndpointSliceEndpoint]?
        var ports: [EndpointSlicePort]?
        while let key = try reader.nextKey() {
            switch key {
            case "metadata": metadata = try ObjectMeta(kubeJSON: &reader)
            case "addressType": addressType = try reader.string()
            case "endpoints": endpoints = try reader.optionalArray { reader throws(KubeJSONError) in try EndpointSliceEndpoint(kubeJSON: &reader) }
            case "ports": ports = try reader.optionalArray { reader throws(KubeJSONError) in try EndpointSlicePort(kubeJSON: &reader) }
            default: try reader.skipValue()
            }
        }
        return EndpointSlice(
            metadata: try reader.required(metadata, "metadata", of: start), addressType: try reader.required(addressType, "addressType", of: start),
            endpoints: endpoints, ports: ports)
    }
}

extension EndpointSliceEndpoint {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        let start = reader.valueStart()
        try reader.beginObject()
        var addresses: [String]?
        var endpoint = EndpointSliceEndpoint(addresses: [])
        while let key = try reader.nextKey() {
            switch key {
            case "addresses": addresses = try reader.array { reader throws(KubeJSONError) in try reader.string() }
            case "conditions":
                endpoint.conditions = try reader.optional { reader throws(KubeJSONError) in
                    try reader.beginObject()
                    var conditions = EndpointConditions()
                    while let key = try reader.nextKey() {
                        switch key {
                        case "ready": conditions.ready = try reader.optionalBool()
                        case "serving": conditions.serving = try reader.optionalBool()
                        case "terminating": conditions.terminating = try reader.optionalBool()
                        default: try reader.skipValue()
                        }
                    }
                    return conditions
                }
            case "hostname": endpoint.hostname = try reader.optionalString()
            case "nodeName": endpoint.nodeName = try reader.optionalString()
            case "zone": endpoint.zone = try reader.optionalString()
            case "targetRef":
                endpoint.targetRef = try reader.optional { reader throws(KubeJSONError) in
                    try reader.beginObject()
                    var reference = ObjectReference()
                    while let key = try reader.nextKey() {
                        switch key {
                        case "kind": reference.kind = try reader.optionalString()
                        case "namespace": reference.namespace = try reader.optionalString()
                        case "name": reference.name = try reader.optionalString()
                        case "uid": reference.uid = try reader.optionalString()
                        default: try reader.skipValue()
                        }
                    }
                    return reference
                }
            default: try reader.skipValue()
            }
        }
        endpoint.addresses = try reader.required(addresses, "addresses", of: start)
        self = endpoint
    }
}

extension EndpointSlicePort {
    init(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) {
        try reader.beginObject()
        self.init()
        while let key = try reader.nextKey() {
            switch key {
            case "name": name = try reader.optionalString()
            case "port": port = try reader.optionalInteger(Int32.self)
            case "protocol": self.protocol = try reader.optionalString()
            case "appProtocol": appProtocol = try reader.optionalString()
            default: try reader.skipValue()
            }
        }
    }
}

// MARK: - Secret

extension Secret {
    public static func read(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) -> Secret {
        let start = reader.valueStart()
        try reader.beginObject()
        var metadata: ObjectMeta?
        var secret = Secret(metadata: ObjectMeta(name: ""))
        while let key = try reader.nextKey() {
            switch key {
            case "metadata": metadata = try ObjectMeta(kubeJSON: &reader)
            case "type": secret.type = try reader.optionalString()
            case "data":
                guard !reader.null() else { continue }
                try reader.beginObject()
                var data: [String: Base64Data] = [:]
                while let key = try reader.nextKey() {
                    let valueStart = reader.valueStart()
                    let text = try reader.string()
                    guard let bytes = Data(base64Encoded: text, options: .ignoreUnknownCharacters) else {
                        throw reader.failure("expected base64 data", at: valueStart)
                    }
                    data[key.string] = Base64Data(Array(bytes))
                }
                secret.data = data
            case "stringData": secret.stringData = try reader.optionalStringMap()
            default: try reader.skipValue()
            }
        }
        secret.metadata = try reader.required(metadata, "metadata", of: start)
        return secret
    }
}
