import NIOCore
internal import NIOHPACK
import NIOPosix
import NIOSSL
import Synchronization

/// An HTTP/2 connection over TLS (ALPN h2) that writes frames exactly as the test builds them and
/// records every frame the server sends: for frames a well-behaved HTTP/2 library will not send
/// (a WINDOW_UPDATE of 0, HEADERS after END_STREAM, DATA beyond a content-length, floods).
/// It answers the server's SETTINGS with an ACK and nothing else.
public final class RawHTTP2Connection: Sendable {
    /// A frame the server sent.
    public struct Frame: Sendable, CustomStringConvertible {
        public let type: UInt8
        public let flags: UInt8
        public let stream: UInt32
        public let payload: [UInt8]
        /// A HEADERS frame's `:status`.
        public let status: String?

        public static let data: UInt8 = 0
        public static let headers: UInt8 = 1
        public static let rstStream: UInt8 = 3
        public static let settings: UInt8 = 4
        public static let goAway: UInt8 = 7

        /// RST_STREAM's error code, or GOAWAY's.
        public var errorCode: UInt32? {
            switch type {
            case Self.rstStream where payload.count >= 4: UInt32(bytes: payload[0..<4])
            case Self.goAway where payload.count >= 8: UInt32(bytes: payload[4..<8])
            default: nil
            }
        }

        public var endsStream: Bool { flags & 0x1 != 0 && (type == Self.data || type == Self.headers) }

        public var description: String {
            "frame(type \(type), flags \(flags), stream \(stream)\(status.map { ", :status \($0)" } ?? "")\(errorCode.map { ", code \($0)" } ?? ""))"
        }
    }

    private let channel: any Channel
    private let state: Shared

    fileprivate final class Shared: Sendable {
        let frames = Mutex<[Frame]>([])
        let closed = Atomic<Bool>(false)
    }

    /// Every frame the server sent so far.
    public var frames: [Frame] { state.frames.withLock { $0 } }
    /// The server closed the connection.
    public var isClosed: Bool { state.closed.load(ordering: .relaxed) }

    private init(channel: any Channel, state: Shared) {
        self.channel = channel
        self.state = state
    }

    /// Records the server's frames as they arrive, on the connection's loop, and ACKs its SETTINGS.
    private final class Recorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let state: Shared
        private let preface: [UInt8]
        private var buffer = ByteBuffer()
        private var decoder = HPACKDecoder(allocator: ByteBufferAllocator())

        init(state: Shared, preface: [UInt8]) {
            self.state = state
            self.preface = preface
        }

