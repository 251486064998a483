import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import RouteModel

/// One HTTP/2 connection to an endpoint (GRPC, GRPCS and H2C backends), shared by every exchange
/// to it on the loop: each exchange is a stream, opened with `openStream`. The session is opened on
/// first use; it leaves its pool when it closes, errs or gets GOAWAY (streams under way finish), and
/// closes itself after `idleTimeout` without streams.
final class HTTP2UpstreamSession {
    let endpoint: Endpoint
    private unowned let pool: UpstreamPool
    private var multiplexer: EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer>
    private var channel: (any Channel)?
    private(set) var isUsable = true
    private var openStreams = 0
    private let idleTimeout: TimeAmount
    private var idleCheck: Scheduled<Void>?

    init(
        endpoint: Endpoint, pool: UpstreamPool, tls: NIOSSLContext?, serverName: String?, idleTimeout: TimeAmount, timeouts: ClusterTimeouts
    ) {
        self.endpoint = endpoint
        self.pool = pool
        self.idleTimeout = idleTimeout
        let eventLoop = pool.eventLoop
        let made = NIOLoopBoundBox<NIOHTTP2Handler.StreamMultiplexer?>(nil, eventLoop: eventLoop)
        let handshake: EventLoopPromise<Void>? = tls == nil ? nil : eventLoop.makePromise()
        let watch = SessionWatch()
        let boundWatch = NIOLoopBound(watch, eventLoop: eventLoop)
        let bootstrap = ClientBootstrap(group: eventLoop).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let sync = channel.pipeline.syncOperations
                if let tls, let handshake {
                    try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    try sync.addHandler(TLSHandshakeWait(handshake))
                }
                var connection = NIOHTTP2Handler.ConnectionConfiguration()
                connection.initialSettings = [
                    HTTP2Setting(parameter: .enablePush, value: 0),
                    HTTP2Setting(parameter: .initialWindowSize, value: HTTP2ProxyConnection.streamWindowTarget),
                    HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16),
                ]
                // Pods cannot open streams toward the worker (push is off): any they try are refused.
                made.value = try sync.configureHTTP2Pipeline(
                    mode: .client, connectionConfiguration: connection, streamConfiguration: .init()
                ) { stream in stream.close() }
                try sync.addHandler(boundWatch.value)
            }
        }
        multiplexer = pool.dial(endpoint, bootstrap: bootstrap, timeouts: timeouts, handshake: handshake).flatMapThrowing { channel in
            guard let multiplexer = made.value else { throw ChannelError.inappropriateOperationForState }
            return multiplexer
        }
        multiplexer.assumeIsolatedUnsafeUnchecked().whenComplete { [self] result in
            switch result {
            case .success:
                channel = watch.channel
                watch.onEnd = { [weak self] in self?.ended() }
                if watch.ended { ended() }
            case .failure:
                ended()
            }
        }
    }

    /// A new stream, with the framing adapter and an `UpstreamHandler` in its pipeline.
    func openStream(grpc: Bool, secure: Bool) -> EventLoopFuture<(any Channel, UpstreamHandler)> {
        openStreams += 1
        idleCheck?.cancel()
        idleCheck = nil
        let eventLoop = pool.eventLoop
        let handler = UpstreamHandler(messages: true)
        let bound = NIOLoopBound(handler, eventLoop: eventLoop)
        let opened = multiplexer.flatMap { multiplexer in
            multiplexer.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    let sync = stream.pipeline.syncOperations
                    try sync.addHandler(HTTP2UpstreamFraming(scheme: secure ? "https" : "http", grpc: grpc))
                    try sync.addHandler(bound.value)
                }
            }
        }
        opened.assumeIsolatedUnsafeUnchecked().whenComplete { [self] result in
            switch result {
            case .success(let stream): stream.closeFuture.assumeIsolatedUnsafeUnchecked().whenComplete { [self] _ in streamClosed() }
            case .failure: streamClosed()
            }
        }
        return opened.assumeIsolatedUnsafeUnchecked().map { ($0, handler) }.nonisolated()
    }

    private func streamClosed() {
        openStreams -= 1
        guard openStreams == 0, isUsable, idleTimeout > .zero else { return }
        idleCheck = pool.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: idleTimeout) { [self] in
            if openStreams == 0 { close() }
        }
    }

    /// Closed, failed or told to go away: no new streams here.
    private func ended() {
        guard isUsable else { return }
        isUsable = false
        pool.sessionEnded(self)
    }

    func close() {
        ended()
        idleCheck?.cancel()
        channel?.close(promise: nil)
    }
}

