#if canImport(Glibc)
import CPorticoNative
import Glibc
import NIOCore
import NIOHTTP1
import RouteModel

/// One client connection of the native engine: reads until EAGAIN into its input buffer, parses
/// each request head in place, routes it, and drives its `ProxyExchange` with the upstream
/// connection (`NativeUpstream`) it takes from the pool or opens. Backpressure both ways: request
/// body bytes stay in the input buffer (and the socket is not read) while the upstream's output is
/// full or it is connecting; the upstream is not read while this connection's output is full.
final class NativeClient: NativeSocketOwner {
    private unowned(unsafe) let engine: NativeEngine
    private var input: NativeBuffer
    private(set) var output: NativeBuffer
    private var parser: HTTP1RequestParser
    private var fields: [HTTP1FieldSpan] = []
    private var trailers: [HTTP1FieldSpan] = []
    /// Connection-field tokens of the current head and previous X-Forwarded-For values.
    private var connectionTokens: [Range<Int>] = []
    private var forwardedFor: [Range<Int>] = []
    private var exchange: ProxyExchange
    private var body: HTTP1BodyDecoder?
    private var upstream: NativeUpstream?
    private var upstreamChunked = false
    private var cluster: Cluster?
    private var tried: [Endpoint] = []
    private var readable = false
    /// Inside `process` or `readAvailable`: what finishes an exchange there lets their loops go
    /// on instead of starting them again (the fields of the head being served must stay as they are).
    private var processing = false
    private var reading = false
    /// The connection closes once its output is written.
    private var closeAfterOutput = false
    private lazy var clientAddress: String? = NativeSocket.peerAddress(fd)

    private enum Stage {
        /// Waiting for (or parsing) a request head.
        case head
        /// The request's body is being read.
        case body
        /// The request was read whole; its response is under way.
        case complete
    }
    private var stage = Stage.head

    init(fd: Int32, engine: NativeEngine) {
        self.engine = engine
        let settings = engine.settings
        input = NativeBuffer(capacity: max(settings.maxRequestHeaderBytes + 1024, 16 << 10))
        output = NativeBuffer(capacity: 64 << 10)
        parser = HTTP1RequestParser(maxHeadBytes: settings.maxRequestHeaderBytes, maxFields: settings.maxRequestHeaderFields)
        exchange = ProxyExchange(carrier: .connection, limits: ProxyExchange.Limits(maxConnectAttempts: settings.maxConnectAttempts))
        fields.reserveCapacity(32)
        super.init(fd: fd)
    }

    deinit {
        input.free()
        output.free()
    }

