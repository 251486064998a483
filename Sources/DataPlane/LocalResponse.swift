import NIOCore
import NIOHTTP1

/// The worker's own short answers on HTTP/1.1 connections, serialised here: every byte an
/// HTTP/1.1 client gets is written by the proxy itself, with no response encoder in the pipeline.
enum LocalResponse {
    /// A complete response: a text body (left out for HEAD, whose answer still names its length),
    /// `extra` fields first, then Content-Type, Content-Length and, if asked, `Connection: close`.
    static func bytes(
        _ status: HTTPResponseStatus, body: String, extra: HTTPHeaders = [:], close: Bool, isHead: Bool = false,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 160 + body.utf8.count)
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(status.code))
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(status.reasonPhrase)
        buffer.writeStaticString("\r\n")
        for (name, value) in extra { buffer.writeHTTPField(name, value) }
        buffer.writeStaticString("Content-Type: text/plain; charset=utf-8\r\nContent-Length: ")
        buffer.writeString(String(body.utf8.count))
        buffer.writeStaticString(close ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n")
        if !isHead { buffer.writeString(body) }
        return buffer
    }
}
