import Foundation
import Testing
import TestSupport
import Yams
@testable import PorticoCtl

/// The repository's examples/quickstart, found from this file's path.
let quickstart = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("examples/quickstart").path

func dump(_ arguments: [String]) async throws -> CommandResult {
    await (try DumpCommand.parse(arguments)).execute()
}

func explain(_ arguments: [String]) async throws -> CommandResult {
    await (try ExplainCommand.parse(arguments)).execute()
}

func explainJSON(_ arguments: [String]) async throws -> [String: Any] {
    let result = try await explain(arguments + ["-o", "json"])
    #expect(result.exitCode == 0)
    let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    return try #require(object as? [String: Any])
}

/// A temporary manifest directory, removed by the caller.
func manifestDirectory(_ files: [String: String]) throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("porticoctl-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    for (name, text) in files { try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8) }
    return directory
}

@Suite struct DumpTests {
    @Test func quickstartTable() async throws {
        let result = try await dump(["--manifests", quickstart])
        #expect(result.exitCode == 0)
        #expect(result.stderr == "", "the quickstart has no problems")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("manifests:\(quickstart)  hash "))
        #expect(lines.contains { $0.hasPrefix("HOST") && $0.contains("ENDPOINTS") })
        #expect(lines.contains { $0.hasPrefix("shop.example.com") && $0.contains("/api") && $0.contains("127.0.0.1:9002") && $0.contains("(redirect)") })
        #expect(lines.contains { $0.hasPrefix("blog.example.com") && $0.contains("Exact") && $0.contains("/feed.xml") })
        #expect(lines.contains { $0.hasPrefix("*") && $0.contains("default/catch-all") })
        #expect(lines.contains { $0.hasPrefix("shop/shop-tls") && $0.contains("shop.example.com,www.shop.example.com") && $0.contains("2036-") })
    }

    @Test func quickstartJSON() async throws {
        let result = try await dump(["--manifests", quickstart, "-o", "json"])
        let document = try JSONDecoder().decode(DumpDocument.self, from: Data(result.stdout.utf8))
        #expect(document.summary.virtualHosts == 3)
        #expect(document.summary.acceptedIngresses == 3)
        let shop = try #require(document.virtualHosts.first { $0.host == "shop.example.com" })
        #expect(shop.certificate == "shop/shop-tls")
        #expect(shop.routes.map { "\($0.pathType) \($0.path)" } == ["Prefix /", "Prefix /api", "Exact /healthz"])
        #expect(shop.routes[1].backend.servicePort == .number(8080))
        #expect(shop.routes[1].backend.endpoints == ["127.0.0.1:9002"])
        #expect(document.certificates.first?.dnsNames == ["shop.example.com", "www.shop.example.com"])
        #expect(document.rejections.isEmpty)
    }

    @Test func quickstartYAML() async throws {
        let result = try await dump(["--manifests", quickstart, "-o", "yaml"])
        let document = try YAMLDecoder().decode(DumpDocument.self, from: result.stdout)
        #expect(document.virtualHosts.count == 3)
    }

    @Test(arguments: OutputFormat.allCases)
    func noKeyMaterialInAnyFormat(_ format: OutputFormat) async throws {
        let key = try String(contentsOfFile: quickstart + "/shop-tls.yaml", encoding: .utf8)
            .split(separator: "\n").drop { !$0.contains("BEGIN PRIVATE KEY") }.dropFirst().first.map { $0.trimmingCharacters(in: .whitespaces) }
        let keyLine = try #require(key)
        let result = try await dump(["--manifests", quickstart, "-o", format.rawValue])
        #expect(!result.stdout.contains("PRIVATE KEY"))
        #expect(!result.stdout.contains(keyLine))
        #expect(!result.stderr.contains(keyLine))
    }

    @Test func problemsAreShownWithTheirLocationAndStrictFails() async throws {
        let directory = try manifestDirectory([
            "app.yaml": """
                apiVersion: networking.k8s.io/v1
                kind: Ingress
                metadata: {name: app}
                spec:
                  ingressClassName: portico
                  rules:
                  - host: app.example.com
                    http:
                      paths:
                      - path: /
                        pathType: Prefix
                        backend: {service: {name: missing, port: {number: 80}}}
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: broken}
                spec: {ports: [{port: eighty}]}
                """
        ])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let lenient = try await dump(["--manifests", directory])
        #expect(lenient.exitCode == 0)
        #expect(lenient.stdout.contains("ServiceNotFound"))
        #expect(lenient.stdout.contains("[\(directory)/app.yaml: document 1 (line 1)]"))
        #expect(lenient.stdout.contains("MANIFEST ERRORS"))
        #expect(lenient.stderr.contains("error: \(directory)/app.yaml: document 2 (line 17): Service default/broken: spec.ports[0].port: expected an integer"))
        #expect(lenient.stderr.contains("warning: Ingress default/app spec.rules[0].http.paths[0].backend: ServiceNotFound"))
        let strict = try await dump(["--manifests", directory, "--strict"])
        #expect(strict.exitCode == CommandResult.problemsFound)
        let strictQuickstart = try await dump(["--manifests", quickstart, "--strict"])
        #expect(strictQuickstart.exitCode == 0)
    }

