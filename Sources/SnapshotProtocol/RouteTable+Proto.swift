import RouteModel
import SwiftProtobuf

/// Why a received table cannot be used. Subscribers NACK with this text and keep their previous table.
public struct SnapshotDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A copy of a decoded string in storage of its own (short ones are inline anyway). A decoded
/// string's storage lies among the decoded message's objects; a table that kept it would pin that
/// memory in pieces too small to hand back once the message is freed: a 10k-Ingress worker held
/// 12 MB of such holes (malloc_info: 10k free chunks of each of two sizes, one per virtual host).
func owned(_ text: String) -> String {
    var text = text
    guard text.utf8.count > 15 else { return text }
    return text.withUTF8 { bytes in
        String(unsafeUninitializedCapacity: bytes.count) { buffer in buffer.initialize(fromContentsOf: bytes) }
    }
}

extension RouteTable {
    /// The wire form. `includePrivateKeys: false` is for `Dump`: certificates keep their metadata only.
    public func proto(includePrivateKeys: Bool = true) -> Portico_V1_RouteTable {
        var table = Portico_V1_RouteTable()
        table.virtualHosts = virtualHosts.map(\.proto)
        table.clusters = clusters.map(\.proto)
        table.certificates = certificates.map { $0.proto(includePrivateKey: includePrivateKeys) }
        table.defaultCertificate = defaultCertificate ?? ""
        return table
    }

    /// Decodes and checks a received table: every field a worker relies on must be present and every
    /// name a route or host uses must resolve. The content hash is recomputed by `RouteTable.init`.
    public init(proto: Portico_V1_RouteTable) throws(SnapshotDecodingError) {
        try self.init(proto: proto, parts: nil)
    }

    /// `init(proto:)`, converting the clusters and the virtual hosts of a large table in `parts`
    /// (by default one per core, see `PartedCoding`) concurrently.
    init(proto: Portico_V1_RouteTable, parts: Int?) throws(SnapshotDecodingError) {
        try self.init(source: TableSource(proto), parts: parts)
    }

    /// Converts and checks the table `source` holds; with `parts` 1, on the calling thread alone.
    init(source: TableSource, parts: Int?) throws(SnapshotDecodingError) {
        let clusters = try PartedCoding.convert(count: source.clusterCount, parts: parts, source.cluster)
        let clusterNames = Set(clusters.map(\.name))
        guard clusterNames.count == clusters.count else { throw SnapshotDecodingError("clusters: duplicate cluster names") }
        var certificates: [TLSCertificate] = []
        for (index, certificate) in source.certificates.enumerated() {
            certificates.append(try TLSCertificate(proto: certificate, field: "certificates[\(index)]"))
        }
        let certificateNames = Set(certificates.map(\.name))
        guard certificateNames.count == certificates.count else {
            throw SnapshotDecodingError("certificates: duplicate certificate names")
        }
        let converted = try PartedCoding.convert(count: source.hostCount, parts: parts) { index throws(SnapshotDecodingError) in
            try source.host(index, { clusterNames.contains($0) }, { certificateNames.contains($0) })
        }
        var seen = Set<HostPattern>()
        seen.reserveCapacity(source.hostCount)
        for (index, host) in converted.enumerated() where !seen.insert(host.hostname).inserted {
            throw SnapshotDecodingError("virtualHosts[\(index)]: host \(host.hostname) appears twice")
        }
        let defaultCertificate = source.defaultCertificate.isEmpty ? nil : owned(source.defaultCertificate)
        if let defaultCertificate, !certificateNames.contains(defaultCertificate) {
            throw SnapshotDecodingError("defaultCertificate: no certificate named \(defaultCertificate)")
        }
        self.init(
            virtualHosts: converted, clusters: clusters, certificates: certificates, defaultCertificate: defaultCertificate,
            onEveryCore: parts != 1)
    }
}

