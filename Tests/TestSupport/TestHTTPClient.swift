import NIOCore
import NIOHTTP1
import NIOPosix

/// What a test request got back. Bodies over 1 MiB are counted, not kept.
public struct TestResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var bodyCount = 0
    public var body: [UInt8] = []

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// `key: value` lines of a TestBackend echo, as a dictionary.
    public var echoed: [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if let separator = line.firstIndex(of: "=") ?? line.firstIndex(of: ":") {
                let key = String(line[..<separator])
                var value = line[line.index(after: separator)...]
                if value.first == " " { value = value.dropFirst() }
                fields[key] = fields[key].map { "\($0), \(value)" } ?? String(value)
            }
        }
        return fields
    }
}

/// One HTTP/1.1 client connection for tests: requests go one after another on the same socket.
public final class TestHTTPConnection: @unchecked Sendable {
    private var inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

    private init(
        inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    ) {
        self.inbound = inbound
        self.outbound = outbound
    }

    /// Connects to 127.0.0.1:`port`, runs `body`, and closes.
    public static func with<Result: Sendable>(
        port: Int, _ body: (TestHTTPConnection) async throws -> Result
    ) async throws -> Result {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await body(TestHTTPConnection(inbound: inbound.makeAsyncIterator(), outbound: outbound))
        }
    }

    /// One request; `uploadBytes` streams that many bytes as the body (chunked) in 64 KiB writes.
    public func request(
        _ method: HTTPMethod = .GET, _ path: String, host: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        uploadBytes: Int? = nil
    ) async throws -> TestResponse {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: host)
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body { head.headers.add(name: "Content-Length", value: String(body.count)) }
        if uploadBytes != nil { head.headers.add(name: "Transfer-Encoding", value: "chunked") }
        try await outbound.write(.head(head))
        if let body, !body.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
        if var remaining = uploadBytes {
            let chunk = ByteBuffer(repeating: 0x61, count: 65_536)
            while remaining > 0 {
                let size = min(remaining, chunk.readableBytes)
                try await outbound.write(.body(.byteBuffer(chunk.getSlice(at: 0, length: size)!)))
                remaining -= size
            }
        }
        try await outbound.write(.end(nil))
        return try await readResponse()
    }

    /// Sends raw bytes (for malformed requests) and reads one response, or nil if the server closed.
    public func readResponse() async throws -> TestResponse {
        var response: TestResponse?
        while let part = try await inbound.next() {
            switch part {
            case .head(let head):
                response = TestResponse(status: head.status, headers: head.headers)
            case .body(let buffer):
                response?.bodyCount += buffer.readableBytes
                if (response?.bodyCount ?? 0) <= 1 << 20 { response?.body += Array(buffer.readableBytesView) } else { response?.body = [] }
            case .end:
                if let response { return response }
            }
        }
        throw TestConnectionClosed()
    }
}

public struct TestConnectionClosed: Error {}
