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
        // Small writes leave joined: one TLS record instead of five.
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: (0..<5).map { "frame \($0)" }.joined()))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)

        channel.write(ByteBuffer(string: "later"), promise: nil)
        channel.flush()
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 2)
        _ = try channel.finish()
    }

    /// Joined up to a record's size; a large write goes on as it is, after what came before it;
    /// each write's promise completes when the buffer it went out in is written.
    @Test func joinsSmallWritesInOrderAndKeepsLargeOnesWhole() throws {
        let channel = EmbeddedChannel(handlers: [FlushCoalescingHandler()])
        let small = ByteBuffer(repeating: UInt8(ascii: "s"), count: 6 << 10)
        let large = ByteBuffer(repeating: UInt8(ascii: "L"), count: FlushCoalescingHandler.passThroughSize)
        let first = channel.eventLoop.makePromise(of: Void.self)
        let second = channel.eventLoop.makePromise(of: Void.self)
        channel.write(small, promise: first)
        channel.write(small, promise: second)
        channel.write(small, promise: nil)  // 18 KiB would pass a record: starts a new buffer
        channel.write(large, promise: nil)
        channel.write(ByteBuffer(string: "tail"), promise: nil)
        channel.flush()
        channel.embeddedEventLoop.run()
        var expectedFirst = small
        expectedFirst.writeImmutableBuffer(small)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == expectedFirst)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == small)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == large)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "tail"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        try first.futureResult.wait()
        try second.futureResult.wait()
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