extension VirtualHost {
    var proto: Portico_V1_VirtualHost {
        var proto = hostname.proto
        proto.routes = routes.map { route in
            var entry = Portico_V1_Route()
            entry.kind = route.match.kind.proto
            entry.path = route.match.path
            entry.backend = route.backend.proto
            return entry
        }
        if let defaultBackend { proto.defaultBackend = defaultBackend.proto }
        if let tls {
            var binding = Portico_V1_TLS()
            binding.certificate = tls.certificate ?? ""
            if let hsts = tls.hsts {
                binding.hsts.maxAgeSeconds = UInt32(clamping: hsts.maxAgeSeconds)
                binding.hsts.includeSubdomains = hsts.includeSubdomains
                binding.hsts.preload = hsts.preload
            }
            proto.tls = binding
        }
        proto.regexPaths = regexPaths
        proto.redirectToHost = redirectToHost ?? ""
        return proto
    }

    /// `init(wire:)` of the message's bytes: one decoder of hosts, whether they come as bytes
    /// (whole snapshots, the state file) or as messages (deltas, dumps).
    init(
        proto: Portico_V1_VirtualHost, field: @autoclosure () -> String, hasCluster: (String) -> Bool, hasCertificate: (String) -> Bool
    ) throws(SnapshotDecodingError) {
        self = try withSerialized(proto) { bytes throws(SnapshotDecodingError) in
            try VirtualHost(wire: bytes, field: field, hasCluster: hasCluster, hasCertificate: hasCertificate)
        }
    }
}

/// `body` with the serialised bytes of `message`.
func withSerialized<Message: SwiftProtobuf.Message, T>(
    _ message: Message, _ body: (UnsafeRawBufferPointer) throws(SnapshotDecodingError) -> T
) throws(SnapshotDecodingError) -> T {
    // Serialising a message that holds only set, valid fields cannot fail.
    let bytes: [UInt8] = (try? message.serializedBytes()) ?? []
    return try bytes.withUnsafeBytes { raw in Result { () throws(SnapshotDecodingError) in try body(raw) } }.get()
}

extension Backend {
    var proto: Portico_V1_Backend {
        var proto = Portico_V1_Backend()
        proto.cluster = cluster
        proto.namespace = source.namespace
        proto.ingress = source.ingress
        proto.httpsRedirect = httpsRedirect
        if let limit = options.maxRequestBodyBytes { proto.options.maxRequestBodyBytes = UInt64(max(0, limit)) }
        if let rewrite = options.rewriteTarget { proto.options.rewriteTarget = rewrite }
        if let redirect = options.redirect {
            proto.options.redirect.status = UInt32(clamping: redirect.status)
            proto.options.redirect.location = redirect.location
        }
        if let appRoot = options.appRoot { proto.options.appRoot = appRoot }
        if let prefix = options.forwardedPrefix { proto.options.forwardedPrefix = prefix }
        if let host = options.upstreamHost { proto.options.upstreamHost = host }
        if let upstream = options.upstream {
            var message = Portico_V1_UpstreamOptions()
            message.connectTimeoutMs = UInt32(clamping: upstream.connectTimeoutMilliseconds ?? 0)
            message.readTimeoutMs = UInt32(clamping: upstream.readTimeoutMilliseconds ?? 0)
            message.sendTimeoutMs = UInt32(clamping: upstream.sendTimeoutMilliseconds ?? 0)
            message.maxAttempts = UInt32(clamping: upstream.maxAttempts ?? 0)
            message.noRetryOnConnectError = !upstream.retryOnConnectError
            message.noRetryOnConnectTimeout = !upstream.retryOnConnectTimeout
            message.requestBufferBytes = UInt32(clamping: upstream.requestBufferBytes ?? 0)
            message.everyEndpoint = upstream.maxAttempts == 0
            message.retryAfterSending = upstream.retryAfterSending
            message.retryStatuses = upstream.retryStatuses.map { UInt32(clamping: $0) }
            message.retryNonIdempotent = upstream.retryNonIdempotent
            proto.options.upstream = message
        }
        if let edits = options.requestHeaders { proto.options.requestHeaders = edits.proto }
        if let edits = options.responseHeaders { proto.options.responseHeaders = edits.proto }
        // Set only when not the default: setting any field writes the options message, two bytes
        // a route otherwise.
        if options.upstreamProtocol != .http { proto.options.upstreamProtocol = options.upstreamProtocol.proto }
        if let tls = options.upstreamTLS {
            var message = Portico_V1_UpstreamTLS()
            message.serverName = tls.serverName
            message.noServerNameIndication = !tls.sendsServerName
            message.verify = tls.verify
            message.trustedCertificatesPem = tls.trustedCertificatesPEM ?? ""
            message.clientCertificatePem = tls.clientCertificatePEM ?? ""
            message.clientKeyPem = tls.clientKeyPEM ?? ""
            proto.options.upstreamTls = message
        }
        if let rule = options.defaultBackend {
            var message = Portico_V1_DefaultBackendRule()
            message.cluster = rule.cluster
            message.interceptedStatuses = rule.interceptedStatuses.map { UInt32($0) }
            message.keepsPodAnswers = !rule.interceptsPodAnswers
            message.onlyErrorPages = !rule.servesWithoutEndpoints
            proto.options.defaultBackend = message
        }
        return proto
    }

}

