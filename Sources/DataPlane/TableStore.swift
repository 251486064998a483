import NIOCore
import RouteModel

/// The worker's current route table, owned by its one event loop.
///
/// A new snapshot replaces one reference on the loop; a request reads the reference once, when its
/// head arrives, and keeps that table for its whole life. Connections are never touched by a swap.
public final class TableStore: @unchecked Sendable {
    public let eventLoop: any EventLoop
    // Only read and written on `eventLoop` (checked in debug builds).
    private var table: RouteTable
    private var version: UInt64 = 0

    public init(eventLoop: any EventLoop, table: RouteTable = .empty) {
        self.eventLoop = eventLoop
        self.table = table
    }

    var current: RouteTable {
        eventLoop.preconditionInEventLoop()
        return table
    }

    /// Swaps in `table` on the loop; completes once requests that start from now on use it.
    public func apply(_ table: RouteTable, version: UInt64) async throws {
        try await eventLoop.submit {
            self.table = table
            self.version = version
        }.get()
    }

    public var appliedVersion: UInt64 {
        get async { (try? await eventLoop.submit { self.version }.get()) ?? 0 }
    }
}
