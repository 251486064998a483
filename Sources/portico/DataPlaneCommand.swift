import ArgumentParser
import DataPlane
import Foundation
import Logging
import NodeAgent
import SnapshotProtocol

#if canImport(Glibc)
import Glibc
#endif

struct DataPlaneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data-plane",
        abstract: "The node agent: subscribe to the control plane, keep the last good snapshot on disk, and run the workers.",
        discussion: """
            Runs --workers worker processes sharing --http-port and --https-port (SO_REUSEPORT), restarts a \
            crashed one with capped backoff, and relays snapshots to them on DIR/data-plane.sock \
            (--socket-dir, 0700; the socket is 0600). Every accepted snapshot is saved to \
            --state-dir/snapshot.pb; when the control plane is unreachable at start, that one is served. \
            SIGTERM or SIGINT: the workers drain, then the agent exits. The admin port serves /healthz and \
            /readyz (ready once every worker has applied a snapshot).
            """)

    @Option(help: "Where to subscribe for snapshots: unix:/path or HOST:PORT.")
    var controlPlane: String

    @Option(help: "Worker processes to run (default: the number of CPUs).")
    var workers: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "The plain-HTTP port the workers share.")
    var httpPort: Int = 80

    @Option(help: "The TLS port the workers share.")
    var httpsPort: Int = 443

    @Option(help: "The address the workers bind.")
    var bind: String = "0.0.0.0"

    @Option(help: "Where the last good snapshot is kept (created 0700).")
    var stateDir: String = "/var/lib/portico"

    @Option(help: "Where the workers' socket data-plane.sock lives (created 0700).")
    var socketDir: String = "/run/portico"

    @Option(help: "The admin port: /healthz and /readyz (0: any free port, logged).")
    var adminPort: Int = 10254

    @Option(help: "The address the admin port binds.")
    var adminBind: String = "0.0.0.0"

    @Option(help: "This node's name, shown by porticoctl (default: $NODE_NAME, else the host name).")
    var node: String = ProcessInfo.processInfo.environment["NODE_NAME"] ?? ProcessInfo.processInfo.hostName

    @Option(help: "PEM client certificate for mutual TLS to a TCP --control-plane (with --tls-key and --tls-ca).")
    var tlsCertificate: String?

    @Option(help: "PEM private key of --tls-certificate.")
    var tlsKey: String?

    @Option(help: "PEM CA that issued the control plane's certificate.")
    var tlsCa: String?

    @OptionGroup(title: "Passed on to the workers") var traffic: WorkerTrafficOptions

    @Option(help: .hidden)
    var parentPid: Int32?

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        do { _ = try ServerAddress(parsing: controlPlane) } catch { throw ValidationError(error.description) }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        guard (1...65535).contains(httpPort) else { throw ValidationError("--http-port must be from 1 to 65535") }
        guard (1...65535).contains(httpsPort) else { throw ValidationError("--https-port must be from 1 to 65535") }
        guard (0...65535).contains(adminPort) else { throw ValidationError("--admin-port must be from 0 to 65535") }
        guard stateDir.hasPrefix("/"), socketDir.hasPrefix("/") else {
            throw ValidationError("--state-dir and --socket-dir must be absolute paths")
        }
        guard NodeAgent.Configuration.socketPath(in: socketDir).utf8.count < 108 else {
            throw ValidationError("--socket-dir \(socketDir) is too long for a Unix socket path")
        }
        let tlsFiles = [tlsCertificate, tlsKey, tlsCa].compactMap { $0 }.count
        guard tlsFiles == 0 || tlsFiles == 3 else { throw ValidationError("--tls-certificate, --tls-key and --tls-ca go together") }
    }

    func run() async throws {
        bootstrapLogging(level: logLevel)
        let logger = Logger(label: "portico.data-plane")
        let socket = NodeAgent.Configuration.socketPath(in: socketDir)
        var workerArguments = [
            "worker", "--control-plane", "unix:\(socket)", "--http-port", String(httpPort), "--https-port", String(httpsPort),
            "--bind", bind, "--node", node, "--log-level", logLevel.rawValue, "--parent-pid", String(getpid()),
        ] + traffic.workerArguments
        if let defaultCertificate = traffic.defaultCertificate, let defaultKey = traffic.defaultKey {
            workerArguments += ["--default-certificate", absolutePath(defaultCertificate), "--default-key", absolutePath(defaultKey)]
        } else {
            // One generated default certificate for all workers, so that a client sees the same one
            // whichever worker the kernel hands its connection to.
            let (certificate, key) = try writeGeneratedDefaultCertificate()
            workerArguments += ["--default-certificate", certificate, "--default-key", key]
        }
        var workerConfiguration = WorkerSupervisor.Configuration(
            count: workers, executable: currentExecutable(), arguments: { [workerArguments, socketDir] slot in
                workerArguments + ["--id", String(slot), "--metrics-socket", NodeAgent.Configuration.metricsSocketPath(in: socketDir, slot: slot)]
            })
        // An agent restarted after a crash adopts the workers its predecessor left serving.
        workerConfiguration.pidDirectory = socketDir
        var configuration = NodeAgent.Configuration(
            controlPlane: try ServerAddress(parsing: controlPlane), node: node, stateDirectory: stateDir, socketDirectory: socketDir,
            workers: workerConfiguration)
        if let tlsCertificate, let tlsKey, let tlsCa {
            do {
                configuration.tls = try SnapshotTLS.load(certificate: tlsCertificate, key: tlsKey, certificateAuthority: tlsCa)
            } catch {
                throw ValidationError("\(error)")
            }
        } else if case .tcp = configuration.controlPlane {
            logger.warning("subscribing over TCP in plaintext; use --tls-certificate, --tls-key and --tls-ca")
        }
        configuration.adminHost = adminBind
        configuration.adminPort = adminPort
        configuration.releaseFreedMemory = releaseFreedMemory
        let agent = NodeAgent(configuration: configuration, logger: logger)
        logger.info("node agent starting", metadata: ["workers": "\(workers)", "socket": "\(socket)", "state": "\(stateDir)"])
        let parentPid = self.parentPid
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await agent.run() }
            group.addTask {
                let signal = await waitForSignal([SIGINT, SIGTERM])
                logger.info("stopping: draining the workers", metadata: ["signal": "\(signal ?? 0)"])
            }
            if let parentPid {
                group.addTask {
                    if await waitForParentExit(parentPid) { logger.warning("the parent process is gone; stopping") }
                }
            }
            // The agent returning (a failure) or a stop request ends the others; the agent's own
            // cancellation drains the workers before it returns.
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    /// The self-signed default certificate and its key (0600) in the state directory: the one a
    /// previous agent wrote there, which the workers it left serving (and now adopted) use, or a
    /// fresh one.
    private func writeGeneratedDefaultCertificate() throws -> (certificate: String, key: String) {
        try makePrivateDirectory(stateDir)
        let certificate = stateDir + "/default-certificate.pem"
        let key = stateDir + "/default-key.pem"
        if let certificatePEM = try? String(contentsOfFile: certificate, encoding: .utf8), let keyPEM = try? String(contentsOfFile: key, encoding: .utf8),
            (try? DefaultCertificate(certificatePEM: certificatePEM, keyPEM: keyPEM)) != nil
        {
            return (certificate, key)
        }
        let (certificatePEM, keyPEM) = try DefaultCertificate.generatePEM()
        for (path, contents) in [(certificate, certificatePEM), (key, keyPEM)] {
            _ = unlink(path)
            guard FileManager.default.createFile(atPath: path, contents: Data(contents.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw RunError("cannot write \(path): \(String(cString: strerror(errno)))")
            }
        }
        return (certificate, key)
    }

}
