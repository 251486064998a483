import Logging
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import Testing
@testable import DataPlane

/// Handlers keep their context; a connection's handlers must still go away with it.
@Suite struct HandlerLifetimeTests {
    final class Box: @unchecked Sendable {
        weak var handler: ProxyHandler?
        weak var reader: HTTP1ServerHandler?
    }

    /// One HTTP/1.1 connection's pipeline as the worker builds it, with a request answered locally
    /// (no route), then closed.
    func closeAConnection(into box: Box) throws {
        let channel = EmbeddedChannel()
        let loop = channel.embeddedEventLoop
        let observability = WorkerObservability(accessLog: false)
        let counters = CounterBox()
        let reader = HTTP1ServerHandler(maxHeadBytes: 64 << 10, maxFields: 100, counters: counters)
        let services = ExchangeServices.testing(store: TableStore(eventLoop: loop), counters: counters, observability: observability)
        let handler = ProxyHandler(services: services, settings: ProxySettings(), requestReader: reader)
        box.handler = handler
        box.reader = reader
        try channel.pipeline.syncOperations.addHandler(reader)
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
        #expect(box.reader == nil, "HTTP1ServerHandler outlived its connection")
    }
}

/// The HTTP/2 connection handler and its streams (HTTP2Stream) hold each other; an ended stream's
/// handler must go at once, and all of them with the connection.
@Suite struct HTTP2HandlerLifetimeTests {
    final class Box: @unchecked Sendable {
        var streams: [Weak] = []
        weak var connection: HTTP2ProxyConnection?
    }

    struct Weak {
        weak var handler: HTTP2Stream?
    }

    /// Moves bytes between the two channels until neither has any to send.
    static func shuttle(_ client: EmbeddedChannel, _ server: EmbeddedChannel) throws {
        var moved = true
        while moved {
            moved = false
            client.embeddedEventLoop.run()
            server.embeddedEventLoop.run()
            while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                try server.writeInbound(bytes)
                moved = true
            }
            while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                try client.writeInbound(bytes)
                moved = true
            }
        }
    }

    func runAConnection(into box: Box, streams: Int, closeWithOpenStream: Bool) throws {
        let client = EmbeddedChannel()
        let server = EmbeddedChannel()
        let loop = server.embeddedEventLoop
        let observability = WorkerObservability(accessLog: false)
        let counters = CounterBox()
        let services = ExchangeServices.testing(store: TableStore(eventLoop: loop), counters: counters, observability: observability)
        try client.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .client))
        try server.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .server))
        let connection = HTTP2ProxyConnection(resets: ResetBudget(limit: 200, window: .seconds(30))) { connection, id in
            let handler = HTTP2Stream(connection: connection, id: id, services: services, settings: ProxySettings())
            box.streams.append(Weak(handler: handler))
            return handler
        }
        box.connection = connection
        try server.pipeline.syncOperations.addHandler(connection)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        try Self.shuttle(client, server)
        let request = HPACKHeaders([(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/")])
        for index in 0..<streams {
            let id = HTTP2StreamID(1 + 2 * index)
            try client.writeOutbound(HTTP2Frame(streamID: id, payload: .headers(.init(headers: request, endStream: true))))
        }
        try Self.shuttle(client, server)
        // Each stream was answered (404: no table) and ended on both sides.
        #expect(box.streams.count == streams)
        #expect(box.streams.allSatisfy { $0.handler == nil }, "an ended HTTP2Stream outlived it")
        if closeWithOpenStream {
            // A request whose body never ends: its stream is still open when the connection goes.
            let open = HTTP2StreamID(1 + 2 * streams)
            try client.writeOutbound(HTTP2Frame(streamID: open, payload: .headers(.init(headers: request, endStream: false))))
            try Self.shuttle(client, server)
            #expect(box.streams.last?.handler != nil, "an open stream's handler lives")
        }
        _ = try? server.finish(acceptAlreadyClosed: true)
        _ = try? client.finish(acceptAlreadyClosed: true)
    }

    @Test(arguments: [false, true])
    func streamsAndTheConnectionHandlerAreFreed(closeWithOpenStream: Bool) throws {
        let box = Box()
        try runAConnection(into: box, streams: 3, closeWithOpenStream: closeWithOpenStream)
        #expect(box.streams.allSatisfy { $0.handler == nil }, "an HTTP2Stream outlived its connection")
        #expect(box.connection == nil, "HTTP2ProxyConnection outlived its connection")
    }
}

extension ExchangeServices {
    /// What a loop's exchanges share, for a test's own loop.
    static func testing(store: TableStore, counters: CounterBox = CounterBox(), observability: WorkerObservability = WorkerObservability(accessLog: false)) -> ExchangeServices {
        let logger = Logger(label: "test")
        let connector = UpstreamConnector(
            pool: UpstreamPool(eventLoop: store.eventLoop), balancer: LoadBalancer(), counters: counters, observability: observability, logger: logger)
        return ExchangeServices(store: store, connector: connector, counters: counters, observability: observability, logger: logger)
    }
}
