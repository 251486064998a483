import NIOCore
import NIOPosix

/// A WebSocket client written from RFC 6455 by hand, so the proxy is tested against bytes on the
/// wire rather than against the library that also runs the echo backend.
public final class WebSocketTestClient: @unchecked Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case handshakeRefused(String)
        case closed

        public var description: String {
            switch self {
            case .handshakeRefused(let head): "the handshake was refused: \(head)"
            case .closed: "the connection closed"
            }
        }
    }

    /// The response head the handshake got.
    public private(set) var handshake = ""
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var received = ByteBuffer()

    private init(inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        self.inbound = inbound
        self.outbound = outbound
    }

    /// Connects to 127.0.0.1:`port`, performs the handshake for `path` on `host`, runs `body`, and closes.
    public static func with<Result: Sendable>(
        port: Int, host: String, path: String = "/ws", _ body: (WebSocketTestClient) async throws -> Result
    ) async throws -> Result {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            let client = WebSocketTestClient(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            try await client.open(host: host, path: path)
            return try await body(client)
        }
    }

    private func open(host: String, path: String) async throws {
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try await outbound.write(ByteBuffer(string: request))
        while true {
            let view = received.readableBytesView
            if let end = view.firstRange(of: Array("\r\n\r\n".utf8)) {
                let length = end.upperBound - view.startIndex
                handshake = received.readString(length: length) ?? ""
                break
            }
            try await fill()
        }
        guard handshake.hasPrefix("HTTP/1.1 101") else { throw Failure.handshakeRefused(handshake) }
    }

    /// Sends one masked text frame.
    public func send(text: String) async throws {
        try await send(opcode: 0x1, payload: Array(text.utf8))
    }

    /// Sends one masked binary frame.
    public func send(binary: [UInt8]) async throws {
        try await send(opcode: 0x2, payload: binary)
    }

    /// Sends a close frame.
    public func sendClose() async throws {
        try await send(opcode: 0x8, payload: [])
    }

    private func send(opcode: UInt8, payload: [UInt8]) async throws {
        var frame = ByteBuffer()
        frame.writeInteger(0x80 | opcode)
        switch payload.count {
        case ..<126: frame.writeInteger(0x80 | UInt8(payload.count))
        case ..<65_536:
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(payload.count))
        default:
            frame.writeInteger(UInt8(0x80 | 127))
            frame.writeInteger(UInt64(payload.count))
        }
        let mask: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]
        frame.writeBytes(mask)
        frame.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset % 4] })
        try await outbound.write(frame)
    }

    /// The next frame's opcode and payload (server frames are unmasked); pings and pongs are skipped.
    public func receive() async throws -> (opcode: UInt8, payload: [UInt8]) {
        while true {
            if let frame = takeFrame() {
                if frame.opcode == 0x9 || frame.opcode == 0xA { continue }
                return frame
            }
            try await fill()
        }
    }

    public func receiveText() async throws -> String {
        String(decoding: try await receive().payload, as: UTF8.self)
    }

    private func takeFrame() -> (opcode: UInt8, payload: [UInt8])? {
        var peek = received
        guard let first = peek.readInteger(as: UInt8.self), let second = peek.readInteger(as: UInt8.self) else { return nil }
        var length = Int(second & 0x7f)
        if length == 126 {
            guard let extended = peek.readInteger(as: UInt16.self) else { return nil }
            length = Int(extended)
        } else if length == 127 {
            guard let extended = peek.readInteger(as: UInt64.self) else { return nil }
            length = Int(extended)
        }
        guard let payload = peek.readBytes(length: length) else { return nil }
        received = peek
        return (first & 0x0f, payload)
    }

    private func fill() async throws {
        guard var more = try await inbound.next() else { throw Failure.closed }
        received.writeBuffer(&more)
    }
}
