import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// An HTTP/2 client connection's streams, served inline: NIOHTTP2's handler (frames, HPACK, the
/// connection state machine) hands this handler frames, and each stream is an `HTTP2Stream` that is
/// in no pipeline and writes its response as frames through this handler.
///
/// NIO's per-stream child channels cost a channel, a pipeline, two handlers and their contexts per
/// request, and a trip through each for every part; they were most of the worker's HTTP/2 time.
/// What they did besides, this handler does: request heads become `HTTPRequestHead`s (and
/// responses HPACK blocks) in one step, and inbound flow control follows the exchange — a
/// stream's window is topped up only while its upstream takes the body, and the connection's is
/// given back only as upstream sockets take the data.
final class HTTP2ProxyConnection: ChannelDuplexHandler, ServedConnection {
    typealias InboundIn = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// What a stream's exchange starts with.
    private let makeStream: (HTTP2ProxyConnection, HTTP2StreamID) -> HTTP2Stream
    private var streams: [HTTP2StreamID: HTTP2Stream] = [:]
    /// Streams that took request parts in the current read: their upstreams are flushed once, when it completes.
    private var readTouched: [HTTP2Stream] = []
    private var connectionWindow = InboundWindow(target: connectionWindowTarget, current: 65_535)
    /// Request body bytes received on the open streams and not yet taken by their upstreams (or
    /// dropped): the connection's window leaves room for them.
    private var unconsumed = 0
    private var connectionWindowOpened = false
    private var windowCheckScheduled = false
    private var highestStreamID = HTTP2StreamID(0)
    private var draining = false
    private var flushPending = false
    private(set) var context: ChannelHandlerContext!
    /// The last Host field found covered by this connection's certificate (when SNI named another
    /// name, or none): its next streams skip the certificate lookup. The connection keeps the
    /// certificate it was handshaken with, so the answer does not change.
    var coveredHost: String?

    /// The stream window advertised in SETTINGS_INITIAL_WINDOW_SIZE, and kept topped up while the
    /// stream's upstream takes the body. At 64 KiB (the protocol's default) an upload could move
    /// 64 KiB per round trip, 640 KB/s at 100 ms; 1 MiB is Go's and gRPC's size.
    static let streamWindowTarget = 1 << 20
    /// The connection's window. It is given back as upstreams take the data (or it is dropped),
    /// not as frames arrive, so it bounds the request body a connection holds, whatever its
    /// streams' windows add up to; twice a stream's, so one stalled upload leaves room for others.
    static let connectionWindowTarget = 2 << 20

    /// Resets the client caused, its own and the server's.
    private var resets: ResetBudget
    /// NIOHTTP2 wrote a GOAWAY with an error: the error it reports next is a connection error.
    private var connectionErrorSent = false
    private var closing = false

    /// A connection without open streams is closed (GOAWAY) after this long.
    private let idleTimeout: TimeAmount
    /// Since when the connection has had no open stream; nil while it has one.
    private var idleSince: NIODeadline?
    private let counters: CounterBox

    init(
        resets: ResetBudget, idleTimeout: TimeAmount = .seconds(60), counters: CounterBox = CounterBox(),
        makeStream: @escaping (HTTP2ProxyConnection, HTTP2StreamID) -> HTTP2Stream
    ) {
        self.resets = resets
        self.idleTimeout = idleTimeout
        self.counters = counters
        self.makeStream = makeStream
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        idleSince = .now()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closeAllStreams()
        self.context = nil
    }

    var eventLoop: any EventLoop { context.eventLoop }
    var isWritable: Bool { context?.channel.isWritable ?? false }

