import Crypto
import Foundation
import KubeClient
import KubeTypes
import Logging
import SnapshotProtocol
import SwiftASN1
import X509

/// A small CA for the control plane ↔ node agent mTLS: ECDSA P-256, self-signed.
public struct CertificateAuthority: Sendable {
    public let certificatePEM: String
    public let keyPEM: String
    private let certificate: Certificate

    public init(certificatePEM: String, keyPEM: String) throws {
        self.certificatePEM = certificatePEM
        self.keyPEM = keyPEM
        self.certificate = try Certificate(pemEncoded: certificatePEM)
        _ = try P256.Signing.PrivateKey(pemRepresentation: keyPEM)
    }

    /// A new CA valid for ten years.
    public static func generate(commonName: String = "Portico snapshot CA") throws -> CertificateAuthority {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("Portico")
            CommonName(commonName)
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(10 * 365 * 86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            },
            issuerPrivateKey: .init(key))
        return try CertificateAuthority(certificatePEM: try certificate.serializeAsPEM().pemString, keyPEM: key.pemRepresentation)
    }

    /// A leaf for a server (with its DNS names and IPs) or a client, valid for `days`.
    public func issue(
        commonName: String, dnsNames: [String] = [], ipAddresses: [[UInt8]] = [], server: Bool, client: Bool, days: Int = 365
    ) throws -> (certificatePEM: String, keyPEM: String) {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Portico")
            CommonName(commonName)
        }
        let now = Date()
        var usages: [ExtendedKeyUsage.Usage] = []
        if server { usages.append(.serverAuth) }
        if client { usages.append(.clientAuth) }
        let names = dnsNames.map { GeneralName.dnsName($0) } + ipAddresses.map { GeneralName.ipAddress(ASN1OctetString(contentBytes: ArraySlice($0))) }
        let leaf = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Double(days) * 86400),
            issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage(usages)
                if !names.isEmpty { SubjectAlternativeNames(names) }
            },
            issuerPrivateKey: .init(try P256.Signing.PrivateKey(pemRepresentation: keyPEM)))
        return (try leaf.serializeAsPEM().pemString, key.pemRepresentation)
    }

    /// Days until `pem`'s first certificate expires (negative when it has).
    static func daysLeft(_ pem: String) -> Int? {
        guard let certificate = try? Certificate(pemEncoded: pem) else { return nil }
        return Int(certificate.notValidAfter.timeIntervalSinceNow / 86400)
    }
}

/// Provisions the control plane ↔ node agent mTLS in the cluster, so nobody has to:
/// - Secret `portico-ca` holds the CA (made once; replicas racing to create it settle on the first);
/// - Secret `portico-data-plane-tls` (type kubernetes.io/tls, plus `ca.crt`) holds the node agents'
///   client certificate, which the DaemonSet mounts; it is reissued when under 30 days remain;
/// - each control-plane replica issues its own serving certificate at start, for the Service's names.
public enum MTLSBootstrap {
    public static let caSecret = "portico-ca"
    public static let dataPlaneSecret = "portico-data-plane-tls"

    public static func run(
        client: KubeClient, namespace: String, serviceName: String = "portico-control-plane", logger: Logger = Logger(label: "portico.mtls")
    ) async throws -> SnapshotTLS {
        let authority = try await ensureAuthority(client: client, namespace: namespace, logger: logger)
        try await ensureDataPlaneCertificate(client: client, namespace: namespace, authority: authority, logger: logger)
        let names = [
            serviceName, "\(serviceName).\(namespace)", "\(serviceName).\(namespace).svc", "\(serviceName).\(namespace).svc.cluster.local",
        ]
        let serving = try authority.issue(commonName: "\(serviceName).\(namespace).svc", dnsNames: names, server: true, client: false)
        return SnapshotTLS(certificateChainPEM: serving.certificatePEM, privateKeyPEM: serving.keyPEM, certificateAuthorityPEM: authority.certificatePEM)
    }

    static func ensureAuthority(client: KubeClient, namespace: String, logger: Logger) async throws -> CertificateAuthority {
        for _ in 0..<3 {
            do {
                let secret = try await client.get(Secret.self, namespace: namespace, name: caSecret)
                guard let certificate = secret.value("ca.crt"), let key = secret.value("ca.key") else {
                    throw MTLSError(description: "Secret \(namespace)/\(caSecret) lacks ca.crt or ca.key; delete it to have a new CA made")
                }
                return try CertificateAuthority(certificatePEM: String(decoding: certificate, as: UTF8.self), keyPEM: String(decoding: key, as: UTF8.self))
            } catch let error as KubeAPIError where error.status == 404 {
                let authority = try CertificateAuthority.generate()
                let secret = Secret(
                    metadata: ObjectMeta(name: caSecret, namespace: namespace, labels: ["app.kubernetes.io/part-of": "portico"]), type: "Opaque",
                    data: ["ca.crt": Base64Data(Array(authority.certificatePEM.utf8)), "ca.key": Base64Data(Array(authority.keyPEM.utf8))])
                do {
                    _ = try await client.create(secret)
                    logger.notice("created the snapshot CA", metadata: ["secret": "\(namespace)/\(caSecret)"])
                    return authority
                } catch let error as KubeAPIError where error.status == 409 {
                    continue  // another replica made one first: use that
                }
            }
        }
        throw MTLSError(description: "cannot create or read Secret \(namespace)/\(caSecret)")
    }

    static func ensureDataPlaneCertificate(client: KubeClient, namespace: String, authority: CertificateAuthority, logger: Logger) async throws {
        let existing: Secret?
        do {
            existing = try await client.get(Secret.self, namespace: namespace, name: dataPlaneSecret)
        } catch let error as KubeAPIError where error.status == 404 {
            existing = nil
        }
        if let existing, let certificate = existing.value(Secret.certificateKey), let ca = existing.value("ca.crt"),
            String(decoding: ca, as: UTF8.self) == authority.certificatePEM,
            (CertificateAuthority.daysLeft(String(decoding: certificate, as: UTF8.self)) ?? 0) > 30
        {
            return
        }
        let issued = try authority.issue(commonName: "portico-data-plane", server: false, client: true)
        var secret = Secret(
            metadata: ObjectMeta(name: dataPlaneSecret, namespace: namespace, labels: ["app.kubernetes.io/part-of": "portico"]), type: Secret.tlsType,
            data: [
                Secret.certificateKey: Base64Data(Array(issued.certificatePEM.utf8)), Secret.privateKeyKey: Base64Data(Array(issued.keyPEM.utf8)),
                "ca.crt": Base64Data(Array(authority.certificatePEM.utf8)),
            ])
        do {
            if let existing {
                secret.metadata.resourceVersion = existing.metadata.resourceVersion
                _ = try await client.replace(secret)
            } else {
                _ = try await client.create(secret)
            }
            logger.notice("issued the node agents' client certificate", metadata: ["secret": "\(namespace)/\(dataPlaneSecret)"])
        } catch let error as KubeAPIError where error.status == 409 {
            // Another replica wrote it at the same moment; theirs is as good.
        }
    }
}

public struct MTLSError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
