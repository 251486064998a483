import KubeTypes
import Testing
import TestSupport
@testable import Translator

@Suite struct HostMatchingTests {
    static let cases: [RoutingCase] = [
        RoutingCase(
            "wildcard covers exactly one label",
            objects(F.ingress("i", rules: [F.rule("*.foo.com", p("/"))])),
            [("bar.foo.com", "/", "a:80 Prefix /"), ("foo.com", "/", "404"), ("baz.bar.foo.com", "/", "404")]),
        RoutingCase(
            "wildcard does not match an empty first label",
            objects(F.ingress("i", rules: [F.rule("*.foo.com", p("/"))])), [(".foo.com", "/", "404")]),
        RoutingCase(
            "exact host beats wildcard",
            objects(F.ingress("i", rules: [F.rule("*.foo.com", p("/", "Prefix", "a")), F.rule("bar.foo.com", p("/", "Prefix", "b"))])),
            [("bar.foo.com", "/", "b:80 Prefix /"), ("baz.foo.com", "/", "a:80 Prefix /")]),
        RoutingCase(
            "an exact host does not fall through to the wildcard for unmatched paths",
            objects(F.ingress("i", rules: [F.rule("*.foo.com", p("/", "Prefix", "a")), F.rule("bar.foo.com", p("/x", "Prefix", "b"))])),
            [("bar.foo.com", "/y", "404")]),
        RoutingCase(
            "hosts match case-insensitively",
            objects(F.ingress("i", rules: [F.rule("Foo.Example.com", p("/"))])), [("FOO.example.COM", "/", "a:80 Prefix /")]),
        RoutingCase(
            "a :port in the Host header is ignored",
            objects(F.ingress("i", rules: [F.rule("foo.com", p("/"))])), [("foo.com:8080", "/", "a:80 Prefix /")]),
        RoutingCase(
            "a trailing dot in the Host header is ignored",
            objects(F.ingress("i", rules: [F.rule("foo.com", p("/"))])), [("foo.com.", "/", "a:80 Prefix /"), ("foo.com.:80", "/", "a:80 Prefix /")]),
        RoutingCase(
            "wildcard matches case-insensitively and with a port",
            objects(F.ingress("i", rules: [F.rule("*.foo.com", p("/"))])), [("Bar.FOO.com:443", "/", "a:80 Prefix /")]),
        RoutingCase(
            "a rule without host matches any host",
            objects(F.ingress("i", rules: [F.rule(nil, p("/"))])),
            [("anything.example", "/", "a:80 Prefix /"), ("", "/", "a:80 Prefix /"), ("[::1]:80", "/", "a:80 Prefix /")]),
        RoutingCase(
            "a known host does not fall through to the any-host rules",
            objects(F.ingress("i", rules: [F.rule(nil, p("/", "Prefix", "a")), F.rule("foo.com", p("/x", "Exact", "b"))])),
            [("foo.com", "/y", "404"), ("other.com", "/y", "a:80 Prefix /")]),
        RoutingCase(
            "an unknown host gets 404 without a default backend",
            objects(F.ingress("i", rules: [F.rule("foo.com", p("/"))])), [("bar.com", "/", "404")]),
    ]

    @Test(arguments: cases)
    func routes(_ testCase: RoutingCase) {
        check(testCase)
    }
}

