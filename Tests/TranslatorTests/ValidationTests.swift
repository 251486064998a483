import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import Translator

/// A bad Ingress is rejected alone, with a reason and a field; everything else still routes.
@Suite struct ValidationTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let bad: Ingress
        let reason: Rejection.Reason
        let field: String
        var testDescription: String { name }
    }

    static let good = F.ingress("good", rules: [F.rule("good.com", p("/"))])

    static let cases: [Case] = [
        Case(name: "host with an underscore", bad: F.ingress("bad", rules: [F.rule("bad_host.com", p("/"))]), reason: .invalidHost, field: "spec.rules[0].host"),
        Case(name: "wildcard not in the first label", bad: F.ingress("bad", rules: [F.rule("foo.*.com", p("/"))]), reason: .invalidHost, field: "spec.rules[0].host"),
        Case(name: "bare wildcard", bad: F.ingress("bad", rules: [F.rule("*", p("/"))]), reason: .invalidHost, field: "spec.rules[0].host"),
        Case(name: "IP address as host", bad: F.ingress("bad", rules: [F.rule("10.0.0.1", p("/"))]), reason: .invalidHost, field: "spec.rules[0].host"),
        Case(name: "label starting with a dash", bad: F.ingress("bad", rules: [F.rule("-a.com", p("/"))]), reason: .invalidHost, field: "spec.rules[0].host"),
        Case(name: "path without leading slash", bad: F.ingress("bad", rules: [F.rule("h", p("api"))]), reason: .invalidPath, field: "spec.rules[0].http.paths[0].path"),
        Case(name: "Exact path with //", bad: F.ingress("bad", rules: [F.rule("h", p("/a//b", "Exact"))]), reason: .invalidPath, field: "spec.rules[0].http.paths[0].path"),
        Case(name: "Prefix path with /../", bad: F.ingress("bad", rules: [F.rule("h", p("/a/../b"))]), reason: .invalidPath, field: "spec.rules[0].http.paths[0].path"),
        Case(name: "Prefix path ending in /.", bad: F.ingress("bad", rules: [F.rule("h", p("/a/."))]), reason: .invalidPath, field: "spec.rules[0].http.paths[0].path"),
        Case(name: "Prefix path with %2F", bad: F.ingress("bad", rules: [F.rule("h", p("/a%2Fb"))]), reason: .invalidPath, field: "spec.rules[0].http.paths[0].path"),
        Case(name: "path with a query", bad: F.ingress("bad", rules: [F.rule("h", p("/a?b=c"))]), reason: .invalidPath, field: "spec.rules[0].http.paths[0].path"),
        Case(name: "Exact path missing", bad: F.ingress("bad", rules: [F.rule("h", p(nil, "Exact"))]), reason: .invalidPath, field: "spec.rules[0].http.paths[0].path"),
        Case(name: "unknown pathType", bad: F.ingress("bad", rules: [F.rule("h", p("/", "Regex"))]), reason: .invalidPathType, field: "spec.rules[0].http.paths[0].pathType"),
        Case(name: "missing pathType", bad: F.ingress("bad", rules: [F.rule("h", p("/", nil))]), reason: .invalidPathType, field: "spec.rules[0].http.paths[0].pathType"),
        Case(
            name: "backend without port",
            bad: F.ingress("bad", rules: [F.rule("h", F.path("/", "Prefix", IngressBackend(service: IngressServiceBackend(name: "a", port: nil))))]),
            reason: .invalidBackend, field: "spec.rules[0].http.paths[0].backend"),
        Case(
            name: "backend port with number and name",
            bad: F.ingress(
                "bad",
                rules: [F.rule("h", F.path("/", "Prefix", IngressBackend(service: IngressServiceBackend(name: "a", port: ServiceBackendPort(name: "http", number: 80)))))]),
            reason: .invalidBackend, field: "spec.rules[0].http.paths[0].backend"),
        Case(
            name: "backend port out of range",
            bad: F.ingress("bad", rules: [F.rule("h", F.path("/", "Prefix", F.backend("a", 70000)))]),
            reason: .invalidBackend, field: "spec.rules[0].http.paths[0].backend"),
        Case(
            name: "backend naming nothing",
            bad: F.ingress("bad", rules: [F.rule("h", F.path("/", "Prefix", IngressBackend()))]),
            reason: .invalidBackend, field: "spec.rules[0].http.paths[0].backend"),
        Case(name: "no rules and no defaultBackend", bad: F.ingress("bad"), reason: .noRules, field: "spec"),
        Case(
            name: "invalid TLS host",
            bad: F.ingress("bad", tls: [IngressTLS(hosts: ["bad_host"], secretName: "s")], rules: [F.rule("h", p("/"))]),
            reason: .invalidHost, field: "spec.tls[0].hosts[0]"),
        Case(
            name: "invalid defaultBackend",
            bad: F.ingress("bad", defaultBackend: IngressBackend(service: IngressServiceBackend(name: "a", port: nil))),
            reason: .invalidBackend, field: "spec.defaultBackend"),
    ]

    @Test(arguments: cases)
    func badIngressIsRejectedAlone(_ testCase: Case) throws {
        let translation = Translator.translate(objects(Self.good, testCase.bad))
        let rejection = try #require(translation.rejections.first)
        #expect(translation.rejections.count == 1, "\(translation.rejections)")
        #expect(rejection.object.name == "bad")
        #expect(rejection.reason == testCase.reason)
        #expect(rejection.field == testCase.field)
        #expect(rejection.effect == .ingressRejected)
        #expect(translation.rejectedIngresses.map(\.name) == ["bad"])
        #expect(translation.acceptedIngresses.map(\.name) == ["good"])
        #expect(route(translation.table, "good.com", "/") == "a:80 Prefix /")
    }

    @Test func aRejectedIngressContributesNothing() {
        let translation = Translator.translate(
            objects(F.ingress("bad", rules: [F.rule("h", p("/ok")), F.rule("h", p("no-slash"))])))
        #expect(route(translation.table, "h", "/ok") == "404")
        #expect(translation.table.virtualHosts.isEmpty)
    }

    @Test func uppercaseHostsAreLowercased() {
        let translation = Translator.translate(objects(F.ingress("i", rules: [F.rule("API.Example.COM", p("/"))])))
        #expect(translation.table.virtualHosts.map(\.hostname.text) == ["api.example.com"])
        #expect(translation.rejections.isEmpty)
    }

    @Test func resourceBackendDropsOnlyThatPath() {
        let resource = IngressBackend(resource: TypedLocalObjectReference(apiGroup: "k8s.example.com", kind: "StorageBucket", name: "b"))
        let translation = Translator.translate(objects(F.ingress("i", rules: [F.rule("h", p("/ok"), F.path("/bucket", "Prefix", resource))])))
        #expect(translation.rejections.map(\.reason) == [.unsupportedBackend])
        #expect(translation.rejections.first?.effect == .partiallyIgnored)
        #expect(route(translation.table, "h", "/ok") == "a:80 Prefix /ok")
        #expect(route(translation.table, "h", "/bucket") == "404")
    }

    @Test func invalidSSLRedirectAnnotationKeepsTheDefault() {
        let translation = Translator.translate(
            objects(F.ingress("i", annotations: ["portico.io/ssl-redirect": "maybe"], rules: [F.rule("h", p("/"))])))
        #expect(translation.rejections.map(\.reason) == [.invalidAnnotation])
        #expect(translation.rejections.first?.effect == .defaultApplied)
    }
}

