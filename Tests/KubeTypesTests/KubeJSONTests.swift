import Foundation
import Testing
@testable import KubeTypes

/// `KubeJSON` against JSONDecoder, and its own errors.
@Suite struct KubeJSONTests {
    func read<T: KubeObject>(_ type: T.Type, _ json: String) throws -> T {
        try Array(json.utf8).withUnsafeBytes { bytes throws(KubeJSONError) in try KubeJSON.object(type, from: bytes) }
    }

    func list<T: KubeObject>(_ type: T.Type, _ json: String) throws -> KubeList<T> {
        try Array(json.utf8).withUnsafeBytes { bytes throws(KubeJSONError) in try KubeJSON.list(type, from: bytes) }
    }

    func event<T: KubeObject>(_ type: T.Type, _ json: String) throws -> WatchEvent<T> {
        try Array(json.utf8).withUnsafeBytes { bytes throws(KubeJSONError) in try KubeJSON.watchEvent(type, from: bytes) }
    }

    func error<T: KubeObject>(_ type: T.Type, _ json: String) throws -> KubeJSONError {
        try #require(throws: KubeJSONError.self) { try read(type, json) }
    }

    /// As an API server writes a Service: managedFields, fields Portico does not read, status.
    static let apiServerService = """
        {"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"shop","uid":"8b0c","resourceVersion":"1234",
          "creationTimestamp":"2024-03-01T10:00:00Z","labels":{"app":"web"},
          "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\\"apiVersion\\":\\"v1\\",\\"kind\\":\\"Service\\"}\\n"},
          "managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"v1","time":"2024-03-01T10:00:00Z",
            "fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}}},
            "f:spec":{"f:ports":{".":{},"k:{\\"port\\":80,\\"protocol\\":\\"TCP\\"}":{".":{},"f:name":{}}}}}}]},
          "spec":{"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":"http"},{"port":443,"targetPort":8443,"appProtocol":"https"}],
            "selector":{"app":"web"},"clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],"type":"ClusterIP","sessionAffinity":"None",
            "ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","internalTrafficPolicy":"Cluster","externalIPs":null},
          "status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.1","ipMode":"VIP"},{"hostname":"lb.example.com"}]}}}
        """

    @Test func anAPIServersObjectReadsAsJSONDecoderReadsIt() throws {
        let decoded = try JSONDecoder().decode(Service.self, from: Data(Self.apiServerService.utf8))
        let service = try read(Service.self, Self.apiServerService)
        #expect(service == decoded)
        #expect(service.spec?.ports?.map(\.targetPort) == [.string("http"), .int(8443)])
        #expect(service.metadata.annotation("kubectl.kubernetes.io/last-applied-configuration") == #"{"apiVersion":"v1","kind":"Service"}"# + "\n")
        #expect(service.status?.loadBalancer?.ingress?.last?.hostname == "lb.example.com")
    }

    @Test func aListPageKeepsItsMetadataAndItems() throws {
        let page = try list(
            Ingress.self,
            """
            {"kind":"IngressList","apiVersion":"networking.k8s.io/v1",
             "metadata":{"resourceVersion":"99","continue":"eyJ2Ijoi","remainingItemCount":1200},
             "items":[
               {"metadata":{"name":"a","namespace":"x"},"spec":{"rules":[{"host":"a.example.com","http":{"paths":[
                 {"path":"/","pathType":"Prefix","backend":{"service":{"name":"s","port":{"number":80}}}}]}}]}},
               {"metadata":{"name":"b"},"spec":{"defaultBackend":{"resource":{"kind":"Bucket","name":"b"}}},"status":{}}
             ]}
            """)
        #expect(page.metadata == ListMeta(resourceVersion: "99", continue: "eyJ2Ijoi", remainingItemCount: 1200))
        #expect(page.items.map(\.ref.description) == ["Ingress x/a", "Ingress default/b"])
        #expect(page.items[0].spec?.rules?[0].http?.paths[0].backend.service?.port?.number == 80)
        #expect(page.items[1].spec?.defaultBackend?.resource?.kind == "Bucket")
        #expect(try list(Service.self, #"{"metadata":{},"items":null}"#).items.isEmpty)
    }

