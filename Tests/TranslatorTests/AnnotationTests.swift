import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import Translator

/// What the translator makes of each kind of annotation: supported ones are read under either prefix,
/// everything else is reported, and access control Portico cannot honour rejects the Ingress.
@Suite struct AnnotationTests {
    func translate(_ annotations: [String: String]) -> Translation {
        Translator.translate(objects(F.ingress("i", annotations: annotations, rules: [F.rule("h", p("/"))])))
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let annotations: [String: String]
        /// Each key's status in `Translation.annotations`.
        let statuses: [String: AnnotationUse.Status]
        let reasons: [Rejection.Reason]
        /// The Ingress still routes `h/`.
        let served: Bool
        var testDescription: String { annotations.keys.sorted().joined(separator: ",") }
    }

    static let nginx = "nginx.ingress.kubernetes.io/"

    static let cases: [Case] = [
        Case(annotations: [nginx + "ssl-redirect": "false"], statuses: [nginx + "ssl-redirect": .supported], reasons: [], served: true),
        Case(annotations: ["portico.io/proxy-body-size": "1m"], statuses: ["portico.io/proxy-body-size": .supported], reasons: [], served: true),
        Case(annotations: [nginx + "load-balance": "ewma"], statuses: [nginx + "load-balance": .differs], reasons: [], served: true),
        Case(annotations: [nginx + "proxy-buffer-size": "16k"], statuses: [nginx + "proxy-buffer-size": .differs], reasons: [], served: true),
        Case(
            annotations: [nginx + "enable-cors": "true"], statuses: [nginx + "enable-cors": .unsupported], reasons: [.unsupportedAnnotation],
            served: true),
        // A switch at ingress-nginx's default asks for nothing.
        Case(annotations: [nginx + "enable-cors": "false"], statuses: [nginx + "enable-cors": .supported], reasons: [], served: true),
        Case(annotations: [nginx + "backend-protocol": "HTTP"], statuses: [nginx + "backend-protocol": .supported], reasons: [], served: true),
        Case(
            annotations: [nginx + "backend-protocol": "FCGI"], statuses: [nginx + "backend-protocol": .unsupported],
            reasons: [.unsupportedAnnotation], served: true),
        Case(
            annotations: [nginx + "auth-url": "http://auth.example/check"], statuses: [nginx + "auth-url": .unsupported],
            reasons: [.unsupportedAnnotation], served: false),
        Case(
            annotations: [nginx + "whitelist-source-range": "10.0.0.0/8"], statuses: [nginx + "whitelist-source-range": .unsupported],
            reasons: [.unsupportedAnnotation], served: false),
        Case(annotations: [nginx + "canary": "true"], statuses: [nginx + "canary": .unsupported], reasons: [.unsupportedAnnotation], served: false),
        Case(annotations: [nginx + "canary": "false"], statuses: [nginx + "canary": .supported], reasons: [], served: true),
        Case(
            annotations: [nginx + "configuration-snippet": "more_set_headers \"X: y\";"], statuses: [nginx + "configuration-snippet": .differs],
            reasons: [], served: true),
        Case(
            annotations: [nginx + "configuration-snippet": "more_set_headers \"X: y\";\nlua_need_request_body on;"],
            statuses: [nginx + "configuration-snippet": .unsupported], reasons: [.unsupportedAnnotation], served: true),
        Case(
            annotations: [nginx + "server-snippet": "location /x { return 200; }"], statuses: [nginx + "server-snippet": .unsupported],
            reasons: [.unsupportedAnnotation], served: true),
        Case(annotations: [nginx + "no-such-thing": "1"], statuses: [nginx + "no-such-thing": .unknown], reasons: [.unknownAnnotation], served: true),
        // Portico's own annotations exist only under portico.io/.
        Case(annotations: [nginx + "hsts": "true"], statuses: [nginx + "hsts": .unknown], reasons: [.unknownAnnotation], served: true),
        Case(annotations: ["portico.io/sticky": "yes"], statuses: ["portico.io/sticky": .unknown], reasons: [.unknownAnnotation], served: true),
        Case(
            annotations: [nginx + "proxy-body-size": "lots"], statuses: [nginx + "proxy-body-size": .invalid], reasons: [.invalidAnnotation],
            served: true),
        Case(
            annotations: [nginx + "proxy-body-size": "lots", "portico.io/proxy-body-size": "2k"],
            statuses: [nginx + "proxy-body-size": .shadowed, "portico.io/proxy-body-size": .supported], reasons: [], served: true),
        // Other prefixes are not ours to judge.
        Case(annotations: ["kubernetes.io/ingress.class": "portico", "example.com/owner": "team-a"], statuses: [:], reasons: [], served: true),
    ]

    @Test(arguments: cases) func classified(_ testCase: Case) {
        let translation = translate(testCase.annotations)
        let statuses = Dictionary(uniqueKeysWithValues: translation.annotations.map { ($0.key, $0.status) })
        #expect(statuses == testCase.statuses)
        #expect(translation.rejections.map(\.reason) == testCase.reasons, "\(translation.rejections)")
        #expect((route(translation.table, "h", "/") != "404") == testCase.served)
        for rejection in translation.rejections {
            #expect(rejection.field?.hasPrefix("metadata.annotations[") == true)
            #expect(!rejection.message.isEmpty)
        }
    }

    @Test func theWinningKeyDecides() throws {
        let translation = translate([Self.nginx + "proxy-body-size": "1k", "portico.io/proxy-body-size": "2k"])
        let host = try #require(translation.table.virtualHosts.first)
        #expect(host.routes.first?.backend.options.maxRequestBodyBytes == 2048)
    }

    @Test func nginxLoadBalanceChoosesThePolicy() throws {
        let translation = translate([Self.nginx + "load-balance": "ewma"])
        #expect(translation.table.clusters.first { $0.service == "a" }?.loadBalancing == .leastRequest)
    }

    /// The catalog covers ingress-nginx's annotations, sorted.
    @Test func everyIngressNginxAnnotationIsCatalogued() {
        // ingress-nginx's documented annotations (annotations.md), a sample across its groups.
        for name in [
            "app-root", "rewrite-target", "use-regex", "backend-protocol", "canary-weight", "auth-tls-secret", "proxy-read-timeout",
            "custom-http-errors", "default-backend", "server-snippet", "mirror-target", "x-forwarded-prefix", "upstream-vhost",
        ] {
            #expect(AnnotationCatalog.entry(name)?.inIngressNginx == true, "\(name)")
        }
        #expect(AnnotationCatalog.entries.count >= 135)
        #expect(AnnotationCatalog.entries.map(\.name) == AnnotationCatalog.entries.map(\.name).sorted())
    }
}
