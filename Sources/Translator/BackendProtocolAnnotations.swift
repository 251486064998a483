import KubeTypes
import RouteModel

/// ingress-nginx's `backend-protocol` and `proxy-ssl-*`, read for one Ingress.
///
/// The TLS settings are finished by the translator, which knows each route's Service (the default
/// server name) and the Secrets (`proxy-ssl-secret`'s CA, certificate and key).
struct UpstreamProtocolSettings: Sendable {
    var upstreamProtocol: UpstreamProtocol = .http
    /// `proxy-ssl-name`.
    var serverName: String?
    /// `proxy-ssl-server-name: off`.
    var sendsServerName = true
    /// `proxy-ssl-verify: on`.
    var verify = false
    /// `proxy-ssl-secret`, in the Ingress's namespace, and the key it was read from.
    var secret: String?
    var secretKey: String?

    init() {}

    init(_ annotations: inout IngressAnnotations, namespace: String) {
        if let (key, value) = annotations.value("backend-protocol") {
            switch value.uppercased() {
            case "HTTP": upstreamProtocol = .http
            case "HTTPS": upstreamProtocol = .https
            case "GRPC": upstreamProtocol = .grpc
            case "GRPCS": upstreamProtocol = .grpcs
            case "H2C": upstreamProtocol = .h2c
            case "AUTO_HTTP", "FCGI":
                annotations.report(
                    key, .unsupported, reason: .unsupportedAnnotation, effect: .defaultApplied,
                    "\(value.uppercased()) is not supported; the Pods are spoken to with HTTP")
            default:
                annotations.invalid(key, "\"\(value)\" is not HTTP, HTTPS, GRPC, GRPCS or H2C; HTTP applies")
            }
        }
        // As ingress-nginx: the verification settings are read only with a Secret.
        if let (key, value) = annotations.value("proxy-ssl-secret") {
            let parts = value.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count == 2, String(parts[0]) == namespace, !parts[1].isEmpty {
                secret = value
                secretKey = key
            } else if parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty {
                annotations.invalid(key, "\"\(value)\" is in another namespace; only Secrets of the Ingress's namespace (\(namespace)) are used")
            } else {
                annotations.invalid(key, "\"\(value)\" is not namespace/name")
            }
        }
        if let (key, value) = annotations.value("proxy-ssl-verify") {
            switch value.lowercased() {
            case "on": verify = true
            case "off": verify = false
            default: annotations.invalid(key, "\"\(value)\" is not on or off; the Pod's certificate is not verified")
            }
        }
        if let (key, value) = annotations.value("proxy-ssl-name") {
            if IngressAnnotations.isHostValue(value) { serverName = value.lowercased() } else {
                annotations.invalid(key, "\"\(value)\" is not a host name; the default name applies")
            }
        }
        if let (key, value) = annotations.value("proxy-ssl-server-name") {
            switch value.lowercased() {
            case "on": sendsServerName = true
            case "off": sendsServerName = false
            default: annotations.invalid(key, "\"\(value)\" is not on or off; SNI is sent")
            }
        }
        if verify, secret == nil, let (key, _) = annotations.value("proxy-ssl-verify") {
            annotations.invalid(key, "verification needs proxy-ssl-secret with the CA (ca.crt); the Pod's certificate is not verified")
            verify = false
        }
    }

    /// What `proxy-ssl-secret` holds, once `resolve` has read it.
    private var trustedCertificatesPEM: String?
    private var clientCertificatePEM: String?
    private var clientKeyPEM: String?

    /// Reads `proxy-ssl-secret` (its ca.crt, and tls.crt with tls.key when both are there); returns
    /// what is wrong with it, if anything.
    mutating func resolve(secrets: [String: Secret]) -> String? {
        guard upstreamProtocol.usesTLS, let secretName = secret else { return nil }
        guard let secret = secrets[secretName] else {
            // Verification asked for and impossible: nothing is trusted, so no connection is made.
            return "Secret \(secretName) does not exist" + (verify ? "; no Pod certificate is accepted until it does" : "")
        }
        func pem(_ key: String) -> String? {
            secret.value(key).flatMap { $0.isEmpty ? nil : String(decoding: $0, as: UTF8.self) }
        }
        trustedCertificatesPEM = pem("ca.crt")
        if let chain = pem(Secret.certificateKey), let key = pem(Secret.privateKeyKey) {
            clientCertificatePEM = chain
            clientKeyPEM = key
        }
        if verify, trustedCertificatesPEM == nil {
            return "Secret \(secretName) has no ca.crt; no Pod certificate is accepted until it does"
        }
        return nil
    }

    /// The TLS settings of a route to `service`, for HTTPS and GRPCS. The name is proxy-ssl-name,
    /// else upstream-vhost (`upstreamHost`), else the Service's cluster name `service.namespace.svc`.
    func tls(service: String, namespace: String, upstreamHost: String?) -> UpstreamTLS? {
        guard upstreamProtocol.usesTLS else { return nil }
        let name = serverName ?? upstreamHost.map(Self.hostWithoutPort) ?? "\(service).\(namespace).svc"
        return UpstreamTLS(
            serverName: name, sendsServerName: sendsServerName, verify: verify, trustedCertificatesPEM: trustedCertificatesPEM,
            clientCertificatePEM: clientCertificatePEM, clientKeyPEM: clientKeyPEM)
    }

    private static func hostWithoutPort(_ host: String) -> String {
        if host.hasPrefix("[") { return host }
        guard let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon else { return host }
        return String(host[..<colon])
    }
}
