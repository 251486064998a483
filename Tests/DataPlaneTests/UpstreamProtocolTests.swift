import GRPCCore
import GRPCNIOTransportHTTP2
import KubeTypes
import NIOHTTP1
import RouteModel
import Testing
import TestSupport
import Translator
@testable import DataPlane

/// ingress-nginx's `backend-protocol` through a live worker: TLS to the Pod (with and without
/// verification, SNI, client certificates) and gRPC with a real grpc-swift server and client.
@Suite(.serialized, .timeLimit(.minutes(3))) struct UpstreamProtocolTests {
    static let n = "nginx.ingress.kubernetes.io/"

    /// Translates `ingresses` with one Service per entry of `services` (port 80 → the given port on
    /// 127.0.0.1; nil: a Service without endpoints).
    static func table(services: [(String, Int?)], secrets: [Secret] = [], _ ingresses: [Ingress]) -> RouteTable {
        let objects = KubeObjects(
            ingresses: ingresses, ingressClasses: [],
            services: services.map { name, port in
                Fixture.service(name, ports: [ServicePort(name: "http", port: 80, targetPort: .int(Int32(port ?? 8080)))])
            },
            endpointSlices: services.compactMap { name, port in
                port.map { Fixture.slice("\(name)-1", service: name, port: Int32($0), endpoints: [("127.0.0.1", true)]) }
            },
            secrets: secrets)
        let translation = Translator.translate(objects)
        #expect(translation.rejections.isEmpty, "\(translation.rejections)")
        return translation.table
    }

    static func secret(_ name: String, _ data: [String: String]) -> Secret {
        Secret(metadata: Fixture.meta(name, namespace: "default"), data: data.mapValues { Base64Data(Array($0.utf8)) })
    }

    /// An Ingress routing every path of `NAME.test` to `service`, with these annotations (short keys).
    static func ingress(_ name: String, service: String = "app", tls secret: String? = nil, _ annotations: [String: String]) -> Ingress {
        Fixture.ingress(
            name, annotations: Dictionary(uniqueKeysWithValues: annotations.map { (n + $0.key, $0.value) }),
            tls: secret.map { [IngressTLS(hosts: ["\(name).test"], secretName: $0)] },
            rules: [Fixture.rule("\(name).test", Fixture.path("/", "Prefix", Fixture.backend(service, 80)))])
    }

    // MARK: HTTPS to the Pod

    @Test func httpsBackendsWithAndWithoutVerification() async throws {
        let pod = try TestCertificate(commonName: "app pod", dnsNames: ["app.default.svc", "app.internal"])
        let portico = try TestCertificate(commonName: "portico", dnsNames: ["portico.client"])
        let stranger = try TestCertificate(commonName: "stranger", dnsNames: ["app.default.svc"])
        let app = try await TestBackend.start(name: "app", tls: pod)
        let strict = try await TestBackend.start(name: "strict", tls: pod, clientCA: portico)
        let secrets = [
            Self.secret("pod-ca", ["ca.crt": pod.certificatePEM]),
            Self.secret("pod-mtls", ["ca.crt": pod.certificatePEM, "tls.crt": portico.certificatePEM, "tls.key": portico.privateKeyPEM]),
            Self.secret("stranger-ca", ["ca.crt": stranger.certificatePEM]),
        ]
        let table = Self.table(
            services: [("app", app.port), ("strict", strict.port)], secrets: secrets,
            [
                Self.ingress("insecure", ["backend-protocol": "HTTPS"]),
                Self.ingress("vhost", ["backend-protocol": "https", "upstream-vhost": "app.internal:8443"]),
                Self.ingress("nosni", ["backend-protocol": "HTTPS", "proxy-ssl-server-name": "off"]),
                Self.ingress("verified", ["backend-protocol": "HTTPS", "proxy-ssl-verify": "on", "proxy-ssl-secret": "default/pod-ca"]),
                Self.ingress(
                    "mutual", service: "strict",
                    ["backend-protocol": "HTTPS", "proxy-ssl-verify": "on", "proxy-ssl-secret": "default/pod-mtls", "proxy-ssl-name": "app.internal"]),
                Self.ingress("nocertificate", service: "strict", ["backend-protocol": "HTTPS"]),
                Self.ingress(
                    "wrongname",
                    ["backend-protocol": "HTTPS", "proxy-ssl-verify": "on", "proxy-ssl-secret": "default/pod-ca", "proxy-ssl-name": "other.internal"]),
                Self.ingress("stranger", ["backend-protocol": "HTTPS", "proxy-ssl-verify": "on", "proxy-ssl-secret": "default/stranger-ca"]),
                Self.ingress("plain", [:]),
            ])
        let proxy = try await LiveProxy.start(table)
        try await TestHTTPConnection.with(port: proxy.port) { client in
            // Verification off, as in ingress-nginx: any certificate; SNI is the Service's name.
            let insecure = try await client.request(.GET, "/a", host: "insecure.test")
            #expect(insecure.status == .ok)
            #expect(insecure.echoed["backend"] == "app")
            #expect(insecure.echoed["sni"] == "app.default.svc")
            #expect(insecure.echoed["client-certificate"] == nil)
            #expect(insecure.echoed["host"] == "insecure.test")
            let connections = app.acceptedConnections
            #expect(try await client.request(.GET, "/b", host: "insecure.test").status == .ok)
            #expect(app.acceptedConnections == connections, "the TLS connection to the Pod is kept alive and reused")

            let vhost = try await client.request(.GET, "/", host: "vhost.test")
            #expect(vhost.echoed["sni"] == "app.internal", "upstream-vhost names the Pod, without its port")
            #expect(vhost.echoed["host"] == "app.internal:8443")
            #expect(try await client.request(.GET, "/", host: "nosni.test").echoed["sni"] == "", "proxy-ssl-server-name: off sends none")

            let verified = try await client.request(.GET, "/", host: "verified.test")
            #expect(verified.status == .ok, "the Pod's certificate is issued by ca.crt and names app.default.svc")
            #expect(verified.echoed["sni"] == "app.default.svc")
            let mutual = try await client.request(.GET, "/", host: "mutual.test")
            #expect(mutual.status == .ok)
            #expect(mutual.echoed["sni"] == "app.internal")
            #expect(mutual.echoed["backend"] == "strict")
            #expect(mutual.echoed["client-certificate"] == "yes", "tls.crt and tls.key of proxy-ssl-secret are presented")
            #expect(try await client.request(.GET, "/", host: "nocertificate.test").status == .badGateway, "the Pod requires a client certificate")

            // A certificate that fails verification: no request reaches the Pod.
            let before = app.receivedRequests
            #expect(try await client.request(.GET, "/", host: "wrongname.test").status == .badGateway, "the certificate does not name other.internal")
            #expect(try await client.request(.GET, "/", host: "stranger.test").status == .badGateway, "another CA issued it")
            #expect(try await client.request(.GET, "/", host: "plain.test").status == .badGateway, "plain HTTP to a TLS port")
            #expect(app.receivedRequests == before)
        }
        await proxy.stop()
        await app.stop()
        await strict.stop()
    }

    // MARK: gRPC

    /// A real grpc-swift client and server on both sides: h2c with prior knowledge on the plain
    /// port and TLS with ALPN h2 on the TLS port, to an h2c Pod (GRPC) and a TLS Pod (GRPCS).
    @Test func grpcUnaryStreamingTrailersDeadlinesAndUnavailable() async throws {
        let served = try TestCertificate(commonName: "grpc.test", dnsNames: ["grpc.test", "grpcs.test", "down.test"])
        let pod = try TestCertificate(commonName: "grpcs pod", dnsNames: ["grpcs.default.svc"])
        let plain = try await GRPCBackend.start(name: "h2c")
        let secure = try await GRPCBackend.start(name: "tls", tls: pod)
        let table = Self.table(
            services: [("grpc", plain.port), ("grpcs", secure.port), ("empty", nil)],
            secrets: [
                Fixture.tlsSecret("served", certificatePEM: served.certificatePEM, keyPEM: served.privateKeyPEM),
                Self.secret("pod-ca", ["ca.crt": pod.certificatePEM]),
            ],
            [
                Self.ingress("grpc", service: "grpc", tls: "served", ["backend-protocol": "GRPC", "ssl-redirect": "false"]),
                Self.ingress(
                    "grpcs", service: "grpcs", tls: "served",
                    ["backend-protocol": "GRPCS", "ssl-redirect": "false", "proxy-ssl-verify": "on", "proxy-ssl-secret": "default/pod-ca"]),
                Self.ingress("down", service: "empty", tls: "served", ["backend-protocol": "GRPC", "ssl-redirect": "false"]),
            ])
        let proxy = try await LiveProxy.start(table) { $0.httpsListenPort = 0 }
        for (port, tls) in [(proxy.port, nil), (proxy.worker.httpsPort, served)] {
            let how = tls == nil ? "h2c" : "TLS"
            try await withProxyGRPCClient(port: port, authority: "grpc.test", tls: tls) { client in
                // Unary, with metadata both ways and trailers.
                var metadata: Metadata = [:]
                metadata.addString("hello", forKey: "x-test")
                let unary = try await client.unary(
                    request: ClientRequest(message: Array("ping".utf8), metadata: metadata), descriptor: EchoService.get,
                    serializer: RawBytes(), deserializer: RawBytes(), options: .test()
                ) { $0 }
                #expect(try unary.message == Array("h2c:ping".utf8), "\(how)")
                #expect(Array(unary.metadata[stringValues: "x-echo"]) == ["hello"], "\(how)")
                #expect(Array(unary.trailingMetadata[stringValues: "x-trailer"]) == ["done"], "\(how): trailers are relayed")

                // Client streaming: three messages, one answer.
                let uploaded = try await client.clientStreaming(
                    request: StreamingClientRequest(of: [UInt8].self) { writer in
                        for part in ["one", "two", "three"] { try await writer.write(Array(part.utf8)) }
                    },
                    descriptor: EchoService.get, serializer: RawBytes(), deserializer: RawBytes(), options: .test()
                ) { try $0.message }
                #expect(uploaded == Array("h2c:onetwothree".utf8), "\(how)")

                // Server streaming.
                let streamed = try await client.serverStreaming(
                    request: ClientRequest(message: Array("100 1000".utf8)), descriptor: EchoService.count,
                    serializer: RawBytes(), deserializer: RawBytes(), options: .test()
                ) { response in
                    try await response.messages.reduce(into: [Int]()) { $0.append($1.count) }
                }
                #expect(streamed == Array(repeating: 1000, count: 100), "\(how)")

                // Bidirectional: each answer arrives before the next message is sent.
                let (outgoing, sink) = AsyncStream<[UInt8]>.makeStream()
                sink.yield(Array("a".utf8))
                let chat = try await client.bidirectionalStreaming(
                    request: StreamingClientRequest(of: [UInt8].self) { writer in
                        for await message in outgoing { try await writer.write(message) }
                    },
                    descriptor: EchoService.chat, serializer: RawBytes(), deserializer: RawBytes(), options: .test()
                ) { response in
                    var replies: [String] = []
                    var trailers: Metadata = [:]
                    for try await part in response.bodyParts {
                        switch part {
                        case .message(let message):
                            replies.append(String(decoding: message, as: UTF8.self))
                            if replies.count < 3 { sink.yield(Array(["b", "c"][replies.count - 1].utf8)) } else { sink.finish() }
                        case .trailingMetadata(let metadata):
                            trailers = metadata
                        }
                    }
                    return (replies, Array(trailers[stringValues: "x-trailer"]))
                }
                #expect(chat.0 == ["A", "B", "C"], "\(how)")
                #expect(chat.1 == ["chat-done"], "\(how)")

                // The Pod's own error status reaches the client as it sent it.
                await #expect(throws: RPCError.self) {
                    try await client.unary(
                        request: ClientRequest(message: Array("5".utf8)), descriptor: EchoService.fail,
                        serializer: RawBytes(), deserializer: RawBytes(), options: .test()) { try $0.message }
                }
                do {
                    _ = try await client.unary(
                        request: ClientRequest(message: Array("5".utf8)), descriptor: EchoService.fail,
                        serializer: RawBytes(), deserializer: RawBytes(), options: .test()) { try $0.message }
                } catch let error as RPCError {
                    #expect(error.code == .notFound, "\(how)")
                    #expect(error.message == "failed on purpose", "\(how)")
                }

                // A deadline (grpc-timeout reaches the Pod): the call ends with DEADLINE_EXCEEDED.
                var cancelled = plain.state.cancelled.load(ordering: .relaxed)
                do {
                    _ = try await client.unary(
                        request: ClientRequest(message: []), descriptor: EchoService.hang,
                        serializer: RawBytes(), deserializer: RawBytes(), options: .test(timeout: .milliseconds(300))) { try $0.message }
                    Issue.record("\(how): the call outlived its deadline")
                } catch let error as RPCError {
                    #expect(error.code == .deadlineExceeded, "\(how): \(error)")
                }
                try await eventually("\(how): the Pod's call ends at its deadline") { plain.state.cancelled.load(ordering: .relaxed) > cancelled }
                // A call the client cancels (no deadline): the reset reaches the Pod's stream.
                cancelled = plain.state.cancelled.load(ordering: .relaxed)
                let started = plain.state.started.load(ordering: .relaxed)
                let call = Task {
                    try await client.unary(
                        request: ClientRequest(message: []), descriptor: EchoService.hang,
                        serializer: RawBytes(), deserializer: RawBytes(), options: .test()) { try $0.message }
                }
                try await eventually("\(how): the Pod has the call") { plain.state.started.load(ordering: .relaxed) > started }
                call.cancel()
                _ = await call.result
                try await eventually("\(how): the Pod's call is cancelled") { plain.state.cancelled.load(ordering: .relaxed) > cancelled }
            }
            // GRPCS: TLS to the Pod, verified.
            try await withProxyGRPCClient(port: port, authority: "grpcs.test", tls: tls) { client in
                let unary = try await client.unary(
                    request: ClientRequest(message: Array("ping".utf8)), descriptor: EchoService.get,
                    serializer: RawBytes(), deserializer: RawBytes(), options: .test()) { try $0.message }
                #expect(unary == Array("tls:ping".utf8), "\(how)")
            }
            // No endpoints: the proxy's 503 is UNAVAILABLE for a gRPC client.
            try await withProxyGRPCClient(port: port, authority: "down.test", tls: tls) { client in
                do {
                    _ = try await client.unary(
                        request: ClientRequest(message: Array("ping".utf8)), descriptor: EchoService.get,
                        serializer: RawBytes(), deserializer: RawBytes(), options: .test()) { try $0.message }
                    Issue.record("\(how): a call without endpoints succeeded")
                } catch let error as RPCError {
                    #expect(error.code == .unavailable, "\(how): \(error)")
                }
            }
        }
        // On the wire: HTTP 200 with grpc-status 14 in a trailers-only answer, for gRPC clients
        // only; anything else still gets the 503.
        try await HTTP2TestConnection.with(port: proxy.worker.httpsPort, serverName: "down.test") { connection in
            let grpc = try await connection.request(
                .POST, "/test.Echo/Get", authority: "down.test", headers: [("content-type", "application/grpc+proto"), ("te", "trailers")],
                body: [0, 0, 0, 0, 0])
            #expect(grpc.status == .ok)
            #expect(grpc.headers["grpc-status"] == ["14"])
            #expect(grpc.headers["grpc-message"] == ["503 no ready endpoints"])
            #expect(grpc.headers["content-type"] == ["application/grpc"])
            #expect(grpc.body.isEmpty)
            let plainClient = try await connection.request(.GET, "/", authority: "down.test")
            #expect(plainClient.status == .serviceUnavailable)
            #expect(plainClient.headers["grpc-status"].isEmpty)
        }
        await proxy.stop()
        await plain.stop()
        await secure.stop()
    }

    /// A gRPC client that stops reading a server stream holds back the Pod: the proxy does not
    /// read the whole stream into memory. When the client reads again, the rest follows.
    @Test func aServerStreamThatIsNotReadHoldsBackThePod() async throws {
        let plain = try await GRPCBackend.start(name: "h2c")
        let table = Self.table(services: [("grpc", plain.port)], [Self.ingress("grpc", service: "grpc", ["backend-protocol": "GRPC"])])
        let proxy = try await LiveProxy.start(table)
        let total = 4096
        try await withProxyGRPCClient(port: proxy.port, authority: "grpc.test") { client in
            let received = try await client.serverStreaming(
                request: ClientRequest(message: Array("\(total) 16384".utf8)), descriptor: EchoService.count,
                serializer: RawBytes(), deserializer: RawBytes(), options: .test()
            ) { response in
                var messages = response.messages.makeAsyncIterator()
                var count = try await messages.next() == nil ? 0 : 1
                // The Pod writes until the windows and buffers before the unread client fill: it
                // stalls (no progress over 40 polls) well short of the stream.
                var last = -1
                var unchanged = 0
                try await eventually("the Pod stalls") {
                    let written = plain.state.written.load(ordering: .relaxed)
                    unchanged = written == last ? unchanged + 1 : 0
                    last = written
                    return unchanged >= 40 || written == total
                }
                #expect(plain.state.written.load(ordering: .relaxed) < total / 2, "the Pod wrote \(last) of \(total) messages to a client that read one")
                while try await messages.next() != nil { count += 1 }
                return count
            }
            #expect(received == total)
        }
        await proxy.stop()
        await plain.stop()
    }
}

