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

    @OptionGroup var timeouts: WorkerTimeoutOptions

    @Flag(help: "Do not write an access-log line per request on stdout.")
    var noAccessLog = false

    func validate() throws {
        guard drainTimeout >= 0 else { throw ValidationError("--drain-timeout must not be negative") }
        if (defaultCertificate == nil) != (defaultKey == nil) {
            throw ValidationError("--default-certificate and --default-key go together")
        }
    }

    /// The options other than the default certificate, as a worker's arguments.
    var workerArguments: [String] {
        ["--drain-timeout", String(drainTimeout)] + timeouts.workerArguments + (noAccessLog ? ["--no-access-log"] : [])
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
        timeouts.apply(to: &configuration)
    }
}

/// The timeouts a worker enforces on its clients and upstreams: taken by `portico worker`,
/// `portico data-plane` and `portico run`, each passing them on to the workers it starts.
struct WorkerTimeoutOptions: ParsableArguments {
    @Option(help: "Seconds a request head may take to arrive whole, from accept or from its first byte (slowloris).")
    var requestHeaderTimeout: Double = 60

    @Option(help: "Seconds a kept-alive HTTP/1.1 connection without a request, or an HTTP/2 connection without a stream, stays open.")
    var idleTimeout: Double = 60

    @Option(help: "Seconds from accept until the TLS handshake must be complete.")
    var tlsHandshakeTimeout: Double = 10

    @Option(help: "The longest gap, in seconds, between two reads of a request body: then 408, or the exchange is cut once answering.")
    var requestBodyTimeout: Double = 60

    @Option(help: "The longest gap, in seconds, between two reads of an upstream's response body: then the exchange is cut.")
    var upstreamReadTimeout: Double = 60

    @Option(help: "The longest, in seconds, an upstream may take none of the request it is sent: then 504, or the exchange is cut once answering.")
    var upstreamSendTimeout: Double = 60

    private var all: [(flag: String, seconds: Double)] {
        [
            ("--request-header-timeout", requestHeaderTimeout), ("--idle-timeout", idleTimeout), ("--tls-handshake-timeout", tlsHandshakeTimeout),
            ("--request-body-timeout", requestBodyTimeout), ("--upstream-read-timeout", upstreamReadTimeout),
            ("--upstream-send-timeout", upstreamSendTimeout),
        ]
    }

    func validate() throws {
        for (flag, seconds) in all where !(seconds > 0) {
            throw ValidationError("\(flag) must be a positive number of seconds (got \(seconds))")
        }
    }

    /// As a worker's arguments.
    var workerArguments: [String] { all.flatMap { [$0.flag, String($0.seconds)] } }

    func apply(to configuration: inout Worker.Configuration) {
        func duration(_ seconds: Double) -> Duration { .milliseconds(Int64(seconds * 1000)) }
        configuration.requestHeaderTimeout = duration(requestHeaderTimeout)
        configuration.idleTimeout = duration(idleTimeout)
        configuration.tlsHandshakeTimeout = duration(tlsHandshakeTimeout)
        configuration.requestBodyTimeout = duration(requestBodyTimeout)
        configuration.upstreamReadTimeout = duration(upstreamReadTimeout)
        configuration.upstreamSendTimeout = duration(upstreamSendTimeout)
    }
}
