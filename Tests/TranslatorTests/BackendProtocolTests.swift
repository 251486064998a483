import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import Translator

/// `backend-protocol` and `proxy-ssl-*` through the translator: what each route holds.
@Suite struct BackendProtocolTests {
    static let n = "nginx.ingress.kubernetes.io/"
    static let ca = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
    static let chain = "-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n"
    static let key = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n"
    static let secrets = [
        Secret(metadata: F.meta("pod-ca"), data: ["ca.crt": Base64Data(Array(ca.utf8))]),
        Secret(
            metadata: F.meta("pod-mtls"),
            data: ["ca.crt": Base64Data(Array(ca.utf8)), "tls.crt": Base64Data(Array(chain.utf8)), "tls.key": Base64Data(Array(key.utf8))]),
        Secret(metadata: F.meta("no-ca"), data: ["tls.crt": Base64Data(Array(chain.utf8)), "tls.key": Base64Data(Array(key.utf8))]),
        Secret(metadata: F.meta("elsewhere", namespace: "other"), data: ["ca.crt": Base64Data(Array(ca.utf8))]),
    ]

    struct Case: CustomTestStringConvertible, Sendable {
        let annotations: [String: String]
        let upstreamProtocol: UpstreamProtocol
        let tls: UpstreamTLS?
        let reasons: [Rejection.Reason]
        var testDescription: String { annotations.sorted { $0.key < $1.key }.map { "\($0.key.split(separator: "/").last!)=\($0.value)" }.joined(separator: " ") }
    }

    static let cases: [Case] = [
        Case(annotations: [:], upstreamProtocol: .http, tls: nil, reasons: []),
        Case(annotations: [n + "backend-protocol": "HTTP"], upstreamProtocol: .http, tls: nil, reasons: []),
        // Verification off by default, as in ingress-nginx; SNI is the Service's cluster name.
        Case(annotations: [n + "backend-protocol": "HTTPS"], upstreamProtocol: .https, tls: UpstreamTLS(serverName: "a.default.svc"), reasons: []),
        Case(annotations: [n + "backend-protocol": "grpc"], upstreamProtocol: .grpc, tls: nil, reasons: []),
        Case(annotations: [n + "backend-protocol": "GRPCS"], upstreamProtocol: .grpcs, tls: UpstreamTLS(serverName: "a.default.svc"), reasons: []),
        Case(annotations: [n + "backend-protocol": "H2C"], upstreamProtocol: .h2c, tls: nil, reasons: []),
        Case(annotations: ["portico.io/backend-protocol": "GRPC"], upstreamProtocol: .grpc, tls: nil, reasons: []),
        Case(annotations: [n + "backend-protocol": "FCGI"], upstreamProtocol: .http, tls: nil, reasons: [.unsupportedAnnotation]),
        Case(annotations: [n + "backend-protocol": "AUTO_HTTP"], upstreamProtocol: .http, tls: nil, reasons: [.unsupportedAnnotation]),
        Case(annotations: [n + "backend-protocol": "SPDY"], upstreamProtocol: .http, tls: nil, reasons: [.invalidAnnotation]),
        // The name: proxy-ssl-name, else upstream-vhost without its port.
        Case(
            annotations: [n + "backend-protocol": "HTTPS", n + "upstream-vhost": "app.internal:8443"], upstreamProtocol: .https,
            tls: UpstreamTLS(serverName: "app.internal"), reasons: []),
        Case(
            annotations: [n + "backend-protocol": "HTTPS", n + "upstream-vhost": "app.internal", n + "proxy-ssl-name": "Pod.Internal"],
            upstreamProtocol: .https, tls: UpstreamTLS(serverName: "pod.internal"), reasons: []),
        Case(
            annotations: [n + "backend-protocol": "HTTPS", n + "proxy-ssl-name": "not a name"], upstreamProtocol: .https,
            tls: UpstreamTLS(serverName: "a.default.svc"), reasons: [.invalidAnnotation]),
        Case(
            annotations: [n + "backend-protocol": "HTTPS", n + "proxy-ssl-server-name": "off"], upstreamProtocol: .https,
            tls: UpstreamTLS(serverName: "a.default.svc", sendsServerName: false), reasons: []),
        // Verification with the Secret's CA; its certificate and key are presented.
        Case(
            annotations: [n + "backend-protocol": "HTTPS", n + "proxy-ssl-verify": "on", n + "proxy-ssl-secret": "default/pod-ca"],
            upstreamProtocol: .https, tls: UpstreamTLS(serverName: "a.default.svc", verify: true, trustedCertificatesPEM: ca), reasons: []),
        Case(
            annotations: [n + "backend-protocol": "GRPCS", n + "proxy-ssl-verify": "on", n + "proxy-ssl-secret": "default/pod-mtls"],
            upstreamProtocol: .grpcs,
            tls: UpstreamTLS(
                serverName: "a.default.svc", verify: true, trustedCertificatesPEM: ca, clientCertificatePEM: chain, clientKeyPEM: key),
            reasons: []),
        Case(
            annotations: [n + "backend-protocol": "HTTPS", n + "proxy-ssl-secret": "default/no-ca"], upstreamProtocol: .https,
            tls: UpstreamTLS(serverName: "a.default.svc", clientCertificatePEM: chain, clientKeyPEM: key), reasons: []),
        // Verification that cannot be done trusts nothing (no Pod is connected to) and says why.
        Case(
            annotations: [n + "backend-protocol": "HTTPS", n + "proxy-ssl-verify": "on", n + "proxy-ssl-secret": "default/no-ca"],
            upstreamProtocol: .https, tls: UpstreamTLS(serverName: "a.default.svc", verify: true, clientCertificatePEM: chain, clientKeyPEM: key),
            reasons: [.tlsSecretNotFound]),
        Case(
            annotations: [n + "backend-protocol": "HTTPS", n + "proxy-ssl-verify": "on", n + "proxy-ssl-secret": "default/missing"],
            upstreamProtocol: .https, tls: UpstreamTLS(serverName: "a.default.svc", verify: true), reasons: [.tlsSecretNotFound]),
        Case(
            annotations: [n + "backend-protocol": "HTTPS", n + "proxy-ssl-verify": "on"], upstreamProtocol: .https,
            tls: UpstreamTLS(serverName: "a.default.svc"), reasons: [.invalidAnnotation]),
        Case(
            annotations: [n + "backend-protocol": "HTTPS", n + "proxy-ssl-verify": "on", n + "proxy-ssl-secret": "other/elsewhere"],
            upstreamProtocol: .https, tls: UpstreamTLS(serverName: "a.default.svc"), reasons: [.invalidAnnotation, .invalidAnnotation]),
        Case(
            annotations: [n + "backend-protocol": "HTTPS", n + "proxy-ssl-verify": "sometimes"], upstreamProtocol: .https,
            tls: UpstreamTLS(serverName: "a.default.svc"), reasons: [.invalidAnnotation]),
        // TLS settings without TLS to the Pod ask for nothing.
        Case(annotations: [n + "proxy-ssl-verify": "on", n + "proxy-ssl-secret": "default/pod-ca"], upstreamProtocol: .http, tls: nil, reasons: []),
    ]

