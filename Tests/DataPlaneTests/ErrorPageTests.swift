import KubeTypes
import NIOHTTP1
import RouteModel
import Testing
import TestSupport
import Translator
@testable import DataPlane

/// ingress-nginx's `default-backend`, `custom-http-errors` and `disable-proxy-intercept-errors`
/// through a live worker: what the client gets and what the default backend is asked.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ErrorPageTests {
    static let n = "nginx.ingress.kubernetes.io/"

    @Test func errorAnswersAreReplacedByTheDefaultBackends() async throws {
        let app = try await TestBackend.start(name: "app")
        let errors = try await TestBackend.start(name: "errors")
        let table = UpstreamProtocolTests.table(
            services: [("app", app.port), ("errors", errors.port), ("empty", nil), ("dead", try closedPort())],
            [
                UpstreamProtocolTests.ingress("pages", ["custom-http-errors": "404, 503", "default-backend": "errors"]),
                UpstreamProtocolTests.ingress("fallback", service: "empty", ["default-backend": "errors"]),
                UpstreamProtocolTests.ingress("global", service: "empty", ["custom-http-errors": "503"]),
                UpstreamProtocolTests.ingress(
                    "keep", service: "app", ["custom-http-errors": "404,502", "default-backend": "errors", "disable-proxy-intercept-errors": "true"]),
                UpstreamProtocolTests.ingress(
                    "dead", service: "dead", ["custom-http-errors": "502", "default-backend": "errors", "disable-proxy-intercept-errors": "true"]),
                UpstreamProtocolTests.ingress("plain", service: "empty", [:]),
                // The catch-all default backend answers custom-http-errors without default-backend.
                Fixture.ingress("catch-all", defaultBackend: Fixture.backend("errors", 80)),
            ])
        let proxy = try await LiveProxy.start(table)
        try await TestHTTPConnection.with(port: proxy.port) { client in
            // The Pod's 404 is replaced by the default backend's answer, status and all.
            let replaced = try await client.request(.GET, "/status/404?q=1", host: "pages.test", headers: [("Accept", "application/json")])
            #expect(replaced.status == .ok, "the default backend's own status")
            #expect(replaced.echoed["backend"] == "errors")
            #expect(replaced.echoed["target"] == "/")
            #expect(replaced.echoed["x-code"] == "404")
            #expect(replaced.echoed["x-format"] == "application/json")
            #expect(replaced.text.contains("\nx-original-uri: /status/404?q=1\n"))
            #expect(replaced.echoed["x-namespace"] == "default")
            #expect(replaced.echoed["x-ingress-name"] == "pages")
            #expect(replaced.echoed["x-service-name"] == "app")
            #expect(replaced.echoed["x-service-port"] == "80")
            #expect(replaced.echoed["x-request-id"]?.count == 32)
            #expect(replaced.echoed["host"] == "pages.test")
            // Statuses not listed, and answers that are fine, are the Pod's.
            #expect(try await client.request(.GET, "/status/500", host: "pages.test").status == .internalServerError)
            let fine = try await client.request(.GET, "/page", host: "pages.test")
            #expect(fine.echoed["backend"] == "app")
            #expect(fine.echoed["x-code"] == nil)

            // default-backend serves a route whose Service has no endpoints: the request as it is,
            // with ingress-nginx's fields saying so (X-Code 503, no X-Original-URI).
            let served = try await client.request(.GET, "/some/page", host: "fallback.test")
            #expect(served.status == .ok)
            #expect(served.echoed["backend"] == "errors")
            #expect(served.echoed["target"] == "/some/page")
            #expect(served.echoed["x-code"] == "503")
            #expect(served.echoed["x-service-name"] == "empty")
            #expect(served.echoed["x-ingress-name"] == "fallback")
            #expect(served.echoed["x-original-uri"] == nil)
            // custom-http-errors alone: the worker's 503 becomes the catch-all default backend's answer.
            let unavailable = try await client.request(.GET, "/x", host: "global.test")
            #expect(unavailable.echoed["backend"] == "errors", "\(unavailable.status) \(unavailable.text)")
            #expect(unavailable.echoed["x-code"] == "503")
            #expect(unavailable.echoed["x-service-name"] == "empty")
            // Without the annotations: the worker's own 503.
            #expect(try await client.request(.GET, "/x", host: "plain.test").status == .serviceUnavailable)

            // disable-proxy-intercept-errors: the Pod's 404 stays, the worker's own 502 is replaced.
            #expect(try await client.request(.GET, "/status/404", host: "keep.test").status == .notFound)
            let dead = try await client.request(.GET, "/y", host: "dead.test")
            #expect(dead.echoed["backend"] == "errors")
            #expect(dead.echoed["x-code"] == "502")

            // The connection keeps serving after a replaced answer.
            #expect(try await client.request(.GET, "/again", host: "pages.test").echoed["backend"] == "app")
        }
        await proxy.stop()
        await app.stop()
        await errors.stop()
    }

    /// The same over HTTP/2: the stream's answer is the default backend's.
    @Test func http2StreamsGetTheDefaultBackendsAnswer() async throws {
        let app = try await TestBackend.start(name: "app")
        let errors = try await TestBackend.start(name: "errors")
        let certificate = try TestCertificate(commonName: "pages.test", dnsNames: ["pages.test"])
        let table = UpstreamProtocolTests.table(
            services: [("app", app.port), ("errors", errors.port)],
            secrets: [Fixture.tlsSecret("pages", certificatePEM: certificate.certificatePEM, keyPEM: certificate.privateKeyPEM)],
            [UpstreamProtocolTests.ingress("pages", tls: "pages", ["custom-http-errors": "404", "default-backend": "errors"])])
        let proxy = try await LiveProxy.start(table) { $0.httpsListenPort = 0 }
        try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "pages.test") { connection in
            let replaced = try await connection.request(.GET, "/status/404", authority: "pages.test")
            #expect(replaced.status == .ok)
            #expect(replaced.echoed["backend"] == "errors")
            #expect(replaced.echoed["x-code"] == "404")
            #expect(try await connection.request(.GET, "/fine", authority: "pages.test").echoed["backend"] == "app")
        }
        await proxy.stop()
        await app.stop()
        await errors.stop()
    }
}
