#if canImport(Glibc)
import CPorticoNative
import Glibc
import NIOCore
import RouteModel

/// One upstream connection of the native engine: connects without blocking, sends what its
/// client writes into `output`, and parses the responses with the SwiftNIO engine's upstream head
/// parser (`UpstreamResponseParser.parse`), relaying them into the client's output. It reads
/// while the client's output has room, and resumes when the client says so.
final class NativeUpstream: NativeSocketOwner {
    let endpoint: Endpoint
    private unowned(unsafe) let engine: NativeEngine
    /// The exchange this connection serves; nil while pooled.
    var client: NativeClient?
    var input = NativeBuffer(capacity: 32 << 10)
    var output = NativeBuffer(capacity: 32 << 10)
    private(set) var isConnecting = true
    private var readable = false
    private var requestIsHead = false
    private var scanned = 0
    private var fields: [UpstreamResponseHead.Field] = []
    /// Handed to the head parser, which keeps it in the head it returns: one per connection.
    private let emptyBytes = ByteBuffer()

    private enum Body {
        /// Waiting for a response head.
        case head
        case length(remaining: Int, relayChunked: Bool)
        case chunked(HTTP1BodyDecoder, relayChunked: Bool)
        case untilClose(relayChunked: Bool)
    }
    private var body = Body.head
    private var trailers: [HTTP1FieldSpan] = []

    init(fd: Int32, endpoint: Endpoint, engine: NativeEngine) {
        self.endpoint = endpoint
        self.engine = engine
        super.init(fd: fd)
    }

    deinit {
        input.free()
        output.free()
    }

