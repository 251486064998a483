import Foundation
import KubeTypes
import Testing
@testable import Manifests

@Suite struct ManifestParserTests {
    static let service = """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
        spec:
          ports:
          - name: http
            port: 80
        """

    @Test func multiDocumentYAML() {
        let text = """
            # leading comment
            ---
            \(Self.service)
            ---
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata:
              name: web
              namespace: shop
            spec:
              rules:
              - host: shop.example.com
            ---
            # only a comment
            ---
            """
        let result = ManifestParser.parse(text: text, file: "app.yaml")
        #expect(result.errors.isEmpty)
        #expect(result.objects.map(\.object.ref.description) == ["Service default/web", "Ingress shop/web"])
        #expect(result.objects.map(\.location.document) == [1, 2])
        #expect(result.objects.map(\.location.line) == [3, 12])
    }

    @Test func aSyntaxErrorInOneDocumentDoesNotStopTheOthers() throws {
        let text = """
            \(Self.service)
            ---
            apiVersion: v1
            kind: Service
            metadata:
              name: broken
                bad: indentation: here
            ---
            apiVersion: v1
            kind: Secret
            metadata:
              name: s
            type: kubernetes.io/tls
            """
        let result = ManifestParser.parse(text: text, file: "x.yaml")
        #expect(result.objects.map(\.object.ref.name) == ["web", "s"])
        let error = try #require(result.errors.first)
        #expect(result.errors.count == 1)
        #expect(error.location.file == "x.yaml")
        #expect(error.location.document == 2)
        #expect(error.location.line == 14)
        #expect(error.message.hasPrefix("invalid YAML"))
        #expect(error.description.hasPrefix("x.yaml: document 2 (line 14): invalid YAML"))
    }

    @Test func aWrongTypeNamesFileDocumentLineObjectAndField() throws {
        let text = """
            \(Self.service)
            ---
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata:
              name: web
            spec:
              rules:
              - host: a.example.com
                http:
                  paths:
                  - path: /
                    pathType: Prefix
                    backend:
                      service:
                        name: web
                        port:
                          number: eighty
            """
        let result = ManifestParser.parse(text: text, file: "ing.yaml")
        #expect(result.objects.count == 1)
        let error = try #require(result.errors.first)
        #expect(error.object == ObjectRef(kind: "Ingress", namespace: "default", name: "web"))
        #expect(error.location.document == 2)
        #expect(error.location.line == 25)
        #expect(error.message == "spec.rules[0].http.paths[0].backend.service.port.number: expected an integer, found \"eighty\"")
        #expect(error.description.hasPrefix("ing.yaml: document 2 (line 25): Ingress default/web: spec.rules[0]"))
    }

    @Test func listItemsAreDecodedOneByOne() throws {
        let text = """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Service
              metadata: {name: one}
            - apiVersion: v1
              kind: Service
              metadata: {name: two}
              spec: {ports: "not a list"}
            - apiVersion: v1
              kind: Service
              metadata: {name: three}
            """
        let result = ManifestParser.parse(text: text, file: "list.yaml")
        #expect(result.objects.map(\.object.ref.name) == ["one", "three"])
        #expect(result.objects.map(\.location.item) == [0, 2])
        let error = try #require(result.errors.first)
        #expect(error.location.item == 1)
        #expect(error.location.line == 10)
        #expect(error.message == "spec.ports: expected a list, found \"not a list\"")
        #expect(error.description.hasPrefix("list.yaml: document 1, items[1] (line 10): Service default/two"))
    }

    @Test func typedListsWork() {
        let text = """
            {"apiVersion":"v1","kind":"ServiceList","items":[
              {"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}},
              {"apiVersion":"v1","kind":"Service","metadata":{"name":"b"}}]}
            """
        let result = ManifestParser.parse(text: text, file: "list.json")
        #expect(result.objects.map(\.object.ref.name) == ["a", "b"])
        #expect(result.errors.isEmpty)
    }

    @Test func jsonDocuments() {
        let text = """
            {
            \t"apiVersion": "networking.k8s.io/v1",
            \t"kind": "IngressClass",
            \t"metadata": {"name": "portico"},
            \t"spec": {"controller": "portico.io/ingress-controller"}
            }
            """
        let result = ManifestParser.parse(text: text, file: "class.json")
        #expect(result.errors.isEmpty, "\(result.errors)")
        #expect(result.objects.map(\.object.ref.description) == ["IngressClass portico"])
    }

