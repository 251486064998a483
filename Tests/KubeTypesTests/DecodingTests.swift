import Foundation
import Testing
@testable import KubeTypes

@Suite struct DecodingTests {
    /// Through JSONDecoder, checking that `KubeJSON`'s reader gives the same object, or fails too.
    func decode<T: KubeObject>(_ type: T.Type, _ json: String) throws -> T {
        let codable = Result { try JSONDecoder().decode(type, from: Data(json.utf8)) }
        let read = Result { try Array(json.utf8).withUnsafeBytes { try KubeJSON.object(type, from: $0) } }
        switch (codable, read) {
        case (.success(let decoded), .success(let readObject)): #expect(decoded == readObject)
        case (.failure, .failure): break
        default: Issue.record("JSONDecoder gave \(codable), KubeJSON \(read)")
        }
        return try codable.get()
    }

    @Test func ingressWithEveryField() throws {
        let ingress = try decode(
            Ingress.self,
            """
            {"apiVersion":"networking.k8s.io/v1","kind":"Ingress",
             "metadata":{"name":"web","namespace":"shop","uid":"u-1","generation":3,"resourceVersion":"77",
                         "creationTimestamp":"2024-03-01T10:00:00Z","annotations":{"a":"b"},"labels":{"app":"web"},
                         "managedFields":[{"manager":"kubectl"}]},
             "spec":{"ingressClassName":"portico",
                     "defaultBackend":{"service":{"name":"fallback","port":{"name":"http"}}},
                     "tls":[{"hosts":["shop.example.com"],"secretName":"shop-tls"}],
                     "rules":[{"host":"shop.example.com","http":{"paths":[
                        {"path":"/api","pathType":"Prefix","backend":{"service":{"name":"api","port":{"number":8080}}}},
                        {"path":"/bucket","pathType":"ImplementationSpecific",
                         "backend":{"resource":{"apiGroup":"k8s.example.com","kind":"Bucket","name":"b"}}}]}}]},
             "status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.1","ports":[{"port":443,"protocol":"TCP"}]}]}}}
            """)
        #expect(ingress.metadata.generation == 3)
        #expect(ingress.metadata.creationTimestamp?.secondsSinceEpoch == 1_709_287_200)
        #expect(ingress.namespace == "shop")
        #expect(ingress.spec?.defaultBackend?.service?.port?.name == "http")
        #expect(ingress.spec?.tls?.first?.secretName == "shop-tls")
        let paths = try #require(ingress.spec?.rules?.first?.http?.paths)
        #expect(paths[0].backend.service?.port?.number == 8080)
        #expect(paths[1].backend.resource?.kind == "Bucket")
        #expect(ingress.status?.loadBalancer?.ingress?.first?.ports?.first?.port == 443)
    }

