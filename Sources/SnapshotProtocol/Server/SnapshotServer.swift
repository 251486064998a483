import AdminHTTP
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Serves one `SnapshotService` on every listen address (Unix sockets and TCP) until cancelled.
///
/// A Unix socket's directory is created 0700 when missing, and the socket is made 0600 once bound.
/// A request message over the service's `maxMessageBytes` ends that one stream with
/// RESOURCE_EXHAUSTED; the transport refuses to buffer more than 1 MiB beyond that limit at all (it
/// then resets the stream without a status, still touching no other stream).
public struct SnapshotServer: Sendable {
    public let service: SnapshotService
    public let addresses: [ServerAddress]
    public let maxMessageBytes: Int
    /// Mutual TLS for the TCP addresses; nil: plaintext.
    public let tls: SnapshotTLS?
    /// Who serves it, for errors: "control plane", "node agent".
    public let owner: String
    private let logger: Logger

    public init(
        service: SnapshotService, addresses: [ServerAddress], tls: SnapshotTLS? = nil, owner: String = "snapshot server",
        logger: Logger = Logger(label: "portico.server")
    ) {
        precondition(!addresses.isEmpty, "at least one listen address")
        self.owner = owner
        self.service = service
        self.addresses = addresses
        self.tls = tls
        self.maxMessageBytes = service.maxMessageBytes
        self.logger = logger
    }

    /// Binds every address, calls `onListening` with the bound addresses (TCP port 0 resolved), and
    /// serves until the task is cancelled; then it stops accepting, and returns once every transport
    /// has closed.
    public func run(onListening: @Sendable ([ServerAddress]) -> Void = { _ in }) async throws {
        // The socket's directory is made 0700 when missing; an existing one is used as it is.
        for case .unix(let path) in addresses {
            let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            if !directory.isEmpty { try makePrivateDirectory(directory) }
        }
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.rpc.maxRequestPayloadSize = maxMessageBytes + (1 << 20)
        let tls = self.tls
        let transports = addresses.map { address in
            var security = HTTP2ServerTransport.Posix.TransportSecurity.plaintext
            if case .tcp = address, let tls { security = tls.serverSecurity }
            return HTTP2ServerTransport.Posix(address: address.socketAddress, transportSecurity: security, config: config)
        }
        // Not child tasks: cancelling `run` must first stop the listeners gracefully. Cancelling a
        // transport's serving task outright drops connections it accepted but had not yet read
        // out, and SwiftNIO traps on those ("Deinited NIOAsyncWriter without calling finish()";
        // swift-nio#2637). A graceful shutdown closes the listeners and serves what they accepted;
        // the open Watch streams never end by themselves, so they are cancelled a moment later.
        let servers = transports.map { GRPCServer(transport: $0, services: [service]) }
        let serving = servers.map { server in Task { try await server.serve() } }
        try await withTaskCancellationHandler {
            do {
                var bound: [ServerAddress] = []
                for (index, (address, transport)) in zip(addresses, transports).enumerated() {
                    let actual: GRPCNIOTransportCore.SocketAddress
                    do {
                        actual = try await transport.listeningAddress
                    } catch {
                        // The transport only says it stopped; why is its serving task's error.
                        var cause: any Error = error
                        if case .failure(let failure) = await serving[index].result {
                            cause = (failure as? RuntimeError)?.cause ?? (failure as? RPCError)?.cause ?? failure
                        }
                        throw ListenError(owner: owner, address: address.description, cause: cause)
                    }
                    if case .unix(let path) = address {
                        guard chmod(path, 0o600) == 0 else {
                            throw SnapshotServerError("cannot make \(path) private (chmod 0600): errno \(errno)")
                        }
                    }
                    bound.append(Self.serverAddress(actual) ?? address)
                }
                logger.info("snapshot server listening", metadata: ["addresses": "\(bound.map(\.description).joined(separator: ","))"])
                onListening(bound)
                // Until every transport stops; the first failure stops the others.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for task in serving { group.addTask { try await task.value } }
                    try await group.waitForAll()
                }
            } catch {
                for server in servers { server.beginGracefulShutdown() }
                for task in serving { task.cancel() }
                for task in serving { _ = try? await task.value }
                throw error
            }
        } onCancel: {
            for server in servers { server.beginGracefulShutdown() }
            Task {
                try? await Task.sleep(for: .milliseconds(250))
                for task in serving { task.cancel() }
            }
        }
    }

    static func serverAddress(_ address: GRPCNIOTransportCore.SocketAddress) -> ServerAddress? {
        if let ipv4 = address.ipv4 { return .tcp(host: ipv4.host, port: ipv4.port) }
        if let ipv6 = address.ipv6 { return .tcp(host: ipv6.host, port: ipv6.port) }
        if let unix = address.unixDomainSocket { return .unix(path: unix.path) }
        return nil
    }
}

public struct SnapshotServerError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Creates `path` (and missing parents) as 0700 directories; an existing directory is kept as it is.
/// For socket and state directories, whose contents only their owner may reach.
public func makePrivateDirectory(_ path: String) throws(SnapshotServerError) {
    var info = stat()
    if stat(path, &info) == 0 {
        guard info.st_mode & S_IFMT == S_IFDIR else { throw SnapshotServerError("\(path) exists and is not a directory") }
        return
    }
    let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
    if !parent.isEmpty, stat(parent, &info) != 0 { try makePrivateDirectory(parent) }
    guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
        throw SnapshotServerError("cannot create directory \(path): \(String(cString: strerror(errno)))")
    }
    _ = chmod(path, 0o700)  // mkdir applies the umask
}
