import GRPCCore
import GRPCNIOTransportHTTP2

/// Mutual TLS for the Snapshots service over TCP (control plane ↔ node agents). Both sides present
/// a certificate issued by the same CA and accept only peers whose certificate that CA issued; the
/// subscriber also checks the server's name. Unix sockets stay plaintext: their 0700 directory is
/// the access control.
public struct SnapshotTLS: Sendable, Equatable {
    /// PEM, leaf first.
    public var certificateChainPEM: String
    public var privateKeyPEM: String
    /// PEM of the CA that issues the peers' certificates.
    public var certificateAuthorityPEM: String

    public init(certificateChainPEM: String, privateKeyPEM: String, certificateAuthorityPEM: String) {
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.certificateAuthorityPEM = certificateAuthorityPEM
    }

    /// Reads the three PEM files (`tls.crt`, `tls.key`, `ca.crt` of a mounted Secret, for example).
    public static func load(certificate: String, key: String, certificateAuthority: String) throws(SnapshotTLSError) -> SnapshotTLS {
        func read(_ path: String, _ what: String) throws(SnapshotTLSError) -> String {
            guard let data = FileManagerShim.contents(atPath: path), let text = String(bytes: data, encoding: .utf8), text.contains("-----BEGIN")
            else { throw SnapshotTLSError(description: "\(what) \(path) cannot be read as PEM") }
            return text
        }
        return SnapshotTLS(
            certificateChainPEM: try read(certificate, "certificate"), privateKeyPEM: try read(key, "private key"),
            certificateAuthorityPEM: try read(certificateAuthority, "CA certificate"))
    }

    var serverSecurity: HTTP2ServerTransport.Posix.TransportSecurity {
        .mTLS(
            certificateChain: [.bytes(Array(certificateChainPEM.utf8), format: .pem)],
            privateKey: .bytes(Array(privateKeyPEM.utf8), format: .pem)
        ) { config in
            config.trustRoots = .certificates([.bytes(Array(certificateAuthorityPEM.utf8), format: .pem)])
            config.clientCertificateVerification = .noHostnameVerification
        }
    }

    var clientSecurity: HTTP2ClientTransport.Posix.TransportSecurity {
        .mTLS(
            certificateChain: [.bytes(Array(certificateChainPEM.utf8), format: .pem)],
            privateKey: .bytes(Array(privateKeyPEM.utf8), format: .pem)
        ) { config in
            config.trustRoots = .certificates([.bytes(Array(certificateAuthorityPEM.utf8), format: .pem)])
            config.serverCertificateVerification = .fullVerification
        }
    }
}

public struct SnapshotTLSError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a whole file without Foundation (this module does not otherwise need it).
enum FileManagerShim {
    static func contents(atPath path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count > 0 { bytes.append(contentsOf: buffer[..<count]) }
            if count < buffer.count { break }
        }
        return ferror(file) == 0 ? bytes : nil
    }
}