        /// The client's preface goes first, before any ACK of the server's SETTINGS: written here,
        /// it leaves (once TLS is up) ahead of everything this handler answers.
        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: preface)), promise: nil)
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var chunk = unwrapInboundIn(data)
            buffer.writeBuffer(&chunk)
            while let frame = RawHTTP2Connection.takeFrame(&buffer, decoder: &decoder) {
                state.frames.withLock { $0.append(frame) }
                if frame.type == Frame.settings, frame.flags & 0x1 == 0 {
                    let ack = RawHTTP2Connection.frame(type: Frame.settings, flags: 0x1, stream: 0, payload: [])
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: ack)), promise: nil)
                }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.closed.store(true, ordering: .relaxed)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    /// Connects to 127.0.0.1:`port` with SNI `serverName`, sends the preface and empty SETTINGS,
    /// opens the connection's receive window wide, and returns once SETTINGS went both ways (so
    /// nothing the client writes later races a close of the server's: that would reset the
    /// connection and lose what the server sent last).
    public static func connect(port: Int, serverName: String) async throws -> RawHTTP2Connection {
        let context = try TLSTestClient.context(alpn: ["h2"])
        let state = Shared()
        let preface = [
            Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8), frame(type: Frame.settings, flags: 0, stream: 0, payload: []),
            windowUpdate(stream: 0, increment: 1 << 30),
        ].flatMap { $0 }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                    try channel.pipeline.syncOperations.addHandler(Recorder(state: state, preface: preface))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let connection = RawHTTP2Connection(channel: channel, state: state)
        try await connection.waitFor("SETTINGS both ways") { frames in
            frames.contains { $0.type == Frame.settings && $0.flags & 0x1 == 0 } && frames.contains { $0.type == Frame.settings && $0.flags & 0x1 != 0 }
        }
        return connection
    }

    /// Writes `frames` (encoded) in one write.
    public func send(_ frames: [[UInt8]]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: frames.flatMap { $0 }))
    }

    /// Waits until `condition` holds for the frames received, or the deadline passes (an error).
    public func waitFor(_ what: String, timeout: Duration = .seconds(20), _ condition: ([Frame]) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition(frames) {
            guard ContinuousClock.now < deadline else { throw TimedOut(what: what, frames: frames) }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    public struct TimedOut: Error, CustomStringConvertible {
        public let what: String
        public let frames: [Frame]
        public var description: String { "timed out waiting for \(what); received \(frames)" }
    }

    public func close() async {
        try? await channel.close()
    }

    /// Also when a test never called close().
    deinit {
        channel.close(promise: nil)
    }

    // MARK: Frames

    public static func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let length = UInt32(payload.count)
        return [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags] + stream.bigEndianBytes + payload
    }

    /// HEADERS with END_HEADERS; the fields as given, in order, none indexed (no HPACK state).
    public static func headers(stream: UInt32, _ fields: [(String, String)], endStream: Bool) -> [UInt8] {
        var block = HPACKHeaders()
        for (name, value) in fields { block.add(name: name, value: value, indexing: .nonIndexable) }
        var encoder = HPACKEncoder(allocator: ByteBufferAllocator(), useHuffmanEncoding: false)
        var buffer = ByteBuffer()
        try! encoder.encode(headers: block, to: &buffer)
        return frame(type: Frame.headers, flags: 0x4 | (endStream ? 0x1 : 0), stream: stream, payload: Array(buffer.readableBytesView))
    }

    public static func data(stream: UInt32, _ bytes: [UInt8], endStream: Bool) -> [UInt8] {
        frame(type: Frame.data, flags: endStream ? 0x1 : 0, stream: stream, payload: bytes)
    }

    public static func windowUpdate(stream: UInt32, increment: UInt32) -> [UInt8] {
        frame(type: 8, flags: 0, stream: stream, payload: increment.bigEndianBytes)
    }

    public static func rstStream(stream: UInt32, code: UInt32) -> [UInt8] {
        frame(type: Frame.rstStream, flags: 0, stream: stream, payload: code.bigEndianBytes)
    }

    /// A GET for `authority` on `stream`, ending the stream.
    public static func get(stream: UInt32, authority: String, path: String = "/") -> [UInt8] {
        headers(stream: stream, [(":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", path)], endStream: true)
    }

    fileprivate static func takeFrame(_ buffer: inout ByteBuffer, decoder: inout HPACKDecoder) -> Frame? {
        guard buffer.readableBytes >= 9, let header = buffer.getBytes(at: buffer.readerIndex, length: 9) else { return nil }
        let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
        guard buffer.readableBytes >= 9 + length else { return nil }
        buffer.moveReaderIndex(forwardBy: 9)
        let payload = buffer.readSlice(length: length)!
        let bytes = Array(payload.readableBytesView)
        var status: String?
        if header[3] == Frame.headers {
            var block = payload
            if header[4] & 0x8 != 0, let padding = block.readInteger(as: UInt8.self) {
                block = block.getSlice(at: block.readerIndex, length: block.readableBytes - Int(padding)) ?? block
            }
            if header[4] & 0x20 != 0 { block.moveReaderIndex(forwardBy: 5) }
            status = (try? decoder.decodeHeaders(from: &block))?.first(name: ":status")
        }
        return Frame(type: header[3], flags: header[4], stream: UInt32(bytes: header[5..<9]) & 0x7fff_ffff, payload: bytes, status: status)
    }
}

extension UInt32 {
    fileprivate init(bytes: ArraySlice<UInt8>) {
        self = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    fileprivate var bigEndianBytes: [UInt8] {
        [UInt8(self >> 24 & 0xff), UInt8(self >> 16 & 0xff), UInt8(self >> 8 & 0xff), UInt8(self & 0xff)]
    }
}
