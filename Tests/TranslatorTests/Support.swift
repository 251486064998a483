import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import Translator

typealias F = Fixture

/// Routes one request the way a worker would (normalise, then resolve) and describes the outcome
/// compactly: `api:80 Prefix /api`, `default web:80`, `404`, or `400`.
func route(_ table: RouteTable, _ host: String, _ path: String) -> String {
    guard let normalised = try? RequestPath.normalize(path) else { return "400" }
    switch table.resolve(host: host, path: normalised) {
    case .route(let hostIndex, let routeIndex):
        let route = table.virtualHosts[hostIndex].routes[routeIndex]
        let cluster = table.cluster(named: route.backend.cluster)!
        return "\(cluster.service):\(cluster.servicePort) \(route.match.kind.rawValue) \(route.match.path)"
    case .defaultBackend(let hostIndex):
        let cluster = table.cluster(named: table.virtualHosts[hostIndex].defaultBackend!.cluster)!
        return "default \(cluster.service):\(cluster.servicePort)"
    case .notFound:
        return "404"
    }
}

/// A routing case: objects, and what each request must reach.
struct RoutingCase: CustomTestStringConvertible, Sendable {
    let name: String
    let objects: KubeObjects
    let requests: [Request]
    /// Reasons every rejection must have, in sorted order of rejections; nil to not check.
    let rejections: [Rejection.Reason]?

    struct Request: Sendable {
        let host: String
        let path: String
        let expect: String
    }

    init(_ name: String, _ objects: KubeObjects, rejections: [Rejection.Reason]? = [], _ requests: [(String, String, String)]) {
        self.name = name
        self.objects = objects
        self.requests = requests.map { Request(host: $0.0, path: $0.1, expect: $0.2) }
        self.rejections = rejections
    }

    var testDescription: String { name }
}

/// Services `a`…`e` on port 80 (name `http`), each with one ready endpoint, so any backend resolves.
let standardServices: [Service] = ["a", "b", "c", "d", "e"].map { F.service($0) }
let standardSlices: [EndpointSlice] = ["a", "b", "c", "d", "e"].enumerated().map { index, name in
    F.slice("\(name)-1", service: name, endpoints: [("10.0.0.\(index + 1)", true)])
}

func objects(_ ingresses: Ingress..., classes: [IngressClass] = [], secrets: [Secret] = []) -> KubeObjects {
    KubeObjects(
        ingresses: ingresses, ingressClasses: classes, services: standardServices, endpointSlices: standardSlices,
        secrets: secrets)
}

/// One Prefix-or-other path to service `service` port 80.
func p(_ path: String?, _ type: String? = "Prefix", _ service: String = "a") -> HTTPIngressPath {
    F.path(path, type, F.backend(service, 80))
}

/// Translates a case's objects and checks every request and the rejection reasons.
func check(_ testCase: RoutingCase) {
    let translation = Translator.translate(testCase.objects)
    for request in testCase.requests {
        #expect(route(translation.table, request.host, request.path) == request.expect, "\(request.host)\(request.path)")
    }
    if let expected = testCase.rejections {
        #expect(translation.rejections.map(\.reason) == expected, "\(translation.rejections)")
    }
}
