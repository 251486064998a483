import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import RouteModel

/// One HTTP/2 stream as the client side of an exchange: `HTTP2ProxyConnection` hands it the
/// stream's request parts, its `ExchangeRunner` carries the exchange, and its response goes out as
/// HEADERS and DATA frames through the connection. Backpressure is flow control: the stream's
/// window is topped up only while the upstream takes the body, and the connection's is given back
/// only as the upstream's socket takes each part.
final class HTTP2Stream: Downstream {
    let connection: HTTP2ProxyConnection
    let id: HTTP2StreamID
    /// Until the stream closes: the runner holds this stream too.
    private var runner: ExchangeRunner?
    private let tlsServerName: String??
    private let certificates: CertificateStore?
    let clientAddress: String?

    /// Set by the connection while this stream's upstream waits for the client read to complete.
    var awaitsClientReadComplete = false
    /// Request body bytes the connection counted against its window for this stream that the
    /// upstream has not taken yet (its socket has not) and that were not dropped.
    var uncreditedBody = 0
    private var requestComplete = false
    private var holdsReads = false
    /// The stream's inbound window, topped up while the upstream takes the request body.
    private var streamWindow = InboundWindow(target: HTTP2ProxyConnection.streamWindowTarget)
    /// The response's HEADERS and latest DATA, held until more follows or the upstream read ends,
    /// so that the last frame carries END_STREAM.
    private var heldHeaders: HPACKHeaders?
    private var heldData: ByteBuffer?
    /// Bytes of DATA frames written and not yet sent (waiting for the peer's window or the socket).
    private var unsentData = 0
    /// Above this many unsent bytes the upstream is not read; below half of it, again.
    private static let unsentDataLimit = 64 << 10

    init(connection: HTTP2ProxyConnection, id: HTTP2StreamID, services: ExchangeServices, settings: ProxySettings) {
        self.connection = connection
        self.id = id
        self.tlsServerName = settings.tlsServerName
        self.certificates = settings.certificates
        self.clientAddress = settings.connectionClientAddress
        runner = ExchangeRunner(carrier: .stream, downstream: self, services: services, settings: settings)
    }

    // MARK: From the connection

    func receive(_ head: HTTPRequestHead, bodyFollows: Bool) { runner?.receive(head, bodyFollows: bodyFollows) }

    func receiveBody(_ body: ByteBuffer) { runner?.receiveBody(body) }

    func receiveEnd(_ trailers: HTTPHeaders?) {
        requestComplete = true
        runner?.receiveEnd(trailers)
    }

    func clientReadComplete() { runner?.clientReadComplete() }

    /// The stream closed: reset, or both sides ended.
    func clientGone() {
        runner?.clientGone()
        runner = nil
    }

    func sweep(now: NIODeadline) { runner?.sweep(now: now) }

    func downstreamWritabilityChanged() { runner?.downstreamWritabilityChanged() }

    /// The stream's inbound window changed (DATA arrived, or an update went out). Recorded while
    /// reads are held too: the update goes out when the hold ends.
    func inboundWindowChanged(to size: Int) {
        streamWindow.record(size)
        topUpStreamWindow()
    }

    /// Whether a Host field names the connection's SNI name (lowercase), with or without a port:
    /// the usual case, which needs no certificate lookup.
    static func names(_ field: String, _ serverName: String?) -> Bool {
        guard let serverName else { return false }
        var expected = serverName.utf8.makeIterator()
        var seen = field.utf8.makeIterator()
        while let byte = seen.next() {
            guard let want = expected.next() else { return byte == UInt8(ascii: ":") }
            if HTTPSyntax.lowercase(byte) != want { return false }
        }
        return expected.next() == nil
    }

    // MARK: Downstream

    var eventLoop: any EventLoop { connection.eventLoop }
    var isWritable: Bool { connection.isWritable && unsentData < Self.unsentDataLimit }

    /// A client reusing this connection for another host (HTTP/2 coalescing) must not get an
    /// answer under the wrong certificate (RFC 9110 §15.5.20).
    func misdirectedHost(_ authority: String) -> String? {
        guard let serverName = tlsServerName, let certificates, authority != connection.coveredHost, !Self.names(authority, serverName) else {
            return nil
        }
        let host = HTTPSyntax.hostWithoutPort(authority).lowercased()
        guard certificates.current.sameCertificate(for: serverName, as: host) else { return host }
        connection.coveredHost = authority
        return nil
    }

    func takeSpareHead() -> ByteBuffer? { connection.takeSpareHead() }

    func keepSpareHead(_ buffer: ByteBuffer) { connection.keepSpareHead(buffer) }

    /// Holding reads means withholding the stream's window.
    func holdReads(_ hold: Bool) {
        holdsReads = hold
        topUpStreamWindow()
    }

