import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import Translator

/// The incremental translator must give exactly the full translation's table, whatever the changes;
/// it may only decline (nil), never differ.
@Suite struct IncrementalTranslatorTests {
    /// The index's key groups hold one key inline and more in a Set, and say when they empty.
    @Test func keyGroupsGrowPastOneKeyAndSayWhenEmpty() {
        func keys(_ group: KeyGroup) -> Set<String> {
            var all = Set<String>()
            group.add(to: &all)
            return all
        }
        var group = KeyGroup()
        #expect(keys(group).isEmpty)
        group.insert("default/a")
        group.insert("default/a")
        #expect(keys(group) == ["default/a"])
        group.insert("default/b")
        group.insert("default/c")
        #expect(keys(group) == ["default/a", "default/b", "default/c"])
        #expect(group.remove("default/b") == false)
        #expect(group.remove("default/missing") == false)
        #expect(group.remove("default/a") == false)
        #expect(keys(group) == ["default/c"])
        #expect(group.remove("default/c") == true)
        #expect(keys(group).isEmpty)
        group.insert("default/d")
        #expect(group.remove("default/x") == false)
        #expect(keys(group) == ["default/d"])
    }

    static let hosts = ["a.example.com", "b.example.com", "c.example.com", "x.wild.com", "*.wild.com", "d.example.com", "e.example.com"]

    static func randomIngress(_ name: String, created: Int64, _ random: inout SplitMix64) -> Ingress {
        func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
        func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
        func backend() -> IngressBackend {
            chance(15) ? F.backend("svc-\(random.next() % 4)", portName: "http") : F.backend(pick(["svc-0", "svc-1", "svc-2", "svc-3", "missing"]), 80)
        }
        var rules: [IngressRule] = []
        for _ in 0..<(1 + random.next() % 2) {
            let paths = (0..<(1 + random.next() % 3)).map { _ in
                F.path(pick(["/", "/api", "/api/v1", "/static", "/x"]), pick(["Prefix", "Exact", "ImplementationSpecific"]), backend())
            }
            rules.append(IngressRule(host: chance(10) ? nil : pick(hosts), http: HTTPIngressRuleValue(paths: paths)))
        }
        var annotations: [String: String] = [:]
        if chance(3) { annotations[TranslatorConfiguration.Annotation.loadBalance] = "least-request" }
        if chance(15) { annotations["portico.io/ssl-redirect"] = "false" }
        if chance(10) { annotations["portico.io/proxy-body-size"] = "1m" }
        let tls: [IngressTLS]? =
            chance(30)
            ? [IngressTLS(hosts: [pick(hosts.filter { $0 != "*.wild.com" || chance(30) })], secretName: pick(["tls-a", "tls-b", "no-such-secret"]))]
            : nil
        // Some belong to another controller, or name no class (ours by default, see `cluster`).
        let className: String? = chance(10) ? "other" : chance(10) ? nil : "portico"
        return F.ingress(
            name, namespace: chance(80) ? "default" : "team", className: className, created: created,
            annotations: annotations.isEmpty ? nil : annotations,
            defaultBackend: chance(3) ? backend() : nil, tls: tls, rules: rules)
    }

    /// Two certificates a Secret may hold (a renewal swaps one for the other); made once, as making
    /// one takes a while.
    static let certificates = (
        try! TestCertificate(commonName: "a", dnsNames: ["a.example.com"]), try! TestCertificate(commonName: "b", dnsNames: ["b.example.com"])
    )

    static func cluster(_ random: inout SplitMix64) throws -> KubeObjects {
        let certificate = Self.certificates.0
        var objects = KubeObjects()
        objects.ingresses = (0..<24).map { randomIngress("ing-\($0)", created: Int64($0), &random) }
        objects.ingressClasses = [F.ingressClass("portico", isDefault: true), F.ingressClass("other", controller: "example.com/other")]
        for namespace in ["default", "team"] {
            for service in 0..<4 {
                objects.services.append(F.service("svc-\(service)", namespace: namespace))
                objects.endpointSlices.append(
                    F.slice("svc-\(service)-a", service: "svc-\(service)", namespace: namespace, endpoints: [("10.0.\(service).1", true), ("10.0.\(service).2", service != 2)]))
            }
            objects.secrets.append(F.tlsSecret("tls-a", namespace: namespace, certificatePEM: certificate.certificatePEM, keyPEM: certificate.privateKeyPEM))
            objects.secrets.append(F.tlsSecret("tls-b", namespace: namespace, certificatePEM: "not a certificate", keyPEM: "nor a key"))
        }
        return objects
    }

