import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import Translator

@Suite struct DeterminismTests {
    /// A varied set: several hosts, conflicts, TLS, default backends, several slices.
    static func sample() throws -> KubeObjects {
        let certificate = try TestCertificate(commonName: "shop", dnsNames: ["shop.example.com"])
        var objects = KubeObjects()
        for index in 0..<30 {
            objects.ingresses.append(
                F.ingress(
                    "ing-\(index)", namespace: index % 2 == 0 ? "default" : "team", created: Int64(index % 7),
                    defaultBackend: index % 10 == 0 ? F.backend("svc-\(index % 4)", 80) : nil,
                    tls: index % 5 == 0 ? [IngressTLS(hosts: ["shop.example.com"], secretName: "shop-tls")] : nil,
                    rules: [
                        F.rule(index % 5 == 0 ? "shop.example.com" : "host-\(index % 6).example.com", p("/p\(index % 9)", "Prefix", "svc-\(index % 4)"), p("/e\(index)", "Exact", "svc-\(index % 3)")),
                        F.rule(index % 3 == 0 ? nil : "*.wild.com", p("/w\(index % 4)", "ImplementationSpecific", "svc-1")),
                    ]))
        }
        for namespace in ["default", "team"] {
            for service in 0..<4 {
                objects.services.append(F.service("svc-\(service)", namespace: namespace))
                for slice in 0..<3 {
                    objects.endpointSlices.append(
                        F.slice(
                            "svc-\(service)-\(slice)", service: "svc-\(service)", namespace: namespace,
                            endpoints: (0..<3).map { ("10.\(service).\(slice).\($0)", $0 != 1) }))
                }
            }
            objects.secrets.append(
                F.tlsSecret("shop-tls", namespace: namespace, certificatePEM: certificate.certificatePEM, keyPEM: certificate.privateKeyPEM))
        }
        return objects
    }

    @Test func shuffledInputGivesTheSameTableAndHash() throws {
        let objects = try Self.sample()
        let reference = Translator.translate(objects)
        #expect(reference.table.routeCount > 30)
        #expect(!reference.rejections.isEmpty, "the sample has conflicts")
        var generator = SplitMix64(seed: 42)
        for _ in 0..<20 {
            var shuffled = objects
            shuffled.ingresses.shuffle(using: &generator)
            shuffled.services.shuffle(using: &generator)
            shuffled.endpointSlices.shuffle(using: &generator)
            shuffled.secrets.shuffle(using: &generator)
            for index in shuffled.endpointSlices.indices { shuffled.endpointSlices[index].endpoints?.shuffle(using: &generator) }
            let translation = Translator.translate(shuffled)
            #expect(translation.table == reference.table)
            #expect(translation.table.contentHash == reference.table.contentHash)
            #expect(translation.rejections == reference.rejections)
            #expect(translation.acceptedIngresses == reference.acceptedIngresses)
        }
    }

    @Test func anyChangeChangesTheHash() throws {
        let objects = try Self.sample()
        let reference = Translator.translate(objects).table.contentHash
        var endpointGone = objects
        endpointGone.endpointSlices[0].endpoints?.removeFirst()
        var pathChanged = objects
        pathChanged.ingresses[3].spec?.rules?[0].http?.paths[0].path = "/changed"
        var redirectOff = objects
        redirectOff.ingresses[5].metadata.annotations = ["portico.io/ssl-redirect": "false"]
        var keyRotated = objects
        let rotated = try TestCertificate(commonName: "shop", dnsNames: ["shop.example.com"])
        keyRotated.secrets[0] = F.tlsSecret("shop-tls", certificatePEM: rotated.certificatePEM, keyPEM: rotated.privateKeyPEM)
        let hashes = [endpointGone, pathChanged, redirectOff, keyRotated].map { Translator.translate($0).table.contentHash }
        #expect(Set(hashes + [reference]).count == 5)
    }

