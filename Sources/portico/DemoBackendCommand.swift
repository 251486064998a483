import ArgumentParser
import ControlPlane
import DemoBackend
import Logging

#if canImport(Glibc)
import Glibc
#endif

struct DemoBackendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-backend",
        abstract: "Answer HTTP, HTTPS, HTTP/2 and gRPC requests with a Service's name and what arrived: the quickstart's stand-in for Pods.",
        discussion: "`portico run --demo-backends` starts one for the loopback endpoints its manifests name.")

    @Option(
        name: .customLong("listen"),
        help: "NAME=HOST:PORT[/PROTOCOL], e.g. default/blog=127.0.0.1:9003 or shop/api=127.0.0.1:9004/grpc (http, https, h2c, grpc, grpcs). Repeatable.")
    var listeners: [String]

    @Option(help: .hidden)
    var parentPid: Int32?

    func validate() throws {
        guard !listeners.isEmpty else { throw ValidationError("at least one --listen NAME=HOST:PORT") }
        for listener in listeners {
            do { _ = try DemoBackend.Listener(parsing: listener) } catch { throw ValidationError(error.description) }
        }
    }

    func run() async throws {
        bootstrapLogging(level: .info)
        let logger = Logger(label: "portico.demo-backend")
        let backend = DemoBackend(listeners: try listeners.map { try DemoBackend.Listener(parsing: $0) })
        // TLS listeners present a certificate for their Service's cluster names, from a CA made
        // for this run (the proxy does not verify it unless proxy-ssl-verify asks).
        var certificate: (chainPEM: String, keyPEM: String)?
        let secure = backend.listeners.filter { $0.upstreamProtocol.usesTLS }
        if !secure.isEmpty {
            let names = secure.flatMap { listener -> [String] in
                let parts = listener.name.split(separator: "/")
                guard parts.count == 2 else { return [] }
                return ["\(parts[1]).\(parts[0]).svc", "\(parts[1]).\(parts[0]).svc.cluster.local"]
            }
            let issued = try CertificateAuthority.generate(commonName: "Portico demo backend CA").issue(
                commonName: "Portico demo backend", dnsNames: Array(Set(names)).sorted(), server: true, client: false)
            certificate = (issued.certificatePEM, issued.keyPEM)
        }
        let presented = certificate
        let parentPid = self.parentPid
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await backend.run(certificate: presented) { bound in
                    for listener in bound {
                        logger.info(
                            "demo backend listening",
                            metadata: [
                                "name": "\(listener.name)", "address": "\(listener.host):\(listener.port)",
                                "protocol": "\(listener.upstreamProtocol.rawValue)",
                            ])
                    }
                }
            }
            group.addTask { _ = await waitForSignal([SIGINT, SIGTERM]) }
            if let parentPid { group.addTask { await waitForParentExit(parentPid) } }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}
