import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import Translator

@Suite struct BackendTests {
    func cluster(_ objects: KubeObjects) throws -> (Cluster, [Rejection]) {
        let translation = Translator.translate(objects)
        let host = try #require(translation.table.virtualHosts.first)
        let route = try #require(host.routes.first)
        return (try #require(translation.table.cluster(named: route.backend.cluster)), translation.rejections)
    }

    func ingress(_ backend: IngressBackend) -> Ingress {
        F.ingress("i", rules: [F.rule("h", F.path("/", "Prefix", backend))])
    }

    @Test func portByNumberTakesTheTargetPortFromTheSlice() throws {
        let (cluster, rejections) = try cluster(
            KubeObjects(
                ingresses: [ingress(F.backend("web", 80))], services: [F.service("web")],
                endpointSlices: [F.slice("web-abc", service: "web", port: 9090, endpoints: [("10.1.0.1", true), ("10.1.0.2", true)])]))
        #expect(cluster.endpoints.map(\.description) == ["10.1.0.1:9090", "10.1.0.2:9090"])
        #expect(cluster.name == "default/web:80")
        #expect(rejections.isEmpty)
    }

    @Test func portByName() throws {
        let service = F.service(
            "web", ports: [ServicePort(name: "metrics", port: 9100), ServicePort(name: "http", port: 80, targetPort: .string("http"))])
        var slice = F.slice("web-abc", service: "web", port: 8080, endpoints: [("10.1.0.1", true)])
        slice.ports = [EndpointSlicePort(name: "metrics", port: 9100), EndpointSlicePort(name: "http", port: 8080)]
        let (cluster, _) = try cluster(
            KubeObjects(ingresses: [ingress(F.backend("web", portName: "http"))], services: [service], endpointSlices: [slice]))
        #expect(cluster.endpoints.map(\.description) == ["10.1.0.1:8080"])
        #expect(cluster.servicePort == .number(80))
        #expect(cluster.name == "default/web:80")
    }

    @Test func unnamedServicePortMatchesUnnamedSlicePort() throws {
        let service = F.service("web", ports: [ServicePort(port: 80, targetPort: .int(8080))])
        let slice = F.slice("web-abc", service: "web", portName: nil, port: 8080, endpoints: [("10.1.0.1", true)])
        let (cluster, _) = try cluster(KubeObjects(ingresses: [ingress(F.backend("web", 80))], services: [service], endpointSlices: [slice]))
        #expect(cluster.endpoints.map(\.description) == ["10.1.0.1:8080"])
    }

    @Test func onlyReadyEndpointsAndUnknownReadinessCountsAsReady() throws {
        let (cluster, _) = try cluster(
            KubeObjects(
                ingresses: [ingress(F.backend("web", 80))], services: [F.service("web")],
                endpointSlices: [F.slice("web-abc", service: "web", endpoints: [("10.1.0.1", true), ("10.1.0.2", false), ("10.1.0.3", nil)])]))
        #expect(cluster.endpoints.map(\.address) == ["10.1.0.1", "10.1.0.3"])
    }

    @Test func slicesAreMergedAndDeduplicated() throws {
        let (cluster, _) = try cluster(
            KubeObjects(
                ingresses: [ingress(F.backend("web", 80))], services: [F.service("web")],
                endpointSlices: [
                    F.slice("web-a", service: "web", endpoints: [("10.1.0.2", true), ("10.1.0.1", true)]),
                    F.slice("web-b", service: "web", endpoints: [("10.1.0.1", true), ("10.1.0.3", true)]),
                    F.slice("other", service: "other", endpoints: [("10.9.9.9", true)]),
                ]))
        #expect(cluster.endpoints.map(\.address) == ["10.1.0.1", "10.1.0.2", "10.1.0.3"])
    }

    @Test func slicesOfAnotherNamespaceAreNotUsed() throws {
        let (cluster, _) = try cluster(
            KubeObjects(
                ingresses: [ingress(F.backend("web", 80))], services: [F.service("web")],
                endpointSlices: [F.slice("web-a", service: "web", namespace: "other", endpoints: [("10.1.0.1", true)])]))
        #expect(cluster.endpoints.isEmpty)
    }

    @Test func ipv6EndpointsAreBracketed() throws {
        let (cluster, _) = try cluster(
            KubeObjects(
                ingresses: [ingress(F.backend("web", 80))], services: [F.service("web")],
                endpointSlices: [F.slice("web-6", service: "web", addressType: "IPv6", endpoints: [("fd00::1", true)])]))
        #expect(cluster.endpoints.map(\.description) == ["[fd00::1]:8080"])
    }

    @Test func fqdnSlicesAreSkipped() throws {
        let (cluster, _) = try cluster(
            KubeObjects(
                ingresses: [ingress(F.backend("web", 80))], services: [F.service("web")],
                endpointSlices: [F.slice("web-f", service: "web", addressType: "FQDN", endpoints: [("db.example.com", true)])]))
        #expect(cluster.endpoints.isEmpty)
    }

    @Test func invalidSliceAddressIsReportedAgainstTheSlice() throws {
        let (cluster, rejections) = try cluster(
            KubeObjects(
                ingresses: [ingress(F.backend("web", 80))], services: [F.service("web")],
                endpointSlices: [F.slice("web-a", service: "web", endpoints: [("10.1.0.1", true), ("10.1.0.300", true)])]))
        #expect(cluster.endpoints.map(\.address) == ["10.1.0.1"])
        #expect(rejections.map(\.object) == [ObjectRef(kind: "EndpointSlice", namespace: "default", name: "web-a")])
        #expect(rejections.first?.reason == .invalidEndpoint)
    }

    @Test func slicePortWithAnotherNameGivesNoEndpoints() throws {
        let (cluster, rejections) = try cluster(
            KubeObjects(
                ingresses: [ingress(F.backend("web", 80))], services: [F.service("web")],
                endpointSlices: [F.slice("web-a", service: "web", portName: "grpc", endpoints: [("10.1.0.1", true)])]))
        #expect(cluster.endpoints.isEmpty)
        #expect(rejections.isEmpty, "zero endpoints is a runtime state (503), not a configuration error")
    }

    @Test func missingServiceKeepsTheRouteAndReports() throws {
        let translation = Translator.translate(KubeObjects(ingresses: [ingress(F.backend("nope", 80))]))
        #expect(route(translation.table, "h", "/") == "nope:80 Prefix /")
        #expect(translation.table.clusters.first?.endpoints == [])
        let rejection = try #require(translation.rejections.first)
        #expect(rejection.reason == .serviceNotFound)
        #expect(rejection.effect == .backendUnavailable)
        #expect(rejection.field == "spec.rules[0].http.paths[0].backend")
        #expect(rejection.message.contains("default/nope"))
    }

    @Test func missingServicePortReportsTheKnownPorts() throws {
        let translation = Translator.translate(KubeObjects(ingresses: [ingress(F.backend("web", 81))], services: [F.service("web")]))
        let rejection = try #require(translation.rejections.first)
        #expect(rejection.reason == .servicePortNotFound)
        #expect(rejection.message.contains("http (80)"))
        #expect(translation.table.routeCount == 1)
    }

    @Test func missingServicePortByName() throws {
        let translation = Translator.translate(
            KubeObjects(ingresses: [ingress(F.backend("web", portName: "grpc"))], services: [F.service("web")]))
        #expect(translation.rejections.map(\.reason) == [.servicePortNotFound])
    }

    @Test func externalNameServicesAreRefused() throws {
        let translation = Translator.translate(
            KubeObjects(
                ingresses: [ingress(F.backend("ext", 80))],
                services: [F.service("ext", type: "ExternalName", externalName: "example.com")]))
        #expect(translation.rejections.map(\.reason) == [.unsupportedServiceType])
        #expect(translation.table.clusters.first?.endpoints == [])
    }

    @Test func oneClusterPerServicePortWhateverTheNumberOfRoutes() {
        let translation = Translator.translate(
            objects(F.ingress("i", rules: [F.rule("h", p("/a"), p("/b")), F.rule("g", p("/c"))])))
        #expect(translation.table.clusters.map(\.name) == ["default/a:80"])
    }

    @Test func portByNameAndByNumberShareACluster() {
        let translation = Translator.translate(
            objects(F.ingress("i", rules: [F.rule("h", F.path("/a", "Prefix", F.backend("a", 80)), F.path("/b", "Prefix", F.backend("a", portName: "http")))])))
        #expect(translation.table.clusters.map(\.name) == ["default/a:80"])
    }

    @Test func unusedServicesDoNotBecomeClusters() {
        let translation = Translator.translate(objects(F.ingress("i", rules: [F.rule("h", p("/", "Prefix", "b"))])))
        #expect(translation.table.clusters.map(\.name) == ["default/b:80"])
    }

    @Test func aMissingServiceIsReportedOncePerIngress() {
        let translation = Translator.translate(
            KubeObjects(ingresses: [F.ingress("i", rules: [F.rule("h", p("/a", "Prefix", "x"), p("/b", "Prefix", "x"))])]))
        #expect(translation.rejections.count == 1)
    }
}
