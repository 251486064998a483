import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import PorticoCtl
import Testing
import TestSupport

/// examples/ingress-nginx, run as the README says: ingress-nginx Ingresses, unchanged, served by
/// `portico run --demo-backends`, and `porticoctl dump` listing each annotation with its status.
@Suite(.serialized) struct IngressNginxExampleTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/ingress-nginx").path

    @Test(.timeLimit(.minutes(5)))
    func theExamplesBehaveAsOnIngressNginx() async throws {
        let httpPort = try freePort()
        let run = try ChildProcess(
            Binaries.portico,
            ["run", "--manifests", Self.examples, "--demo-backends", "--http-port", String(httpPort), "--https-port", String(try freePort()), "--workers", "1"])
        do {
            try await eventually("portico run says it is running") { run.text.contains("Portico is running") }
            func get(_ path: String, _ host: String) async throws -> TestResponse {
                try await TestHTTPConnection.with(port: httpPort) { try await $0.request(.GET, path, host: host) }
            }
            let rewritten = try await get("/api/v1/items?page=2", "api.example.com")
            #expect(rewritten.status == .ok)
            #expect(rewritten.text.hasPrefix("Hello from shop/api"))
            #expect(rewritten.text.contains("GET /v1/items?page=2"), "\(rewritten.text)")
            #expect(rewritten.text.contains("host: api.internal"))
            #expect(rewritten.text.contains("x-forwarded-prefix: /api"))
            #expect(try await get("/HEALTH/live", "api.example.com").text.hasPrefix("Hello from shop/web"), "Exact /health became a regex prefix")
            #expect(try await get("/USERS/42/orders", "www.example.com").text.hasPrefix("Hello from shop/api"))
            #expect(try await get("/users/7/avatar", "www.example.com").text.hasPrefix("Hello from shop/docs"), "the longer regex first")
            #expect(try await get("/about", "www.example.com").text.hasPrefix("Hello from shop/web"))

            let moved = try await get("/a?b=1", "old.example.com")
            #expect(moved.status == .permanentRedirect)
            #expect(moved.headers["location"] == ["https://www.example.com/a?b=1"])
            let root = try await get("/", "docs.example.com")
            #expect(root.status == .found)
            #expect(root.headers["location"] == ["http://docs.example.com/docs/"])
            let slash = try await get("/docs?x=1", "docs.example.com")
            #expect(slash.status == .movedPermanently)
            #expect(slash.headers["location"] == ["http://docs.example.com/docs/?x=1"])
            let www = try await get("/guide/", "www.docs.example.com")
            #expect(www.status == .permanentRedirect)
            #expect(www.headers["location"] == ["http://docs.example.com:\(httpPort)/guide"])

            let secured = try await get("/", "web.example.com")
            #expect(secured.headers["x-frame-options"] == ["DENY"])
            #expect(secured.headers["cache-control"].contains("no-store"))
            #expect(secured.text.contains("x-tenant: shop"))
            let legacy = try await get("/legacy", "web.example.com")
            #expect(legacy.status == .ok, "the Ingress with an unsupported snippet is still served")
            #expect(legacy.headers["x-served-by"] == [], "and none of that snippet applies")

            // backend-protocol HTTPS: TLS to the demo backend, verification off.
            let secure = try await get("/", "secure.example.com")
            #expect(secure.status == .ok)
            #expect(secure.text.hasPrefix("Hello from shop/secure-app"), "\(secure.text)")
            #expect(secure.text.contains(", HTTPS)"))
            // default-backend: the checkout Service has no ready endpoint; error-pages answers, told why.
            let checkout = try await get("/cart", "checkout.example.com")
            #expect(checkout.status == .ok)
            #expect(checkout.text.hasPrefix("Hello from shop/error-pages"), "\(checkout.text)")
            #expect(checkout.text.contains("x-code: 503"))
            #expect(checkout.text.contains("x-service-name: checkout"))
            // backend-protocol GRPC: a gRPC client with h2c prior knowledge on the plain port.
            var config = HTTP2ClientTransport.Posix.Config.defaults
            config.http2.authority = "grpc.example.com"
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: "127.0.0.1", port: httpPort), transportSecurity: .plaintext, config: config)
            var options = CallOptions.defaults
            options.waitForReady = false
            let answer = try await withGRPCClient(transport: transport) { client in
                try await client.unary(
                    request: ClientRequest(message: []), descriptor: MethodDescriptor(fullyQualifiedService: "grpc.health.v1.Health", method: "Check"),
                    serializer: RawBytes(), deserializer: RawBytes(), options: options
                ) { response in (try response.message, Array(response.metadata[stringValues: "x-demo-backend"])) }
            }
            #expect(answer.0 == [])
            #expect(answer.1 == ["shop/grpc-echo"])

            let dump = await (try DumpCommand.parse(["--manifests", Self.examples, "-o", "json"])).execute()
            let document = try JSONDecoder().decode(DumpDocument.self, from: Data(dump.stdout.utf8))
            let statuses = Dictionary(document.annotations.map { ("\($0.object) \($0.key)", $0.status) }, uniquingKeysWith: { first, _ in first })
            let n = "nginx.ingress.kubernetes.io/"
            #expect(statuses["Ingress shop/api-rewrite \(n)rewrite-target"] == "supported-with-difference")
            #expect(statuses["Ingress shop/moved \(n)permanent-redirect"] == "supported")
            #expect(statuses["Ingress shop/reports \(n)proxy-read-timeout"] == "supported")
            #expect(statuses["Ingress shop/grpc-echo \(n)backend-protocol"] == "supported")
            #expect(statuses["Ingress shop/web-lua \(n)configuration-snippet"] == "unsupported")
            #expect(statuses["Ingress shop/secure-app \(n)proxy-ssl-verify"] == "supported", "its value off asks for nothing")
            // Every annotation of every example is listed.
            let written = try FileManager.default.contentsOfDirectory(atPath: Self.examples).filter { $0.hasSuffix(".yaml") }.flatMap { file in
                try String(contentsOfFile: Self.examples + "/" + file, encoding: .utf8).split(separator: "\n").filter { $0.contains(n) }
            }
            #expect(document.annotations.count == written.count)
        } catch {
            Issue.record("output:\n\(run.text)")
            throw error
        }
        run.signal(SIGTERM)
        #expect(try await run.waitForExit(timeout: .seconds(60)) == 0, "output:\n\(run.text)")
    }
}
