import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization
import TestSupport

/// `test.Echo`, a real grpc-swift service behind the proxy:
/// - `Get` (unary): answers `NAME:` and the message; initial metadata `x-echo` is the request's
///   `x-test`, `x-authority` the `:authority` it was sent with; trailing metadata `x-trailer: done`;
/// - `Count` (server streaming): the message `N SIZE` is answered with N messages of SIZE bytes;
/// - `Chat` (bidirectional): each message comes back upper-cased as it arrives;
/// - `Hang` (unary): never answers; counts the calls that began and those cancelled;
/// - `Fail` (unary): fails with the status code the message names and `failed on purpose`.
struct EchoService: RegistrableRPCService {
    static let get = MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Get")
    static let count = MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Count")
    static let chat = MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Chat")
    static let hang = MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Hang")
    static let fail = MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Fail")

    final class State: Sendable {
        /// Messages `Count` has handed to the transport.
        let written = Atomic<Int>(0)
        /// `Hang` calls that began.
        let started = Atomic<Int>(0)
        /// `Hang` calls that ended because they were cancelled.
        let cancelled = Atomic<Int>(0)
    }

    let name: String
    let state: State

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let name = self.name
        let state = self.state
        router.registerHandler(forMethod: Self.get, deserializer: RawBytes(), serializer: RawBytes()) { request, context in
            var metadata: Metadata = [:]
            for value in request.metadata[stringValues: "x-test"] { metadata.addString(value, forKey: "x-echo") }
            let message = try await request.messages.reduce(into: [UInt8]()) { $0 += $1 }
            return StreamingServerResponse(metadata: metadata) { writer in
                try await writer.write(Array("\(name):".utf8) + message)
                return ["x-trailer": "done"]
            }
        }
        router.registerHandler(forMethod: Self.count, deserializer: RawBytes(), serializer: RawBytes()) { request, context in
            let message = try await request.messages.reduce(into: [UInt8]()) { $0 += $1 }
            let numbers = String(decoding: message, as: UTF8.self).split(separator: " ").compactMap { Int($0) }
            guard numbers.count == 2 else { return StreamingServerResponse(error: RPCError(code: .invalidArgument, message: "N SIZE")) }
            return StreamingServerResponse { writer in
                for index in 0..<numbers[0] {
                    var bytes = [UInt8](repeating: UInt8(ascii: "a") + UInt8(index % 26), count: numbers[1])
                    if bytes.isEmpty { bytes = Array("\(index)".utf8) }
                    try await writer.write(bytes)
                    state.written.add(1, ordering: .relaxed)
                }
                return [:]
            }
        }
        router.registerHandler(forMethod: Self.chat, deserializer: RawBytes(), serializer: RawBytes()) { request, context in
            StreamingServerResponse { writer in
                for try await message in request.messages {
                    try await writer.write(Array(String(decoding: message, as: UTF8.self).uppercased().utf8))
                }
                return ["x-trailer": "chat-done"]
            }
        }
        router.registerHandler(forMethod: Self.hang, deserializer: RawBytes(), serializer: RawBytes()) { request, context in
            _ = try await request.messages.reduce(0) { $0 + $1.count }
            state.started.add(1, ordering: .relaxed)
            // The server cancels the call (its deadline passed, or the client reset the stream)
            // through the context's handle.
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline {
                if context.cancellation.isCancelled || Task.isCancelled {
                    state.cancelled.add(1, ordering: .relaxed)
                    throw RPCError(code: .cancelled, message: "cancelled")
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
            return StreamingServerResponse(error: RPCError(code: .internalError, message: "not cancelled"))
        }
        router.registerHandler(forMethod: Self.fail, deserializer: RawBytes(), serializer: RawBytes()) { request, context in
            let message = try await request.messages.reduce(into: [UInt8]()) { $0 += $1 }
            let code = Int(String(decoding: message, as: UTF8.self)).flatMap { Status.Code(rawValue: $0) }.flatMap { RPCError.Code($0) }
            return StreamingServerResponse(error: RPCError(code: code ?? .unknown, message: "failed on purpose"))
        }
    }
}

/// A grpc-swift server with `EchoService` on 127.0.0.1, plaintext (h2c) or TLS.
final class GRPCBackend: Sendable {
    let port: Int
    let state: EchoService.State
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let task: Task<Void, any Error>

    private init(port: Int, state: EchoService.State, server: GRPCServer<HTTP2ServerTransport.Posix>, task: Task<Void, any Error>) {
        self.port = port
        self.state = state
        self.server = server
        self.task = task
    }

    static func start(name: String, tls: TestCertificate? = nil) async throws -> GRPCBackend {
        var security = HTTP2ServerTransport.Posix.TransportSecurity.plaintext
        if let tls {
            security = .tls(
                certificateChain: [.bytes(Array(tls.certificatePEM.utf8), format: .pem)],
                privateKey: .bytes(Array(tls.privateKeyPEM.utf8), format: .pem))
        }
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: security, config: .defaults)
        let state = EchoService.State()
        let server = GRPCServer(transport: transport, services: [EchoService(name: name, state: state)])
        let task = Task { try await server.serve() }
        guard let port = try await transport.listeningAddress.ipv4?.port else {
            server.beginGracefulShutdown()
            throw RPCError(code: .internalError, message: "the gRPC backend has no IPv4 address")
        }
        return GRPCBackend(port: port, state: state, server: server, task: task)
    }

    /// Stops accepting and returns once the calls in flight have ended.
    func stop() async {
        server.beginGracefulShutdown()
        _ = await task.result
    }
}

/// Runs `body` with a grpc-swift client of the proxy's `port`, sending `authority`: plaintext with
/// HTTP/2 prior knowledge, or over TLS (ALPN h2) trusting `tls`'s certificate.
func withProxyGRPCClient<Result: Sendable>(
    port: Int, authority: String, tls: TestCertificate? = nil, _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Result
) async throws -> Result {
    var config = HTTP2ClientTransport.Posix.Config.defaults
    config.http2.authority = authority
    config.backoff = .init(initial: .milliseconds(50), max: .milliseconds(50), multiplier: 1, jitter: 0)
    var security = HTTP2ClientTransport.Posix.TransportSecurity.plaintext
    if let tls {
        security = .tls { config in
            config.trustRoots = .certificates([.bytes(Array(tls.certificatePEM.utf8), format: .pem)])
            config.serverCertificateVerification = .fullVerification
        }
    }
    let transport = try HTTP2ClientTransport.Posix(
        target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: security, config: config)
    return try await withGRPCClient(transport: transport) { client in try await body(client) }
}

extension CallOptions {
    /// Fails at once instead of waiting for a connection; `timeout` sends grpc-timeout.
    static func test(timeout: Duration? = nil) -> CallOptions {
        var options = CallOptions.defaults
        options.waitForReady = false
        options.timeout = timeout
        return options
    }
}
