import NIOCore
import NIOPosix
import Synchronization

/// An upstream on 127.0.0.1 that keeps the exact bytes it receives and answers each complete
/// request with `200 ok`: for asserting what a proxy sends upstream byte for byte, or that it
/// sends nothing. A request is complete after its head and the body its own framing announces
/// (Content-Length, or chunked up to the last chunk), read from the head the proxy wrote.
public final class RecordingBackend: Sendable {
    public let port: Int
    private let task: Task<Void, any Error>
    private let state = Store()

    private final class Store: Sendable {
        let value = Mutex(Recorded())
        func withLock<T>(_ body: (inout Recorded) -> T) -> T { value.withLock { body(&$0) } }
    }

    private struct Recorded {
        var bytes: [UInt8] = []
        var connections = 0
        var requests = 0
    }

    /// Everything received so far, from every connection, as text.
    public var received: String { state.withLock { String(decoding: $0.bytes, as: UTF8.self) } }
    public var acceptedConnections: Int { state.withLock { $0.connections } }
    /// Requests answered so far.
    public var requests: Int { state.withLock { $0.requests } }

    public static func start() async throws -> RecordingBackend {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return RecordingBackend(server: server)
    }

    private init(server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>) {
        port = server.channel.localAddress!.port!
        let state = self.state
        task = Task {
            try await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        state.withLock { $0.connections += 1 }
                        group.addTask { try? await Self.serve(connection, state: state) }
                    }
                }
            }
        }
    }

    private static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, state: Store) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var pending: [UInt8] = []
            for try await buffer in inbound {
                let bytes = Array(buffer.readableBytesView)
                state.withLock { $0.bytes += bytes }
                pending += bytes
                while let length = Self.completeRequestLength(pending) {
                    pending.removeFirst(length)
                    state.withLock { $0.requests += 1 }
                    try await outbound.write(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
                }
            }
        }
    }

    /// The length of the first complete request in `bytes`, if it is complete.
    static func completeRequestLength(_ bytes: [UInt8]) -> Int? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.utf8.firstRange(of: "\r\n\r\n".utf8) else { return nil }
        let headLength = text.utf8.distance(from: text.utf8.startIndex, to: end.upperBound)
        let head = text[..<end.lowerBound].lowercased()
        if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
            let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: " "))
        {
            return bytes.count >= headLength + length ? headLength + length : nil
        }
        if head.contains("\r\ntransfer-encoding: chunked") {
            let body = String(decoding: bytes[headLength...], as: UTF8.self)
            guard let last = body.utf8.firstRange(of: "0\r\n\r\n".utf8) else { return nil }
            return headLength + body.utf8.distance(from: body.utf8.startIndex, to: last.upperBound)
        }
        return headLength
    }

    public func stop() async {
        task.cancel()
        _ = await task.result
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> Substring {
        var value = self
        while value.first == set { value = value.dropFirst() }
        while value.last == set { value = value.dropLast() }
        return value
    }
}
