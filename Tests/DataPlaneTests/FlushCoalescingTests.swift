import NIOCore
import NIOEmbedded
import Testing
@testable import DataPlane

/// Counts the flushes that pass it, below the handler under test.
private final class FlushCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var flushes = 0
    var flushesBeforeClose: Int?

    func flush(context: ChannelHandlerContext) {
        flushes += 1
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        flushesBeforeClose = flushes
        context.close(mode: mode, promise: promise)
    }
}

@Suite struct FlushCoalescingTests {
    @Test func flushesInOneTickLeaveAsOne() throws {
        let counter = FlushCounter()
        let channel = EmbeddedChannel(handlers: [counter, FlushCoalescingHandler()])
        for index in 0..<5 {
            channel.write(ByteBuffer(string: "frame \(index)"), promise: nil)
            channel.flush()
        }
        #expect(counter.flushes == 0)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "nothing leaves before the tick ends")
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 1)
        for index in 0..<5 { #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "frame \(index)")) }

        channel.write(ByteBuffer(string: "later"), promise: nil)
        channel.flush()
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 2)
        _ = try channel.finish()
    }

    @Test func aCloseFlushesWhatWasWrittenFirst() throws {
        let counter = FlushCounter()
        let channel = EmbeddedChannel(handlers: [counter, FlushCoalescingHandler()])
        channel.write(ByteBuffer(string: "goaway"), promise: nil)
        channel.flush()
        channel.close(promise: nil)
        #expect(counter.flushesBeforeClose == 1)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "goaway"))
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 1, "the scheduled flush finds nothing left to do")
    }
}