@Suite struct PathValidationTests {
    @Test(arguments: [
        ("/a/./b", "must not contain '/./'"), ("/a/..", "must not end with '/..' or '/.'"), ("/a%2fb", "must not contain '%2F'"),
        ("//", "must not contain '//'"), ("/a#b", "must not contain '?' or '#'"), ("/../x", "must not contain '/../'"),
    ])
    func strictPathsRejectTheAPIServersForbiddenShapes(_ path: String, _ message: String) throws {
        for kind in [PathMatchKind.exact, .prefix] {
            guard case .failure(let error) = IngressValidator.validatePath(path, kind: kind) else {
                Issue.record("\(path) accepted as \(kind)")
                continue
            }
            #expect(error.description.contains(message), "\(error)")
        }
    }

    @Test(arguments: ["/a/.b", "/a..b/", "/.well-known/acme", "/a/b.", "/%2e", "/a/...", "/2f"])
    func strictPathsAcceptLookalikes(_ path: String) {
        #expect((try? IngressValidator.validatePath(path, kind: .prefix).get()) != nil, "\(path)")
    }

    @Test func implementationSpecificPathsAreNormalisedNotRejected() throws {
        #expect(try IngressValidator.validatePath("/a//b/../c", kind: .implementationSpecific).get() == "/a/c")
    }
}