    @Test func missingPathIsExitOne() async throws {
        let result = try await dump(["--manifests", "/nonexistent/manifests"])
        #expect(result.exitCode == CommandResult.inputError)
        #expect(result.stderr == "error: /nonexistent/manifests: no such file or directory\n")
    }

    @Test func otherIngressClassOption() async throws {
        let result = try await dump(["--manifests", quickstart, "--ingress-class", "other", "--controller-name", "example.com/other", "-o", "json"])
        let document = try JSONDecoder().decode(DumpDocument.self, from: Data(result.stdout.utf8))
        #expect(document.summary.acceptedIngresses == 0)
        #expect(document.summary.ignoredIngresses == 3)
    }
}

@Suite struct ExplainTests {
    @Test func routeIsExactlyTheDocumentedObject() async throws {
        let result = try await explain(["--manifests", quickstart, "--host", "blog.example.com", "--path", "/feed.xml", "-o", "json"])
        #expect(
            result.stdout
                == #"{"result":"route","namespace":"default","ingress":"blog","service":"blog","servicePort":80,"pathType":"Exact","path":"/feed.xml","endpoints":["127.0.0.1:9003"],"virtualHost":"blog.example.com"}"#
                + "\n")
        #expect(result.exitCode == 0)
    }

    @Test func routeWithRedirectAndNormalisation() async throws {
        let object = try await explainJSON(["--manifests", quickstart, "--host", "Shop.Example.com:443", "--path", "/static/../api//v1?x=1"])
        #expect(object["result"] as? String == "route")
        #expect(object["namespace"] as? String == "shop")
        #expect(object["ingress"] as? String == "shop")
        #expect(object["service"] as? String == "api")
        #expect(object["servicePort"] as? Int == 8080)
        #expect(object["pathType"] as? String == "Prefix")
        #expect(object["path"] as? String == "/api")
        #expect(object["endpoints"] as? [String] == ["127.0.0.1:9002"])
        #expect(object["normalizedPath"] as? String == "/api/v1?x=1")
        #expect(object["httpsRedirect"] as? Bool == true)
    }

    @Test func defaultBackend() async throws {
        let object = try await explainJSON(["--manifests", quickstart, "--host", "unknown.example.org", "--path", "/"])
        #expect(object["result"] as? String == "default-backend")
        #expect(object["ingress"] as? String == "catch-all")
        #expect(object["service"] as? String == "fallback")
        #expect(object["endpoints"] as? [String] == ["127.0.0.1:9004"])
        #expect(object["pathType"] == nil)
    }

    @Test func noRouteAndNoEndpoints() async throws {
        let directory = try manifestDirectory([
            "a.yaml": """
                apiVersion: networking.k8s.io/v1
                kind: Ingress
                metadata: {name: a}
                spec:
                  ingressClassName: portico
                  rules:
                  - host: a.example.com
                    http:
                      paths:
                      - {path: /, pathType: Prefix, backend: {service: {name: idle, port: {number: 80}}}}
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: idle}
                spec: {ports: [{name: http, port: 80}]}
                """
        ])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let none = try await explain(["--manifests", directory, "--host", "b.example.com", "--path", "/", "-o", "json"])
        #expect(none.stdout == #"{"result":"no-route","status":404}"# + "\n")
        let idle = try await explainJSON(["--manifests", directory, "--host", "a.example.com", "--path", "/x"])
        #expect(idle["result"] as? String == "no-endpoints")
        #expect(idle["status"] as? Int == 503)
        #expect(idle["service"] as? String == "idle")
        #expect(idle["endpoints"] as? [String] == [])
    }

    @Test func badRequestPath() async throws {
        let object = try await explainJSON(["--manifests", quickstart, "--host", "blog.example.com", "--path", "/a%zz"])
        #expect(object["result"] as? String == "bad-request")
        #expect(object["status"] as? Int == 400)
    }

    @Test func textOutput() async throws {
        let result = try await explain(["--manifests", quickstart, "--host", "shop.example.com", "--path", "/healthz"])
        #expect(result.stdout.contains("matched:       Exact /healthz of Ingress shop/shop"))
        #expect(result.stdout.contains("endpoints:     127.0.0.1:9002"))
        #expect(result.stdout.contains("redirected to https"))
    }

    @Test func badInputExitsNonZero() async throws {
        let result = try await explain(["--manifests", "/nonexistent", "--host", "a", "--path", "/"])
        #expect(result.exitCode == CommandResult.inputError)
        #expect(result.stderr.contains("/nonexistent: no such file or directory"))
        #expect(throws: (any Error).self) { try ExplainCommand.parse(["--manifests", quickstart, "--path", "/"]) }
    }
}
