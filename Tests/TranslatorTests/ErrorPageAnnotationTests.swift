import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import Translator

/// `default-backend`, `custom-http-errors` and `disable-proxy-intercept-errors` through the
/// translator: the rule each route holds, and what is reported.
@Suite struct ErrorPageAnnotationTests {
    static let n = "nginx.ingress.kubernetes.io/"

    struct Case: CustomTestStringConvertible, Sendable {
        let annotations: [String: String]
        /// With an Ingress whose spec.defaultBackend (Service c) is the catch-all.
        var catchAll = false
        /// The rule's service, statuses, whether the Pods' answers are intercepted and whether it
        /// serves routes without endpoints; nil: no rule.
        let expect: (service: String, statuses: [Int], pods: Bool, serves: Bool)?
        let reasons: [Rejection.Reason]
        var testDescription: String {
            annotations.sorted { $0.key < $1.key }.map { "\($0.key.split(separator: "/").last!)=\($0.value)" }.joined(separator: " ")
                + (catchAll ? " +catch-all" : "")
        }
    }

    static let cases: [Case] = [
        Case(annotations: [n + "custom-http-errors": "404,503", n + "default-backend": "b"], expect: ("b", [404, 503], true, true), reasons: []),
        Case(annotations: [n + "custom-http-errors": " 503 , 404,404"], catchAll: true, expect: ("c", [404, 503], true, false), reasons: []),
        Case(annotations: ["portico.io/default-backend": "b"], expect: ("b", [], true, true), reasons: []),
        Case(
            annotations: [n + "custom-http-errors": "502", n + "default-backend": "b", n + "disable-proxy-intercept-errors": "true"],
            expect: ("b", [502], false, true), reasons: []),
        Case(annotations: [n + "custom-http-errors": "404"], expect: nil, reasons: [.invalidAnnotation]),
        Case(annotations: [n + "custom-http-errors": "404,abc", n + "default-backend": "b"], expect: ("b", [], true, true), reasons: [.invalidAnnotation]),
        Case(annotations: [n + "custom-http-errors": "302", n + "default-backend": "b"], expect: ("b", [], true, true), reasons: [.invalidAnnotation]),
        Case(annotations: [n + "default-backend": "missing"], expect: nil, reasons: [.invalidAnnotation]),
        Case(annotations: [n + "default-backend": "Not_A_Name"], expect: nil, reasons: [.invalidAnnotation]),
        Case(
            annotations: [n + "custom-http-errors": "404", n + "default-backend": "b", n + "disable-proxy-intercept-errors": "maybe"],
            expect: ("b", [404], true, true), reasons: [.invalidAnnotation]),
    ]

    @Test(arguments: cases) func routeHolds(_ testCase: Case) throws {
        var ingresses = [F.ingress("i", created: 1, annotations: testCase.annotations, rules: [F.rule("h", p("/"))])]
        if testCase.catchAll { ingresses.append(F.ingress("all", created: 2, defaultBackend: F.backend("c", 80))) }
        let translation = Translator.translate(
            KubeObjects(ingresses: ingresses, ingressClasses: [], services: standardServices, endpointSlices: standardSlices, secrets: []))
        #expect(translation.rejections.map(\.reason) == testCase.reasons, "\(translation.rejections)")
        #expect(translation.rejectedIngresses.isEmpty)
        let route = try #require(translation.table.virtualHosts.first { $0.hostname.text == "h" }?.routes.first)
        let rule = route.backend.options.defaultBackend
        guard let expect = testCase.expect else {
            #expect(rule == nil)
            return
        }
        let cluster = try #require(translation.table.clusters.first { $0.service == expect.service })
        #expect(rule == DefaultBackendRule(cluster: cluster.name, interceptedStatuses: expect.statuses, interceptsPodAnswers: expect.pods, servesWithoutEndpoints: expect.serves))
        #expect(cluster.servicePort == .number(80), "the Service's first port")
    }

    /// The incremental translator reads the default backend's Service as a full translation does.
    @Test func anIncrementalChangeResolvesTheDefaultBackend() throws {
        let before = objects(F.ingress("other", rules: [F.rule("o", p("/"))]))
        var incremental = IncrementalTranslator(objects: before, translation: Translator.translate(before))
        let ingress = F.ingress("i", annotations: [Self.n + "default-backend": "d", Self.n + "custom-http-errors": "404"], rules: [F.rule("h", p("/"))])
        let applied = incremental.apply(["default/i": ingress])
        let table = try #require(applied)
        #expect(table == Translator.translate(objects(F.ingress("other", rules: [F.rule("o", p("/"))]), ingress)).table)
        #expect(table.virtualHosts.first { $0.hostname.text == "h" }?.routes.first?.backend.options.defaultBackend?.interceptedStatuses == [404])
    }
}
