import Foundation
import NIOCore
import NIOHTTP1
import RouteModel
import Testing
import TestSupport
@testable import DataPlane

@Suite struct ObservabilityTests {
    /// Known traffic through a live worker shows up in its Prometheus text with the route's labels.
    @Test func requestsAreCountedByRouteAndStatus() async throws {
        let backend = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("app.test", "/", [backend.port])]))
        for _ in 0..<3 {
            let response = try await TestHTTPConnection.with(port: proxy.port) { try await $0.request(.GET, "/", host: "app.test") }
            #expect(response.status == .ok)
        }
        _ = try await TestHTTPConnection.with(port: proxy.port) { try await $0.request(.POST, "/count", host: "app.test", body: Array(repeating: 0x61, count: 1000)) }
        for _ in 0..<2 {
            _ = try await TestHTTPConnection.with(port: proxy.port) { try await $0.request(.GET, "/", host: "unknown.test") }
        }
        let text = await proxy.worker.exposition()
        #expect(text.contains(#"portico_requests_total{namespace="default",ingress="ing0",service="svc0",code="200"} 4"#), "\(text)")
        #expect(text.contains(#"portico_requests_total{namespace="",ingress="",service="",code="404"} 2"#))
        #expect(text.contains(#"portico_request_duration_seconds_count{namespace="default",ingress="ing0",service="svc0"} 4"#))
        #expect(text.contains(#"portico_request_bytes_total{namespace="default",ingress="ing0",service="svc0"} 1000"#))
        #expect(text.contains("# TYPE portico_requests_total counter"))
        #expect(text.contains("portico_snapshot_version 1"))
        await proxy.stop()
        await backend.stop()
    }

    @Test func accessLogLinesAreJSONWithTheRequestsFacts() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]) }
        let log = AccessLog(descriptor: ends[1])
        var exchange = ExchangeRecord(started: .now(), method: "GET", host: "app.test", path: "/a \"quoted\"\n", requestID: "abc123")
        exchange.status = 200
        exchange.bytesOut = 42
        exchange.upstream = "10.0.0.7:8080"
        exchange.namespace = "shop"
        exchange.ingress = "web"
        exchange.service = "api"
        log.append(exchange, elapsedNanoseconds: 1_234_567)
        log.flush()
        close(ends[1])
        var written: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while case let count = read(ends[0], &chunk, chunk.count), count > 0 { written += chunk[0..<count] }
        let lines = String(decoding: written, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(object["host"] as? String == "app.test")
        #expect(object["method"] as? String == "GET")
        #expect(object["path"] as? String == "/a \"quoted\"\n")
        #expect(object["status"] as? Int == 200)
        #expect(object["bytes_out"] as? Int == 42)
        #expect(object["duration_ms"] as? Double == 1.234)
        #expect(object["upstream"] as? String == "10.0.0.7:8080")
        #expect(object["request_id"] as? String == "abc123")
        #expect(object["service"] as? String == "api")
        let time = try #require(object["time"] as? String)
        #expect(time.count == 24 && time.hasSuffix("Z"))
    }
}