    // MARK: Frames in

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !connectionWindowOpened {
            // The client's preface is in: the connection's window opens to its size at once, so
            // the first round trip of an upload is not held to 64 KiB.
            connectionWindowOpened = true
            topUpConnectionWindow()
        }
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .headers(let headers):
            if let stream = streams[frame.streamID] {
                // Trailers: they end the stream and carry no pseudo-fields.
                guard headers.endStream, let fields = HTTPSyntax.http2Trailers(headers.headers) else {
                    reset(frame.streamID, .protocolError)
                    return
                }
                stream.receiveEnd(HTTPHeaders(fields))
                touched(stream)
                return
            }
            guard let head = Self.requestHead(headers.headers) else {
                // Malformed: a stream error, not a connection error (RFC 9113 §8.1.1).
                reset(frame.streamID, .protocolError)
                return
            }
            let stream = makeStream(self, frame.streamID)
            streams[frame.streamID] = stream
            idleSince = nil
            if frame.streamID > highestStreamID { highestStreamID = frame.streamID }
            stream.receive(head, bodyFollows: !headers.endStream)
            if headers.endStream { stream.receiveEnd(nil) }
            touched(stream)
        case .data(let payload):
            guard let stream = streams[frame.streamID] else { return }
            if case .byteBuffer(let buffer) = payload.data, buffer.readableBytes > 0 {
                // Held until the stream says its upstream took it (padding is never held).
                unconsumed += buffer.readableBytes
                stream.uncreditedBody += buffer.readableBytes
                stream.receiveBody(buffer)
            }
            if payload.endStream { stream.receiveEnd(nil) }
            touched(stream)
        case .rstStream:
            // The stream itself ends with NIOHTTP2's stream-closed event.
            countReset()
        default:
            // SETTINGS, PING, GOAWAY, WINDOW_UPDATE, PRIORITY: NIOHTTP2's.
            break
        }
    }

    // MARK: Errors and resets

    /// Every frame NIOHTTP2 writes, its own (stream errors, GOAWAY) and this handler's, from
    /// `FrameWatch`.
    func wroteFrame(_ frame: HTTP2Frame) {
        switch frame.payload {
        case .rstStream(let code):
            // A reset the client caused: a malformed request, or a frame that was a stream error.
            // Ours for other reasons (the upstream failed, a body not wanted) are not the client's.
            switch code {
            case .noError, .cancel, .internalError: break
            default: countReset()
            }
        case .goAway(_, let code, _) where code != .noError:
            connectionErrorSent = true
        default:
            break
        }
    }

    private func countReset() {
        guard !closing, resets.record(at: .now()) else { return }
        // Past the limit: the connection goes, and its streams with it. Not from inside
        // NIOHTTP2's write or read path, where this may be called.
        closing = true
        context?.eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in
            write(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: highestStreamID, errorCode: .enhanceYourCalm, opaqueData: nil)))
            closeAfterFlush()
        }
    }

    /// NIOHTTP2 reports a stream error (after resetting that stream, RFC 9113 §5.4.2) and a
    /// connection error (after its GOAWAY) alike. A stream error ends its stream alone: the
    /// connection and its other streams go on. Anything else closes the connection.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !connectionErrorSent, Self.isNIOHTTP2Error(error) { return }
        context.fireErrorCaught(error)
    }

    /// Errors are rare, so the module's name is read from the type only then.
    private static func isNIOHTTP2Error(_ error: any Error) -> Bool {
        String(reflecting: type(of: error)).hasPrefix("NIOHTTP2.")
    }

    private func touched(_ stream: HTTP2Stream) {
        guard !stream.awaitsClientReadComplete else { return }
        stream.awaitsClientReadComplete = true
        readTouched.append(stream)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        for stream in readTouched {
            stream.awaitsClientReadComplete = false
            stream.clientReadComplete()
        }
        readTouched.removeAll(keepingCapacity: true)
        context.fireChannelReadComplete()
    }

    /// NIOHTTP2's stream and window events end here (several per request, the window ones most):
    /// nothing after this handler needs them. The event's type is compared before any cast: each
    /// `as?` that fails walks the runtime's casting machinery, and those were half of this
    /// method's time.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch ObjectIdentifier(type(of: event)) {
        case ObjectIdentifier(NIOHTTP2WindowUpdatedEvent.self):
            let window = event as! NIOHTTP2WindowUpdatedEvent
            guard let size = window.inboundWindowSize else { return }
            if window.streamID == .rootStream {
                connectionWindow.record(size)
                topUpConnectionWindow()
            } else {
                streams[window.streamID]?.inboundWindowChanged(to: size)
            }
        case ObjectIdentifier(StreamClosedEvent.self):
            let closed = event as! StreamClosedEvent
            if let stream = streams.removeValue(forKey: closed.streamID) {
                stream.clientGone()
                release(stream)
                if streams.isEmpty { idleSince = .now() }
            }
            if draining, streams.isEmpty { closeAfterFlush() }
        case ObjectIdentifier(NIOHTTP2StreamCreatedEvent.self):
            break
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        for stream in streams.values { stream.downstreamWritabilityChanged() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeAllStreams()
        context.fireChannelInactive()
    }

    private func closeAllStreams() {
        let open = streams
        streams = [:]
        for stream in open.values {
            stream.clientGone()
            stream.uncreditedBody = 0
        }
        unconsumed = 0
    }

    // MARK: Request head buffers

    /// Upstream request heads of ended streams, kept for the next streams to write theirs into
    /// (a buffer is two mallocs); a few small ones only.
    private var spareHeads: [ByteBuffer] = []

    func takeSpareHead() -> ByteBuffer? { spareHeads.popLast() }

    func keepSpareHead(_ buffer: ByteBuffer) {
        guard spareHeads.count < 16, buffer.capacity <= HeadBuffers.spareLimit else { return }
        spareHeads.append(buffer)
    }

    // MARK: The connection's window

    /// `bytes` of a stream's body left the worker (its upstream took them) or were dropped.
    func consumed(_ bytes: Int) {
        unconsumed -= bytes
        topUpConnectionWindow()
    }

    /// A stream ended: what it still held is given back (its upstream, if any, is closed or done).
    private func release(_ stream: HTTP2Stream) {
        let held = stream.uncreditedBody
        stream.uncreditedBody = 0
        if held > 0 { consumed(held) }
    }

    /// The update goes out at the end of the tick, when NIOHTTP2 has delivered all its events:
    /// it reports windows in events it queued earlier, so one delivered right after an update
    /// went out can still show the window without it, and acting on it would give twice.
    private func topUpConnectionWindow() {
        guard connectionWindowOpened, !windowCheckScheduled, connectionWindow.due(holding: unconsumed) != nil, let context else { return }
        windowCheckScheduled = true
        context.eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in
            windowCheckScheduled = false
            guard let increment = connectionWindow.topUp(holding: unconsumed) else { return }
            write(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: increment)))
            flush()
        }
    }

    // MARK: Frames out

    func write(_ frame: HTTP2Frame, promise: EventLoopPromise<Void>? = nil) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    /// Once per event-loop tick: streams answered by different upstream reads in one batch of
    /// events leave together, and NIOHTTP2 runs its flush (and the TLS handler its encryption) once.
    func flush() {
        guard !flushPending, let context else { return }
        flushPending = true
        context.eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in
            flushPending = false
            self.context?.flush()
        }
    }

    /// Ends a stream early: RST_STREAM with `code`.
    func reset(_ id: HTTP2StreamID, _ code: HTTP2ErrorCode) {
        write(HTTP2Frame(streamID: id, payload: .rstStream(code)))
        flush()
    }

    /// The loop's sweep: each stream's deadlines (request body, upstream read), and the
    /// connection's idle one: without a stream for `idleTimeout`, GOAWAY and the close.
    func sweep(now: NIODeadline) {
        for stream in streams.values { stream.sweep(now: now) }
        guard !draining, !closing, streams.isEmpty, let since = idleSince, now - since >= idleTimeout, context != nil else { return }
        counters.timedOut(.idle)
        closing = true
        write(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: highestStreamID, errorCode: .noError, opaqueData: nil)))
        closeAfterFlush()
    }

    /// Graceful drain: GOAWAY naming the last stream taken, so the client sends no new ones here; the
    /// connection closes once the open streams end (or at the worker's drain deadline).
    func beginDrain() {
        guard !draining, context != nil else { return }
        draining = true
        write(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: highestStreamID, errorCode: .noError, opaqueData: nil)))
        flush()
        if streams.isEmpty { closeAfterFlush() }
    }

    /// The last stream can end inside a write, before its frames are flushed: they go first.
    private func closeAfterFlush() {
        guard let context else { return }
        context.eventLoop.assumeIsolatedUnsafeUnchecked().execute { [self] in
            self.context?.flush()
            self.context?.close(promise: nil)
        }
    }

    // MARK: Conversion

    /// An HTTP/1.1 request head from a request's HPACK block, or nil when the block is malformed
    /// (RFC 9113 §8.2, §8.3). NIOHTTP2's own checks are off (they were 7% of the worker's HTTP/2
    /// time, and checked our responses too, which the upstream parser has already checked); these
    /// are made in the same pass that converts:
    /// - pseudo-fields first, each at most once, only `:method`, `:scheme`, `:path`, `:authority`;
    ///   `:method` a token; no pseudo-field value with a control character or space;
    /// - `:scheme` and `:path` present, except on CONNECT, which has `:authority` and neither;
    /// - field names lowercase tokens, no value with NUL, CR or LF, no connection-specific field.
    ///
    /// - `:path` origin-form (or `*` for OPTIONS); a Host field beside `:authority` names the same.
    ///
    /// `:authority` becomes Host, and `cookie` crumbs are joined
    /// into one field (§8.2.3).
    static func requestHead(_ block: HPACKHeaders) -> HTTPRequestHead? {
        var method: String?
        var scheme: String?
        var path: String?
        var authority: String?
        var sawRegularField = false
        var headers = HTTPHeaders()
        headers.reserveCapacity(block.count + 1)
        var cookies: [String] = []
        for (name, value, _) in block {
            if name.utf8.first == UInt8(ascii: ":") {
                guard !sawRegularField, HTTPSyntax.isPseudoFieldValue(value) else { return nil }
                switch name {
                case ":method" where method == nil: method = value
                case ":scheme" where scheme == nil: scheme = value
                case ":path" where path == nil: path = value
                case ":authority" where authority == nil:
                    authority = value
                    headers.add(name: "host", value: value)
                default: return nil
                }
                continue
            }
            sawRegularField = true
            guard HTTPSyntax.isHTTP2FieldName(name), HTTPSyntax.isFieldValue(value), !HTTPSyntax.isConnectionSpecific(name, value: value)
            else { return nil }
            switch name.utf8.count {
            case 4 where authority != nil && name == "host":
                // Both: they must name the same authority (RFC 9113 §8.3.1), else which one an
                // upstream reads decides where the request goes.
                guard let authority, value.utf8.count == authority.utf8.count, value.lowercased() == authority.lowercased() else { return nil }
                continue
            case 6 where name == "cookie":
                cookies.append(value)
                continue
            default: headers.add(name: name, value: value)
            }
        }
        if !cookies.isEmpty { headers.add(name: "cookie", value: cookies.joined(separator: "; ")) }
        guard let method, method.utf8.allSatisfy(HTTPSyntax.isTokenCharacter) else { return nil }
        let uri: String
        if method == "CONNECT" {
            // RequestRouter answers it; the target is the authority.
            guard let authority, scheme == nil, path == nil else { return nil }
            uri = authority
        } else {
            // Origin-form only, or `*` for OPTIONS (RFC 9113 §8.3.1): an absolute URI or anything
            // else in `:path` is malformed.
            guard scheme != nil, let path, path.utf8.first == UInt8(ascii: "/") || path == "*" && method == "OPTIONS" else { return nil }
            uri = path
        }
        return HTTPRequestHead(version: HTTPVersion(major: 2, minor: 0), method: HTTPMethod(rawValue: method), uri: uri, headers: headers)
    }
}