    @Test(arguments: cases) func routeHolds(_ testCase: Case) throws {
        let translation = Translator.translate(
            objects(F.ingress("i", annotations: testCase.annotations, rules: [F.rule("h", p("/"))]), secrets: Self.secrets))
        #expect(translation.rejections.map(\.reason).sorted { "\($0)" < "\($1)" } == testCase.reasons, "\(translation.rejections)")
        let route = try #require(translation.table.virtualHosts.first { $0.hostname.text == "h" }?.routes.first)
        #expect(route.backend.options.upstreamProtocol == testCase.upstreamProtocol)
        #expect(route.backend.options.upstreamTLS == testCase.tls)
        // The Ingress is served whatever its TLS settings say.
        #expect(translation.rejectedIngresses.isEmpty)
    }

    /// Each path's TLS name is its own Service's.
    @Test func eachPathNamesItsOwnService() throws {
        let translation = Translator.translate(
            objects(F.ingress("i", annotations: [Self.n + "backend-protocol": "HTTPS"], rules: [F.rule("h", p("/a", "Prefix", "a"), p("/b", "Prefix", "b"))])))
        let routes = try #require(translation.table.virtualHosts.first?.routes)
        #expect(Set(routes.map { $0.backend.options.upstreamTLS?.serverName }) == ["a.default.svc", "b.default.svc"])
    }

    /// An Ingress added incrementally reads its proxy-ssl-secret as a full translation does.
    @Test func anIncrementalChangeReadsTheSecret() throws {
        let ingress = F.ingress(
            "i", annotations: [Self.n + "backend-protocol": "HTTPS", Self.n + "proxy-ssl-verify": "on", Self.n + "proxy-ssl-secret": "default/pod-ca"],
            rules: [F.rule("h", p("/"))])
        let before = objects(F.ingress("other", rules: [F.rule("o", p("/"))]), secrets: Self.secrets)
        var incremental = IncrementalTranslator(objects: before, translation: Translator.translate(before))
        let applied = incremental.apply(["default/i": ingress])
        let table = try #require(applied)
        let full = Translator.translate(objects(F.ingress("other", rules: [F.rule("o", p("/"))]), ingress, secrets: Self.secrets))
        #expect(table == full.table)
        #expect(table.virtualHosts.first { $0.hostname.text == "h" }?.routes.first?.backend.options.upstreamTLS?.trustedCertificatesPEM == Self.ca)
    }
}