@Suite struct BodySizeAnnotationTests {
    @Test(arguments: [("8m", Int64(8 << 20)), ("512k", 512 << 10), ("1G", 1 << 30), ("100", 100), (" 2M ", 2 << 20)])
    func sizesParse(_ text: String, _ bytes: Int64) {
        #expect(IngressValidator.parseSize(text) == bytes)
    }

    @Test(arguments: ["", "m", "1.5m", "-1", "8mb", "ten", "99999999999999999999g"])
    func badSizesDoNot(_ text: String) {
        #expect(IngressValidator.parseSize(text) == nil)
    }

    @Test func theLimitReachesEveryRouteAndDefaultBackendOfTheIngress() throws {
        let translation = Translator.translate(
            objects(
                F.ingress(
                    "i", annotations: ["portico.io/proxy-body-size": "1m"], defaultBackend: F.backend("d", 80),
                    rules: [F.rule("h", p("/a"), p("/b"))]),
                F.ingress("other", rules: [F.rule("h", p("/c"))])))
        let host = try #require(translation.table.virtualHosts.first { $0.hostname == .exact("h") })
        #expect(host.routes.map(\.backend.options.maxRequestBodyBytes) == [1 << 20, 1 << 20, nil])
        #expect(host.defaultBackend?.options.maxRequestBodyBytes == 1 << 20)
    }

    @Test func zeroMeansNoLimitAndTheNginxKeyIsRead() throws {
        let zero = Translator.translate(objects(F.ingress("i", annotations: ["portico.io/proxy-body-size": "0"], rules: [F.rule("h", p("/"))])))
        #expect(zero.table.virtualHosts.first?.routes.first?.backend.options.maxRequestBodyBytes == nil)
        let nginx = Translator.translate(
            objects(F.ingress("i", annotations: ["nginx.ingress.kubernetes.io/proxy-body-size": "2k"], rules: [F.rule("h", p("/"))])))
        #expect(nginx.table.virtualHosts.first?.routes.first?.backend.options.maxRequestBodyBytes == 2048)
    }

    @Test func aBadValueIsReportedAndIgnored() {
        let translation = Translator.translate(
            objects(F.ingress("i", annotations: ["portico.io/proxy-body-size": "lots"], rules: [F.rule("h", p("/"))])))
        #expect(translation.rejections.map(\.reason) == [.invalidAnnotation])
        #expect(translation.table.virtualHosts.first?.routes.first?.backend.options.maxRequestBodyBytes == nil)
    }
}

@Suite struct LoadBalanceAnnotationTests {
    @Test func leastRequestIsSetOnTheClusters() {
        let translation = Translator.translate(
            objects(F.ingress("i", annotations: ["portico.io/load-balance": "least-request"], rules: [F.rule("h", p("/", "Prefix", "a"))])))
        #expect(translation.table.clusters.map(\.loadBalancing) == [.leastRequest])
        #expect(translation.rejections.isEmpty)
    }

    @Test func theOldestIngressDecidesASharedCluster() {
        let translation = Translator.translate(
            objects(
                F.ingress("old", created: 1, annotations: ["portico.io/load-balance": "least-request"], rules: [F.rule("h", p("/a", "Prefix", "a"))]),
                F.ingress("new", created: 2, annotations: ["portico.io/load-balance": "round-robin"], rules: [F.rule("h", p("/b", "Prefix", "a"))])))
        #expect(translation.table.clusters.map(\.loadBalancing) == [.leastRequest])
        #expect(translation.rejections.map(\.object.name) == ["new"])
    }

    @Test func anUnknownPolicyIsReported() {
        let translation = Translator.translate(
            objects(F.ingress("i", annotations: ["portico.io/load-balance": "random"], rules: [F.rule("h", p("/"))])))
        #expect(translation.rejections.map(\.reason) == [.invalidAnnotation])
        #expect(translation.table.clusters.map(\.loadBalancing) == [.roundRobin])
    }
}