/// An inbound flow-control window kept near its target: once the room the window can be given
/// is half the target or more, one WINDOW_UPDATE gives it. No I/O.
///
/// `holding` is what was received and not yet taken by the upstream: the connection's window
/// counts it, so that window (not the streams' larger sum) bounds what a connection holds.
struct InboundWindow {
    let target: Int
    /// The window as last reported, after any increment this returned.
    private(set) var current: Int?

    /// `current` is the window before the first report: the protocol's 65,535 for the
    /// connection's, which no setting changes.
    init(target: Int, current: Int? = nil) {
        self.target = target
        self.current = current
    }

    /// The window is now `size` (from NIOHTTP2's `NIOHTTP2WindowUpdatedEvent`).
    mutating func record(_ size: Int) {
        current = size
    }

    /// The WINDOW_UPDATE increment due on the window as last recorded, if any; the window counts
    /// as topped up from then on.
    mutating func topUp(holding: Int = 0) -> Int? {
        guard let size = current, let increment = due(holding: holding) else { return nil }
        current = size + increment
        return increment
    }

    /// The increment `topUp` would give now.
    func due(holding: Int = 0) -> Int? {
        guard let size = current else { return nil }
        let room = target - holding - size
        guard room > 0 else { return nil }
        if size >= 0 { return room >= target / 2 ? room : nil }
        // A smaller SETTINGS_INITIAL_WINDOW_SIZE left the window below zero.
        return min(room, Int(Int32.max))
    }
}