    @Test func wrongTypeNamesTheFieldPath() throws {
        let error = try #require(throws: DecodingError.self) {
            try decode(
                Ingress.self,
                """
                {"metadata":{"name":"web"},"spec":{"rules":[{"host":"a","http":{"paths":[
                  {"path":"/","pathType":"Prefix","backend":{"service":{"name":"api","port":{"number":"eighty"}}}}]}}]}}
                """)
        }
        #expect(error.fieldPath == "spec.rules[0].http.paths[0].backend.service.port.number")
        #expect(error.kubernetesDescription.hasPrefix("spec.rules[0].http.paths[0].backend.service.port.number: expected an integer"))
    }

    @Test func missingRequiredFieldIsNamed() throws {
        let error = try #require(throws: DecodingError.self) { try decode(Service.self, #"{"metadata":{}}"#) }
        #expect(error.fieldPath == "metadata.name")
        #expect(error.problem == "required field is missing")
    }

    @Test func unknownFieldsAreIgnored() throws {
        let service = try decode(Service.self, #"{"metadata":{"name":"s"},"spec":{"ports":[{"port":80,"nodePort":30080}],"sessionAffinity":"None"},"extra":1}"#)
        #expect(service.spec?.ports?.first?.port == 80)
    }

    @Test func intOrString() throws {
        let service = try decode(
            Service.self, #"{"metadata":{"name":"s"},"spec":{"type":"ClusterIP","ports":[{"port":80,"targetPort":8080},{"name":"h","port":81,"targetPort":"http","protocol":"TCP"}]}}"#)
        #expect(service.spec?.ports?.map(\.targetPort) == [.int(8080), .string("http")])
        let error = try #require(throws: DecodingError.self) {
            try decode(Service.self, #"{"metadata":{"name":"s"},"spec":{"ports":[{"port":80,"targetPort":true}]}}"#)
        }
        #expect(error.fieldPath == "spec.ports[0].targetPort")
    }

    @Test func endpointSlice() throws {
        let slice = try decode(
            EndpointSlice.self,
            """
            {"metadata":{"name":"web-x","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4",
             "endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"n1",
                           "targetRef":{"kind":"Pod","name":"web-1","namespace":"default"}},
                          {"addresses":["10.0.0.2"]}],
             "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}
            """)
        #expect(slice.serviceName == "web")
        #expect(slice.endpoints?[0].conditions?.terminating == false)
        #expect(slice.endpoints?[1].conditions == nil)
        #expect(slice.ports?.first?.port == 8080)
    }

    @Test func nullEndpointsAreAllowed() throws {
        let slice = try decode(EndpointSlice.self, #"{"metadata":{"name":"e"},"addressType":"IPv4","endpoints":null,"ports":null}"#)
        #expect(slice.endpoints == nil)
    }

    @Test func secretDataIsBase64() throws {
        let secret = try decode(Secret.self, #"{"metadata":{"name":"s"},"type":"kubernetes.io/tls","data":{"tls.crt":"aGVsbG8=","tls.key":"a2V5"}}"#)
        #expect(secret.value("tls.crt") == Array("hello".utf8))
        let error = try #require(throws: DecodingError.self) {
            try decode(Secret.self, #"{"metadata":{"name":"s"},"data":{"tls.crt":"not base64 ***"}}"#)
        }
        #expect(error.fieldPath == "data.tls.crt")
        #expect(error.problem == "expected base64 data")
    }

    @Test func stringDataWinsOverData() throws {
        let secret = try decode(Secret.self, #"{"metadata":{"name":"s"},"data":{"k":"YQ=="},"stringData":{"k":"b"}}"#)
        #expect(secret.value("k") == Array("b".utf8))
    }

    @Test func ingressClass() throws {
        let ingressClass = try decode(
            IngressClass.self,
            #"{"metadata":{"name":"portico","annotations":{"ingressclass.kubernetes.io/is-default-class":"true"}},"spec":{"controller":"portico.io/ingress-controller"}}"#)
        #expect(ingressClass.isDefaultClass)
        #expect(ingressClass.ref.description == "IngressClass portico")
    }

    @Test func defaultNamespace() throws {
        let service = try decode(Service.self, #"{"metadata":{"name":"s"}}"#)
        #expect(service.ref.description == "Service default/s")
    }
}

@Suite struct KubeTimeTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("2024-03-01T10:00:00Z", 1_709_287_200),
        ("2024-02-29T23:59:59Z", 1_709_251_199),
        ("2000-01-01T00:00:00+01:00", 946_681_200),
        ("2000-01-01T00:00:00.123456Z", 946_684_800),
        ("1969-12-31T23:59:59Z", -1),
    ])
    func parses(_ text: String, _ seconds: Int64) throws {
        #expect(try #require(KubeTime(rfc3339: text)).secondsSinceEpoch == seconds)
    }

    @Test(arguments: ["", "2024-03-01", "2024-13-01T00:00:00Z", "2024-03-01T10:00:00", "yesterday", "2024-03-01T10:00:00Zjunk"])
    func rejects(_ text: String) {
        #expect(KubeTime(rfc3339: text) == nil)
    }

    @Test func formatsAndOrders() throws {
        #expect(KubeTime(secondsSinceEpoch: 1_709_287_200).text == "2024-03-01T10:00:00Z")
        #expect(KubeTime(secondsSinceEpoch: -1).text == "1969-12-31T23:59:59Z")
        let a = try #require(KubeTime(rfc3339: "2024-03-01T10:00:00.5Z"))
        let b = try #require(KubeTime(rfc3339: "2024-03-01T10:00:00.25Z"))
        #expect(b < a)
    }

    @Test func badTimestampNamesTheField() throws {
        let error = try #require(throws: DecodingError.self) {
            try JSONDecoder().decode(Ingress.self, from: Data(#"{"metadata":{"name":"i","creationTimestamp":"last week"}}"#.utf8))
        }
        #expect(error.fieldPath == "metadata.creationTimestamp")
        #expect(error.problem.contains("RFC 3339"))
    }
}
