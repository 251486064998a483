import KubeTypes
import RouteModel
import Testing
import TestSupport
@testable import Translator

/// Header edits: Portico's Gateway-API-style annotations and the header lines of ingress-nginx's
/// configuration-snippet, read as data.
@Suite struct HeaderAnnotationTests {
    func options(_ annotations: [String: String]) throws -> (RouteOptions, [Rejection]) {
        let translation = Translator.translate(objects(F.ingress("i", annotations: annotations, rules: [F.rule("h", p("/"))])))
        let route = try #require(translation.table.virtualHosts.first?.routes.first)
        return (route.backend.options, translation.rejections)
    }

    struct SnippetCase: CustomTestStringConvertible, Sendable {
        let snippet: String
        /// Nil: the snippet is unsupported as a whole.
        let request: HeaderEdits?
        let response: HeaderEdits?
        var testDescription: String { snippet }
    }

    static let snippets: [SnippetCase] = [
        SnippetCase(
            snippet: """
                more_set_headers "X-Frame-Options: DENY" 'X-Content-Type-Options: nosniff';
                # a comment
                more_clear_headers Server "X-Powered-*";
                proxy_set_header X-Tenant acme;
                add_header Cache-Control "no-store";
                add_header X-Always yes always;
                """,
            request: HeaderEdits(set: [HeaderField(name: "X-Tenant", value: "acme")]),
            response: HeaderEdits(
                set: [HeaderField(name: "X-Frame-Options", value: "DENY"), HeaderField(name: "X-Content-Type-Options", value: "nosniff")],
                add: [HeaderField(name: "Cache-Control", value: "no-store", onlySuccess: true), HeaderField(name: "X-Always", value: "yes")],
                remove: ["server", "x-powered-*"])),
        SnippetCase(snippet: "more_set_headers \"X-Empty:\";", request: nil, response: HeaderEdits(remove: ["x-empty"])),
        SnippetCase(
            snippet: "more_set_headers \"A: 1\";\r\nmore_set_headers \"B: 2\";\r\n", request: nil,
            response: HeaderEdits(set: [HeaderField(name: "A", value: "1"), HeaderField(name: "B", value: "2")])),
        SnippetCase(snippet: "proxy_set_header X-Drop \"\";", request: HeaderEdits(remove: ["x-drop"]), response: nil),
        // Anything else, and the whole snippet is out.
        SnippetCase(snippet: "more_set_headers \"X: y\"; rewrite ^ /x break;", request: nil, response: nil),
        SnippetCase(snippet: "if ($http_x) { more_set_headers \"X: y\"; }", request: nil, response: nil),
        SnippetCase(snippet: "proxy_set_header X-Real-IP $remote_addr;", request: nil, response: nil),
        SnippetCase(snippet: "more_set_headers -s 404 \"X: y\";", request: nil, response: nil),
        SnippetCase(snippet: "more_set_headers \"X: y\"", request: nil, response: nil),
        SnippetCase(snippet: "proxy_set_header Host other.example;", request: nil, response: nil),
        SnippetCase(snippet: "more_clear_headers Content-Length;", request: nil, response: nil),
        SnippetCase(snippet: "add_header X-Split \"a\\r\\nInjected: 1\";", request: nil, response: nil),
    ]

    @Test(arguments: snippets) func configurationSnippet(_ testCase: SnippetCase) throws {
        let (options, rejections) = try options(["nginx.ingress.kubernetes.io/configuration-snippet": testCase.snippet])
        #expect(options.requestHeaders == testCase.request)
        #expect(options.responseHeaders == testCase.response)
        let unsupported = testCase.request == nil && testCase.response == nil
        #expect(rejections.map(\.reason) == (unsupported ? [.unsupportedAnnotation] : []), "\(rejections)")
    }

    @Test func gatewayStyleAnnotations() throws {
        let (options, rejections) = try options([
            "portico.io/request-headers": "set: {X-Env: prod}\nadd:\n- {name: X-Tag, value: a}\nremove: [X-Debug]",
            "portico.io/response-headers": "remove: [Server]\nset: {Cache-Control: no-cache}",
        ])
        #expect(rejections.isEmpty, "\(rejections)")
        #expect(options.requestHeaders == HeaderEdits(set: [HeaderField(name: "X-Env", value: "prod")], add: [HeaderField(name: "X-Tag", value: "a")], remove: ["x-debug"]))
        #expect(options.responseHeaders == HeaderEdits(set: [HeaderField(name: "Cache-Control", value: "no-cache")], remove: ["server"]))
    }

    @Test(arguments: ["set: [1, 2]", "set: {Host: evil}", "remove: [X-Forwarded-For]", "sett: {A: b}", "set: {\"Bad Name\": x}", ": :"])
    func malformedEditsAreReported(_ value: String) throws {
        let (options, rejections) = try options(["portico.io/request-headers": value])
        #expect(options.requestHeaders == nil)
        #expect(rejections.map(\.reason) == [.invalidAnnotation], "\(rejections)")
    }
}