    override func handle(_ events: UInt32) {
        if isConnecting {
            guard events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 else { return }
            isConnecting = false
            guard NativeSocket.connectSucceeded(fd), let client else {
                if let client { client.upstreamConnectFailed(self) } else { engine.close(self) }
                return
            }
            client.upstreamConnected(self)
            return
        }
        if events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
            lost("upstream closed the connection")
            return
        }
        if events & EPOLLOUT.rawValue != 0 {
            let wasFull = output.room < 64
            flush()
            if wasFull, output.room >= 64, let client { client.upstreamDrained() }
        }
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 {
            readable = true
            readAvailable()
        }
    }

    /// The request head goes out next; its response is parsed knowing whether it was HEAD.
    func requestSent(isHead: Bool) {
        requestIsHead = isHead
        body = .head
        scanned = 0
    }

    func writeBody(_ bytes: UnsafeRawBufferPointer, chunked: Bool) {
        output.append(body: bytes, chunked: chunked)
    }

    func flush() {
        guard !isConnecting, !isClosed else { return }
        if !output.write(to: fd) { lost("upstream closed the connection") }
    }

    /// The client's output has room again.
    func resume() {
        guard !resuming, !isClosed, let client else { return }
        resuming = true
        defer { resuming = false }
        if !input.isEmpty {
            relay()
            client.flush()
        }
        if readable { readAvailable() }
    }

    private var resuming = false

    private func readAvailable() {
        while readable, !isClosed {
            guard let client else {
                // Pooled: an idle connection that becomes readable was closed by the upstream (or
                // sent bytes nobody asked for).
                engine.forget(self)
                return
            }
            if !input.isEmpty {
                relay()
                // What one read relayed goes out in one write.
                client.flush()
                // The response ended and the connection went back to the pool (or was lost): an
                // idle connection is read again only when the upstream sends or closes.
                if self.client == nil { return }
                // Bytes the client has no room for yet: it resumes this connection when it has.
                if input.room == 0 || client.relayRoom < 64 { return }
            }
            let n = input.read(from: fd)
            if n > 0 {
                if input.lastReadWasShort { readable = false }
                if readable { continue }
                // The last read of this event: relay it.
                relay()
                self.client?.flush()
                return
            }
            if n == 0 {
                ended()
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                readable = false
            } else {
                lost("upstream closed the connection")
            }
            return
        }
    }

    /// Parses and relays what the input holds, as far as the client's output has room.
    private func relay() {
        while let client, !isClosed, !input.isEmpty {
            switch body {
            case .head:
                guard parseHead(client) else { return }
            case .length(let remaining, let chunked):
                let take = min(remaining, input.count, client.relayRoom - 24)
                guard take > 0 else { return }
                client.responseBody(UnsafeRawBufferPointer(rebasing: input.readable[0..<take]), chunked: chunked)
                input.consume(take)
                // Consumed first: a connection with nothing left over goes back to the pool.
                if take == remaining {
                    body = .head
                    client.responseEnd(chunked: false)
                } else {
                    body = .length(remaining: remaining - take, relayChunked: chunked)
                }
            case .chunked(var decoder, let chunked):
                let room = min(input.count, client.relayRoom - 24)
                guard room > 0 else { return }
                let step: HTTP1BodyDecoder.Step
                do {
                    step = try decoder.next(UnsafeRawBufferPointer(rebasing: input.readable[0..<room]), trailers: &trailers)
                } catch {
                    lost("invalid response from upstream")
                    return
                }
                body = .chunked(decoder, relayChunked: chunked)
                switch step {
                case .data(let range):
                    client.responseBody(UnsafeRawBufferPointer(rebasing: input.readable[range]), chunked: chunked)
                    input.consume(range.upperBound)
                case .needMore(let consumed):
                    input.consume(consumed)
                    if consumed == 0 { return }
                case .end(let consumed):
                    input.consume(consumed)
                    trailers.removeAll(keepingCapacity: true)
                    body = .head
                    client.responseEnd(chunked: chunked)
                }
            case .untilClose(let chunked):
                let take = min(input.count, client.relayRoom - 24)
                guard take > 0 else { return }
                client.responseBody(UnsafeRawBufferPointer(rebasing: input.readable[0..<take]), chunked: chunked)
                input.consume(take)
            }
        }
    }

    /// A response head, if the input holds one whole: relayed, and the body's reading set up.
    private func parseHead(_ client: NativeClient) -> Bool {
        let head: UpstreamResponseHead
        do {
            guard let end = try UpstreamResponseParser.headEnd(input.readable, from: &scanned, limit: input.capacity - 1024) else { return false }
            fields.removeAll(keepingCapacity: true)
            head = try UpstreamResponseParser.parse(
                UnsafeRawBufferPointer(rebasing: input.readable[0..<end]), bytes: emptyBytes, requestIsHead: requestIsHead, maxFields: 100,
                fields: &fields)
            scanned = 0
            guard let framing = client.responseHead(head, bytes: UnsafeRawBufferPointer(rebasing: input.readable[0..<end])) else {
                input.consume(end)
                return !isClosed
            }
            input.consume(end)
            if head.status < 200 { return true }  // interim: the final head follows
            switch head.framing {
            case .none:
                client.responseEnd(chunked: framing.chunked)
            case .contentLength(let length):
                if length == 0 {
                    client.responseEnd(chunked: false)
                } else {
                    body = .length(remaining: length, relayChunked: false)
                }
            case .chunked:
                body = .chunked(HTTP1BodyDecoder(chunkedWithTrailerLimits: 16 << 10, fields: 100), relayChunked: framing.chunked)
            case .untilClose:
                body = .untilClose(relayChunked: framing.chunked)
            }
            return true
        } catch {
            lost("invalid response from upstream")
            return false
        }
    }

    /// The upstream closed its side: the end of a body delimited by the close, else a loss.
    private func ended() {
        if case .untilClose(let chunked) = body, let client {
            body = .head
            client.responseEnd(chunked: chunked)
            engine.close(self)
            return
        }
        lost("upstream closed the connection")
    }

    private func lost(_ reason: String) {
        guard let client else {
            engine.forget(self)
            return
        }
        self.client = nil
        client.upstreamLost(self, reason: reason)
    }
}
#endif
