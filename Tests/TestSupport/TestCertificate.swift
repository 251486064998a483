import Crypto
import Foundation
import X509

/// A self-signed ECDSA P-256 certificate made in-process, for tests.
public struct TestCertificate: Sendable {
    public let certificatePEM: String
    public let privateKeyPEM: String
    public let commonName: String

    public init(commonName: String, dnsNames: [String], notAfter: Date = Date(timeIntervalSince1970: 2_000_000_000)) throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(commonName) }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: .init(key.publicKey),
            notValidBefore: Date(timeIntervalSince1970: 1_700_000_000), notValidAfter: notAfter,
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                SubjectAlternativeNames(dnsNames.map { GeneralName.dnsName($0) })
            },
            issuerPrivateKey: .init(key))
        self.certificatePEM = try certificate.serializeAsPEM().pemString
        self.privateKeyPEM = key.pemRepresentation
        self.commonName = commonName
    }
}
