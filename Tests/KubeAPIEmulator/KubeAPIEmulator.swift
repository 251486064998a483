import Crypto
import Foundation
import KubeTypes
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwiftASN1
import X509

/// An in-process stand-in for kube-apiserver, on 127.0.0.1, for tests.
///
/// It speaks the parts of the API Portico and `kubectl` use: discovery; LIST with `limit` and
/// `continue`; WATCH with `resourceVersion`, `allowWatchBookmarks` and `timeoutSeconds`, 410 Gone for
/// versions older than the last compaction; GET, POST, PUT (conflict on a stale resourceVersion),
/// merge PATCH (also of `/status`), DELETE; field and label selectors; bearer-token authentication.
/// Tests can cut every watch mid-stream and compact the history to force relists. It serves HTTPS
/// with a certificate of its own (for 127.0.0.1) by default, as kubectl sends tokens only over TLS.
public final class KubeAPIEmulator: @unchecked Sendable {
    public let port: Int
    public let token: String?
    /// The server certificate, which is its own CA; nil when serving plain HTTP.
    public let certificateAuthorityPEM: String?
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let store: ObjectStore
    private var eventLoop: any EventLoop { channel.eventLoop }

    public var url: String { "\(certificateAuthorityPEM == nil ? "http" : "https")://127.0.0.1:\(port)" }

    private init(
        port: Int, token: String?, certificateAuthorityPEM: String?, group: MultiThreadedEventLoopGroup, channel: any Channel, store: ObjectStore
    ) {
        self.port = port
        self.token = token
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.group = group
        self.channel = channel
        self.store = store
    }

    /// Starts on a free port. `token` nil: no authentication; `tls` false: plain HTTP.
    public static func start(
        token: String? = "portico-test-token", tls: Bool = true, bookmarkInterval: TimeAmount = .milliseconds(500)
    ) async throws -> KubeAPIEmulator {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let store = ObjectStore()
        // Confined to the group's one loop, where every connection is served.
        let loopStore = UncheckedBox(store)
        let (certificatePEM, context) = tls ? try makeTLS() : (nil, nil)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(APIHandler(store: loopStore.value, token: token, bookmarkInterval: bookmarkInterval))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return KubeAPIEmulator(
            port: channel.localAddress?.port ?? 0, token: token, certificateAuthorityPEM: certificatePEM, group: group, channel: channel, store: store)
    }