    @Test(arguments: 0..<6)
    func incrementalTablesEqualFullTranslations(_ seed: Int) throws {
        var random = SplitMix64(seed: UInt64(seed))
        var objects = try Self.cluster(&random)
        var translator = IncrementalTranslator(objects: objects, translation: Translator.translate(objects))
        var incremental = 0
        var declined = 0
        var secretRounds = 0
        var nextName = 100
        for _ in 0..<150 {
            // Up to three Ingresses change: edited, replaced, deleted or added.
            var changes: [String: Ingress?] = [:]
            for _ in 0..<(random.next() % 4) {
                switch random.next() % 10 {
                case 0..<6 where !objects.ingresses.isEmpty:
                    let index = Int(random.next() % UInt64(objects.ingresses.count))
                    var edited = Self.randomIngress(objects.ingresses[index].metadata.name, created: Int64(random.next() % 30), &random)
                    edited.metadata = objects.ingresses[index].metadata
                    objects.ingresses[index] = edited
                    changes[IncrementalTranslator.key(edited)] = .some(edited)
                case 6..<8 where !objects.ingresses.isEmpty:
                    let removed = objects.ingresses.remove(at: Int(random.next() % UInt64(objects.ingresses.count)))
                    changes[IncrementalTranslator.key(removed)] = .some(nil)
                default:
                    let added = Self.randomIngress("new-\(nextName)", created: 100 + Int64(nextName), &random)
                    nextName += 1
                    objects.ingresses.append(added)
                    changes[IncrementalTranslator.key(added)] = .some(added)
                }
            }
            // Sometimes EndpointSlices change too: endpoints edited, a slice deleted, added, or
            // moved to another Service.
            var sliceChanges: [String: EndpointSlice?] = [:]
            for _ in 0..<(random.next() % 3) {
                switch random.next() % 4 {
                case 0 where !objects.endpointSlices.isEmpty:
                    let index = Int(random.next() % UInt64(objects.endpointSlices.count))
                    objects.endpointSlices[index].endpoints = (0..<(random.next() % 4)).map { pod in
                        EndpointSliceEndpoint(addresses: ["10.9.\(random.next() % 4).\(pod)"], conditions: EndpointConditions(ready: random.next() % 4 != 0))
                    }
                    sliceChanges[IncrementalTranslator.key(objects.endpointSlices[index])] = .some(objects.endpointSlices[index])
                case 1 where !objects.endpointSlices.isEmpty:
                    let removed = objects.endpointSlices.remove(at: Int(random.next() % UInt64(objects.endpointSlices.count)))
                    sliceChanges[IncrementalTranslator.key(removed)] = .some(nil)
                case 2 where !objects.endpointSlices.isEmpty:
                    let index = Int(random.next() % UInt64(objects.endpointSlices.count))
                    objects.endpointSlices[index].metadata.labels = [EndpointSlice.serviceNameLabel: "svc-\(random.next() % 4)"]
                    sliceChanges[IncrementalTranslator.key(objects.endpointSlices[index])] = .some(objects.endpointSlices[index])
                default:
                    let added = F.slice(
                        "extra-\(nextName)", service: ["svc-0", "svc-3", "missing"][Int(random.next() % 3)],
                        namespace: random.next() % 2 == 0 ? "default" : "team", endpoints: [("10.8.0.\(nextName % 250)", true)])
                    nextName += 1
                    objects.endpointSlices.append(added)
                    sliceChanges[IncrementalTranslator.key(added)] = .some(added)
                }
            }
            // Sometimes a TLS Secret changes: renewed (another certificate), broken, deleted or created.
            var secretChanges: [String: Secret?] = [:]
            if random.next() % 4 == 0 {
                let namespace = random.next() % 2 == 0 ? "default" : "team"
                let name = ["tls-a", "tls-b", "no-such-secret"][Int(random.next() % 3)]
                let key = "\(namespace)/\(name)"
                objects.secrets.removeAll { $0.namespace == namespace && $0.metadata.name == name }
                switch random.next() % 4 {
                case 0:
                    secretChanges[key] = .some(nil)
                case 1:
                    let broken = F.tlsSecret(name, namespace: namespace, certificatePEM: "not a certificate", keyPEM: "nor a key")
                    objects.secrets.append(broken)
                    secretChanges[key] = .some(broken)
                default:
                    let certificate = random.next() % 2 == 0 ? Self.certificates.0 : Self.certificates.1
                    let renewed = F.tlsSecret(name, namespace: namespace, certificatePEM: certificate.certificatePEM, keyPEM: certificate.privateKeyPEM)
                    objects.secrets.append(renewed)
                    secretChanges[key] = .some(renewed)
                }
            }
            let full = Translator.translate(objects)
            let before = translator.table
            _ = translator.takeTouched()
            if !sliceChanges.isEmpty {
                let table = translator.apply(endpointSlices: sliceChanges)
                if changes.isEmpty && secretChanges.isEmpty { #expect(table == full.table) }
            }
            var secretsApplied = true
            if !secretChanges.isEmpty {
                if let table = translator.apply(secrets: secretChanges) {
                    secretRounds += 1
                    if changes.isEmpty { #expect(table == full.table, "after changing Secrets \(secretChanges.keys.sorted())") }
                } else {
                    secretsApplied = false
                }
            }
            if secretsApplied, let table = translator.apply(changes) {
                incremental += 1
                #expect(table == full.table, "after changing \(changes.keys.sorted()) and Secrets \(secretChanges.keys.sorted())")
                #expect(table.contentHash == full.table.contentHash)
                // The delta over what the changes touched turns the table before into this one.
                let touched = translator.takeTouched()
                let delta = before.delta(to: table, hosts: touched.hosts, clusters: touched.clusters, certificates: touched.certificates)
                #expect(try before.applying(delta) == table, "the touched entries' delta after \(changes.keys.sorted())")
                #expect(delta == before.delta(to: table), "the same as comparing the whole tables")
            } else {
                declined += 1
                translator = IncrementalTranslator(objects: objects, translation: full)
            }
        }
        #expect(incremental > 30, "incremental \(incremental), declined \(declined)")
        #expect(secretRounds > 10, "Secret changes taken incrementally: \(secretRounds)")
    }

    @Test func aSecretCreatedRenewedOrDeletedChangesOnlyItsHostsCertificate() throws {
        let (first, second) = Self.certificates
        func secret(_ certificate: TestCertificate) -> Secret {
            F.tlsSecret("site-tls", certificatePEM: certificate.certificatePEM, keyPEM: certificate.privateKeyPEM)
        }
        var objects = KubeObjects()
        objects.ingresses = [
            F.ingress("site", tls: [IngressTLS(hosts: ["a.example.com"], secretName: "site-tls")], rules: [F.rule("a.example.com", F.path("/", "Prefix", F.backend("svc-0", 80)))]),
            F.ingress("other", rules: [F.rule("b.example.com", F.path("/", "Prefix", F.backend("svc-0", 80)))]),
        ]
        objects.services = [F.service("svc-0")]
        var translator = IncrementalTranslator(objects: objects, translation: Translator.translate(objects))
        #expect(translator.table.certificates.isEmpty, "the Secret does not exist yet")
        for (step, change) in [("created", Optional(secret(first))), ("renewed", secret(second)), ("deleted", nil)] {
            objects.secrets = change.map { [$0] } ?? []
            _ = translator.takeTouched()
            let applied = translator.apply(secrets: ["default/site-tls": change])
            let table = try #require(applied, "\(step)")
            #expect(table == Translator.translate(objects).table, "\(step)")
            #expect(translator.takeTouched().hosts == [.exact("a.example.com")], "\(step): only the host naming it")
        }
        #expect(translator.table.certificates.isEmpty)
        // A Secret no Ingress names changes nothing; one named in proxy-ssl-secret is left to a full translation.
        let unused = F.tlsSecret("unused", certificatePEM: first.certificatePEM, keyPEM: first.privateKeyPEM)
        #expect(translator.apply(secrets: ["default/unused": unused]) == translator.table)
        var upstream = objects
        upstream.ingresses.append(
            F.ingress("tls-upstream", annotations: ["portico.io/backend-protocol": "HTTPS", "portico.io/proxy-ssl-secret": "default/pod-ca"],
                rules: [F.rule("c.example.com", F.path("/", "Prefix", F.backend("svc-0", 80)))]))
        var declining = IncrementalTranslator(objects: upstream, translation: Translator.translate(upstream))
        #expect(declining.apply(secrets: ["default/pod-ca": unused]) == nil)
    }

    @Test func changesThatReachOtherHostsAreDeclined() throws {
        var random = SplitMix64(seed: 99)
        var objects = try Self.cluster(&random)
        objects.ingresses = [
            F.ingress("plain", created: 1, rules: [F.rule("a.example.com", F.path("/", "Prefix", F.backend("svc-0", 80)))])
        ]
        var translator = IncrementalTranslator(objects: objects, translation: Translator.translate(objects))
        let withDefault = F.ingress("d", created: 2, defaultBackend: F.backend("svc-1", 80), rules: [])
        var declined = translator.apply(["default/d": .some(withDefault)])
        #expect(declined == nil, "a defaultBackend may answer for every host")
        let wildcardTLS = F.ingress(
            "w", created: 3, tls: [IngressTLS(hosts: ["*.example.com"], secretName: "tls-a")],
            rules: [F.rule("*.example.com", F.path("/", "Prefix", F.backend("svc-1", 80)))])
        declined = translator.apply(["default/w": .some(wildcardTLS)])
        #expect(declined == nil, "exact hosts inherit a wildcard's TLS")
        let balanced = F.ingress(
            "lb", created: 4, annotations: [TranslatorConfiguration.Annotation.loadBalance: "least-request"],
            rules: [F.rule("b.example.com", F.path("/", "Prefix", F.backend("svc-0", 80)))])
        declined = translator.apply(["default/lb": .some(balanced)])
        #expect(declined == nil, "a cluster's policy is decided across hosts")

        let edited = F.ingress("plain", created: 1, rules: [F.rule("a.example.com", F.path("/v2", "Prefix", F.backend("svc-2", 80)))])
        let applied = translator.apply(["default/plain": .some(edited)])
        let table = try #require(applied)
        objects.ingresses = [edited]
        #expect(table == Translator.translate(objects).table)
        #expect(table.clusters.map(\.name) == ["default/svc-2:80"], "the cluster no route names any more is gone")
    }
}
