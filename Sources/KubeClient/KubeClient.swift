import AsyncHTTPClient
import Foundation
import KubeTypes
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL

/// A Kubernetes API client for what Portico needs: paginated LIST, WATCH as an async sequence, and
/// plain reads and writes for Leases, Events and Ingress status.
public final class KubeClient: Sendable {
    public let config: KubeConfig
    private let http: HTTPClient
    private let authorizer: Authorizer

    public init(config: KubeConfig) throws {
        self.config = config
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = config.certificateAuthorityPEM {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(ca.utf8)))
        }
        if config.insecureSkipTLSVerify { tls.certificateVerification = .none }
        // Closing a connection (at shutdown) waits this long for the server's close_notify; 5 s by default.
        tls.shutdownTimeout = .milliseconds(500)
        if case .clientCertificate(let certificate, let key) = config.credentials {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.utf8)).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(10))
        configuration.decompression = .disabled
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.authorizer = Authorizer(credentials: config.credentials)
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    /// `/api/v1/namespaces/NS/services`, `/apis/networking.k8s.io/v1/ingresses`, ….
    public static func path<Object: KubeObject>(for type: Object.Type, namespace: String?, name: String? = nil, subresource: String? = nil) -> String {
        var path = Object.apiVersion == "v1" ? "/api/v1" : "/apis/\(Object.apiVersion)"
        if Object.isNamespaced, let namespace { path += "/namespaces/\(namespace)" }
        path += "/\(Object.resource)"
        if let name { path += "/\(name)" }
        if let subresource { path += "/\(subresource)" }
        return path
    }

    // MARK: - LIST and WATCH

    /// Every object of a kind (in `namespace`, or all), fetched in pages of `limit`. The result's
    /// resourceVersion is the first page's: a watch from it misses nothing that happened since.
    public func list<Object: KubeObject>(
        _ type: Object.Type, namespace: String? = nil, fieldSelector: String? = nil, labelSelector: String? = nil, limit: Int = 500
    ) async throws -> KubeList<Object> {
        var items: [Object] = []
        let resourceVersion = try await listPages(type, namespace: namespace, fieldSelector: fieldSelector, labelSelector: labelSelector, limit: limit) {
            page, remaining in
            if items.isEmpty, let remaining { items.reserveCapacity(page.count + remaining) }
            items += page
        }
        return KubeList(metadata: ListMeta(resourceVersion: resourceVersion), items: items)
    }

    /// `list`, handing each page's items to `page` as it arrives, with the number of objects the
    /// server says follow it (nil when it does not say): a caller that keeps them elsewhere (an
    /// informer's cache) holds no list of them all besides. Returns the first page's resourceVersion.
    ///
    /// The next page is asked for before a page's items are read, when its continue token comes
    /// before them (as API servers write a list): the server then serves it while this process reads.
    public func listPages<Object: KubeObject>(
        _ type: Object.Type, namespace: String? = nil, fieldSelector: String? = nil, labelSelector: String? = nil, limit: Int = 500,
        page: (_ items: [Object], _ remaining: Int?) throws -> Void
    ) async throws -> String? {
        let path = Self.path(for: type, namespace: namespace)
        let fetch = { @Sendable (next: String?) -> Task<ByteBuffer, any Error> in
            var query = [("limit", String(limit))]
            if let fieldSelector { query.append(("fieldSelector", fieldSelector)) }
            if let labelSelector { query.append(("labelSelector", labelSelector)) }
            if let next { query.append(("continue", next)) }
            return Task { try await self.send(.GET, path, query: query) }
        }
        var resourceVersion: String?
        var pending = fetch(nil)
        while true {
            let body = try await withTaskCancellationHandler { try await pending.value } onCancel: { [pending] in pending.cancel() }
            var prefetched: Task<ByteBuffer, any Error>?
            do {
                let early = try? body.withUnsafeReadableBytes { bytes throws(KubeJSONError) in try KubeJSON.listMetadata(from: bytes) }
                if let token = early?.continue, !token.isEmpty { prefetched = fetch(token) }
                let list = try body.withUnsafeReadableBytes { bytes throws(KubeJSONError) in try KubeJSON.list(Object.self, from: bytes, capacity: limit) }
                if resourceVersion == nil { resourceVersion = list.metadata.resourceVersion }
                guard let next = list.metadata.continue, !next.isEmpty else {
                    prefetched?.cancel()
                    try page(list.items, 0)
                    return resourceVersion
                }
                try page(list.items, list.metadata.remainingItemCount)
                pending = prefetched ?? fetch(next)
            } catch {
                prefetched?.cancel()
                throw error
            }
        }
    }

    /// Events after `resourceVersion`, one per line of the server's stream, until the server ends
    /// it (after about `timeoutSeconds`) or the connection drops. A 410 arrives as `.error` with code
    /// 410 (or as a thrown `KubeAPIError` with status 410): relist.
    public func watch<Object: KubeObject>(
        _ type: Object.Type, namespace: String? = nil, fieldSelector: String? = nil, resourceVersion: String, timeoutSeconds: Int = 300
    ) -> AsyncThrowingStream<WatchEvent<Object>, any Error> {
        let query =
            [
                ("watch", "1"), ("resourceVersion", resourceVersion), ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", String(timeoutSeconds)),
            ] + (fieldSelector.map { [("fieldSelector", $0)] } ?? [])
        let path = Self.path(for: type, namespace: namespace)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let response = try await self.execute(.GET, path, query: query, body: nil, timeout: .seconds(Int64(timeoutSeconds) + 30))
                    guard response.status == .ok else {
                        let body = try await response.body.collect(upTo: 1 << 20)
                        throw KubeAPIError(method: "GET", path: path, status: Int(response.status.code), body: body)
                    }
                    var line = ByteBuffer()
                    func event(_ line: ByteBuffer) throws -> WatchEvent<Object> {
                        try line.withUnsafeReadableBytes { bytes throws(KubeJSONError) in try KubeJSON.watchEvent(Object.self, from: bytes) }
                    }
                    for try await chunk in response.body {
                        var chunk = chunk
                        while let newline = chunk.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                            var part = chunk.readSlice(length: newline - chunk.readerIndex)!
                            chunk.moveReaderIndex(forwardBy: 1)
                            line.writeBuffer(&part)
                            if line.readableBytes > 0 {
                                continuation.yield(try event(line))
                            }
                            line.clear()
                        }
                        line.writeBuffer(&chunk)
                        guard line.readableBytes <= 64 << 20 else {
                            throw KubeAPIError(method: "GET", path: path, status: 0, message: "a watch event over 64 MiB")
                        }
                    }
                    if line.readableBytes > 0 { continuation.yield(try event(line)) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: - Reads and writes

    public func get<Object: KubeObject>(_ type: Object.Type, namespace: String?, name: String) async throws -> Object {
        try decode(try await send(.GET, Self.path(for: type, namespace: namespace, name: name)), as: Object.self)
    }

    /// POST; returns what the server stored.
    public func create<Object: KubeObject>(_ object: Object) async throws -> Object {
        try decode(
            try await send(.POST, Self.path(for: Object.self, namespace: object.metadata.namespace), body: try JSONEncoder().encode(object)),
            as: Object.self)
    }

    /// PUT; the object's resourceVersion makes it conditional (409 when someone wrote first).
    public func replace<Object: KubeObject>(_ object: Object) async throws -> Object {
        try decode(
            try await send(
                .PUT, Self.path(for: Object.self, namespace: object.metadata.namespace, name: object.metadata.name),
                body: try JSONEncoder().encode(object)),
            as: Object.self)
    }

    /// A JSON merge patch (RFC 7386) of the object or one of its subresources (`status`).
    public func mergePatch<Object: KubeObject>(
        _ type: Object.Type, namespace: String?, name: String, subresource: String? = nil, patch: Data
    ) async throws -> Object {
        try decode(
            try await send(
                .PATCH, Self.path(for: type, namespace: namespace, name: name, subresource: subresource), body: patch,
                contentType: "application/merge-patch+json"),
            as: Object.self)
    }

    public func delete<Object: KubeObject>(_ type: Object.Type, namespace: String?, name: String) async throws {
        _ = try await send(.DELETE, Self.path(for: type, namespace: namespace, name: name))
    }

    /// POST of any JSON body (Events are written this way), returning the status code.
    public func post(path: String, json: Data) async throws {
        _ = try await send(.POST, path, body: json)
    }

    // MARK: - Transport

    private func decode<T: Decodable>(_ body: ByteBuffer, as type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: body)
    }

    private func send(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: Data? = nil, contentType: String = "application/json"
    ) async throws -> ByteBuffer {
        let response = try await execute(method, path, query: query, body: body, contentType: contentType, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 256 << 20)
        guard (200..<300).contains(response.status.code) else {
            throw KubeAPIError(method: method.rawValue, path: path, status: Int(response.status.code), body: bytes)
        }
        return bytes
    }

    private func execute(
        _ method: HTTPMethod, _ path: String, query: [(String, String)], body: Data?, contentType: String = "application/json",
        timeout: TimeAmount
    ) async throws -> HTTPClientResponse {
        var components = URLComponents()
        components.queryItems = query.isEmpty ? nil : query.map { URLQueryItem(name: $0.0, value: $0.1) }
        // URLComponents leaves `+` alone, which a server decodes as a space.
        let encodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        var request = HTTPClientRequest(url: config.server + path + (encodedQuery.map { "?" + $0 } ?? ""))
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "portico")
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(data: body))
        }
        if let authorization = try await authorizer.header() { request.headers.add(name: "Authorization", value: authorization) }
        let response = try await http.execute(request, timeout: timeout)
        if response.status == .unauthorized { authorizer.invalidate() }
        return response
    }
}

/// A request the API server refused, with its Status when it sent one.
public struct KubeAPIError: Error, Sendable, CustomStringConvertible {
    public var method: String
    public var path: String
    public var status: Int
    public var kubeStatus: KubeStatus?
    public var message: String?

    init(method: String, path: String, status: Int, body: ByteBuffer) {
        self.method = method
        self.path = path
        self.status = status
        self.kubeStatus = try? JSONDecoder().decode(KubeStatus.self, from: body)
        if kubeStatus == nil { message = String(buffer: body).prefix(300).description }
    }

    init(method: String, path: String, status: Int, message: String) {
        self.method = method
        self.path = path
        self.status = status
        self.message = message
    }

    public var description: String {
        "\(method) \(path): \(status)\(kubeStatus.map { " \($0.reason ?? ""): \($0.message ?? "")" } ?? message.map { " \($0)" } ?? "")"
    }
}
