import NIOCore
import NIOHTTP1
internal import NIOHTTP2
internal import NIOHPACK
import NIOPosix
import NIOSSL
import Synchronization

/// An HTTP/2 client connection over TLS (ALPN h2) for tests; each request is a stream.
public final class HTTP2TestConnection: Sendable {
    public let channel: any Channel
    private let multiplexer: NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>

    private init(channel: any Channel, multiplexer: NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>) {
        self.channel = channel
        self.multiplexer = multiplexer
    }

    /// Connects to 127.0.0.1:`port` with SNI `serverName`, runs `body`, and closes.
    /// With `validatesHeaders` false, NIOHTTP2 lets malformed request fields out (`sendFields`).
    public static func with<Result: Sendable>(
        port: Int, serverName: String, validatesHeaders: Bool = true, _ body: (HTTP2TestConnection) async throws -> Result
    ) async throws -> Result {
        let context = try TLSTestClient.context(alpn: ["h2"])
        let connectionConfiguration = {
            var configuration = NIOHTTP2Handler.ConnectionConfiguration()
            if !validatesHeaders { configuration.headerBlockValidation = .disabled }
            return configuration
        }()
        // The HTTP/2 handler goes in with the TLS handler, before the connection is up: added
        // later, the server's first frames could reach the end of the pipeline and be lost.
        let (channel, multiplexer) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                    let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: connectionConfiguration, streamConfiguration: .init()
                    ) { $0.eventLoop.makeSucceededVoidFuture() }
                    return (channel, NIOLoopBound(multiplexer, eventLoop: channel.eventLoop))
                }
            }
        let connection = HTTP2TestConnection(channel: channel, multiplexer: multiplexer)
        do {
            let result = try await body(connection)
            try? await channel.close()
            return result
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// One request on a new stream, with `headers` after Host, and `body` with a content-length
    /// unless `declaresLength` is false.
    public func request(
        _ method: HTTPMethod = .GET, _ path: String, authority: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        declaresLength: Bool = true
    ) async throws -> TestResponse {
        let response = channel.eventLoop.makePromise(of: TestResponse.self)
        let collector = ResponseCollector(promise: response)
        let stream = try await openStream(collector)
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "host", value: authority)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body, declaresLength { head.headers.add(name: "content-length", value: String(body.count)) }
        stream.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { stream.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
        try await stream.writeAndFlush(HTTPClientRequestPart.end(nil))
        // A stream that never answers fails the test instead of hanging it.
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(20)) {
            collector.finish(.failure(StreamTimedOut(path: path, authority: authority)))
        }
        defer { timeout.cancel() }
        return try await response.futureResult.get()
    }

    /// Opens a stream, sends a request head, and resets the stream once `before` returns (at once
    /// by default: the rapid-reset pattern).
    public func openAndReset(path: String, authority: String, before: () async throws -> Void = {}) async throws {
        let stream = try await openStream(nil)
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "host", value: authority)
        try await stream.writeAndFlush(HTTPClientRequestPart.head(head))
        try await before()
        // Closing a stream that is under way sends RST_STREAM(CANCEL).
        try? await stream.close()
    }

    /// A GET whose response the client does not read (so the stream's window stays shut) until
    /// `resume`, which then returns the response.
    public final class PausedResponse: Sendable {
        let stream: any Channel
        let response: EventLoopFuture<TestResponse>

        init(stream: any Channel, response: EventLoopFuture<TestResponse>) {
            self.stream = stream
            self.response = response
        }

        public func resume() async throws -> TestResponse {
            _ = stream.setOption(ChannelOptions.autoRead, value: true)
            stream.read()
            return try await response.get()
        }
    }

    public func pausedRequest(_ path: String, authority: String) async throws -> PausedResponse {
        let response = channel.eventLoop.makePromise(of: TestResponse.self)
        let stream = try await openStream(ResponseCollector(promise: response), autoRead: false)
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "host", value: authority)
        stream.write(HTTPClientRequestPart.head(head), promise: nil)
        try await stream.writeAndFlush(HTTPClientRequestPart.end(nil))
        return PausedResponse(stream: stream, response: response.futureResult)
    }

    /// A POST whose progress a test can watch: the body bytes the client has sent so far (as the
    /// server's flow-control windows allowed), and the response.
    public final class Upload: Sendable {
        let progress = Atomic<Int>(0)
        let stream: any Channel
        let response: EventLoopFuture<TestResponse>

        init(stream: any Channel, response: EventLoopFuture<TestResponse>) {
            self.stream = stream
            self.response = response
        }

        public var sent: Int { progress.load(ordering: .relaxed) }
        public func result() async throws -> TestResponse { try await response.get() }
        /// Resets the stream (RST_STREAM CANCEL).
        public func cancel() async { try? await stream.close() }
    }

    /// Starts a POST of `bytes` bytes to `path` in 16 KiB DATA frames; it goes on while the test
    /// watches `sent`.
    public func upload(_ path: String, authority: String, bytes total: Int) async throws -> Upload {
        let response = channel.eventLoop.makePromise(of: TestResponse.self)
        let stream = try await openStream(ResponseCollector(promise: response))
        let upload = Upload(stream: stream, response: response.futureResult)
        try await stream.eventLoop.submit {
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
            head.headers.add(name: "host", value: authority)
            head.headers.add(name: "content-length", value: String(total))
            stream.write(HTTPClientRequestPart.head(head), promise: nil)
            var remaining = total
            while remaining > 0 {
                let size = min(16_384, remaining)
                remaining -= size
                // A write completes when its frame is sent, which the server's windows allow.
                stream.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(repeating: 5, count: size)))).whenSuccess {
                    upload.progress.add(size, ordering: .relaxed)
                }
            }
            stream.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        }.get()
        return upload
    }

    /// How a stream opened with `sendFields` ended: a response status, or the stream reset with a code.
    public enum FieldsOutcome: Equatable, Sendable {
        case status(String)
        case reset(Int)
        case closed
    }

    /// Opens a stream with one HEADERS frame of exactly `fields` (in order, as given) and END_STREAM,
    /// then, if `trailers` are given, a second HEADERS frame with them: what the server answered.
    public func sendFields(_ fields: [(String, String)], trailers: [(String, String)]? = nil) async throws -> FieldsOutcome {
        let multiplexer = self.multiplexer
        let outcome = channel.eventLoop.makePromise(of: FieldsOutcome.self)
        let stream = try await channel.eventLoop.flatSubmit {
            let promise = self.channel.eventLoop.makePromise(of: (any Channel).self)
            multiplexer.value.createStreamChannel(promise: promise) { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(FieldsCollector(promise: outcome))
                }
            }
            return promise.futureResult
        }.get()
        let headers = HPACKHeaders(fields)
        try await stream.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: trailers == nil)))
        if let trailers {
            try await stream.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: HPACKHeaders(trailers), endStream: true)))
        }
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(20)) { outcome.fail(StreamTimedOut(path: "fields", authority: "")) }
        defer { timeout.cancel() }
        return try await outcome.futureResult.get()
    }

    private final class FieldsCollector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTP2Frame.FramePayload
        let promise: EventLoopPromise<FieldsOutcome>
        var done = false
        init(promise: EventLoopPromise<FieldsOutcome>) { self.promise = promise }

        func finish(_ outcome: FieldsOutcome) {
            guard !done else { return }
            done = true
            promise.succeed(outcome)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .headers(let headers): finish(.status(headers.headers.first(name: ":status") ?? ""))
            case .rstStream(let code): finish(.reset(code.networkCode))
            default: break
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if let closed = error as? NIOHTTP2Errors.StreamClosed { finish(.reset(closed.errorCode.networkCode)) }
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            finish(.closed)
        }
    }

    /// A new stream speaking HTTP/1 parts, with `collector` reading its response if given.
    private func openStream(_ collector: ResponseCollector?, autoRead: Bool = true) async throws -> any Channel {
        let multiplexer = self.multiplexer
        return try await channel.eventLoop.flatSubmit {
            let promise = self.channel.eventLoop.makePromise(of: (any Channel).self)
            multiplexer.value.createStreamChannel(promise: promise) { stream in
                stream.eventLoop.makeCompletedFuture {
                    if !autoRead { try stream.syncOptions?.setOption(ChannelOptions.autoRead, value: false) }
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .https))
                    if let collector { try stream.pipeline.syncOperations.addHandler(collector) }
                }
            }
            return promise.futureResult
        }.get()
    }

    public struct StreamTimedOut: Error, CustomStringConvertible {
        public let path: String
        public let authority: String
        public var description: String { "no response in 20 s on the stream for \(authority)\(path)" }
    }

    /// Used on its stream's event loop only.
    private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<TestResponse>
        var response: TestResponse?
        var done = false

        init(promise: EventLoopPromise<TestResponse>) { self.promise = promise }

        /// Completes the request once: with its response, or with what ended it first.
        func finish(_ result: Result<TestResponse, any Error>) {
            guard !done else { return }
            done = true
            promise.completeWith(result)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): response = TestResponse(status: head.status, headers: head.headers)
            case .body(let buffer):
                response?.bodyCount += buffer.readableBytes
                if (response?.bodyCount ?? 0) <= 1 << 20 { response?.body += Array(buffer.readableBytesView) }
            case .end(let trailers):
                response?.trailers = trailers
                if let response { finish(.success(response)) }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            finish(.failure(TestConnectionClosed()))
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            finish(.failure(error))
            context.close(promise: nil)
        }
    }
}