/// After NIOHTTP2's handler on a session's connection: notes GOAWAY, errors and the close.
private final class SessionWatch: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    var onEnd: (() -> Void)?
    private(set) var ended = false
    private(set) weak var channel: (any Channel)?

    func handlerAdded(context: ChannelHandlerContext) { channel = context.channel }

    private func end() {
        guard !ended else { return }
        ended = true
        onEnd?()
        onEnd = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = unwrapInboundIn(data).payload { end() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        end()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        end()
        context.close(promise: nil)
    }
}

/// The request end, with its trailers, from an `UpstreamHandler` in message mode.
struct UpstreamRequestEnd {
    let trailers: HTTPHeaders?
}

/// Between an HTTP/2 stream and the `UpstreamHandler` in front of it: the exchange speaks HTTP/1.1
/// to the upstream side, so the stream's upstream traffic is translated here, both ways.
///
/// Out: the request head (one buffer, as `ForwardedHeaders` wrote it) becomes a HEADERS frame —
/// pseudo-fields from the request line and Host, names lowercased, connection-specific fields
/// dropped, `te: trailers` for gRPC — held until the next part so that a request without a body is
/// one frame with END_STREAM; body buffers become DATA frames (their write promises complete when
/// NIOHTTP2 has written them, so the client's window is given back only as the Pod's opens), and
/// the end becomes END_STREAM or a trailers block.
///
/// In: the response HEADERS become an HTTP/1.1 head, chunked unless it has a Content-Length and
/// marked `Connection: close` so the stream is never pooled; DATA becomes chunks, and trailers the
/// last chunk's trailer section. A trailers-only gRPC answer (HEADERS with END_STREAM) is split into
/// a head and trailers, the form every gRPC client reads.
final class HTTP2UpstreamFraming: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let scheme: String
    private let grpc: Bool
    private var headSent = false
    private var heldHeaders: HPACKHeaders?
    private var isHead = false
    private var responseStarted = false
    private var responseChunked = true

    init(scheme: String, grpc: Bool) {
        self.scheme = scheme
        self.grpc = grpc
    }

    // MARK: Request

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        guard headSent else {
            headSent = true
            guard let headers = requestHeaders(buffer) else {
                promise?.fail(ChannelError.badInterfaceAddressFamily)
                context.close(promise: nil)
                return
            }
            heldHeaders = headers
            promise?.succeed()
            return
        }
        sendHeldHeaders(context: context)
        context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))), promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        sendHeldHeaders(context: context)
        context.flush()
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let end = event as? UpstreamRequestEnd else { return context.triggerUserOutboundEvent(event, promise: promise) }
        if let headers = heldHeaders {
            heldHeaders = nil
            if let trailers = end.trailers, !trailers.isEmpty {
                context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
            } else {
                context.write(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: promise)
                return
            }
        }
        if let trailers = end.trailers, !trailers.isEmpty {
            var block = HPACKHeaders()
            for (name, value) in trailers where !ForwardedHeaders.isHopByHop(name) { block.add(name: name.lowercased(), value: value) }
            context.write(wrapOutboundOut(.headers(.init(headers: block, endStream: true))), promise: promise)
        } else {
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))), promise: promise)
        }
    }

    private func sendHeldHeaders(context: ChannelHandlerContext) {
        guard let headers = heldHeaders else { return }
        heldHeaders = nil
        context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
    }

    /// The HTTP/1.1 head `ForwardedHeaders` wrote, as an HTTP/2 header block; nil if it is not one.
    func requestHeaders(_ head: ByteBuffer) -> HPACKHeaders? {
        guard let text = head.getString(at: head.readerIndex, length: head.readableBytes) else { return nil }
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: true).makeIterator()
        guard let requestLine = lines.next() else { return nil }
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3 else { return nil }
        isHead = parts[0] == "HEAD"
        var authority = ""
        var fields: [(String, String)] = []
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon].lowercased()
            let value = String(line[line.index(after: colon)...].trimmingWhitespace())
            switch name {
            case "host": authority = value
            case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "http2-settings": continue
            default: fields.append((name, value))
            }
        }
        var headers = HPACKHeaders()
        headers.reserveCapacity(fields.count + 5)
        headers.add(name: ":method", value: String(parts[0]))
        headers.add(name: ":scheme", value: scheme)
        headers.add(name: ":authority", value: authority)
        headers.add(name: ":path", value: String(parts[1]))
        if grpc { headers.add(name: "te", value: "trailers") }
        for (name, value) in fields { headers.add(name: name, value: value) }
        return headers
    }

    // MARK: Response

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let payload):
            if !responseStarted {
                guard let status = payload.headers.first(name: ":status").flatMap(Int.init) else {
                    context.fireErrorCaught(UpstreamResponseError.invalidStatusLine)
                    context.close(promise: nil)
                    return
                }
                if (100..<200).contains(status) {
                    // Interim: relayed as HTTP/1.1 would (the HTTP/2 client side drops it).
                    var buffer = context.channel.allocator.buffer(capacity: 64)
                    writeStatusLine(status, into: &buffer)
                    buffer.writeStaticString("\r\n")
                    context.fireChannelRead(wrapInboundOut(buffer))
                    return
                }
                responseStarted = true
                context.fireChannelRead(wrapInboundOut(responseHead(status, payload.headers, endStream: payload.endStream, context: context)))
            } else {
                // Trailers: the last chunk's trailer section.
                var buffer = context.channel.allocator.buffer(capacity: 128)
                writeLastChunk(payload.headers, into: &buffer)
                context.fireChannelRead(wrapInboundOut(buffer))
            }
        case .data(let payload):
            guard case .byteBuffer(let body) = payload.data else { return }
            var buffer: ByteBuffer
            if responseChunked {
                buffer = context.channel.allocator.buffer(capacity: body.readableBytes + 16)
                if body.readableBytes > 0 {
                    buffer.writeString(String(body.readableBytes, radix: 16))
                    buffer.writeStaticString("\r\n")
                    var body = body
                    buffer.writeBuffer(&body)
                    buffer.writeStaticString("\r\n")
                }
                if payload.endStream { buffer.writeStaticString("0\r\n\r\n") }
            } else {
                buffer = body
            }
            if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
        default:
            break
        }
    }

    /// The response head as HTTP/1.1. With END_STREAM on it: a gRPC trailers-only answer keeps
    /// only its content type in the head and the rest goes to the trailers; any other has no body.
    private func responseHead(_ status: Int, _ headers: HPACKHeaders, endStream: Bool, context: ChannelHandlerContext) -> ByteBuffer {
        var buffer = context.channel.allocator.buffer(capacity: 256)
        writeStatusLine(status, into: &buffer)
        let trailersOnly = endStream && grpc && headers.contains(name: "grpc-status")
        var hasLength = false
        var trailers = HPACKHeaders()
        for (name, value, _) in headers {
            if name.hasPrefix(":") { continue }
            switch name {
            case "connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection": continue
            case "content-length": hasLength = true
            default: break
            }
            if trailersOnly, name != "content-type" {
                trailers.add(name: name, value: value)
                continue
            }
            buffer.writeHTTPField(name, value)
        }
        let bodiless = isHead || status == 204 || status == 304
        if trailersOnly {
            responseChunked = true
            buffer.writeStaticString("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            writeLastChunk(trailers, into: &buffer)
            return buffer
        }
        if endStream, !hasLength, !bodiless {
            buffer.writeStaticString("Content-Length: 0\r\n")
            hasLength = true
        }
        responseChunked = !hasLength && !bodiless
        if responseChunked { buffer.writeStaticString("Transfer-Encoding: chunked\r\n") }
        buffer.writeStaticString("Connection: close\r\n\r\n")
        return buffer
    }

    private func writeStatusLine(_ status: Int, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("HTTP/1.1 ")
        buffer.writeString(String(status))
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(HTTPResponseStatus(statusCode: status).reasonPhrase)
        buffer.writeStaticString("\r\n")
    }

    private func writeLastChunk(_ trailers: HPACKHeaders, into buffer: inout ByteBuffer) {
        guard responseChunked else { return }
        buffer.writeStaticString("0\r\n")
        for (name, value, _) in trailers where !name.hasPrefix(":") { buffer.writeHTTPField(name, value) }
        buffer.writeStaticString("\r\n")
    }
}
