import ArgumentParser
import DataPlane
import Foundation

/// How a worker treats its traffic: taken by `portico worker`, and by `portico data-plane`, which
/// passes them on to each worker it runs.
struct WorkerTrafficOptions: ParsableArguments {
    @Option(help: "PEM certificate chain served when SNI names no TLS host and the table names no default. Without it, a self-signed one is generated at start.")
    var defaultCertificate: String?

    @Option(help: "PEM private key of --default-certificate.")
    var defaultKey: String?

    @Option(help: "On SIGTERM, seconds that requests in flight may take to finish.")
    var drainTimeout: Double = 25

    @Option(help: "Seconds a client connection may take to send a complete request head (slowloris, idle keep-alive).")
    var requestHeaderTimeout: Double = 60

    @Flag(help: "Do not write an access-log line per request on stdout.")
    var noAccessLog = false

    func validate() throws {
        if (defaultCertificate == nil) != (defaultKey == nil) {
            throw ValidationError("--default-certificate and --default-key go together")
        }
    }

    /// The options other than the default certificate, as a worker's arguments.
    var workerArguments: [String] {
        ["--drain-timeout", String(drainTimeout), "--request-header-timeout", String(requestHeaderTimeout)]
            + (noAccessLog ? ["--no-access-log"] : [])
    }

    /// Sets them on a worker's configuration, reading the default certificate's files.
    func apply(to configuration: inout Worker.Configuration) throws {
        if let defaultCertificate, let defaultKey {
            do {
                configuration.defaultCertificate = try DefaultCertificate(
                    certificatePEM: String(contentsOfFile: defaultCertificate, encoding: .utf8),
                    keyPEM: String(contentsOfFile: defaultKey, encoding: .utf8))
            } catch {
                throw ValidationError("--default-certificate \(defaultCertificate) / --default-key \(defaultKey): \(error)")
            }
        }
        configuration.accessLog = !noAccessLog
        configuration.drainTimeout = .milliseconds(Int64(drainTimeout * 1000))
        configuration.requestHeaderTimeout = .milliseconds(Int64(requestHeaderTimeout * 1000))
    }
}