@Suite struct IngressClassTests {
    static let cases: [RoutingCase] = [
        RoutingCase(
            "ingressClassName naming our class is ours",
            objects(F.ingress("i", className: "portico", rules: [F.rule("h", p("/"))])), [("h", "/", "a:80 Prefix /")]),
        RoutingCase(
            "another class is ignored",
            objects(F.ingress("i", className: "nginx", rules: [F.rule("h", p("/"))])), [("h", "/", "404")]),
        RoutingCase(
            "the legacy annotation is honoured",
            objects(
                F.ingress("i", className: nil, annotations: ["kubernetes.io/ingress.class": "portico"], rules: [F.rule("h", p("/"))])),
            [("h", "/", "a:80 Prefix /")]),
        RoutingCase(
            "the legacy annotation naming another class is ignored",
            objects(F.ingress("i", className: nil, annotations: ["kubernetes.io/ingress.class": "nginx"], rules: [F.rule("h", p("/"))])),
            [("h", "/", "404")]),
        RoutingCase(
            "no class and no default IngressClass: ignored",
            objects(F.ingress("i", className: nil, rules: [F.rule("h", p("/"))]), classes: [F.ingressClass("portico")]),
            [("h", "/", "404")]),
        RoutingCase(
            "no class, and our IngressClass is the default: ours",
            objects(F.ingress("i", className: nil, rules: [F.rule("h", p("/"))]), classes: [F.ingressClass("portico", isDefault: true)]),
            [("h", "/", "a:80 Prefix /")]),
        RoutingCase(
            "no class, and another controller's class is the default: ignored",
            objects(
                F.ingress("i", className: nil, rules: [F.rule("h", p("/"))]),
                classes: [F.ingressClass("nginx", controller: "k8s.io/ingress-nginx", isDefault: true)]),
            [("h", "/", "404")]),
        RoutingCase(
            "an IngressClass named portico with another controller is not ours",
            objects(
                F.ingress("i", className: "portico", rules: [F.rule("h", p("/"))]),
                classes: [F.ingressClass("portico", controller: "example.com/other")]),
            [("h", "/", "404")]),
        RoutingCase(
            "any class name whose IngressClass has our controller is ours",
            objects(F.ingress("i", className: "internal", rules: [F.rule("h", p("/"))]), classes: [F.ingressClass("internal")]),
            [("h", "/", "a:80 Prefix /")]),
        RoutingCase(
            "ingressClassName and a different legacy annotation: rejected",
            objects(
                F.ingress("i", className: "portico", annotations: ["kubernetes.io/ingress.class": "nginx"], rules: [F.rule("h", p("/"))])),
            rejections: [.ingressClassConflict], [("h", "/", "404")]),
    ]

    @Test(arguments: cases)
    func routes(_ testCase: RoutingCase) {
        check(testCase)
    }

    @Test func ignoredIngressesAreListedAndGetNoRejection() {
        let translation = Translator.translate(objects(F.ingress("other", className: "nginx", rules: [F.rule("h", p("/"))])))
        #expect(translation.ignoredIngresses.map(\.name) == ["other"])
        #expect(translation.acceptedIngresses.isEmpty)
        #expect(translation.rejections.isEmpty)
    }
}

