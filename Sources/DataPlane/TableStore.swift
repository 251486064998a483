import NIOCore
import NIOHTTP1
import RouteModel

/// The worker's current route table, owned by its one event loop.
///
/// A new snapshot replaces one reference on the loop; a request reads the reference once, when its
/// head arrives, and keeps that table for its whole life. Connections are never touched by a swap.
public final class TableStore: @unchecked Sendable {
    public let eventLoop: any EventLoop
    /// The table behind one reference: handing it to a request retains one object, where copying
    /// the struct retained each of its arrays and dictionaries.
    final class Current: Sendable {
        let table: RouteTable

        init(_ table: RouteTable) {
            self.table = table
        }

        /// Routing against this table, read in place.
        func decide(_ facts: RequestFacts, isTLS: Bool, httpsPort: Int, serverPort: Int) -> RouteDecision {
            RequestRouter.decide(facts, table: table, isTLS: isTLS, httpsPort: httpsPort, serverPort: serverPort)
        }
    }

    // Only read and written on `eventLoop` (checked in debug builds).
    private var table: Current
    private var version: UInt64 = 0

    public init(eventLoop: any EventLoop, table: RouteTable = .empty) {
        self.eventLoop = eventLoop
        self.table = Current(table)
    }

    var current: Current {
        eventLoop.preconditionInEventLoop()
        return table
    }

    /// Swaps in `table` on the loop; completes once requests that start from now on use it.
    public func apply(_ table: RouteTable, version: UInt64) async throws {
        let current = Current(table)
        try await eventLoop.submit {
            self.table = current
            self.version = version
        }.get()
    }

    public var appliedVersion: UInt64 {
        get async { (try? await eventLoop.submit { self.version }.get()) ?? 0 }
    }
}
