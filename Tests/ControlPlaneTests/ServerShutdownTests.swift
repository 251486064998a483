import Foundation
import NIOCore
import NIOPosix
import RouteModel
import SnapshotProtocol
import Synchronization
import Testing
import TestSupport

/// Stopping a snapshot server while connections keep arriving: the transport must neither trap nor
/// hang (SwiftNIO's async server channels trap when an accepted connection is dropped unread, which
/// cancelling the serving task can do).
@Suite struct ServerShutdownTests {
    @Test func aServerStopsCleanlyWhileConnectionsArrive() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        for round in 0..<12 {
            let latest = LatestSnapshot()
            latest.publish(version: 1, table: RandomRouteTable.make(seed: UInt64(round)))
            let server = SnapshotServer(service: SnapshotService(latest: latest), addresses: [.tcp(host: "127.0.0.1", port: 0)])
            let port = Mutex<Int?>(nil)
            let ended = Mutex(false)
            let serving = Task {
                defer { ended.withLock { $0 = true } }
                try await server.run { addresses in
                    if case .tcp(_, let bound) = addresses[0] { port.withLock { $0 = bound } }
                }
            }
            // Generous: on a 2-core CI machine the whole test process can stall for 20 s while other
            // suites start; this test is about stopping, not about how fast a server listens.
            let deadline = ContinuousClock.now + .seconds(90)
            while port.withLock({ $0 }) == nil, !ended.withLock({ $0 }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
            // A server that ended before it listened says why.
            if port.withLock({ $0 }) == nil, ended.withLock({ $0 }) { try await serving.value }
            let bound = try #require(port.withLock { $0 }, "round \(round): not listening after 90 s")
            // Connections opened and left open as fast as they go, while the server stops.
            let hammer = Task {
                var channels: [any Channel] = []
                while !Task.isCancelled {
                    if let channel = try? await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: bound).get() {
                        channels.append(channel)
                    }
                }
                for channel in channels { try? await channel.close() }
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 5...30)))
            serving.cancel()
            _ = try? await serving.value
            hammer.cancel()
            await hammer.value
        }
    }
}