@Suite struct MergeAndDefaultBackendTests {
    static let cases: [RoutingCase] = [
        RoutingCase(
            "two Ingresses on one host merge",
            objects(
                F.ingress("one", rules: [F.rule("h", p("/a", "Prefix", "a"))]),
                F.ingress("two", rules: [F.rule("h", p("/b", "Prefix", "b"))])),
            [("h", "/a", "a:80 Prefix /a"), ("h", "/b", "b:80 Prefix /b")]),
        RoutingCase(
            "same path on one host: the oldest Ingress wins",
            objects(
                F.ingress("young", created: 2000, rules: [F.rule("h", p("/x", "Prefix", "b"))]),
                F.ingress("old", created: 1000, rules: [F.rule("h", p("/x", "Prefix", "a"))])),
            rejections: [.pathConflict], [("h", "/x", "a:80 Prefix /x")]),
        RoutingCase(
            "same path without timestamps: namespace/name order decides",
            objects(
                F.ingress("zeta", rules: [F.rule("h", p("/x", "Prefix", "b"))]),
                F.ingress("alpha", rules: [F.rule("h", p("/x", "Prefix", "a"))])),
            rejections: [.pathConflict], [("h", "/x", "a:80 Prefix /x")]),
        RoutingCase(
            "an Ingress with a timestamp is older than one without",
            objects(
                F.ingress("alpha", rules: [F.rule("h", p("/x", "Prefix", "b"))]),
                F.ingress("zeta", created: 5, rules: [F.rule("h", p("/x", "Prefix", "a"))])),
            rejections: [.pathConflict], [("h", "/x", "a:80 Prefix /x")]),
        RoutingCase(
            "Prefix /x and Prefix /x/ collide",
            objects(
                F.ingress("old", created: 1, rules: [F.rule("h", p("/x", "Prefix", "a"))]),
                F.ingress("new", created: 2, rules: [F.rule("h", p("/x/", "Prefix", "b"))])),
            rejections: [.pathConflict], [("h", "/x/y", "a:80 Prefix /x")]),
        RoutingCase(
            "Prefix and ImplementationSpecific on the same path collide",
            objects(
                F.ingress("old", created: 1, rules: [F.rule("h", p("/x", "Prefix", "a"))]),
                F.ingress("new", created: 2, rules: [F.rule("h", p("/x", "ImplementationSpecific", "b"))])),
            rejections: [.pathConflict], [("h", "/x", "a:80 Prefix /x")]),
        RoutingCase(
            "the conflict loser keeps its other paths",
            objects(
                F.ingress("old", created: 1, rules: [F.rule("h", p("/x", "Prefix", "a"))]),
                F.ingress("new", created: 2, rules: [F.rule("h", p("/x", "Prefix", "b"), p("/y", "Prefix", "b"))])),
            rejections: [.pathConflict], [("h", "/x", "a:80 Prefix /x"), ("h", "/y", "b:80 Prefix /y")]),
        RoutingCase(
            "Exact and Prefix on the same path from different Ingresses do not collide",
            objects(
                F.ingress("one", created: 1, rules: [F.rule("h", p("/x", "Prefix", "a"))]),
                F.ingress("two", created: 2, rules: [F.rule("h", p("/x", "Exact", "b"))])),
            [("h", "/x", "b:80 Exact /x"), ("h", "/x/1", "a:80 Prefix /x")]),
        RoutingCase(
            "a duplicate path inside one Ingress: the first wins",
            objects(F.ingress("i", rules: [F.rule("h", p("/x", "Prefix", "a"), p("/x", "Prefix", "b"))])),
            rejections: [.pathConflict], [("h", "/x", "a:80 Prefix /x")]),
        RoutingCase(
            "defaultBackend answers unmatched paths on the Ingress's hosts",
            objects(F.ingress("i", defaultBackend: F.backend("d", 80), rules: [F.rule("h", p("/x"))])),
            [("h", "/y", "default d:80"), ("h", "/x", "a:80 Prefix /x")]),
        RoutingCase(
            "the oldest defaultBackend answers for unknown hosts",
            objects(F.ingress("i", defaultBackend: F.backend("d", 80), rules: [F.rule("h", p("/x"))])),
            [("unknown.example", "/", "default d:80")]),
        RoutingCase(
            "an Ingress with only a defaultBackend catches everything",
            objects(F.ingress("i", defaultBackend: F.backend("d", 80))), [("any.host", "/any/path", "default d:80")]),
        RoutingCase(
            "hosts without their own default use the catch-all default",
            objects(
                F.ingress("catchall", created: 1, defaultBackend: F.backend("d", 80)),
                F.ingress("app", created: 2, rules: [F.rule("app.com", p("/api"))])),
            [("app.com", "/other", "default d:80"), ("app.com", "/api", "a:80 Prefix /api")]),
        RoutingCase(
            "a host's own default beats the catch-all default",
            objects(
                F.ingress("catchall", created: 1, defaultBackend: F.backend("d", 80)),
                F.ingress("app", created: 2, defaultBackend: F.backend("e", 80), rules: [F.rule("app.com", p("/api"))])),
            rejections: [.defaultBackendConflict], [("app.com", "/other", "default e:80"), ("x.com", "/", "default d:80")]),
        RoutingCase(
            "two defaultBackends for one host: the oldest wins",
            objects(
                F.ingress("old", created: 1, defaultBackend: F.backend("d", 80), rules: [F.rule("h", p("/a"))]),
                F.ingress("new", created: 2, defaultBackend: F.backend("e", 80), rules: [F.rule("h", p("/b"))])),
            rejections: [.defaultBackendConflict, .defaultBackendConflict], [("h", "/c", "default d:80")]),
        RoutingCase(
            "no route and no default backend: 404",
            objects(F.ingress("i", rules: [F.rule("h", p("/x"))])), [("h", "/y", "404")]),
        RoutingCase(
            "rules without host merge across Ingresses",
            objects(
                F.ingress("one", rules: [F.rule(nil, p("/a", "Prefix", "a"))]),
                F.ingress("two", rules: [F.rule(nil, p("/b", "Prefix", "b"))])),
            [("x", "/a", "a:80 Prefix /a"), ("y", "/b", "b:80 Prefix /b")]),
    ]

    @Test(arguments: cases)
    func routes(_ testCase: RoutingCase) {
        check(testCase)
    }

    @Test func conflictLoserIsNamedWithTheWinner() throws {
        let translation = Translator.translate(
            objects(
                F.ingress("young", namespace: "team-b", created: 2000, rules: [F.rule("h", p("/x", "Prefix", "b"))]),
                F.ingress("old", namespace: "team-a", created: 1000, rules: [F.rule("h", p("/x", "Prefix", "a"))])))
        let rejection = try #require(translation.rejections.first { $0.reason == .pathConflict })
        #expect(rejection.object == ObjectRef(kind: "Ingress", namespace: "team-b", name: "young"))
        #expect(rejection.field == "spec.rules[0].http.paths[0]")
        #expect(rejection.effect == .partiallyIgnored)
        #expect(rejection.message.contains("Ingress team-a/old"))
        #expect(translation.acceptedIngresses.count == 2)
    }
}