/// On the plain port: a connection that opens with HTTP/2's preface (prior knowledge, RFC 9113
/// §3.3, what gRPC clients do without TLS) is configured for HTTP/2, any other for HTTP/1.1. Decides
/// on the first bytes, then leaves the pipeline and hands them on. Until then it is the loop's open
/// connection: one that sends nothing within the request-head timeout is closed by the sweep, and a
/// drain closes it.
final class PlainProtocolDetector: ChannelInboundHandler, RemovableChannelHandler, ServedConnection {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private var buffered: ByteBuffer?
    private let configure: (_ http2: Bool) throws -> Void
    private let deadline: NIODeadline
    private weak var channel: (any Channel)?

    init(headTimeout: TimeAmount, configure: @escaping (_ http2: Bool) throws -> Void) {
        self.configure = configure
        deadline = .now() + headTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) { channel = context.channel }

    func beginDrain() {
        if !decided { channel?.close(promise: nil) }
    }

    func sweep(now: NIODeadline) {
        if !decided, now >= deadline { channel?.close(promise: nil) }
    }

    private var decided = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !decided else { return context.fireChannelRead(data) }
        var bytes = unwrapInboundIn(data)
        if var earlier = buffered.take() {
            earlier.writeBuffer(&bytes)
            bytes = earlier
        }
        let compared = min(bytes.readableBytes, Self.preface.count)
        let matches = bytes.withUnsafeReadableBytes { raw in raw.prefix(compared).elementsEqual(Self.preface.prefix(compared)) }
        if matches, compared < Self.preface.count {
            // Too short to tell yet.
            buffered = bytes
            return
        }
        decided = true
        do {
            try configure(matches)
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        context.fireChannelInactive()
    }
}
