import NIOCore
import NIOPosix

/// Sends raw bytes to 127.0.0.1:`port` and collects everything the server sends until it closes
/// (or `limit` bytes). For malformed and slow requests that a real HTTP client will not produce.
public enum RawConnection {
    public static func exchange(port: Int, send chunks: [String], pauseBetweenChunks: Duration = .zero, limit: Int = 1 << 20) async throws -> String {
        try await exchange(port: port, sendBytes: chunks.map { Array($0.utf8) }, pauseBetweenChunks: pauseBetweenChunks, limit: limit)
    }

    /// The same with chunks that are not text.
    public static func exchange(port: Int, sendBytes chunks: [[UInt8]], pauseBetweenChunks: Duration = .zero, limit: Int = 1 << 20) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            for (index, chunk) in chunks.enumerated() {
                if index > 0, pauseBetweenChunks > .zero { try await Task.sleep(for: pauseBetweenChunks) }
                try await outbound.write(ByteBuffer(bytes: chunk))
            }
            var received = ""
            for try await buffer in inbound {
                received += String(buffer: buffer)
                if received.utf8.count >= limit { break }
            }
            return received
        }
    }
}