    /// The continue token is read before the items, so that the next page can be asked for first.
    @Test func aListsMetadataIsReadWithoutItsItems() throws {
        func metadata(_ json: String) throws -> ListMeta? {
            try Array(json.utf8).withUnsafeBytes { bytes throws(KubeJSONError) in try KubeJSON.listMetadata(from: bytes) }
        }
        #expect(try metadata(#"{"kind":"ServiceList","metadata":{"continue":"abc","remainingItemCount":5},"items":[{"metadata":{"name":7}}]}"#)
            == ListMeta(continue: "abc", remainingItemCount: 5))
        #expect(try metadata(#"{"items":[],"metadata":{"continue":"abc"}}"#) == nil)
        #expect(try metadata(#"{"kind":"ServiceList","items":[]}"#) == nil)
    }

    @Test func watchEventsOfEveryType() throws {
        let slice = #"{"metadata":{"name":"e","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true,"terminating":false}}]}"#
        guard case .added(let added) = try event(EndpointSlice.self, #"{"type":"ADDED","object":\#(slice)}"#) else {
            Issue.record("not ADDED")
            return
        }
        #expect(added.serviceName == "web")
        #expect(added.endpoints?.first?.conditions == EndpointConditions(ready: true, terminating: false))
        // The object may come before its type.
        guard case .deleted(let deleted) = try event(EndpointSlice.self, #"{"object":\#(slice),"type":"DELETED"}"#) else {
            Issue.record("not DELETED")
            return
        }
        #expect(deleted == added)
        guard case .bookmark(let version) = try event(EndpointSlice.self, #"{"type":"BOOKMARK","object":{"kind":"EndpointSlice","metadata":{"resourceVersion":"77","annotations":{"k8s.io/initial-events-end":"true"}}}}"#) else {
            Issue.record("not BOOKMARK")
            return
        }
        #expect(version == "77")
        guard case .error(let status) = try event(EndpointSlice.self, #"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version"}}"#) else {
            Issue.record("not ERROR")
            return
        }
        #expect(status == KubeStatus(code: 410, reason: "Expired", message: "too old resource version"))
        let unknown = try #require(throws: KubeJSONError.self) { try event(EndpointSlice.self, #"{"type":"RENAMED","object":{}}"#) }
        #expect(unknown.description.contains("unknown watch event type RENAMED"))
    }

    @Test func aWrongTypeNamesTheFieldPathInTheList() throws {
        let failure = try #require(throws: KubeJSONError.self) {
            try list(
                Ingress.self,
                #"{"metadata":{},"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"},"spec":{"rules":[{"host":"ok"},{"host":7}]}}]}"#)
        }
        #expect(failure.fieldPath == "items[1].spec.rules[1].host")
        #expect(failure.problem == "expected a string, found a number")
        #expect(failure.description.hasPrefix("items[1].spec.rules[1].host: expected a string, found a number (at byte "))
    }

    @Test func aMissingRequiredFieldIsNamedAtItsObject() throws {
        let failure = try error(Service.self, #"{"metadata":{"namespace":"x"}}"#)
        #expect(failure.fieldPath == "metadata")
        #expect(failure.problem == #"missing required field "name""#)
        let port = try error(Service.self, #"{"metadata":{"name":"s"},"spec":{"ports":[{"port":80},{"name":"x"}]}}"#)
        #expect(port.fieldPath == "spec.ports[1]")
        #expect(port.problem == #"missing required field "port""#)
    }

    @Test func numbersAreCheckedAgainstTheirType() throws {
        let tooLarge = try error(Service.self, #"{"metadata":{"name":"s"},"spec":{"ports":[{"port":2147483648}]}}"#)
        #expect(tooLarge.fieldPath == "spec.ports[0].port")
        #expect(tooLarge.problem == "2147483648 does not fit in Int32")
        #expect(try read(Service.self, #"{"metadata":{"name":"s"},"spec":{"ports":[{"port":-2147483648}]}}"#).spec?.ports?[0].port == Int32.min)
        #expect(try read(Service.self, #"{"metadata":{"name":"s"},"spec":{"ports":[{"port":8.0e1}]}}"#).spec?.ports?[0].port == 80)
        #expect(try error(Service.self, #"{"metadata":{"name":"s"},"spec":{"ports":[{"port":80.5}]}}"#).problem.contains("not a whole number"))
        #expect(try error(Service.self, #"{"metadata":{"name":"s"},"spec":{"ports":[{"port":true}]}}"#).problem == "expected an integer, found a boolean")
    }

    @Test func escapesReadAsJSONDecoderReadsThem() throws {
        let json = #"{"metadata":{"name":"s","annotations":{"a\u0062":"\u00e9\n\t\"\\\/\ud83d\ude00 end","plain":"caf\#u{E9}"}}}"#
        let service = try read(Service.self, json)
        #expect(service == (try JSONDecoder().decode(Service.self, from: Data(json.utf8))))
        #expect(service.metadata.annotation("ab") == "\u{E9}\n\t\"\\/\u{1F600} end")
        #expect(service.metadata.annotation("plain") == "caf\u{E9}")
    }

    /// Documents both decoders refuse.
    @Test(arguments: [
        #"{"metadata":{"name":"s"}"#,
        #"{"metadata" {"name":"s"}}"#,
        #"{"metadata":{"name":"s"}} x"#,
        #"{"metadata":{"name":"s\ud800"}}"#,
        #"{"metadata":{"name":"s\q"}}"#,
        "{\"metadata\":{\"name\":\"s\u{1}\"}}",
        #"{"metadata":{"name":"s","generation":01}}"#,
        #"{"metadata":{"name":"s","generation":-}}"#,
        #"{"metadata":{"name":"s"},"spec":nul}"#,
        #"{"metadata":{"name":"s"},"extra":[1,2}"#,
        #"{"metadata":{"name":null}}"#,
        #"[]"#,
        "",
    ])
    func malformedDocumentsAreRefused(_ json: String) throws {
        #expect(throws: (any Error).self) { try JSONDecoder().decode(Service.self, from: Data(json.utf8)) }
        #expect(throws: KubeJSONError.self) { try read(Service.self, json) }
    }

    /// JSON has no trailing commas; Foundation's JSONDecoder lets them through, an API server never
    /// writes them.
    @Test func trailingCommasAreRefused() throws {
        #expect(try error(Service.self, #"{"metadata":{"name":"s"},}"#).problem == "expected a field name, found \"}\"")
        #expect(try error(Service.self, #"{"metadata":{"name":"s"},"spec":{"ports":[{"port":80},]}}"#).fieldPath == "spec.ports[1]")
    }

    @Test func invalidUTF8IsRefused() throws {
        let bytes: [UInt8] = Array(#"{"metadata":{"name":""#.utf8) + [0xC3, 0x28] + Array(#""}}"#.utf8)
        #expect(throws: KubeJSONError.self) { try bytes.withUnsafeBytes { bytes throws(KubeJSONError) in try KubeJSON.object(Service.self, from: bytes) } }
    }

    @Test func kindsWithoutAReaderOfTheirOwnGoThroughJSONDecoder() throws {
        let lease = try read(Lease.self, #"{"metadata":{"name":"leader"},"spec":{"holderIdentity":"pod-1","leaseDurationSeconds":15}}"#)
        #expect(lease.spec?.holderIdentity == "pod-1")
        let failure = try error(Lease.self, #"{"metadata":{"name":"leader"},"spec":{"leaseDurationSeconds":"long"}}"#)
        #expect(failure.problem.hasPrefix("spec.leaseDurationSeconds: expected an integer"))
    }

    /// Random objects of every kind the informers read, written by JSONEncoder: the reader gives
    /// back what JSONDecoder gives.
    @Test func randomObjectsReadAsJSONDecoderReadsThem() throws {
        let random = Random(seed: 7)
        let encoder = JSONEncoder()
        for _ in 0..<300 {
            try check(random.ingress(), encoder)
            try check(random.service(), encoder)
            try check(random.slice(), encoder)
            try check(random.secret(), encoder)
            try check(IngressClass(metadata: random.meta(), spec: random.maybe { IngressClassSpec(controller: random.text()) }), encoder)
        }
    }

    func check<T: KubeObject>(_ object: T, _ encoder: JSONEncoder) throws {
        let json = try encoder.encode(object)
        let decoded = try JSONDecoder().decode(T.self, from: json)
        let read = try json.withUnsafeBytes { bytes throws(KubeJSONError) in try KubeJSON.object(T.self, from: bytes) }
        #expect(read == decoded, "\(String(decoding: json, as: UTF8.self))")
    }
}

/// A small seeded generator of Kubernetes objects.
final class Random {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    func flip() -> Bool { below(2) == 0 }
    func maybe<T>(_ make: () -> T) -> T? { flip() ? make() : nil }

    func text() -> String {
        let pieces = ["a", "web", "é", "\"", "\\", "/", "\n", "😀", "x.example.com", " ", "\u{7F}", "-", "0"]
        return (0..<below(5)).map { _ in pieces[below(pieces.count)] }.joined()
    }

    func map() -> [String: String] {
        var map: [String: String] = [:]
        for _ in 0..<below(4) { map[text()] = text() }
        return map
    }

    func int32() -> Int32 { [0, 80, -1, Int32.max, Int32.min, 65535][below(6)] }

    func meta() -> ObjectMeta {
        ObjectMeta(
            name: text(), namespace: maybe { text() }, uid: maybe { text() }, resourceVersion: maybe { text() },
            generation: maybe { Int64(bitPattern: next()) }, creationTimestamp: maybe { KubeTime(secondsSinceEpoch: Int64(below(2_000_000_000))) },
            labels: maybe { map() }, annotations: maybe { map() })
    }

    func backend() -> IngressBackend {
        flip()
            ? IngressBackend(service: IngressServiceBackend(name: text(), port: maybe { flip() ? ServiceBackendPort(name: text()) : ServiceBackendPort(number: int32()) }))
            : IngressBackend(resource: TypedLocalObjectReference(apiGroup: maybe { text() }, kind: text(), name: text()))
    }

    func ingress() -> Ingress {
        Ingress(
            metadata: meta(),
            spec: maybe {
                IngressSpec(
                    ingressClassName: maybe { text() }, defaultBackend: maybe { backend() },
                    tls: maybe { (0..<below(3)).map { _ in IngressTLS(hosts: maybe { (0..<below(3)).map { _ in text() } }, secretName: maybe { text() }) } },
                    rules: maybe {
                        (0..<below(3)).map { _ in
                            IngressRule(
                                host: maybe { text() },
                                http: maybe { HTTPIngressRuleValue(paths: (0..<below(3)).map { _ in HTTPIngressPath(path: maybe { text() }, pathType: maybe { text() }, backend: backend()) }) })
                        }
                    })
            },
            status: maybe {
                IngressStatus(
                    loadBalancer: IngressLoadBalancerStatus(ingress: maybe {
                        [IngressLoadBalancerIngress(ip: maybe { text() }, hostname: maybe { text() }, ports: maybe { [IngressPortStatus(port: int32(), protocol: text(), error: maybe { text() })] })]
                    }))
            })
    }

    func service() -> Service {
        Service(
            metadata: meta(),
            spec: maybe {
                ServiceSpec(
                    type: maybe { text() }, externalName: maybe { text() },
                    ports: maybe {
                        (0..<below(3)).map { _ in
                            ServicePort(
                                name: maybe { text() }, port: int32(), targetPort: maybe { flip() ? .int(int32()) : .string(text()) },
                                protocol: maybe { text() }, appProtocol: maybe { text() })
                        }
                    },
                    clusterIP: maybe { text() }, externalIPs: maybe { [text()] }, selector: maybe { map() })
            },
            status: maybe { ServiceStatus(loadBalancer: LoadBalancerStatus(ingress: maybe { [LoadBalancerIngress(ip: maybe { text() }, hostname: maybe { text() })] })) })
    }

    func slice() -> EndpointSlice {
        EndpointSlice(
            metadata: meta(), addressType: text(),
            endpoints: maybe {
                (0..<below(4)).map { _ in
                    EndpointSliceEndpoint(
                        addresses: (0..<below(3)).map { _ in text() },
                        conditions: maybe { EndpointConditions(ready: maybe { flip() }, serving: maybe { flip() }, terminating: maybe { flip() }) },
                        hostname: maybe { text() }, nodeName: maybe { text() }, zone: maybe { text() },
                        targetRef: maybe { ObjectReference(kind: maybe { text() }, namespace: maybe { text() }, name: maybe { text() }, uid: maybe { text() }) })
                }
            },
            ports: maybe { [EndpointSlicePort(name: maybe { text() }, port: maybe { int32() }, protocol: maybe { text() }, appProtocol: maybe { text() })] })
    }

    func secret() -> Secret {
        Secret(
            metadata: meta(), type: maybe { text() },
            data: maybe { [text(): Base64Data((0..<below(40)).map { _ in UInt8(truncatingIfNeeded: next()) })] },
            stringData: maybe { map() })
    }
}
