import NIOCore
import NIOPosix
import Synchronization

/// An upstream on 127.0.0.1 that answers each request head with bytes the test scripts: for
/// response shapes a well-behaved HTTP library will not produce (interim 1xx, a body delimited by
/// the close, malformed heads). Request bodies are not read.
public final class ScriptedBackend: Sendable {
    public struct Answer: Sendable {
        public var bytes: String
        /// Close the connection once the bytes are written.
        public var close: Bool

        public init(_ bytes: String, close: Bool = false) {
            self.bytes = bytes
            self.close = close
        }
    }

    public let port: Int
    private let task: Task<Void, any Error>
    private let counter = Counter()

    private final class Counter: Sendable { let value = Atomic<Int>(0) }

    public var acceptedConnections: Int { counter.value.load(ordering: .relaxed) }

    /// `answer` gets each request head (request line and fields) as text.
    public static func start(_ answer: @escaping @Sendable (String) -> Answer) async throws -> ScriptedBackend {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return ScriptedBackend(server: server, answer: answer)
    }

    private init(server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, answer: @escaping @Sendable (String) -> Answer) {
        port = server.channel.localAddress!.port!
        let counter = self.counter
        task = Task {
            try await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        counter.value.add(1, ordering: .relaxed)
                        group.addTask { try? await Self.serve(connection, answer: answer) }
                    }
                }
            }
        }
    }

    private static func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, answer: (String) -> Answer) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var received = ""
            for try await buffer in inbound {
                received += String(buffer: buffer)
                while let end = received.range(of: "\r\n\r\n") {
                    let head = String(received[..<end.lowerBound])
                    received = String(received[end.upperBound...])
                    let reply = answer(head)
                    try await outbound.write(ByteBuffer(string: reply.bytes))
                    if reply.close { return }
                }
            }
        }
    }

    public func stop() async {
        task.cancel()
        _ = await task.result
    }
}
