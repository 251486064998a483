import GRPCCore
import GRPCNIOTransportHTTP2

/// Where a Snapshots server listens: `unix:/path/to.sock`, `127.0.0.1:9443`, `[::1]:9443` or `host:port`.
public enum ServerAddress: Sendable, Hashable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    public init(parsing text: String) throws(ServerAddressError) {
        if text.hasPrefix("unix:") {
            var path = String(text.dropFirst("unix:".count))
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }  // unix:///run/x.sock
            guard path.hasPrefix("/") else { throw ServerAddressError(text: text, reason: "a Unix socket path must be absolute") }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":") else {
            throw ServerAddressError(text: text, reason: "expected unix:/path or host:port")
        }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            throw ServerAddressError(text: text, reason: "the port must be a number from 1 to 65535")
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ServerAddressError(text: text, reason: "the host is empty") }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    /// The address a server binds.
    public var socketAddress: GRPCNIOTransportCore.SocketAddress {
        switch self {
        case .unix(let path): .unixDomainSocket(path: path)
        case .tcp(let host, let port): host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
        }
    }

    /// The target a client connects to.
    public var target: any ResolvableTarget {
        switch self {
        case .unix(let path): return ResolvableTargets.UnixDomainSocket.unixDomainSocket(path: path)
        case .tcp(let host, let port):
            if host.contains(":") { return ResolvableTargets.IPv6.ipv6(address: host, port: port) }
            if host.split(separator: ".").count == 4, host.allSatisfy({ $0.isNumber || $0 == "." }) {
                return ResolvableTargets.IPv4.ipv4(address: host, port: port)
            }
            return ResolvableTargets.DNS.dns(host: host, port: port)
        }
    }
}

public struct ServerAddressError: Error, Sendable, Equatable, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String { "invalid address \"\(text)\": \(reason)" }
}
