import Crypto
import Foundation
import NIOSSL
import RouteModel
import X509

/// The certificates of one route table, parsed once per snapshot and looked up by SNI name: the
/// exact host first, then a one-label wildcard, else the default (the table's, or the worker's own).
public struct CertificateSet: Sendable {
    struct Entry: Sendable {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        /// The PEMs this entry was parsed from, to reuse it when the next table carries them unchanged.
        let source: TLSCertificate
    }

    /// Certificate names by exact host and by wildcard suffix; `parsed` holds the entries.
    private var exact: [String: String]
    private var wildcard: [String: String]
    private var defaultName: String?
    private var parsed: [String: Entry]
    /// The snapshot version this set was built for, which a delta from that version updates.
    private var version: UInt64?

    public static let empty = CertificateSet(exact: [:], wildcard: [:], defaultName: nil, parsed: [:], version: nil)

    private init(exact: [String: String], wildcard: [String: String], defaultName: String?, parsed: [String: Entry], version: UInt64?) {
        self.exact = exact
        self.wildcard = wildcard
        self.defaultName = defaultName
        self.parsed = parsed
        self.version = version
    }

    /// Builds the set for `table` (of snapshot `version`), reusing what `previous` already parsed.
    /// When `delta` holds the changes from the version `previous` was built for, only the hosts and
    /// certificates they name are looked at. A certificate that does not load is left out, and its
    /// hosts get the default certificate; `problems` says which.
    public static func build(
        from table: RouteTable, version: UInt64? = nil, delta: (base: UInt64, changes: RouteTableDelta)? = nil, previous: CertificateSet = .empty
    ) -> (set: CertificateSet, problems: [String]) {
        var problems: [String] = []
        func load(_ certificate: TLSCertificate, into parsed: inout [String: Entry], reusing old: Entry?) {
            if let old, old.source == certificate {
                parsed[certificate.name] = old
                return
            }
            do {
                let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.certificateChainPEM.utf8))
                guard !chain.isEmpty else { throw NIOSSLError.failedToLoadCertificate }
                let key = try NIOSSLPrivateKey(bytes: Array(certificate.privateKeyPEM.utf8), format: .pem)
                parsed[certificate.name] = Entry(chain: chain, key: key, source: certificate)
            } catch {
                parsed[certificate.name] = nil
                problems.append("certificate \(certificate.name) does not load (\(error)); its hosts get the default certificate")
            }
        }
        func bind(_ hostname: HostPattern, to name: String?, in set: inout CertificateSet) {
            switch hostname {
            case .exact(let host): set.exact[host] = name
            case .wildcard(let suffix): set.wildcard[suffix] = name
            case .any: break
            }
        }
        if let delta, let built = previous.version, built == delta.base {
            var set = previous
            set.version = version
            set.defaultName = table.defaultCertificate
            for name in delta.changes.removedCertificates { set.parsed[name] = nil }
            for certificate in delta.changes.upsertedCertificates { load(certificate, into: &set.parsed, reusing: previous.parsed[certificate.name]) }
            for hostname in delta.changes.removedHosts { bind(hostname, to: nil, in: &set) }
            for host in delta.changes.upsertedHosts { bind(host.hostname, to: host.tls?.certificate, in: &set) }
            return (set, problems)
        }
        var set = CertificateSet(exact: [:], wildcard: [:], defaultName: table.defaultCertificate, parsed: [:], version: version)
        for certificate in table.certificates { load(certificate, into: &set.parsed, reusing: previous.parsed[certificate.name]) }
        for host in table.virtualHosts where host.tls?.certificate != nil { bind(host.hostname, to: host.tls?.certificate, in: &set) }
        return (set, problems)
    }

    /// The certificate for a ClientHello's server name, or nil for the worker's own default.
    func lookup(serverName: String?) -> Entry? {
        let tableDefault = defaultName.flatMap { parsed[$0] }
        guard var name = serverName, !name.isEmpty else { return tableDefault }
        if name.utf8.contains(where: { $0 &- UInt8(ascii: "A") < 26 }) { name = name.lowercased() }
        if name.hasSuffix(".") { name.removeLast() }
        if let certificate = exact[name], let entry = parsed[certificate] { return entry }
        if let dot = name.firstIndex(of: "."), let certificate = wildcard[String(name[name.index(after: dot)...])], let entry = parsed[certificate] {
            return entry
        }
        return tableDefault
    }

    /// Whether a certificate for `serverName` also covers `host`, the test behind HTTP/2
    /// connection reuse and 421 Misdirected Request.
    func sameCertificate(for serverName: String?, as host: String) -> Bool {
        lookup(serverName: serverName)?.source.name == lookup(serverName: host)?.source.name
    }
}

/// The worker's fallback certificate: given by flags, or made at start, self-signed and named so
/// that nobody mistakes it for a real one (as ingress-nginx's "Fake Certificate").
public struct DefaultCertificate: Sendable {
    public let chain: [NIOSSLCertificate]
    public let key: NIOSSLPrivateKey

    public static let generatedCommonName = "Portico Default Certificate (self-signed)"

    public init(certificatePEM: String, keyPEM: String) throws {
        chain = try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8))
        guard !chain.isEmpty else { throw NIOSSLError.failedToLoadCertificate }
        key = try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)
    }

    /// ECDSA P-256, valid for a year from now.
    public static func generate() throws -> DefaultCertificate {
        let (certificatePEM, keyPEM) = try generatePEM()
        return try DefaultCertificate(certificatePEM: certificatePEM, keyPEM: keyPEM)
    }

    /// As `generate()`, in PEM: the node agent makes one and gives it to all its workers, so that
    /// every worker on a port presents the same default certificate.
    public static func generatePEM() throws -> (certificatePEM: String, keyPEM: String) {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("Portico")
            CommonName(generatedCommonName)
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(365 * 86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                SubjectAlternativeNames([.dnsName("portico.invalid")])
            },
            issuerPrivateKey: .init(key))
        return (try certificate.serializeAsPEM().pemString, key.pemRepresentation)
    }
}