extension RouteOptions {
    /// Checks received options; `field` names the backend they belong to, `clusters` says whether a
    /// cluster is in the table.
    init(proto options: Portico_V1_RouteOptions, field: @autoclosure () -> String, clusters: (String) -> Bool) throws(SnapshotDecodingError) {
        let limit = options.maxRequestBodyBytes
        func text(_ value: String) -> String? { value.isEmpty ? nil : owned(value) }
        // Checked field by field: a list of (name, value) pairs per route was two arrays per route.
        func checkTemplate(_ name: String, _ template: String) throws(SnapshotDecodingError) {
            guard !template.isEmpty else { return }
            do {
                _ = try PathTemplate(parsing: template)
            } catch {
                throw SnapshotDecodingError("\(field()).options.\(name): \(error)")
            }
        }
        func checkVisibleASCII(_ name: String, _ value: String) throws(SnapshotDecodingError) {
            guard !value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return }
            throw SnapshotDecodingError("\(field()).options.\(name): only visible ASCII is allowed")
        }
        try checkTemplate("rewriteTarget", options.rewriteTarget)
        try checkTemplate("redirect.location", options.redirect.location)
        try checkVisibleASCII("forwardedPrefix", options.forwardedPrefix)
        try checkVisibleASCII("upstreamHost", options.upstreamHost)
        let requestHeaders = options.hasRequestHeaders ? try HeaderEdits(proto: options.requestHeaders, field: "\(field()).options.requestHeaders") : nil
        let responseHeaders = options.hasResponseHeaders ? try HeaderEdits(proto: options.responseHeaders, field: "\(field()).options.responseHeaders") : nil
        if options.hasRedirect, !(300...399).contains(options.redirect.status) {
            throw SnapshotDecodingError("\(field()).options.redirect.status: \(options.redirect.status) is not a redirect")
        }
        let upstreamProtocol = try UpstreamProtocol(proto: options.upstreamProtocol, field: "\(field()).options.upstreamProtocol")
        var upstreamTLS: UpstreamTLS?
        if options.hasUpstreamTls {
            let tls = options.upstreamTls
            guard !tls.serverName.isEmpty, tls.serverName.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw SnapshotDecodingError("\(field()).options.upstreamTls.serverName: must be a host name")
            }
            guard tls.clientCertificatePem.isEmpty == tls.clientKeyPem.isEmpty else {
                throw SnapshotDecodingError("\(field()).options.upstreamTls: a client certificate needs its key, and a key its certificate")
            }
            upstreamTLS = UpstreamTLS(
                serverName: owned(tls.serverName), sendsServerName: !tls.noServerNameIndication, verify: tls.verify,
                trustedCertificatesPEM: text(tls.trustedCertificatesPem), clientCertificatePEM: text(tls.clientCertificatePem),
                clientKeyPEM: text(tls.clientKeyPem))
        }
        if upstreamProtocol.usesTLS, upstreamTLS == nil {
            throw SnapshotDecodingError("\(field()).options.upstreamTls: \(upstreamProtocol.rawValue) needs its TLS settings")
        }
        var defaultBackend: DefaultBackendRule?
        if options.hasDefaultBackend {
            let rule = options.defaultBackend
            guard clusters(rule.cluster) else {
                throw SnapshotDecodingError("\(field()).options.defaultBackend: no cluster named \(rule.cluster)")
            }
            let statuses = rule.interceptedStatuses.map { Int($0) }
            guard statuses.allSatisfy({ (400...599).contains($0) }), statuses == statuses.sorted(), Set(statuses).count == statuses.count else {
                throw SnapshotDecodingError("\(field()).options.defaultBackend.interceptedStatuses: must be distinct 400-599, sorted")
            }
            defaultBackend = DefaultBackendRule(
                cluster: owned(rule.cluster), interceptedStatuses: statuses, interceptsPodAnswers: !rule.keepsPodAnswers,
                servesWithoutEndpoints: !rule.onlyErrorPages)
        }
        self.init(
            maxRequestBodyBytes: limit == 0 ? nil : Int64(clamping: limit), rewriteTarget: text(options.rewriteTarget),
            redirect: options.hasRedirect ? RedirectRule(status: Int(options.redirect.status), location: owned(options.redirect.location)) : nil,
            appRoot: text(options.appRoot), forwardedPrefix: text(options.forwardedPrefix), upstreamHost: text(options.upstreamHost),
            upstream: options.hasUpstream ? UpstreamOptions(proto: options.upstream) : nil, requestHeaders: requestHeaders,
            responseHeaders: responseHeaders, upstreamProtocol: upstreamProtocol, upstreamTLS: upstreamTLS,
            defaultBackend: defaultBackend)
    }
}

