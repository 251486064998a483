import NIOCore
import NIOHTTP1
import RouteModel

/// Relayed responses as the bytes an HTTP/1.1 client gets (there is no response encoder): the
/// upstream's status line and fields with the client's own framing, body bytes (chunked when the
/// upstream's body had no length), and the end. The head waits for the first body bytes of the
/// same upstream read and goes out with them as one write: on TLS each write is a record of its
/// own (nginx's ssl_buffer_size does the same joining), and in plain text it saves an iovec.
/// No I/O: each step hands its bytes to `write`.
struct HTTP1ResponseFraming {
    /// Body bytes up to this size are copied into the held head.
    static let joinLimit = 16 << 10

    private let allocator = ByteBufferAllocator()
    /// The head, until body bytes join it or the upstream read ends.
    private var heldHead: ByteBuffer?
    /// The last head written, kept for its storage: once its write completes nothing else holds
    /// it, and the next response writes its head into it instead of allocating.
    private var spareHead: ByteBuffer?
    private var chunked = false

    /// A 1xx response, as the upstream sent it.
    func interim(_ head: UpstreamResponseHead) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: head.bytes.readableBytes + 16)
        head.writeStatusLine(into: &buffer)
        head.writeForwardedFields(into: &buffer)
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// The final response's head, held. Room is made for a small body to join it.
    mutating func start(_ head: UpstreamResponseHead, framing: ProxyExchange.Framing, hsts: HSTSPolicy?, edits: HeaderEdits? = nil) {
        var room = 0
        if case .contentLength(let length) = head.framing, length <= Self.joinLimit { room = length }
        var buffer = HeadBuffers.make(reusing: &spareHead, capacity: head.bytes.readableBytes + 96 + room)
        head.writeStatusLine(into: &buffer)
        head.writeForwardedFields(into: &buffer, edits: edits)
        chunked = framing.chunked
        if chunked { buffer.writeStaticString("Transfer-Encoding: chunked\r\n") }
        if let hsts { buffer.writeHTTPField("Strict-Transport-Security", hsts.headerValue) }
        if framing.close {
            buffer.writeStaticString("Connection: close\r\n")
        } else if framing.keepAlive {
            buffer.writeStaticString("Connection: keep-alive\r\n")
        }
        buffer.writeStaticString("\r\n")
        heldHead = buffer
    }

    mutating func body(_ bytes: ByteBuffer, write: (ByteBuffer) -> Void) {
        if chunked {
            ChunkedFraming.chunk(bytes, allocator: allocator) { emit($0, write: write) }
        } else {
            emit(bytes, write: write)
        }
    }

    mutating func end(trailers: HTTPHeaders?, write: (ByteBuffer) -> Void) {
        if chunked {
            emit(ChunkedFraming.lastChunk(trailers: trailers, allocator: allocator), write: write)
        } else {
            releaseHead(write: write)
        }
    }

    /// The head alone, when no body bytes came with it in this read.
    mutating func releaseHead(write: (ByteBuffer) -> Void) {
        if let head = heldHead.take() { writeHead(head, write: write) }
    }

    private mutating func emit(_ bytes: ByteBuffer, write: (ByteBuffer) -> Void) {
        if var head = heldHead.take() {
            guard bytes.readableBytes > Self.joinLimit else {
                head.writeImmutableBuffer(bytes)
                writeHead(head, write: write)
                return
            }
            writeHead(head, write: write)
        }
        write(bytes)
    }

    private mutating func writeHead(_ head: ByteBuffer, write: (ByteBuffer) -> Void) {
        write(head)
        HeadBuffers.keep(head, as: &spareHead)
    }
}