    /// A self-signed certificate for 127.0.0.1 that is also its own CA, so clients can trust it as one.
    private static func makeTLS() throws -> (String, NIOSSLContext) {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("portico-kube-emulator") }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])), .dnsName("localhost")])
            },
            issuerPrivateKey: .init(key))
        let pem = try certificate.serializeAsPEM().pemString
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)))
        // Closing waits this long for the client's close_notify (5 s by default); tests stop the
        // server with connections open.
        configuration.shutdownTimeout = .milliseconds(50)
        return (pem, try NIOSSLContext(configuration: configuration))
    }

    public func stop() async {
        await onLoop { $0.cutWatches() }
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    private func onLoop<T: Sendable>(_ body: @escaping @Sendable (ObjectStore) throws -> T) async throws -> T {
        let store = UncheckedBox(store)
        return try await eventLoop.submit { try body(store.value) }.get()
    }

    /// The store is only touched on its loop; `submit` fails only once the loop is shut down.
    private func onLoop<T: Sendable>(_ body: @escaping @Sendable (ObjectStore) -> T) async -> T {
        let store = UncheckedBox(store)
        return try! await eventLoop.submit { body(store.value) }.get()
    }

    // MARK: Test controls

    /// Creates or replaces `object` (through the same store the API serves).
    public func apply<Object: KubeObject>(_ object: Object) async throws {
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(object)) as? [String: Any] ?? [:]
        let box = UncheckedBox(json)
        try await onLoop { store in
            guard let type = ResourceType.find(kind: Object.kind, groupVersion: Object.apiVersion) else { return }
            let namespace = Object.isNamespaced ? (object.metadata.namespace ?? "default") : nil
            do {
                if store.get(type, namespace: namespace, name: object.metadata.name) != nil {
                    var body = box.value
                    if var metadata = body["metadata"] as? [String: Any] {
                        metadata["resourceVersion"] = nil
                        body["metadata"] = metadata
                    }
                    _ = try store.update(type, namespace: namespace, name: object.metadata.name, object: body, statusOnly: false)
                } else {
                    _ = try store.create(type, namespace: namespace, object: box.value)
                }
            } catch {
                throw EmulatorError("apply \(Object.kind) \(object.metadata.name): \(error)")
            }
        }
    }

    public func delete<Object: KubeObject>(_ type: Object.Type, namespace: String? = "default", name: String) async throws {
        try await onLoop { store in
            guard let resource = ResourceType.find(kind: Object.kind, groupVersion: Object.apiVersion) else { return }
            do {
                _ = try store.delete(resource, namespace: Object.isNamespaced ? namespace : nil, name: name)
            } catch {
                throw EmulatorError("delete \(Object.kind) \(name): \(error)")
            }
        }
    }

    /// An object as stored, as JSON, or nil.
    public func json(group: String, version: String = "v1", resource: String, namespace: String?, name: String) async -> Data? {
        await onLoop { store -> Data? in
            guard let type = ResourceType.find(group: group, version: version, resource: resource),
                let object = store.get(type, namespace: namespace, name: name)
            else { return nil }
            return try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        }
    }

    /// Objects of a resource as JSON documents.
    public func list(group: String, version: String = "v1", resource: String) async -> [Data] {
        await onLoop { store -> [Data] in
            guard let type = ResourceType.find(group: group, version: version, resource: resource) else { return [] }
            return store.list(type, namespace: nil, fieldSelector: Selector(nil), labelSelector: Selector(nil)).compactMap {
                try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys])
            }
        }
    }

    /// Serializes every stored object for the LISTs to come, as an API server's cache holds objects
    /// already serialized: a benchmark that shares its machine with the emulator then does not time
    /// the emulator encoding each object once during the first LISTs.
    public func encodeEverything() async {
        await onLoop { $0.encodeEverything() }
    }

    /// Closes every open watch connection, as a load balancer or an API server restart would.
    public func cutWatches() async { await onLoop { $0.cutWatches() } }

    /// Forgets the change history: a watch resuming from an older version gets 410 Gone.
    public func compact() async { await onLoop { $0.compact() } }

    public var openWatches: Int { get async { await onLoop { $0.watcherCount } } }

    public var resourceVersion: Int { get async { await onLoop { $0.revision } } }

    /// A kubeconfig for this server, with the token, for `--kubeconfig` and kubectl.
    public func kubeconfig() -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: emulator
          cluster: {server: "\(url)"\(certificateAuthorityPEM.map { ", certificate-authority-data: \(Data($0.utf8).base64EncodedString())" } ?? "")}
        users:
        - name: tester
          user: {\(token.map { "token: \"\($0)\"" } ?? "")}
        contexts:
        - name: emulator
          context: {cluster: emulator, user: tester, namespace: default}
        current-context: emulator
        """
    }
}

public struct EmulatorError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// One connection's requests.
private final class APIHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let store: ObjectStore
    private let token: String?
    private let bookmarkInterval: TimeAmount
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var watcherID: Int?
    private var watchTimers: [Scheduled<Void>] = []
    private var bookmarkTask: Scheduled<Void>?

    init(store: ObjectStore, token: String?, bookmarkInterval: TimeAmount) {
        self.store = store
        self.token = token
        self.bookmarkInterval = bookmarkInterval
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            guard let head else { return }
            self.head = nil
            handle(head, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        endWatch()
        context.fireChannelInactive()
    }

    private func endWatch() {
        if let watcherID { store.removeWatcher(watcherID) }
        watcherID = nil
        for timer in watchTimers { timer.cancel() }
        watchTimers = []
        bookmarkTask?.cancel()
        bookmarkTask = nil
    }

    // MARK: Routing

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let components = URLComponents(string: head.uri)
        let path = components?.path ?? head.uri
        var query: [String: String] = [:]
        for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }

        // As on a real server, anyone may read the version and health (system:public-info-viewer).
        let publicPaths: Set<String> = ["/version", "/healthz", "/livez", "/readyz"]
        if let token, !publicPaths.contains(path), head.headers["authorization"].first != "Bearer \(token)" {
            return respondStatus(context, head: head, code: 401, reason: "Unauthorized", message: "Unauthorized")
        }
        if head.method == .GET, let document = ResourceType.discovery(path: path) {
            return respond(context, head: head, code: 200, json: document)
        }
        guard let target = Target(path: path) else {
            return respondStatus(context, head: head, code: 404, reason: "NotFound", message: "the server could not find the requested resource")
        }
        var object: [String: Any] = [:]
        if body.readableBytes > 0 {
            guard let parsed = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
                return respondStatus(context, head: head, code: 400, reason: "BadRequest", message: "the request body is not a JSON object")
            }
            object = parsed
        }
        do {
            switch (head.method, target.name) {
            case (.GET, nil):
                if query["watch"] == "1" || query["watch"] == "true" {
                    return startWatch(context, head: head, target: target, query: query)
                }
                return respond(context, head: head, code: 200, body: list(target, query: query))
            case (.GET, let name?):
                guard let found = store.get(target.type, namespace: target.namespace, name: name) else {
                    throw ObjectStore.Failure.status(code: 404, reason: "NotFound", message: "\(target.type.resource) \"\(name)\" not found")
                }
                respond(context, head: head, code: 200, json: found)
            case (.POST, nil):
                respond(context, head: head, code: 201, json: try store.create(target.type, namespace: target.namespace, object: object))
            case (.PUT, let name?):
                respond(context, head: head, code: 200, json: try store.update(
                    target.type, namespace: target.namespace, name: name, object: object, statusOnly: target.subresource == "status"))
            case (.PATCH, let name?):
                respond(context, head: head, code: 200, json: try store.patch(
                    target.type, namespace: target.namespace, name: name, patch: object, statusOnly: target.subresource == "status"))
            case (.DELETE, let name?):
                respond(context, head: head, code: 200, json: try store.delete(target.type, namespace: target.namespace, name: name))
            default:
                respondStatus(context, head: head, code: 405, reason: "MethodNotAllowed", message: "\(head.method) is not supported here")
            }
        } catch ObjectStore.Failure.status(let code, let reason, let message) {
            respondStatus(context, head: head, code: code, reason: reason, message: message)
        } catch {
            respondStatus(context, head: head, code: 500, reason: "InternalError", message: "\(error)")
        }
    }

    /// What a resource path names: `/api/v1/namespaces/NS/RESOURCE/NAME/SUB` and its variants.
    private struct Target {
        var type: ResourceType
        var namespace: String?
        var name: String?
        var subresource: String?

        init?(path: String) {
            var segments = path.split(separator: "/").map(String.init)
            let group: String
            let version: String
            if segments.first == "api", segments.count >= 3 {
                group = ""
                version = segments[1]
                segments.removeFirst(2)
            } else if segments.first == "apis", segments.count >= 4 {
                group = segments[1]
                version = segments[2]
                segments.removeFirst(3)
            } else {
                return nil
            }
            if segments.first == "namespaces", segments.count >= 3 {
                namespace = segments[1]
                segments.removeFirst(2)
            }
            guard let resource = segments.first, let type = ResourceType.find(group: group, version: version, resource: resource) else { return nil }
            self.type = type
            if !type.namespaced { namespace = nil }
            name = segments.count > 1 ? segments[1] : nil
            subresource = segments.count > 2 ? segments[2] : nil
        }
    }

    /// A LIST response's body: its items' cached JSON joined into the list's.
    private func list(_ target: Target, query: [String: String]) -> [UInt8] {
        func fresh() -> [ObjectStore.Object] {
            store.list(
                target.type, namespace: target.namespace, fieldSelector: Selector(query["fieldSelector"]),
                labelSelector: Selector(query["labelSelector"]))
        }
        let cacheKey = "\(target.type.resource)|\(target.namespace ?? "")|\(query["fieldSelector"] ?? "")|\(query["labelSelector"] ?? "")"
        var offset = 0
        var revision = store.revision
        var all: [ObjectStore.Object]
        if let token = query["continue"], let decoded = Data(base64Encoded: token).map({ String(decoding: $0, as: UTF8.self) }),
            case let parts = decoded.split(separator: "/"), parts.count == 2, let listed = Int(parts[0]), let start = Int(parts[1])
        {
            revision = listed
            offset = start
            // Later pages come from the list the first page was cut from, as the real server serves
            // them from one revision (sorting the whole store for each page made a 100k LIST quadratic).
            if let cached = store.listSnapshots[cacheKey], cached.revision == listed { all = cached.objects } else { all = fresh() }
        } else {
            all = fresh()
            if let limit = query["limit"].flatMap(Int.init), limit > 0, all.count > limit { store.listSnapshots[cacheKey] = (revision, all) }
        }
        // A slice of the page only: copying the rest of the list for each page made a LIST quadratic.
        var items = all[min(offset, all.count)...]
        var metadata: [String: Any] = ["resourceVersion": String(revision)]
        if let limit = query["limit"].flatMap(Int.init), limit > 0, items.count > limit {
            items = items.prefix(limit)
            metadata["continue"] = Data("\(revision)/\(offset + limit)".utf8).base64EncodedString()
            metadata["remainingItemCount"] = all.count - offset - limit
        }
        let envelope: [String: Any] = ["kind": "\(target.type.kind)List", "apiVersion": target.type.groupVersion, "metadata": metadata]
        var body = [UInt8]((try? JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys])) ?? Data("{}".utf8))
        body.removeLast()  // its closing brace: the items go in before it
        body += #","items":["#.utf8
        for (index, item) in items.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body += store.encoded(item, as: target.type)
        }
        body += "]}".utf8
        return body
    }

    // MARK: Watch

    private func startWatch(_ context: ChannelHandlerContext, head: HTTPRequestHead, target: Target, query: [String: String]) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        func send(_ event: [String: Any]) {
            guard let data = try? JSONSerialization.data(withJSONObject: event) else { return }
            var buffer = bound.value.context.channel.allocator.buffer(capacity: data.count + 1)
            buffer.writeBytes(data)
            buffer.writeInteger(UInt8(ascii: "\n"))
            bound.value.context.writeAndFlush(bound.value.handler.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        func finish() {
            bound.value.handler.endWatch()
            bound.value.context.writeAndFlush(bound.value.handler.wrapOutboundOut(.end(nil)), promise: nil)
        }
        let version = query["resourceVersion"].flatMap { $0.isEmpty || $0 == "0" ? nil : Int($0) }
        let channel = context.channel
        let watcher = ObjectStore.Watcher(
            resource: target.type, namespace: target.namespace, fieldSelector: Selector(query["fieldSelector"]),
            labelSelector: Selector(query["labelSelector"]),
            send: { change in send(["type": change.type, "object": change.object]) },
            close: { channel.close(promise: nil) })
        guard let id = store.watch(since: version, watcher) else {
            send([
                "type": "ERROR",
                "object": [
                    "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure", "reason": "Expired", "code": 410,
                    "message": "too old resource version: \(version ?? 0) (\(store.compactedRevision))",
                ] as [String: Any],
            ])
            return finish()
        }
        watcherID = id
        if let seconds = query["timeoutSeconds"].flatMap(Int64.init), seconds > 0 {
            watchTimers.append(context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(seconds)) { finish() })
        }
        if query["allowWatchBookmarks"] == "true" || query["allowWatchBookmarks"] == "1" {
            let store = self.store
            let type = target.type
            // Re-armed after each bookmark, on the loop (the watch's closures are the loop's).
            func scheduleBookmark() {
                bookmarkTask = context.eventLoop.assumeIsolated().scheduleTask(in: bookmarkInterval) {
                    send([
                        "type": "BOOKMARK",
                        "object": ["kind": type.kind, "apiVersion": type.groupVersion, "metadata": ["resourceVersion": String(store.revision)]] as [String: Any],
                    ])
                    scheduleBookmark()
                }
            }
            scheduleBookmark()
        }
    }

    // MARK: Responses

    private func respond(_ context: ChannelHandlerContext, head: HTTPRequestHead, code: Int, json: [String: Any]) {
        respond(context, head: head, code: code, body: [UInt8]((try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) ?? Data("{}".utf8)))
    }

    private func respond(_ context: ChannelHandlerContext, head: HTTPRequestHead, code: Int, body data: [UInt8]) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(data.count))
        let status = HTTPResponseStatus(statusCode: code)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: data)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private func respondStatus(_ context: ChannelHandlerContext, head: HTTPRequestHead, code: Int, reason: String, message: String) {
        respond(
            context, head: head, code: code,
            json: ["kind": "Status", "apiVersion": "v1", "metadata": [:] as [String: Any], "status": "Failure", "message": message, "reason": reason, "code": code])
    }
}
