import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import Translator

@Suite struct TLSTests {
    static let shop = try! TestCertificate(commonName: "shop.example.com", dnsNames: ["shop.example.com"])
    static let wildcard = try! TestCertificate(commonName: "*.example.com", dnsNames: ["*.example.com", "example.com"])
    static let other = try! TestCertificate(commonName: "other", dnsNames: ["other.example.com"])

    func tlsIngress(
        _ name: String = "i", hosts: [String] = ["shop.example.com"], secret: String? = "shop-tls", created: Int64? = nil,
        annotations: [String: String]? = nil, rules: [IngressRule]? = nil
    ) -> Ingress {
        F.ingress(
            name, created: created, annotations: annotations, tls: [IngressTLS(hosts: hosts, secretName: secret)],
            rules: rules ?? [F.rule("shop.example.com", p("/"))])
    }

    func host(_ table: RouteTable, _ name: String) throws -> VirtualHost {
        try #require(table.virtualHosts.first { $0.hostname.text == name })
    }

    @Test func validSecretBindsItsCertificateWithMetadata() throws {
        let secret = F.tlsSecret("shop-tls", certificatePEM: Self.shop.certificatePEM, keyPEM: Self.shop.privateKeyPEM)
        let translation = Translator.translate(objects(tlsIngress(), secrets: [secret]))
        #expect(translation.rejections.isEmpty, "\(translation.rejections)")
        let vhost = try host(translation.table, "shop.example.com")
        #expect(vhost.tls?.certificate == "default/shop-tls")
        let certificate = try #require(translation.table.certificate(named: "default/shop-tls"))
        #expect(certificate.metadata.dnsNames == ["shop.example.com"])
        #expect(certificate.metadata.subject == "CN=shop.example.com")
        #expect(certificate.metadata.notAfter == 2_000_000_000)
        #expect(certificate.privateKeyPEM == Self.shop.privateKeyPEM)
    }

    @Test func stringDataSecretsWork() throws {
        let secret = Secret(
            metadata: F.meta("shop-tls"), type: Secret.tlsType,
            stringData: ["tls.crt": Self.shop.certificatePEM, "tls.key": Self.shop.privateKeyPEM])
        let translation = Translator.translate(objects(tlsIngress(), secrets: [secret]))
        #expect(translation.rejections.isEmpty)
        #expect(try host(translation.table, "shop.example.com").tls?.certificate == "default/shop-tls")
    }

    @Test func missingSecretFallsBackToTheDefaultCertificate() throws {
        let translation = Translator.translate(objects(tlsIngress()))
        let vhost = try host(translation.table, "shop.example.com")
        #expect(vhost.tls == TLSBinding(certificate: nil))
        #expect(translation.rejections.map(\.reason) == [.tlsSecretNotFound])
        #expect(translation.rejections.first?.effect == .defaultCertificate)
        #expect(translation.rejections.first?.field == "spec.tls[0].secretName")
        #expect(route(translation.table, "shop.example.com", "/") == "a:80 Prefix /", "routing is unaffected")
    }

    struct BadSecret: CustomTestStringConvertible, Sendable {
        let name: String
        let secret: Secret
        let expect: String
        var testDescription: String { name }
    }

