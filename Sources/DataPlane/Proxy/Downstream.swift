import NIOCore
import NIOHTTP1
import RouteModel

/// The client side of an exchange, as `ExchangeRunner` drives it: an HTTP/1.1 connection
/// (`ProxyHandler`) or one HTTP/2 stream (`HTTP2Stream`). Each writes responses in its own
/// protocol and applies backpressure its own way (HTTP/1.1 pauses the socket's reads, HTTP/2
/// withholds the stream's window), so the runner has no protocol branches, as Pingora splits
/// `proxy_h1` and `proxy_h2` at the session.
protocol Downstream: AnyObject {
    var eventLoop: any EventLoop { get }
    /// The client's address, for X-Forwarded-For.
    var clientAddress: String? { get }
    /// Whether the client can take more of the response now.
    var isWritable: Bool { get }

    /// On a TLS connection: the request's host when the connection's certificate does not cover it.
    func misdirectedHost(_ authority: String) -> String?
    /// A buffer to write the next upstream request head into, and its return once written.
    func takeSpareHead() -> ByteBuffer?
    func keepSpareHead(_ buffer: ByteBuffer)

    /// The exchange takes no request body for now (`hold`), or takes it again.
    func holdReads(_ hold: Bool)
    /// A promise for a request body part's write upstream, if the client side needs to know when
    /// the upstream's socket took it (HTTP/2 gives the window back then).
    func bodyWritePromise(bytes: Int) -> EventLoopPromise<Void>?
    /// Request body the exchange did not forward (answered locally, or no upstream any more).
    func bodyDropped()

    /// The worker's own answer, complete. `close`: the connection carries nothing after it.
    func writeAnswer(_ answer: ProxyExchange.Answer, close: Bool, isHead: Bool)
    /// A 1xx response, as the upstream sent it.
    func writeInterim(_ head: UpstreamResponseHead)
    /// The final response's head; the body follows with `relayBody`, the end with `endResponse`.
    func startResponse(_ head: UpstreamResponseHead, framing: ProxyExchange.Framing, hsts: HSTSPolicy?, edits: HeaderEdits?)
    func relayBody(_ body: ByteBuffer)
    func endResponse(trailers: HTTPHeaders?)
    /// An upstream read completed: what it relayed goes out.
    func flushResponse()

    /// The exchange is over and `next` says what follows.
    func exchangeFinished(_ next: ProxyExchange.Next)
    /// Ends the client side for good, its response cut short (HTTP/2: RST_STREAM).
    func cut()
    /// After an answer that leaves a request body unread: stops sending, drains what the client
    /// still sends for a moment, then closes.
    func lingeringClose()
    /// Closes a connection with no request in flight.
    func close()

    /// The upstream switched protocols: the client connection and `connection` become a byte tunnel.
    /// Returns false when that cannot be done (either side closed meanwhile).
    func joinTunnel(_ connection: UpstreamPool.Connection, switching head: UpstreamResponseHead) -> Bool
    /// The upstream closed before the tunnel was joined: the 101 and `rest` go to the client, then it closes.
    func switchingCutShort(_ head: UpstreamResponseHead, rest: ByteBuffer?)
}
