import KubeTypes
import Testing
import TestSupport
@testable import Translator

/// The path-matching table from the Kubernetes Ingress documentation, row by row, plus Portico's
/// documented choices (ImplementationSpecific, normalisation).
@Suite struct PathMatchingTests {
    static let cases: [RoutingCase] = [
        RoutingCase("docs: Prefix / matches all paths", objects(F.ingress("i", rules: [F.rule("h", p("/"))])), [
            ("h", "/", "a:80 Prefix /"), ("h", "/anything/at/all", "a:80 Prefix /"),
        ]),
        RoutingCase("docs: Exact /foo matches /foo", objects(F.ingress("i", rules: [F.rule("h", p("/foo", "Exact"))])), [
            ("h", "/foo", "a:80 Exact /foo"),
        ]),
        RoutingCase("docs: Exact /foo does not match /bar", objects(F.ingress("i", rules: [F.rule("h", p("/foo", "Exact"))])), [
            ("h", "/bar", "404"),
        ]),
        RoutingCase("docs: Exact /foo does not match /foo/", objects(F.ingress("i", rules: [F.rule("h", p("/foo", "Exact"))])), [
            ("h", "/foo/", "404"),
        ]),
        RoutingCase("docs: Exact /foo/ does not match /foo", objects(F.ingress("i", rules: [F.rule("h", p("/foo/", "Exact"))])), [
            ("h", "/foo", "404"), ("h", "/foo/", "a:80 Exact /foo/"),
        ]),
        RoutingCase("docs: Prefix /foo matches /foo and /foo/", objects(F.ingress("i", rules: [F.rule("h", p("/foo"))])), [
            ("h", "/foo", "a:80 Prefix /foo"), ("h", "/foo/", "a:80 Prefix /foo"),
        ]),
        RoutingCase("docs: Prefix /foo/ matches /foo and /foo/", objects(F.ingress("i", rules: [F.rule("h", p("/foo/"))])), [
            ("h", "/foo", "a:80 Prefix /foo/"), ("h", "/foo/", "a:80 Prefix /foo/"),
        ]),
        RoutingCase("docs: Prefix /aaa/bb does not match /aaa/bbb", objects(F.ingress("i", rules: [F.rule("h", p("/aaa/bb"))])), [
            ("h", "/aaa/bbb", "404"),
        ]),
        RoutingCase("docs: Prefix /aaa/bbb matches /aaa/bbb", objects(F.ingress("i", rules: [F.rule("h", p("/aaa/bbb"))])), [
            ("h", "/aaa/bbb", "a:80 Prefix /aaa/bbb"),
        ]),
        RoutingCase(
            "docs: Prefix /aaa/bbb/ matches /aaa/bbb (trailing slash ignored)",
            objects(F.ingress("i", rules: [F.rule("h", p("/aaa/bbb/"))])), [("h", "/aaa/bbb", "a:80 Prefix /aaa/bbb/")]),
        RoutingCase(
            "docs: Prefix /aaa/bbb matches /aaa/bbb/ (trailing slash matched)",
            objects(F.ingress("i", rules: [F.rule("h", p("/aaa/bbb"))])), [("h", "/aaa/bbb/", "a:80 Prefix /aaa/bbb")]),
        RoutingCase(
            "docs: Prefix /aaa/bbb matches the subpath /aaa/bbb/ccc",
            objects(F.ingress("i", rules: [F.rule("h", p("/aaa/bbb"))])), [("h", "/aaa/bbb/ccc", "a:80 Prefix /aaa/bbb")]),
        RoutingCase(
            "docs: Prefix /aaa/bbb does not match the string prefix /aaa/bbbxyz",
            objects(F.ingress("i", rules: [F.rule("h", p("/aaa/bbb"))])), [("h", "/aaa/bbbxyz", "404")]),
        RoutingCase(
            "docs: Prefix / and /aaa, /aaa/ccc matches /aaa",
            objects(F.ingress("i", rules: [F.rule("h", p("/", "Prefix", "a"), p("/aaa", "Prefix", "b"))])),
            [("h", "/aaa/ccc", "b:80 Prefix /aaa")]),
        RoutingCase(
            "docs: Prefix /, /aaa, /aaa/bbb: /aaa/bbb matches /aaa/bbb",
            objects(F.ingress("i", rules: [F.rule("h", p("/", "Prefix", "a"), p("/aaa", "Prefix", "b"), p("/aaa/bbb", "Prefix", "c"))])),
            [("h", "/aaa/bbb", "c:80 Prefix /aaa/bbb")]),
        RoutingCase(
            "docs: Prefix /, /aaa, /aaa/bbb: /ccc matches /",
            objects(F.ingress("i", rules: [F.rule("h", p("/", "Prefix", "a"), p("/aaa", "Prefix", "b"), p("/aaa/bbb", "Prefix", "c"))])),
            [("h", "/ccc", "a:80 Prefix /")]),
        RoutingCase(
            "docs: Prefix /aaa does not match /ccc (default backend)",
            objects(F.ingress("i", defaultBackend: F.backend("d", 80), rules: [F.rule("h", p("/aaa"))])),
            [("h", "/ccc", "default d:80")]),
        RoutingCase(
            "docs: Mixed /foo Prefix and /foo Exact: /foo prefers Exact",
            objects(F.ingress("i", rules: [F.rule("h", p("/foo", "Prefix", "a"), p("/foo", "Exact", "b"))])),
            [("h", "/foo", "b:80 Exact /foo"), ("h", "/foo/", "a:80 Prefix /foo"), ("h", "/foo/x", "a:80 Prefix /foo")]),
        RoutingCase(
            "longest match wins over Exact of a shorter path",
            objects(F.ingress("i", rules: [F.rule("h", p("/a", "Exact", "a"), p("/a/b", "Prefix", "b"))])),
            [("h", "/a/b/c", "b:80 Prefix /a/b"), ("h", "/a", "a:80 Exact /a")]),
        RoutingCase(
            "Exact is case-sensitive",
            objects(F.ingress("i", rules: [F.rule("h", p("/Foo", "Exact"))])), [("h", "/foo", "404"), ("h", "/Foo", "a:80 Exact /Foo")]),
        RoutingCase(
            "a query string does not affect matching",
            objects(F.ingress("i", rules: [F.rule("h", p("/foo", "Exact"))])), [("h", "/foo?x=/bar", "a:80 Exact /foo")]),
        RoutingCase(
            "ImplementationSpecific matches as a prefix",
            objects(F.ingress("i", rules: [F.rule("h", p("/api", "ImplementationSpecific"))])),
            [("h", "/api/v1", "a:80 ImplementationSpecific /api"), ("h", "/apiv1", "404")]),
        RoutingCase(
            "ImplementationSpecific without a path means /",
            objects(F.ingress("i", rules: [F.rule("h", p(nil, "ImplementationSpecific"))])),
            [("h", "/x", "a:80 ImplementationSpecific /")]),
        RoutingCase(
            "normalisation: /api/../admin does not reach /api",
            objects(F.ingress("i", rules: [F.rule("h", p("/api", "Prefix", "a"), p("/", "Prefix", "b"))])),
            [("h", "/api/../admin", "b:80 Prefix /"), ("h", "/api/./v1", "a:80 Prefix /api")]),
        RoutingCase(
            "normalisation: encoded dot segments are removed after decoding",
            objects(F.ingress("i", rules: [F.rule("h", p("/api", "Prefix", "a"), p("/admin", "Exact", "b"))])),
            [("h", "/api/%2e%2e/admin", "b:80 Exact /admin"), ("h", "/api/%2E%2E/admin", "b:80 Exact /admin")]),
        RoutingCase(
            "normalisation: runs of slashes are merged",
            objects(F.ingress("i", rules: [F.rule("h", p("/api/v1", "Exact"))])), [("h", "//api//v1", "a:80 Exact /api/v1")]),
        RoutingCase(
            "normalisation: %2F is not a separator",
            objects(F.ingress("i", rules: [F.rule("h", p("/api", "Prefix", "a"))])), [("h", "/api%2Fv1", "404"), ("h", "/api/x%2Fy", "a:80 Prefix /api")]),
        RoutingCase(
            "normalisation: encoded unreserved characters match their plain form",
            objects(F.ingress("i", rules: [F.rule("h", p("/api", "Exact"))])), [("h", "/%61pi", "a:80 Exact /api")]),
        RoutingCase(
            "normalisation: a bad escape is a bad request",
            objects(F.ingress("i", rules: [F.rule("h", p("/"))])), [("h", "/a%zz", "400")]),
        RoutingCase(
            "Ingress paths are normalised the same way as requests",
            objects(F.ingress("i", rules: [F.rule("h", p("/caf%c3%a9", "Exact"))])), [("h", "/caf%C3%A9", "a:80 Exact /caf%C3%A9")]),
        RoutingCase(
            "dot segments above the root stay at the root",
            objects(F.ingress("i", rules: [F.rule("h", p("/etc", "Exact"))])), [("h", "/../../etc", "a:80 Exact /etc")]),
    ]

    @Test(arguments: cases)
    func routes(_ testCase: RoutingCase) {
        check(testCase)
    }
}