extension UpstreamProtocol {
    var proto: Portico_V1_UpstreamProtocol {
        switch self {
        case .http: .http
        case .https: .https
        case .h2c: .h2C
        case .grpc: .grpc
        case .grpcs: .grpcs
        }
    }

    init(proto: Portico_V1_UpstreamProtocol, field: @autoclosure () -> String) throws(SnapshotDecodingError) {
        switch proto {
        case .http: self = .http
        case .https: self = .https
        case .h2C: self = .h2c
        case .grpc: self = .grpc
        case .grpcs: self = .grpcs
        case .UNRECOGNIZED(let value): throw SnapshotDecodingError("\(field()): unknown protocol \(value)")
        }
    }
}

extension HeaderEdits {
    var proto: Portico_V1_HeaderEdits {
        var proto = Portico_V1_HeaderEdits()
        func message(_ field: HeaderField) -> Portico_V1_HeaderField {
            var message = Portico_V1_HeaderField()
            message.name = field.name
            message.value = field.value
            message.onlySuccess = field.onlySuccess
            return message
        }
        proto.set = set.map(message)
        proto.add = add.map(message)
        proto.remove = remove
        return proto
    }

    /// Names must be tokens and values must not break the head: a table from anywhere else is refused.
    init(proto: Portico_V1_HeaderEdits, field: @autoclosure () -> String) throws(SnapshotDecodingError) {
        func decode(_ message: Portico_V1_HeaderField, _ place: @autoclosure () -> String) throws(SnapshotDecodingError) -> HeaderField {
            guard HeaderField.isName(message.name) else { throw SnapshotDecodingError("\(place()).name: \"\(message.name)\" is not a field name") }
            guard HeaderField.isValue(message.value) else { throw SnapshotDecodingError("\(place()).value: not a field value") }
            return HeaderField(name: owned(message.name), value: owned(message.value), onlySuccess: message.onlySuccess)
        }
        var set: [HeaderField] = []
        for (index, message) in proto.set.enumerated() { set.append(try decode(message, "\(field()).set[\(index)]")) }
        var add: [HeaderField] = []
        for (index, message) in proto.add.enumerated() { add.append(try decode(message, "\(field()).add[\(index)]")) }
        for (index, name) in proto.remove.enumerated() {
            let bare = name.hasSuffix("*") ? String(name.dropLast()) : name
            guard HeaderField.isName(bare), name == name.lowercased() else {
                throw SnapshotDecodingError("\(field()).remove[\(index)]: \"\(name)\" is not a lowercased field name")
            }
        }
        self.init(set: set, add: add, remove: proto.remove.map(owned))
    }
}