    override func handle(_ events: UInt32) {
        if events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
            shutDown()
            return
        }
        if events & EPOLLOUT.rawValue != 0 { flush() }
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 {
            readable = true
            readAvailable()
        }
    }

    /// Whether the exchange takes no more bytes from the client now.
    private var holdsReads: Bool {
        if closeAfterOutput { return false }  // what still comes is drained
        if exchange.holdsClientReads || stage == .complete { return true }
        return stage == .body && exchange.phase == .forwarding && upstream.map { $0.output.room < 64 } ?? false
    }

    private func readAvailable() {
        guard !reading else { return }
        reading = true
        defer { reading = false }
        while !isClosed {
            // What the input holds first: serving it may make room (or need none).
            if !input.isEmpty, !closeAfterOutput { process() }
            // A head or chunk line that does not fit has been refused by now; a body waits for
            // the upstream to take what the input holds.
            guard readable, !isClosed, !holdsReads, input.room > 0 else { return }
            let n = input.read(from: fd)
            if n > 0 {
                if input.lastReadWasShort { readable = false }
                // After a refusal, what the client still sends is drained.
                if closeAfterOutput { input.clear() }
                continue
            }
            if n == 0 || !(errno == EAGAIN || errno == EWOULDBLOCK) {
                clientGone()
            } else {
                readable = false
            }
            return
        }
    }

    /// Serves what the input holds: heads, then bodies, one exchange at a time.
    private func process() {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        serve: while !isClosed, !closeAfterOutput {
            switch stage {
            case .head:
                guard exchange.isIdle, !input.isEmpty else { break serve }
                let outcome: HTTP1RequestParser.Outcome
                do {
                    outcome = try parser.parseHead(input.readable, fields: &fields)
                } catch {
                    refuse(error)
                    break serve
                }
                guard case .complete(let line, let length) = outcome else { break serve }
                // The head's bytes stay where they are (nothing reads into the input meanwhile);
                // what follows it is the body, or the next request.
                let bytes = input.readable
                input.consume(length)
                head(line, bytes: bytes)
            case .body:
                guard forwardBody() else { break serve }
            case .complete:
                break serve
            }
        }
        flush()
        upstream?.flush()
    }

    private func refuse(_ refusal: RequestFacts.Refusal) {
        exchange.requestHead(keepAlive: false, isHTTP10: false, isHead: false, upgrade: false, now: engine.now)
        perform(exchange.route(.refused(refusal.status, reason: refusal.reason), bodyFollows: nil, now: engine.now))
    }

    // MARK: The request

    private func head(_ line: HTTP1RequestLine, bytes: UnsafeRawBufferPointer) {
        var facts = RequestFacts.Fields()
        var close = false
        var keepAlive = false
        var upgradeToken = false
        var upgradeField = false
        connectionTokens.removeAll(keepingCapacity: true)
        forwardedFor.removeAll(keepingCapacity: true)
        for field in fields {
            switch field.name.count {
            case 4 where Self.named(bytes, field.name, "host"): facts.host(Self.string(bytes, field.value))
            case 7 where Self.named(bytes, field.name, "upgrade"): upgradeField = true
            case 10 where Self.named(bytes, field.name, "connection"):
                Self.tokens(bytes, field.value) { token in
                    if Self.named(bytes, token, "close") {
                        close = true
                    } else if Self.named(bytes, token, "keep-alive") {
                        keepAlive = true
                    } else {
                        if Self.named(bytes, token, "upgrade") { upgradeToken = true }
                        connectionTokens.append(token)
                    }
                }
            case 14 where Self.named(bytes, field.name, "content-length"): facts.contentLength(Self.string(bytes, field.value))
            case 15 where Self.named(bytes, field.name, "x-forwarded-for"): forwardedFor.append(field.value)
            case 17 where Self.named(bytes, field.name, "transfer-encoding"): facts.transferEncoding(Self.string(bytes, field.value))
            default: break
            }
        }
        let isHTTP10 = line.minorVersion == 0
        let isHead = Self.named(bytes, line.method, "HEAD", exact: true)
        let now = engine.now
        exchange.requestHead(keepAlive: isHTTP10 ? keepAlive && !close : !close, isHTTP10: isHTTP10, isHead: isHead, upgrade: false, now: now)
        if upgradeField && upgradeToken {
            stage = .body
            body = nil
            return perform(exchange.route(.refused(.notImplemented, reason: "the native engine does not switch protocols"), bodyFollows: nil, now: now))
        }
        let target = Self.string(bytes, line.target)
        let isOptions = Self.named(bytes, line.method, "OPTIONS", exact: true)
        let inspected = facts.facts(target: target, isOptions: isOptions, version: isHTTP10 ? .http1_0 : .http1_1)
        guard case .success(let request) = inspected else {
            if case .failure(let refusal) = inspected { refuse(refusal) }
            return
        }
        let decision = engine.table.decide(request, isTLS: false, httpsPort: engine.settings.httpsPort, serverPort: engine.port)
        // The route's parts, read out once.
        var forward: (cluster: Cluster, target: String, limit: Int64?, options: RouteOptions)?
        if case .forward(let cluster, let backend, let target, _) = decision {
            guard backend.options.upstreamProtocol == .http else {
                // TLS and HTTP/2 to Pods are the NIO engine's.
                stage = .body
                body = nil
                return perform(
                    exchange.route(
                        .refused(.badGateway, reason: "the native engine speaks only HTTP to Pods (backend-protocol \(backend.options.upstreamProtocol.rawValue))"),
                        bodyFollows: nil, now: now))
            }
            forward = (cluster, target, backend.options.maxRequestBodyBytes, backend.options)
        }
        switch request.body {
        case .none: body = nil
        case .length(let length): body = HTTP1BodyDecoder(length: length)
        case .chunked: body = HTTP1BodyDecoder(chunkedWithTrailerLimits: 16 << 10, fields: 100)
        }
        stage = body == nil ? .complete : .body
        let action = exchange.route(.routed(decision, body: request.body, bodyLimit: forward?.limit), bodyFollows: nil, now: now)
        guard case .prepareUpstream = action, let (cluster, routedTarget, _, options) = forward else {
            perform(action)
            if body == nil { perform(exchange.requestEnd()) }
            return
        }
        self.cluster = cluster
        tried.removeAll(keepingCapacity: true)
        upstreamChunked = request.body == .chunked
        guard let upstream = takeUpstream(cluster) else { return }
        writeUpstreamHead(
            line, bytes: bytes, authority: request.authority, upstreamHost: options.upstreamHost, forwardedPrefix: options.forwardedPrefix,
            target: routedTarget, body: request.body, into: upstream)
        if !upstream.isConnecting { perform(exchange.connected(now: now)) }
        if body == nil { perform(exchange.requestEnd()) }
    }

    /// An idle pooled connection, or a new one; on failure the exchange decides (retry or answer).
    private func takeUpstream(_ cluster: Cluster) -> NativeUpstream? {
        while let endpoint = engine.balancer.pick(cluster, skipping: tried) {
            if let idle = engine.takeIdle(endpoint) ?? engine.connect(endpoint) {
                idle.client = self
                upstream = idle
                return idle
            }
            tried.append(endpoint)
            let action = exchange.connectFailed(.refused, endpoints: cluster.endpoints.count)
            guard case .retry = action else {
                perform(action)
                return nil
            }
        }
        perform(exchange.noEndpoint())
        return nil
    }

    /// The upstream request head: the request line with the routed target, Host, the client's
    /// fields but hop-by-hop ones (and those Connection names), framing and forwarding fields,
    /// which are the proxy's own.
    private func writeUpstreamHead(
        _ line: HTTP1RequestLine, bytes: UnsafeRawBufferPointer, authority: String, upstreamHost: String?, forwardedPrefix: String?,
        target: String, body: RequestFacts.Body, into upstream: NativeUpstream
    ) {
        var out = upstream.output
        defer { upstream.output = out }
        out.append(UnsafeRawBufferPointer(rebasing: bytes[line.method]))
        out.append(byte: .space)
        out.append(target)
        out.append(" HTTP/1.1\r\nHost: ")
        out.append(upstreamHost ?? authority)
        out.append("\r\n")
        var hasRequestID = false
        for field in fields {
            if Self.isHopByHopOrOwn(bytes, field.name) { continue }
            if forwardedPrefix != nil, field.name.count == 18, Self.named(bytes, field.name, "x-forwarded-prefix") { continue }
            if connectionTokens.contains(where: { Self.sameName(bytes, $0, field.name) }) { continue }
            if field.name.count == 12, Self.named(bytes, field.name, "x-request-id") {
                if field.value.isEmpty { continue }
                hasRequestID = true
            }
            out.append(UnsafeRawBufferPointer(rebasing: bytes[field.name]))
            out.append(": ")
            out.append(UnsafeRawBufferPointer(rebasing: bytes[field.value]))
            out.append("\r\n")
        }
        out.append("X-Forwarded-For: ")
        for previous in forwardedFor {
            out.append(UnsafeRawBufferPointer(rebasing: bytes[previous]))
            out.append(", ")
        }
        out.append(clientAddress ?? "unknown")
        out.append("\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ")
        out.append(authority)
        out.append("\r\nX-Forwarded-Port: ")
        out.append(number: engine.port)
        out.append("\r\n")
        if let forwardedPrefix {
            out.append("X-Forwarded-Prefix: ")
            out.append(forwardedPrefix)
            out.append("\r\n")
        }
        if !hasRequestID {
            out.append("X-Request-ID: ")
            var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            withUnsafeMutableBytes(of: &digits) { scratch in
                engine.balancer.nextRequestID().fill(scratch)
                out.append(UnsafeRawBufferPointer(scratch))
            }
            out.append("\r\n")
        }
        switch body {
        case .none:
            let method = bytes[line.method]
            if method.elementsEqual("POST".utf8) || method.elementsEqual("PUT".utf8) || method.elementsEqual("PATCH".utf8) {
                out.append("Content-Length: 0\r\n")
            }
        case .length(let length):
            out.append("Content-Length: ")
            out.append(number: Int(length))
            out.append("\r\n")
        case .chunked:
            out.append("Transfer-Encoding: chunked\r\n")
        }
        out.append("\r\n")
        upstream.requestSent(isHead: exchange.requestIsHead)
    }

    /// Moves request body bytes from the input to the upstream (or drops them); false when it
    /// can go no further now.
    private func forwardBody() -> Bool {
        guard var decoder = body else {
            stage = .complete
            return true
        }
        let dropping = exchange.phase == .respondedLocally || exchange.phase == .closed
        let room: Int
        if dropping {
            room = input.count
        } else {
            guard exchange.phase == .forwarding, let upstream else { return false }
            room = min(input.count, upstream.output.room - 32)
        }
        guard room > 0 || input.isEmpty else { return false }
        let step: HTTP1BodyDecoder.Step
        do {
            step = try decoder.next(UnsafeRawBufferPointer(rebasing: input.readable[0..<max(room, 0)]), trailers: &trailers)
        } catch {
            body = nil
            keepNothingAfter(error)
            return false
        }
        body = decoder
        switch step {
        case .data(let range):
            let action = exchange.requestBody(range.count, now: engine.now)
            if case .forwardBody = action, let upstream {
                upstream.writeBody(UnsafeRawBufferPointer(rebasing: input.readable[range]), chunked: upstreamChunked)
            } else if case .dropBody = action {
            } else {
                perform(action)
            }
            input.consume(range.upperBound)
            return true
        case .needMore(let consumed):
            input.consume(consumed)
            return false
        case .end(let consumed):
            input.consume(consumed)
            body = nil
            stage = .complete
            trailers.removeAll(keepingCapacity: true)
            perform(exchange.requestEnd())
            return true
        }
    }

    /// A malformed body: answered if nothing was, else cut; the connection carries nothing more.
    private func keepNothingAfter(_ refusal: RequestFacts.Refusal) {
        if exchange.responseStarted || exchange.phase == .respondedLocally {
            dropUpstream()
            shutDown()
            return
        }
        dropUpstream()
        exchange.clientGone()
        writeAnswer(ProxyExchange.Answer(refusal.status, refusal.reason), close: true, isHead: false)
        closeAfterOutput = true
        flush()
    }

    // MARK: Actions

    private func perform(_ action: ProxyExchange.Action) {
        switch action {
        // No error pages and no resending here: this engine never asks the exchange for them
        // (custom-http-errors and proxy-next-upstream after sending are the NIO engine's).
        case .wait, .prepareUpstream, .relayHead, .relayBody, .relayInterim, .switchProtocols, .upgradeCutShort, .holdUpstreamReads,
            .holdBody, .holdEnd, .dropBody, .flushUpstream, .errorPage, .resend:
            break
        case .respond(let answer, let drop, let then):
            if drop { dropUpstream() }
            writeAnswer(answer, close: !exchange.keepAlive, isHead: exchange.requestIsHead)
            switch then {
            case .finish(let next): finish(next)
            case .dropBody: break
            case .linger: closeAfterOutput = true
            }
            flush()
        case .connect, .retry:
            // Connections are taken (and retried) where the head goes out: `takeUpstream`.
            break
        case .attach:
            // The exchange takes the body from now on (the upstream's output has room).
            exchange.upstreamWritable(true, now: engine.now)
            upstream?.flush()
        case .forwardBody:
            break
        case .forwardEnd:
            if upstreamChunked { upstream?.output.append("0\r\n\r\n") }
            upstream?.flush()
        case .relayEnd(let reuse, let next):
            if let upstream {
                self.upstream = nil
                if reuse, upstream.input.isEmpty { engine.release(upstream) } else { engine.close(upstream) }
            }
            if let next { finish(next) }
        case .finish(let next):
            finish(next)
        case .cut(let drop):
            if drop { dropUpstream() }
            shutDown()
        case .close:
            shutDown()
        }
    }

    private func writeAnswer(_ answer: ProxyExchange.Answer, close: Bool, isHead: Bool) {
        output.append("HTTP/1.1 ")
        output.append(number: Int(answer.status.code))
        output.append(byte: .space)
        output.append(answer.status.reasonPhrase)
        output.append("\r\n")
        if let location = answer.location {
            output.append("Location: ")
            output.append(location)
            output.append("\r\n")
        }
        output.append("Content-Type: text/plain; charset=utf-8\r\nContent-Length: ")
        output.append(number: answer.text.utf8.count)
        output.append(close ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n")
        if !isHead { output.append(answer.text) }
    }

    private func finish(_ next: ProxyExchange.Next) {
        cluster = nil
        stage = .head
        switch next {
        case .nextRequest:
            // A pipelined request may wait in the input already; and reads resume.
            if !input.isEmpty { process() }
            if readable { readAvailable() }
        case .close, .streamEnded:
            closeAfterOutput = true
            flush()
        }
    }

    private func dropUpstream() {
        guard let upstream else { return }
        self.upstream = nil
        upstream.client = nil
        engine.close(upstream)
    }

    /// Writes what the output holds; once it is empty, an upstream held back by it reads again.
    func flush() {
        guard !isClosed else { return }
        guard output.write(to: fd) else {
            shutDown()
            return
        }
        if output.isEmpty {
            if closeAfterOutput {
                shutdown(fd, Int32(SHUT_WR))
                shutDown()
                return
            }
            upstream?.resume()
        }
    }

    private func clientGone() {
        dropUpstream()
        shutDown()
    }

    private func shutDown() {
        exchange.clientGone()
        dropUpstream()
        engine.close(self)
    }

    // MARK: From the upstream

    func upstreamConnected(_ upstream: NativeUpstream) {
        perform(exchange.connected(now: engine.now))
        // Body bytes that waited for the connection go now.
        process()
        if readable { readAvailable() }
    }

    /// A connect failed: another endpoint is tried (the request head, which never left, moves to
    /// the new connection), or the exchange answers.
    func upstreamConnectFailed(_ upstream: NativeUpstream) {
        guard self.upstream === upstream, let cluster else {
            engine.close(upstream)
            return
        }
        self.upstream = nil
        upstream.client = nil
        tried.append(upstream.endpoint)
        let action = exchange.connectFailed(.refused, endpoints: cluster.endpoints.count)
        guard case .retry = action, let next = takeUpstream(cluster) else {
            engine.close(upstream)
            if case .retry = action {} else { perform(action) }
            flush()
            return
        }
        next.output.append(upstream.output.readable)
        next.requestSent(isHead: exchange.requestIsHead)
        engine.close(upstream)
        if !next.isConnecting { upstreamConnected(next) }
    }

    /// The response's head, relayed with the client's own framing (an interim one without any);
    /// nil when the exchange does something else with it (502 for a 101 nobody asked for).
    func responseHead(_ head: UpstreamResponseHead, bytes: UnsafeRawBufferPointer) -> ProxyExchange.Framing? {
        let action = exchange.responseHead(status: head.status, framing: head.framing, reusable: head.reusable, now: engine.now)
        let framing: ProxyExchange.Framing
        switch action {
        case .relayInterim: framing = ProxyExchange.Framing()
        case .relayHead(let relay): framing = relay
        default:
            perform(action)
            flush()
            return nil
        }
        output.append("HTTP/1.1 ")
        output.append(number: head.status)
        output.append(byte: .space)
        output.append(UnsafeRawBufferPointer(rebasing: bytes[head.reason]))
        output.append("\r\n")
        let lengthIsFraming = head.framing != .chunked && head.framing != .untilClose
        for field in head.fields where field.kind == .plain || field.kind == .contentLength && lengthIsFraming {
            output.append(UnsafeRawBufferPointer(rebasing: bytes[field.name]))
            output.append(": ")
            output.append(UnsafeRawBufferPointer(rebasing: bytes[field.value]))
            output.append("\r\n")
        }
        if framing.chunked { output.append("Transfer-Encoding: chunked\r\n") }
        if framing.close {
            output.append("Connection: close\r\n")
        } else if framing.keepAlive {
            output.append("Connection: keep-alive\r\n")
        }
        output.append("\r\n")
        return framing
    }

    /// The upstream takes body bytes again.
    func upstreamDrained() {
        process()
        if readable { readAvailable() }
    }

    /// Response body bytes, framed for the client.
    func responseBody(_ bytes: UnsafeRawBufferPointer, chunked: Bool) {
        _ = exchange.responseBody(now: engine.now)
        output.append(body: bytes, chunked: chunked)
    }

    func responseEnd(chunked: Bool) {
        if chunked { output.append("0\r\n\r\n") }
        perform(exchange.responseEnd())
        flush()
    }

    /// The upstream closed or sent what cannot be parsed.
    func upstreamLost(_ upstream: NativeUpstream, reason: String) {
        guard self.upstream === upstream else { return }
        self.upstream = nil
        engine.close(upstream)
        perform(exchange.upstreamLost(reason))
        flush()
    }

    /// Room this connection's output has for relayed bytes.
    var relayRoom: Int { output.room - 32 }

    // MARK: Bytes

    static func named(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: StaticString, exact: Bool = false) -> Bool {
        guard range.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for (offset, byte) in bytes[range].enumerated() {
            let want = expected[offset]
            if exact ? byte != want : HTTPSyntax.lowercase(byte) != want { return false }
        }
        return true
    }

    static func sameName(_ bytes: UnsafeRawBufferPointer, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        a.count == b.count && zip(bytes[a], bytes[b]).allSatisfy { HTTPSyntax.lowercase($0) == HTTPSyntax.lowercase($1) }
    }

    static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// The comma-separated tokens of a field value, without whitespace.
    static func tokens(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var start = range.lowerBound
        while start < range.upperBound {
            var end = start
            while end < range.upperBound, bytes[end] != UInt8(ascii: ",") { end += 1 }
            var a = start
            var b = end
            while a < b, bytes[a] == .space || bytes[a] == .tab { a += 1 }
            while b > a, bytes[b - 1] == .space || bytes[b - 1] == .tab { b -= 1 }
            if a < b { body(a..<b) }
            start = end + 1
        }
    }

    /// Fields the client's copy leaves out: hop-by-hop ones, framing, and those the proxy sets.
    static func isHopByHopOrOwn(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        switch name.count {
        case 2: named(bytes, name, "te")
        case 4: named(bytes, name, "host")
        case 7: named(bytes, name, "trailer") || named(bytes, name, "upgrade")
        case 10: named(bytes, name, "connection") || named(bytes, name, "keep-alive")
        case 14: named(bytes, name, "content-length")
        case 15: named(bytes, name, "x-forwarded-for")
        case 16: named(bytes, name, "proxy-connection") || named(bytes, name, "x-forwarded-host") || named(bytes, name, "x-forwarded-port")
        case 17: named(bytes, name, "transfer-encoding") || named(bytes, name, "x-forwarded-proto")
        default: false
        }
    }
}
#endif
