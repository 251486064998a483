/// A certificate chain and private key from a `kubernetes.io/tls` Secret, already validated.
public struct TLSCertificate: Sendable, Hashable, Comparable {
    /// `namespace/secret`, unique in a table.
    public var name: String
    /// PEM, leaf first.
    public var certificateChainPEM: String
    /// PEM. Needed by workers; never shown by dumps or logs.
    public var privateKeyPEM: String
    public var metadata: CertificateMetadata

    public init(name: String, certificateChainPEM: String, privateKeyPEM: String, metadata: CertificateMetadata) {
        self.name = name
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.metadata = metadata
    }

    public static func < (lhs: TLSCertificate, rhs: TLSCertificate) -> Bool { lhs.name < rhs.name }
}

/// What may be shown about a certificate: never key material.
public struct CertificateMetadata: Sendable, Hashable {
    public var subject: String
    public var issuer: String
    public var dnsNames: [String]
    public var serialNumber: String
    /// Seconds since 1970-01-01T00:00:00Z.
    public var notBefore: Int64
    public var notAfter: Int64

    public init(subject: String, issuer: String, dnsNames: [String], serialNumber: String, notBefore: Int64, notAfter: Int64) {
        self.subject = subject
        self.issuer = issuer
        self.dnsNames = dnsNames
        self.serialNumber = serialNumber
        self.notBefore = notBefore
        self.notAfter = notAfter
    }
}