extension UpstreamOptions {
    init(proto: Portico_V1_UpstreamOptions) {
        func value(_ number: UInt32) -> Int? { number == 0 ? nil : Int(number) }
        self.init(
            connectTimeoutMilliseconds: value(proto.connectTimeoutMs), readTimeoutMilliseconds: value(proto.readTimeoutMs),
            sendTimeoutMilliseconds: value(proto.sendTimeoutMs), maxAttempts: proto.everyEndpoint ? 0 : value(proto.maxAttempts),
            retryOnConnectError: !proto.noRetryOnConnectError, retryOnConnectTimeout: !proto.noRetryOnConnectTimeout,
            requestBufferBytes: value(proto.requestBufferBytes), retryAfterSending: proto.retryAfterSending,
            retryStatuses: proto.retryStatuses.map { Int($0) }.filter { (400...599).contains($0) }, retryNonIdempotent: proto.retryNonIdempotent)
    }
}

extension Cluster {
    var proto: Portico_V1_Cluster {
        var proto = Portico_V1_Cluster()
        proto.name = name
        proto.namespace = namespace
        proto.service = service
        switch servicePort {
        case .number(let number): proto.portNumber = UInt32(clamping: number)
        case .name(let name): proto.portName = name
        }
        proto.endpoints = endpoints.map { endpoint in
            var entry = Portico_V1_Endpoint()
            entry.address = endpoint.address
            entry.port = UInt32(clamping: endpoint.port)
            return entry
        }
        proto.loadBalancing = loadBalancing == .roundRobin ? .roundRobin : .leastRequest
        proto.timeouts.connectMs = UInt32(clamping: timeouts.connectMilliseconds)
        proto.timeouts.responseHeaderMs = UInt32(clamping: timeouts.responseHeaderMilliseconds)
        proto.timeouts.idleMs = UInt32(clamping: timeouts.idleMilliseconds)
        return proto
    }

    /// `init(wire:)` of the message's bytes (see `VirtualHost.init(proto:)`).
    init(proto: Portico_V1_Cluster, field: @autoclosure () -> String) throws(SnapshotDecodingError) {
        self = try withSerialized(proto) { bytes throws(SnapshotDecodingError) in try Cluster(wire: bytes, field: field) }
    }
}

extension CertificateMetadata {
    var proto: Portico_V1_CertificateMetadata {
        var proto = Portico_V1_CertificateMetadata()
        proto.subject = subject
        proto.issuer = issuer
        proto.dnsNames = dnsNames
        proto.serialNumber = serialNumber
        proto.notBefore = notBefore
        proto.notAfter = notAfter
        return proto
    }

    init(proto: Portico_V1_CertificateMetadata) {
        self.init(
            subject: owned(proto.subject), issuer: owned(proto.issuer), dnsNames: proto.dnsNames.map(owned),
            serialNumber: owned(proto.serialNumber), notBefore: proto.notBefore, notAfter: proto.notAfter)
    }
}

extension PathMatchKind {
    var proto: Portico_V1_PathMatchKind {
        switch self {
        case .exact: .exact
        case .prefix: .prefix
        case .implementationSpecific: .implementationSpecific
        }
    }
}

extension Portico_V1_Snapshot {
    /// A snapshot of `table` at `version`.
    public init(version: UInt64, table: RouteTable, includePrivateKeys: Bool = true) {
        self.init()
        self.version = version
        self.contentHash = table.contentHash
        self.table = table.proto(includePrivateKeys: includePrivateKeys)
    }

    /// Decodes the table and checks it against the content hash the sender computed.
    public func decodeTable() throws(SnapshotDecodingError) -> RouteTable {
        let table = try RouteTable(proto: self.table)
        guard table.contentHash == contentHash else {
            throw SnapshotDecodingError(
                "content hash mismatch: the snapshot says \(String(contentHash, radix: 16)), the table hashes to \(table.contentHashHex)")
        }
        return table
    }
}

extension HostPattern {
    init(proto: Portico_V1_VirtualHost, field: @autoclosure () -> String) throws(SnapshotDecodingError) {
        switch proto.hostname {
        case .exact(let name)?:
            guard !name.isEmpty else { throw SnapshotDecodingError("\(field()): empty host") }
            self = .exact(owned(name))
        case .wildcardSuffix(let suffix)?:
            guard !suffix.isEmpty else { throw SnapshotDecodingError("\(field()): empty wildcard suffix") }
            self = .wildcard(suffix: owned(suffix))
        case .any(true)?: self = .any
        case .any(false)?, nil: throw SnapshotDecodingError("\(field()): no hostname")
        }
    }

