import Foundation
import Testing
import TestSupport
@testable import PorticoCtl

@Suite struct AnnotationsCommandTests {
    /// README.md carries the catalog's table (scripts/annotation-table.sh writes it), so the two never drift.
    @Test func readmeTableIsTheCatalogs() throws {
        let readme = URL(fileURLWithPath: quickstart).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let begin = try #require(text.range(of: "<!-- annotations:begin -->\n"))
        let end = try #require(text.range(of: "<!-- annotations:end -->"))
        #expect(String(text[begin.upperBound..<end.lowerBound]) == AnnotationsCommand.markdown(), "run scripts/annotation-table.sh")
    }

    @Test func listsAndFilters() throws {
        let all = try AnnotationsCommand.parse([]).execute()
        #expect(all.stdout.contains("nginx.ingress.kubernetes.io/rewrite-target"))
        #expect(all.stdout.contains("portico.io/hsts"))
        let supported = try AnnotationsCommand.parse(["--status", "supported"]).execute()
        #expect(supported.stdout.contains("nginx.ingress.kubernetes.io/ssl-redirect"))
        #expect(!supported.stdout.contains("auth-url"))
    }

    /// `porticoctl dump` lists every annotation of every Ingress with its status, and the unsupported
    /// ones are warnings (so --strict fails on them).
    @Test func dumpListsEachAnnotationWithItsStatus() async throws {
        let directory = try manifestDirectory([
            "app.yaml": """
                apiVersion: networking.k8s.io/v1
                kind: Ingress
                metadata:
                  name: app
                  annotations:
                    nginx.ingress.kubernetes.io/ssl-redirect: "false"
                    nginx.ingress.kubernetes.io/enable-cors: "true"
                    nginx.ingress.kubernetes.io/proxy-body-size: "huge"
                spec:
                  ingressClassName: portico
                  rules:
                  - host: app.example.com
                    http:
                      paths:
                      - path: /
                        pathType: Prefix
                        backend: {service: {name: app, port: {number: 80}}}
                """
        ])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let table = try await dump(["--manifests", directory, "--section", "annotations"])
        let lines = table.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.contains("nginx.ingress.kubernetes.io/ssl-redirect") && $0.contains("supported") })
        #expect(lines.contains { $0.contains("nginx.ingress.kubernetes.io/enable-cors") && $0.contains("unsupported") })
        #expect(lines.contains { $0.contains("nginx.ingress.kubernetes.io/proxy-body-size") && $0.contains("invalid") })
        #expect(table.stderr.contains("UnsupportedAnnotation"))
        let json = try await dump(["--manifests", directory, "-o", "json"])
        let document = try JSONDecoder().decode(DumpDocument.self, from: Data(json.stdout.utf8))
        #expect(document.annotations.map(\.status) == ["unsupported", "invalid", "supported"])
        #expect(try await dump(["--manifests", directory, "--strict"]).exitCode == CommandResult.problemsFound)
    }
}
