import Foundation
import NIOHTTP1
import Testing
import TestSupport
@testable import DataPlane

#if canImport(Glibc)
import Glibc
#endif

/// The worker runs in this process, so its sockets are among this process's descriptors.
@Suite(.serialized) struct SocketOptionTests {
    /// Both sides of a proxied exchange have Nagle off (a small response would otherwise wait for
    /// the peer's delayed ACK), and no socket gets SO_DEBUG, which a misleveled option used to set.
    @Test func clientAndUpstreamSocketsHaveNoDelayAndNoDebug() async throws {
        let a = try await TestBackend.start(name: "a")
        let proxy = try await LiveProxy.start(proxyTable([("a.test", "/", [a.port])]))
        try await TestHTTPConnection.with(port: proxy.port) { client in
            let response = try await client.request(.GET, "/", host: "a.test")
            #expect(response.status == .ok)
            // Accepted by the worker: local port the proxy's. Opened by the worker's pool: remote port the backend's.
            let accepted = Self.tcpSockets().filter { $0.local == proxy.port && $0.remote != nil }
            let upstream = Self.tcpSockets().filter { $0.remote == a.port && $0.local != a.port }
            #expect(!accepted.isEmpty && !upstream.isEmpty)
            for socket in accepted + upstream {
                #expect(Self.option(socket.fd, Int32(IPPROTO_TCP), TCP_NODELAY) == 1, "TCP_NODELAY on \(socket)")
                #expect(Self.option(socket.fd, SOL_SOCKET, SO_DEBUG) == 0, "SO_DEBUG on \(socket)")
            }
        }
        await proxy.stop()
        await a.stop()
    }

    struct TCPSocket: CustomStringConvertible {
        var fd: Int32
        var local: Int
        var remote: Int?
        var description: String { "fd \(fd) \(local) -> \(remote.map(String.init) ?? "-")" }
    }

    /// This process's IPv4 TCP sockets with their ports.
    static func tcpSockets() -> [TCPSocket] {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return descriptors.compactMap { name -> TCPSocket? in
            guard let fd = Int32(name), let local = port(fd, getsockname) else { return nil }
            return TCPSocket(fd: fd, local: local, remote: port(fd, getpeername))
        }
    }

    private static func port(_ fd: Int32, _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> Int? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) }
        }
        guard result == 0, address.sin_family == sa_family_t(AF_INET) else { return nil }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func option(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32 {
        var value: Int32 = -1
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, level, name, &value, &length)
        return value
    }
}