    /// Sends the stream's window update, if one is due and the exchange takes more body now.
    private func topUpStreamWindow() {
        guard !holdsReads, !requestComplete, let increment = streamWindow.topUp() else { return }
        connection.write(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: increment)))
        connection.flush()
    }

    /// A body part's write completes when the upstream's socket has taken it (or the upstream is
    /// gone); then its bytes go back to the connection's window.
    func bodyWritePromise(bytes: Int) -> EventLoopPromise<Void>? {
        let promise = connection.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { [self] _ in bodyTaken(bytes) }
        return promise
    }

    func bodyDropped() { bodyTaken(uncreditedBody) }

    /// `bytes` of the request body left this stream's hands.
    private func bodyTaken(_ bytes: Int) {
        let taken = min(bytes, uncreditedBody)
        guard taken > 0 else { return }
        uncreditedBody -= taken
        connection.consumed(taken)
    }

    func writeAnswer(_ answer: ProxyExchange.Answer, close: Bool, isHead: Bool) {
        heldHeaders = nil
        heldData = nil
        if let status = answer.grpcStatus {
            // Trailers-only (gRPC over HTTP/2): the status is in the one HEADERS frame.
            var headers = HPACKHeaders()
            headers.add(name: ":status", value: "200")
            headers.add(name: "content-type", value: "application/grpc")
            headers.add(name: "grpc-status", value: String(status))
            headers.add(name: "grpc-message", value: Self.grpcMessage(answer))
            connection.write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers, endStream: true))))
            connection.flush()
            bodyTaken(uncreditedBody)
            return
        }
        var extra = HTTPHeaders()
        if let location = answer.location { extra.add(name: "Location", value: location) }
        let headers = LocalResponse.http2Headers(answer.status, bodyLength: answer.text.utf8.count, extra: extra)
        let body = answer.text.isEmpty || isHead ? nil : ByteBuffer(string: answer.text)
        connection.write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers, endStream: body == nil))))
        if let body { connection.write(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(body), endStream: true)))) }
        connection.flush()
        // The request body is not going anywhere now.
        bodyTaken(uncreditedBody)
    }

    /// The answer's text, percent-encoded as grpc-message must be (only printable ASCII but `%` as is).
    static func grpcMessage(_ answer: ProxyExchange.Answer) -> String {
        var text = Substring(answer.text)
        while text.last == "\n" || text.last == "\r" { text.removeLast() }
        text = text.trimmingWhitespace()
        if text.isEmpty { text = Substring(answer.status.reasonPhrase) }
        var message = ""
        for byte in text.utf8 {
            if byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "%") {
                message.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                message += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return message
    }

    /// Interim responses are not relayed on HTTP/2.
    func writeInterim(_ head: UpstreamResponseHead) {}

    func startResponse(_ head: UpstreamResponseHead, framing: ProxyExchange.Framing, hsts: HSTSPolicy?, edits: HeaderEdits?) {
        heldHeaders = head.http2Headers(hsts: hsts, edits: edits)
    }

    func relayBody(_ body: ByteBuffer) {
        sendHeldFrames()
        heldData = body
    }

    func flushResponse() {
        sendHeldFrames()
        connection.flush()
    }

    /// Writes the held HEADERS and DATA without ending the stream: more of the response follows.
    private func sendHeldFrames() {
        if let headers = heldHeaders {
            heldHeaders = nil
            connection.write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers))))
        }
        guard let data = heldData else { return }
        heldData = nil
        // Counted until NIOHTTP2 sends it (the peer's window allowing) and the socket takes it.
        let size = data.readableBytes
        unsentData += size
        let promise = connection.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { [self] _ in
            let wasFull = unsentData >= Self.unsentDataLimit
            unsentData -= size
            if wasFull || unsentData < Self.unsentDataLimit / 2 { runner?.downstreamWritabilityChanged() }
        }
        connection.write(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(data)))), promise: promise)
    }

    /// The response's last frames: whatever is held, the last of them with END_STREAM, and
    /// trailers as a final HEADERS block.
    func endResponse(trailers: HTTPHeaders?) {
        let trailerBlock = trailers.map { HPACKHeaders(httpHeaders: $0, normalizeHTTPHeaders: true) }
        var ended = false
        if let headers = heldHeaders {
            heldHeaders = nil
            ended = heldData == nil && trailerBlock == nil
            connection.write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers, endStream: ended))))
        }
        if let data = heldData {
            heldData = nil
            ended = trailerBlock == nil
            connection.write(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(data), endStream: ended))))
        }
        if let trailerBlock {
            connection.write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: trailerBlock, endStream: true))))
            ended = true
        }
        if !ended {
            connection.write(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))))
        }
        connection.flush()
    }

    /// The stream ended with its response; the connection goes on.
    func exchangeFinished(_ next: ProxyExchange.Next) {}

    func cut() { connection.reset(id, .internalError) }

    /// The response ended the stream on this side; RST_STREAM NO_ERROR asks the client to stop
    /// sending the body (RFC 9113 §8.1).
    func lingeringClose() { connection.reset(id, .noError) }

    func close() { connection.reset(id, .internalError) }

    /// HTTP/2 requests cannot ask to switch protocols (`Upgrade` is connection-specific, and refused).
    func joinTunnel(_ connection: UpstreamPool.Connection, switching head: UpstreamResponseHead) -> Bool { false }

    func switchingCutShort(_ head: UpstreamResponseHead, rest: ByteBuffer?) { cut() }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