    @Test func otherKindsAreSkippedSilently() {
        let text = """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec: {replicas: 2}
            ---
            \(Self.service)
            """
        let result = ManifestParser.parse(text: text, file: "a.yaml")
        #expect(result.skipped == 1)
        #expect(result.errors.isEmpty)
        #expect(result.objects.count == 1)
    }

    @Test(arguments: [
        ("kind: Service\nmetadata: {name: a}", "apiVersion: required field is missing"),
        ("apiVersion: v1\nmetadata: {name: a}", "kind: required field is missing"),
        ("apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: a}", "apiVersion extensions/v1beta1 is not supported for Ingress; use networking.k8s.io/v1"),
        ("- just\n- a list", "expected a Kubernetes object (a mapping), found a list"),
        ("apiVersion: v1\nkind: Service\nmetadata: {}", "metadata.name: required field is missing"),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nmetadata: {name: b}", "invalid YAML: duplicate keys metadata"),
    ])
    func documentErrors(_ text: String, _ message: String) throws {
        let result = ManifestParser.parse(text: text, file: "f.yaml")
        #expect(result.objects.isEmpty)
        #expect(try #require(result.errors.first).message == message)
    }

    @Test func crlfLineEndings() {
        let text = Self.service.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n---\r\n" + Self.service.replacingOccurrences(of: "web", with: "two")
        let result = ManifestParser.parse(text: text, file: "dos.yaml")
        #expect(result.objects.map(\.object.ref.name) == ["web", "two"])
    }
}

@Suite struct ManifestLoaderTests {
    func makeDirectory(_ files: [String: String]) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("portico-manifests-\(UUID().uuidString)").path
        for (name, text) in files {
            let path = directory + "/" + name
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        return directory
    }

    @Test func loadsADirectoryRecursivelyInOrder() throws {
        let directory = try makeDirectory([
            "b.yaml": ManifestParserTests.service,
            "a/c.yml": ManifestParserTests.service.replacingOccurrences(of: "web", with: "c"),
            "d.json": #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"d"}}"#,
            "notes.txt": "not a manifest",
            ".hidden/e.yaml": ManifestParserTests.service.replacingOccurrences(of: "web", with: "hidden"),
        ])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let set = try ManifestLoader.load(path: directory)
        #expect(set.files == [directory + "/a/c.yml", directory + "/b.yaml", directory + "/d.json"])
        #expect(set.objects.services.map(\.name) == ["c", "web", "d"])
        #expect(set.errors.isEmpty)
        #expect(set.locations[ObjectRef(kind: "Service", namespace: "default", name: "d")]?.file == directory + "/d.json")
    }

    @Test func duplicatesKeepTheFirstDefinition() throws {
        let directory = try makeDirectory([
            "a.yaml": ManifestParserTests.service,
            "b.yaml": ManifestParserTests.service.replacingOccurrences(of: "port: 80", with: "port: 81"),
        ])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let set = try ManifestLoader.load(path: directory)
        #expect(set.objects.services.map { $0.spec?.ports?.first?.port } == [80])
        let error = try #require(set.errors.first)
        #expect(error.location.file == directory + "/b.yaml")
        #expect(error.message.contains("first definition at \(directory)/a.yaml: document 1"))
    }

    @Test func aSingleFile() throws {
        let directory = try makeDirectory(["one.yaml": ManifestParserTests.service])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let set = try ManifestLoader.load(path: directory + "/one.yaml")
        #expect(set.objects.services.count == 1)
    }

    @Test func aMissingPathIsAnError() {
        #expect(throws: ManifestLoadError(path: "/nonexistent/portico", reason: "no such file or directory")) {
            try ManifestLoader.load(path: "/nonexistent/portico")
        }
    }

    @Test func nonUTF8FilesAreReported() throws {
        let directory = try makeDirectory([:])
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = FileManager.default.createFile(atPath: directory + "/bin.yaml", contents: Data([0xff, 0xfe, 0x00, 0xc3]))
        let set = try ManifestLoader.load(path: directory)
        #expect(set.errors.map(\.message) == ["is not UTF-8 text"])
    }
}