    @Test func outputIsSorted() throws {
        let table = Translator.translate(try Self.sample()).table
        #expect(table.virtualHosts.map(\.hostname) == table.virtualHosts.map(\.hostname).sorted())
        #expect(table.clusters.map(\.name) == table.clusters.map(\.name).sorted())
        for host in table.virtualHosts { #expect(host.routes == host.routes.sorted()) }
    }

    /// Past `PartedWork.partThreshold` Ingresses are validated in parts on every core: the merged result must be
    /// what one pass gives, each Ingress keeping its own verdict, rejections and annotation uses.
    @Test func aLargeClusterValidatedInPartsKeepsEveryVerdict() {
        let count = PartedWork.partThreshold + 903
        var objects = KubeObjects(services: standardServices, endpointSlices: standardSlices)
        var expectedRejected: [ObjectRef] = []
        var expectedUses = 0
        for index in 0..<count {
            let bad = index % 97 == 5
            let annotated = index % 50 == 0
            let ingress = F.ingress(
                "ing-\(index)", created: Int64(index),
                annotations: annotated ? ["nginx.ingress.kubernetes.io/ssl-redirect": "false"] : nil,
                rules: [F.rule(bad ? "bad_host!.example.com" : "h\(index).example.com", p("/"))])
            if bad { expectedRejected.append(ingress.ref) }
            if annotated { expectedUses += 1 }
            objects.ingresses.append(ingress)
        }
        let translation = Translator.translate(objects)
        #expect(translation.rejectedIngresses == expectedRejected.sorted())
        #expect(translation.acceptedIngresses.count == count - expectedRejected.count)
        #expect(Set(translation.rejections.map(\.object)) == Set(expectedRejected))
        #expect(translation.annotations.count == expectedUses)
        #expect(route(translation.table, "h0.example.com", "/x") == "a:80 Prefix /")
        #expect(route(translation.table, "h\(count - 1).example.com", "/") == "a:80 Prefix /")
        #expect(route(translation.table, "h5.example.com", "/") == "404")
        // What one pass on one thread gives.
        let onOneThread = Translator.translate(objects, onEveryCore: false)
        #expect(translation.table.contentHash == onOneThread.table.contentHash)
        #expect(translation.rejections == onOneThread.rejections)
        #expect(translation.annotations == onOneThread.annotations)
        #expect(translation.rejectedIngresses == onOneThread.rejectedIngresses)
    }
    /// Past `PartedWork.partThreshold` hosts are assembled in runs on every core. What needs a run's
    /// place among the others must come out as one pass over every host gives it: the oldest
    /// load-balancing choice of a cluster holds, and a problem is reported once per Ingress and
    /// cluster, a bad slice once, an error-page rule's problem once, whichever runs they show in.
    @Test func aLargeClusterAssembledInPartsReportsEachProblemOnce() {
        let count = PartedWork.partThreshold + 517
        let lb = TranslatorConfiguration.Annotation.loadBalance
        var objects = KubeObjects(
            services: standardServices + [F.service("f")],
            endpointSlices: standardSlices + [F.slice("f-bad", service: "f", port: 70000, endpoints: [("10.0.9.1", true)])])
        for index in 0..<count {
            let annotations: [String: String]? = index == 3 ? [lb: "least-request"] : index == count - 3 ? [lb: "round-robin"] : nil
            objects.ingresses.append(
                F.ingress(
                    "ing-\(index)", created: Int64(index), annotations: annotations,
                    rules: [F.rule("h\(index).example.com", p("/", "Prefix", index % 7 == 0 ? "f" : "a"))]))
        }
        // The newest Ingress adds a path to the first host (the first run) and has a host of its own
        // (the last run), both to a Service that does not exist, and names a missing default-backend.
        let late = F.ingress(
            "late", created: Int64(count + 1), annotations: ["nginx.ingress.kubernetes.io/default-backend": "nope"],
            rules: [F.rule("h0.example.com", p("/late", "Prefix", "missing")), F.rule("late.example.com", p("/", "Prefix", "missing"))])
        objects.ingresses.append(late)

        let translation = Translator.translate(objects)
        let onOneThread = Translator.translate(objects, onEveryCore: false)
        #expect(translation.table.contentHash == onOneThread.table.contentHash)
        #expect(translation.table.clusters == onOneThread.table.clusters)
        #expect(translation.rejections == onOneThread.rejections)
        #expect(translation.annotations == onOneThread.annotations)

        let rejections = translation.rejections
        #expect(rejections.filter { $0.object == late.ref && $0.reason == .serviceNotFound }.count == 1)
        #expect(rejections.filter { $0.object == late.ref && $0.message.contains("default/nope") }.count == 1)
        #expect(rejections.filter { $0.reason == .invalidEndpoint }.count == 1)
        let conflicts = rejections.filter { $0.message.contains("already balances") }
        #expect(conflicts.map(\.object) == [objects.ingresses[count - 3].ref])
        #expect(conflicts.first?.message.contains("least-request for older \(objects.ingresses[3].ref)") == true)
        #expect(translation.table.cluster(named: "default/a:80")?.loadBalancing == .leastRequest)
        #expect(rejections.count == 4)
    }
}

