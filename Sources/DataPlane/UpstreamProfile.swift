import NIOCore
import NIOSSL
import NIOTLS
import RouteModel

/// One way of reaching Pods other than plain HTTP/1.1 (`backend-protocol` HTTPS, GRPC, GRPCS, H2C
/// and the route's `proxy-ssl-*` settings), with its own connection pool. Made once per event loop
/// for each distinct setting (`UpstreamConnector.profile(for:)`), so the TLS context is built once.
final class UpstreamProfile {
    struct Key: Hashable {
        let upstreamProtocol: UpstreamProtocol
        let tls: UpstreamTLS?
    }

    struct Failure: Error {
        let message: String
    }

    let key: Key
    let pool: UpstreamPool

    private init(key: Key, pool: UpstreamPool) {
        self.key = key
        self.pool = pool
    }

    static func make(_ key: Key, eventLoop: any EventLoop) -> Result<UpstreamProfile, Failure> {
        var context: NIOSSLContext?
        var serverName: String?
        if key.upstreamProtocol.usesTLS {
            guard let tls = key.tls else { return .failure(Failure(message: "\(key.upstreamProtocol.rawValue) without TLS settings")) }
            do {
                context = try NIOSSLContext(configuration: configuration(tls, http2: key.upstreamProtocol.isHTTP2))
            } catch {
                return .failure(Failure(message: "TLS to the Pods of \(tls.serverName): \(error)"))
            }
            // Verification checks the name in the certificate, which NIOSSL does with the SNI name.
            // An IP address is never sent as SNI (RFC 6066 §3).
            let sendsName = tls.sendsServerName || tls.verify
            serverName = sendsName && !isIPAddress(tls.serverName) ? tls.serverName : nil
        }
        let transport: UpstreamPool.Transport
        switch key.upstreamProtocol {
        case .http: transport = .plain
        case .https: transport = .tls(context!, serverName: serverName)
        case .h2c, .grpc: transport = .http2(nil, serverName: nil, grpc: key.upstreamProtocol.isGRPC)
        case .grpcs: transport = .http2(context, serverName: serverName, grpc: true)
        }
        return .success(UpstreamProfile(key: key, pool: UpstreamPool(eventLoop: eventLoop, transport: transport)))
    }

    /// TLS 1.2 or 1.3; the Pod's certificate is checked only with `verify` (against the given CAs
    /// only, never the system's); the client certificate is presented when there is one.
    static func configuration(_ tls: UpstreamTLS, http2: Bool) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = http2 ? ["h2"] : ["http/1.1"]
        if tls.verify {
            configuration.certificateVerification = .fullVerification
            let trusted = try tls.trustedCertificatesPEM.map { try NIOSSLCertificate.fromPEMBytes(Array($0.utf8)) } ?? []
            // No CA: nothing is trusted, and no Pod is connected to.
            configuration.trustRoots = .certificates(trusted)
        } else {
            configuration.certificateVerification = .none
        }
        if let chain = tls.clientCertificatePEM, let key = tls.clientKeyPEM {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(chain.utf8)).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem))
        }
        return configuration
    }

    private static func isIPAddress(_ name: String) -> Bool {
        (try? SocketAddress(ipAddress: name, port: 0)) != nil
    }
}

/// Completes `promise` when the TLS handshake before it in the pipeline has, or fails it with the
/// handshake's error (or the connection's end); then leaves the pipeline.
final class TLSHandshakeWait: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let promise: EventLoopPromise<Void>
    private var done = false

    init(_ promise: EventLoopPromise<Void>) {
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, !done {
            done = true
            promise.succeed()
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            promise.fail(error)
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            promise.fail(ChannelError.eof)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if !done {
            done = true
            promise.fail(ChannelError.ioOnClosedChannel)
        }
    }
}
