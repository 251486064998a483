import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import DataPlane

/// Handlers keep their context; a connection's handlers must still go away with it.
@Suite struct HandlerLifetimeTests {
    final class Box: @unchecked Sendable {
        weak var handler: ProxyHandler?
        weak var errors: ProtocolErrorHandler?
    }

    /// One HTTP/1.1 connection's pipeline as the worker builds it, with a request answered locally
    /// (no route), then closed.
    func closeAConnection(into box: Box) throws {
        let channel = EmbeddedChannel()
        let loop = channel.embeddedEventLoop
        let observability = WorkerObservability(accessLog: false)
        let counters = CounterBox()
        let errors = ProtocolErrorHandler(counters: counters)
        let handler = ProxyHandler(
            store: TableStore(eventLoop: loop), pool: UpstreamPool(eventLoop: loop), balancer: LoadBalancer(), counters: counters,
            observability: observability, settings: ProxyHandler.Settings(), logger: Logger(label: "test"), protocolErrors: errors)
        box.handler = handler
        box.errors = errors
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
        try channel.pipeline.syncOperations.addHandler(errors)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"))
        let response = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: response).hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func aClosedConnectionsHandlersAreFreed() throws {
        let box = Box()
        try closeAConnection(into: box)
        #expect(box.handler == nil, "ProxyHandler outlived its connection")
        #expect(box.errors == nil, "ProtocolErrorHandler outlived its connection")
    }
}
