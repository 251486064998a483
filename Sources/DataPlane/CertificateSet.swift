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

    private let exact: [String: Entry]
    private let wildcard: [String: Entry]
    private let tableDefault: Entry?
    private let parsed: [String: Entry]

    public static let empty = CertificateSet(exact: [:], wildcard: [:], tableDefault: nil, parsed: [:])

    private init(exact: [String: Entry], wildcard: [String: Entry], tableDefault: Entry?, parsed: [String: Entry]) {
        self.exact = exact
        self.wildcard = wildcard
        self.tableDefault = tableDefault
        self.parsed = parsed
    }

    /// Builds the set for `table`, reusing what `previous` already parsed. A certificate that does
    /// not load is left out, and its hosts get the default certificate; `problems` says which.
    public static func build(from table: RouteTable, previous: CertificateSet = .empty) -> (set: CertificateSet, problems: [String]) {
        var parsed: [String: Entry] = [:]
        var problems: [String] = []
        for certificate in table.certificates {
            if let old = previous.parsed[certificate.name], old.source == certificate {
                parsed[certificate.name] = old
                continue
            }
            do {
                let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.certificateChainPEM.utf8))
                guard !chain.isEmpty else { throw NIOSSLError.failedToLoadCertificate }
                let key = try NIOSSLPrivateKey(bytes: Array(certificate.privateKeyPEM.utf8), format: .pem)
                parsed[certificate.name] = Entry(chain: chain, key: key, source: certificate)
            } catch {
                problems.append("certificate \(certificate.name) does not load (\(error)); its hosts get the default certificate")
            }
        }
        var exact: [String: Entry] = [:]
        var wildcard: [String: Entry] = [:]
        for host in table.virtualHosts {
            guard let name = host.tls?.certificate, let entry = parsed[name] else { continue }
            switch host.hostname {
            case .exact(let hostname): exact[hostname] = entry
            case .wildcard(let suffix): wildcard[suffix] = entry
            case .any: break
            }
        }
        let tableDefault = table.defaultCertificate.flatMap { parsed[$0] }
        return (CertificateSet(exact: exact, wildcard: wildcard, tableDefault: tableDefault, parsed: parsed), problems)
    }

    /// The certificate for a ClientHello's server name, or nil for the worker's own default.
    func lookup(serverName: String?) -> Entry? {
        guard var name = serverName, !name.isEmpty else { return tableDefault }
        if name.utf8.contains(where: { $0 &- UInt8(ascii: "A") < 26 }) { name = name.lowercased() }
        if name.hasSuffix(".") { name.removeLast() }
        if let entry = exact[name] { return entry }
        if let dot = name.firstIndex(of: "."), let entry = wildcard[String(name[name.index(after: dot)...])] { return entry }
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
