import KubeTypes
import RouteModel
import SwiftASN1
import X509

/// Validates a `kubernetes.io/tls` Secret and turns it into a `TLSCertificate`.
///
/// Checks: the type, both keys present, at least one certificate in `tls.crt`, a private key in
/// `tls.key` that Portico can use (RSA, or ECDSA P-256/384/521), and that the key belongs to the
/// first (leaf) certificate. Expiry is not checked here (the translator has no clock); dumps show it.
enum CertificateLoader {
    static func load(_ secret: Secret) -> Result<TLSCertificate, CertificateLoadError> {
        let name = "\(secret.namespace)/\(secret.name)"
        guard secret.type == Secret.tlsType else {
            return .failure(CertificateLoadError("Secret \(name) has type \(secret.type ?? "Opaque"); it must be \(Secret.tlsType)"))
        }
        guard let chainBytes = secret.value(Secret.certificateKey), !chainBytes.isEmpty else {
            return .failure(CertificateLoadError("Secret \(name) has no \(Secret.certificateKey)"))
        }
        guard let keyBytes = secret.value(Secret.privateKeyKey), !keyBytes.isEmpty else {
            return .failure(CertificateLoadError("Secret \(name) has no \(Secret.privateKeyKey)"))
        }
        let chainPEM = String(decoding: chainBytes, as: UTF8.self)
        let keyPEM = String(decoding: keyBytes, as: UTF8.self)

        let certificates: [Certificate]
        do {
            let documents = try PEMDocument.parseMultiple(pemString: chainPEM).filter { $0.discriminator == "CERTIFICATE" }
            guard !documents.isEmpty else {
                return .failure(CertificateLoadError("Secret \(name): \(Secret.certificateKey) holds no PEM CERTIFICATE block"))
            }
            certificates = try documents.map { try Certificate(pemDocument: $0) }
        } catch {
            return .failure(CertificateLoadError("Secret \(name): \(Secret.certificateKey) is not a valid PEM certificate chain"))
        }
        let privateKey: Certificate.PrivateKey
        do {
            // `openssl ecparam -genkey` writes an EC PARAMETERS block before the key; skip such blocks.
            let keyDocuments = try PEMDocument.parseMultiple(pemString: keyPEM).filter { $0.discriminator.hasSuffix("PRIVATE KEY") }
            guard let document = keyDocuments.first else {
                return .failure(CertificateLoadError("Secret \(name): \(Secret.privateKeyKey) holds no PEM PRIVATE KEY block"))
            }
            privateKey = try Certificate.PrivateKey(pemDocument: document)
        } catch {
            // Never include the parser's message: it could quote key bytes.
            return .failure(
                CertificateLoadError("Secret \(name): \(Secret.privateKeyKey) is not a supported private key (RSA or ECDSA P-256/384/521)"))
        }
        let leaf = certificates[0]
        guard privateKey.publicKey == leaf.publicKey else {
            return .failure(CertificateLoadError("Secret \(name): \(Secret.privateKeyKey) does not belong to the first certificate in \(Secret.certificateKey)"))
        }
        return .success(
            TLSCertificate(name: name, certificateChainPEM: chainPEM, privateKeyPEM: keyPEM, metadata: metadata(of: leaf)))
    }

    static func metadata(of certificate: Certificate) -> CertificateMetadata {
        var dnsNames: [String] = []
        if let names = try? certificate.extensions.subjectAlternativeNames {
            for name in names {
                switch name {
                case .dnsName(let dns): dnsNames.append(dns)
                case .ipAddress(let bytes): dnsNames.append(formatIP(bytes.bytes))
                default: continue
                }
            }
        }
        return CertificateMetadata(
            subject: certificate.subject.description, issuer: certificate.issuer.description, dnsNames: dnsNames,
            serialNumber: certificate.serialNumber.description,
            notBefore: Int64(certificate.notValidBefore.timeIntervalSince1970),
            notAfter: Int64(certificate.notValidAfter.timeIntervalSince1970))
    }

    private static func formatIP(_ bytes: ArraySlice<UInt8>) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        let words = stride(from: bytes.startIndex, to: bytes.endIndex - 1, by: 2).map {
            String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
        }
        return words.joined(separator: ":")
    }
}

struct CertificateLoadError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