    static let badSecrets: [BadSecret] = [
        BadSecret(
            name: "garbage PEM",
            secret: F.tlsSecret("shop-tls", certificatePEM: "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", keyPEM: shop.privateKeyPEM),
            expect: "not a valid PEM certificate chain"),
        BadSecret(
            name: "no certificate block",
            secret: F.tlsSecret("shop-tls", certificatePEM: "hello", keyPEM: shop.privateKeyPEM), expect: "holds no PEM CERTIFICATE block"),
        BadSecret(
            name: "key of another certificate",
            secret: F.tlsSecret("shop-tls", certificatePEM: shop.certificatePEM, keyPEM: other.privateKeyPEM),
            expect: "does not belong to the first certificate"),
        BadSecret(
            name: "unreadable key",
            secret: F.tlsSecret("shop-tls", certificatePEM: shop.certificatePEM, keyPEM: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            expect: "is not a supported private key"),
        BadSecret(
            name: "wrong type",
            secret: Secret(metadata: F.meta("shop-tls"), type: "Opaque", stringData: ["tls.crt": shop.certificatePEM, "tls.key": shop.privateKeyPEM]),
            expect: "must be kubernetes.io/tls"),
        BadSecret(
            name: "missing key",
            secret: Secret(metadata: F.meta("shop-tls"), type: Secret.tlsType, stringData: ["tls.crt": shop.certificatePEM]),
            expect: "has no tls.key"),
    ]

    @Test(arguments: badSecrets)
    func invalidSecretFallsBackAndIsReported(_ bad: BadSecret) throws {
        let translation = Translator.translate(objects(tlsIngress(), secrets: [bad.secret]))
        #expect(try host(translation.table, "shop.example.com").tls == TLSBinding(certificate: nil))
        #expect(translation.table.certificates.isEmpty)
        let rejection = try #require(translation.rejections.first)
        #expect(rejection.reason == .tlsSecretInvalid)
        #expect(rejection.message.contains(bad.expect), "\(rejection.message)")
        #expect(!rejection.message.contains("PRIVATE"), "no key material in messages")
    }

    @Test func tlsHostsRedirectByDefault() throws {
        let secret = F.tlsSecret("shop-tls", certificatePEM: Self.shop.certificatePEM, keyPEM: Self.shop.privateKeyPEM)
        let translation = Translator.translate(
            objects(tlsIngress(rules: [F.rule("shop.example.com", p("/")), F.rule("plain.example.com", p("/"))]), secrets: [secret]))
        #expect(try host(translation.table, "shop.example.com").routes.first?.backend.httpsRedirect == true)
        #expect(try host(translation.table, "plain.example.com").routes.first?.backend.httpsRedirect == false)
    }

    @Test(arguments: ["portico.io/ssl-redirect", "nginx.ingress.kubernetes.io/ssl-redirect"])
    func redirectCanBeTurnedOff(_ annotation: String) throws {
        let translation = Translator.translate(objects(tlsIngress(annotations: [annotation: "false"])))
        #expect(try host(translation.table, "shop.example.com").routes.first?.backend.httpsRedirect == false)
    }

    @Test func redirectFollowsTheRouteOwnersAnnotation() throws {
        let translation = Translator.translate(
            objects(
                tlsIngress("tls", created: 1),
                F.ingress("optout", created: 2, annotations: ["portico.io/ssl-redirect": "false"], rules: [F.rule("shop.example.com", p("/acme"))])))
        let vhost = try host(translation.table, "shop.example.com")
        #expect(vhost.routes.map(\.backend.httpsRedirect) == [true, false])
    }

    @Test func noSecretNameMeansDefaultCertificateWithoutComplaint() throws {
        let translation = Translator.translate(objects(tlsIngress(secret: nil)))
        #expect(try host(translation.table, "shop.example.com").tls == TLSBinding(certificate: nil))
        #expect(translation.rejections.isEmpty)
    }

    @Test func exactHostInheritsTheWildcardCertificate() throws {
        let secret = F.tlsSecret("wild", certificatePEM: Self.wildcard.certificatePEM, keyPEM: Self.wildcard.privateKeyPEM)
        let translation = Translator.translate(
            objects(tlsIngress(hosts: ["*.example.com"], secret: "wild"), secrets: [secret]))
        #expect(try host(translation.table, "shop.example.com").tls?.certificate == "default/wild")
        #expect(try host(translation.table, "*.example.com").tls?.certificate == "default/wild")
        #expect(try host(translation.table, "shop.example.com").routes.first?.backend.httpsRedirect == true)
    }

    @Test func tlsHostConflictOldestWins() throws {
        let shop = F.tlsSecret("shop-tls", certificatePEM: Self.shop.certificatePEM, keyPEM: Self.shop.privateKeyPEM)
        let other = F.tlsSecret("other-tls", certificatePEM: Self.other.certificatePEM, keyPEM: Self.other.privateKeyPEM)
        let translation = Translator.translate(
            objects(
                tlsIngress("young", secret: "other-tls", created: 20, rules: [F.rule("shop.example.com", p("/b"))]),
                tlsIngress("old", secret: "shop-tls", created: 10),
                secrets: [shop, other]))
        #expect(try host(translation.table, "shop.example.com").tls?.certificate == "default/shop-tls")
        #expect(translation.rejections.map(\.reason) == [.tlsHostConflict])
        #expect(translation.rejections.first?.object.name == "young")
        #expect(translation.table.certificates.map(\.name) == ["default/shop-tls"], "an unused certificate is not shipped")
    }

    @Test func tlsHostWithoutRulesStillGetsAVirtualHost() throws {
        let secret = F.tlsSecret("shop-tls", certificatePEM: Self.shop.certificatePEM, keyPEM: Self.shop.privateKeyPEM)
        let translation = Translator.translate(
            objects(tlsIngress(rules: [F.rule("elsewhere.com", p("/"))]), secrets: [secret]))
        let vhost = try host(translation.table, "shop.example.com")
        #expect(vhost.routes.isEmpty)
        #expect(vhost.tls?.certificate == "default/shop-tls")
    }

    @Test func aSecretUsedByTwoIngressesIsLoadedOnceAndReportedToBoth() {
        let translation = Translator.translate(
            objects(
                tlsIngress("one", hosts: ["a.example.com"], secret: "missing", rules: [F.rule("a.example.com", p("/"))]),
                tlsIngress("two", hosts: ["b.example.com"], secret: "missing", rules: [F.rule("b.example.com", p("/"))])))
        #expect(translation.rejections.map(\.object.name) == ["one", "two"])
    }

    @Test func tlsEntryWithoutHostsIsReported() {
        let translation = Translator.translate(objects(tlsIngress(hosts: [])))
        #expect(translation.rejections.map(\.reason) == [.tlsWithoutHosts])
    }
    @Test(arguments: [
        ("true", HSTSPolicy(maxAgeSeconds: 31_536_000, includeSubdomains: true)),
        ("max-age=600", HSTSPolicy(maxAgeSeconds: 600)),
        ("max-age=63072000; includeSubDomains; preload", HSTSPolicy(maxAgeSeconds: 63_072_000, includeSubdomains: true, preload: true)),
        ("false", nil),
    ] as [(String, HSTSPolicy?)])
    func hstsComesFromTheAnnotation(_ value: String, _ expected: HSTSPolicy?) throws {
        let translation = Translator.translate(objects(tlsIngress(secret: nil, annotations: ["portico.io/hsts": value])))
        #expect(translation.rejections.isEmpty, "\(translation.rejections)")
        #expect(try host(translation.table, "shop.example.com").tls?.hsts == expected)
    }

    @Test(arguments: ["max-age=soon", "includeSubDomains", "max-age=60; sometimes"])
    func aBadHSTSAnnotationIsReportedAndSendsNone(_ value: String) throws {
        let translation = Translator.translate(objects(tlsIngress(secret: nil, annotations: ["portico.io/hsts": value])))
        #expect(try host(translation.table, "shop.example.com").tls?.hsts == nil)
        let rejection = try #require(translation.rejections.first)
        #expect(rejection.reason == .invalidAnnotation)
        #expect(rejection.field == "metadata.annotations[portico.io/hsts]")
        #expect(route(translation.table, "shop.example.com", "/") == "a:80 Prefix /", "routing is unaffected")
    }
}