    var proto: Portico_V1_VirtualHost {
        var proto = Portico_V1_VirtualHost()
        switch self {
        case .exact(let name): proto.exact = name
        case .wildcard(let suffix): proto.wildcardSuffix = suffix
        case .any: proto.any = true
        }
        return proto
    }
}

extension TLSCertificate {
    func proto(includePrivateKey: Bool) -> Portico_V1_Certificate {
        var proto = Portico_V1_Certificate()
        proto.name = name
        proto.certificateChainPem = certificateChainPEM
        if includePrivateKey { proto.privateKeyPem = privateKeyPEM }
        proto.metadata = metadata.proto
        return proto
    }

    init(proto: Portico_V1_Certificate, field: @autoclosure () -> String) throws(SnapshotDecodingError) {
        guard !proto.name.isEmpty else { throw SnapshotDecodingError("\(field()): empty name") }
        self.init(
            name: owned(proto.name), certificateChainPEM: owned(proto.certificateChainPem), privateKeyPEM: owned(proto.privateKeyPem),
            metadata: CertificateMetadata(proto: proto.metadata))
    }
}

extension Portico_V1_SnapshotDelta {
    /// The wire form of `changes`, which turn the table of version `base` into a table hashing to `contentHash`.
    public init(base: UInt64, contentHash: UInt64, changes: RouteTableDelta) {
        self.init()
        baseVersion = base
        self.contentHash = contentHash
        upsertedVirtualHosts = changes.upsertedHosts.map(\.proto)
        removedVirtualHosts = changes.removedHosts.map(\.proto)
        upsertedClusters = changes.upsertedClusters.map(\.proto)
        removedClusters = changes.removedClusters
        upsertedCertificates = changes.upsertedCertificates.map { $0.proto(includePrivateKey: true) }
        removedCertificates = changes.removedCertificates
        defaultCertificate = changes.defaultCertificate ?? ""
    }

    /// Decodes the changes, applies them to `base` and checks the result against the content hash
    /// the sender computed.
    public func apply(to base: RouteTable) throws(SnapshotDecodingError) -> RouteTable {
        try applyReturningChanges(to: base).table
    }

    /// `apply`, with the decoded changes too.
    public func applyReturningChanges(to base: RouteTable) throws(SnapshotDecodingError) -> (table: RouteTable, changes: RouteTableDelta) {
        var changes = RouteTableDelta(defaultCertificate: defaultCertificate.isEmpty ? nil : defaultCertificate)
        changes.upsertedClusters.reserveCapacity(upsertedClusters.count)
        for (index, cluster) in upsertedClusters.enumerated() {
            changes.upsertedClusters.append(try Cluster(proto: cluster, field: "delta.upsertedClusters[\(index)]"))
        }
        changes.removedClusters = removedClusters
        for (index, certificate) in upsertedCertificates.enumerated() {
            changes.upsertedCertificates.append(try TLSCertificate(proto: certificate, field: "delta.upsertedCertificates[\(index)]"))
        }
        changes.removedCertificates = removedCertificates
        // Names are checked against the whole resulting table by `applying`.
        changes.upsertedHosts.reserveCapacity(upsertedVirtualHosts.count)
        for (index, host) in upsertedVirtualHosts.enumerated() {
            changes.upsertedHosts.append(
                try VirtualHost(proto: host, field: "delta.upsertedVirtualHosts[\(index)]", hasCluster: { _ in true }, hasCertificate: { _ in true }))
        }
        for (index, host) in removedVirtualHosts.enumerated() {
            changes.removedHosts.append(try HostPattern(proto: host, field: "delta.removedVirtualHosts[\(index)]"))
        }
        let table: RouteTable
        do {
            table = try base.applying(changes)
        } catch {
            throw SnapshotDecodingError("delta from version \(baseVersion): \(error.description)")
        }
        guard table.contentHash == contentHash else {
            throw SnapshotDecodingError(
                "content hash mismatch after the delta from version \(baseVersion): the delta says \(String(contentHash, radix: 16)), the table hashes to \(table.contentHashHex)")
        }
        return (table, changes)
    }
}
