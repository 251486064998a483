import NIOCore
import NIOHPACK
import NIOHTTP1

/// The worker's own short answers, made here: as bytes for HTTP/1.1 (every byte an HTTP/1.1 client
/// gets is written by the proxy itself, with no response encoder in the pipeline), as an HPACK
/// block for HTTP/2, whose body goes in a DATA frame.
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

    /// The head of the same answer for an HTTP/2 stream: `:status`, `extra` lowercased, then
    /// content-type and content-length.
    static func http2Headers(_ status: HTTPResponseStatus, bodyLength: Int, extra: HTTPHeaders = [:]) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: String(status.code))
        for (name, value) in extra { headers.add(name: name.lowercased(), value: value) }
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(bodyLength))
        return headers
    }
}
