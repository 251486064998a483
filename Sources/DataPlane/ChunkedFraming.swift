import NIOCore
import NIOHTTP1

/// The chunked transfer coding (RFC 9112 §7.1) for bodies the worker frames itself: responses
/// relayed to HTTP/1.1 clients and request bodies sent upstream.
enum ChunkedFraming {
    /// Bodies up to this size are copied into one buffer with their framing: one write instead of
    /// three.
    static let copyLimit = 4096

    /// Hands `write` the pieces that carry `body` as one chunk (nothing for an empty body, which
    /// would read as the last chunk).
    static func chunk(_ body: ByteBuffer, allocator: ByteBufferAllocator, write: (ByteBuffer) -> Void) {
        guard body.readableBytes > 0 else { return }
        var framed = allocator.buffer(capacity: body.readableBytes <= copyLimit ? body.readableBytes + 20 : 18)
        framed.writeString(String(body.readableBytes, radix: 16))
        framed.writeStaticString("\r\n")
        if body.readableBytes <= copyLimit {
            framed.writeImmutableBuffer(body)
            framed.writeStaticString("\r\n")
            write(framed)
        } else {
            write(framed)
            write(body)
            write(allocator.buffer(staticString: "\r\n"))
        }
    }

    /// The last chunk, with the trailer fields if there are any.
    static func lastChunk(trailers: HTTPHeaders?, allocator: ByteBufferAllocator) -> ByteBuffer {
        var last = allocator.buffer(capacity: 64)
        last.writeStaticString("0\r\n")
        for (name, value) in trailers ?? [:] { last.writeHTTPField(name, value) }
        last.writeStaticString("\r\n")
        return last
    }
}
