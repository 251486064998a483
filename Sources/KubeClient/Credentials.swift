import Foundation
import Synchronization

/// A client-go credential plugin (`users[].user.exec` in a kubeconfig): a command that prints an
/// ExecCredential with a bearer token, run again when the token expires.
public struct ExecCredentialPlugin: Sendable, Equatable {
    public var command: String
    public var arguments: [String]
    public var environment: [String: String]
    public var apiVersion: String

    public init(command: String, arguments: [String] = [], environment: [String: String] = [:], apiVersion: String = "client.authentication.k8s.io/v1") {
        self.command = command
        self.arguments = arguments
        self.environment = environment
        self.apiVersion = apiVersion
    }

    struct Credential: Decodable {
        struct Status: Decodable {
            var token: String?
            var clientCertificateData: String?
            var expirationTimestamp: String?
        }
        var status: Status?
    }

    /// Runs the plugin; returns its token and when it expires (nil: does not).
    func fetch() async throws(KubeConfigError) -> (token: String, expires: Date?) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command.contains("/") ? command : "/usr/bin/env")
        process.arguments = command.contains("/") ? arguments : [command] + arguments
        var environment = ProcessInfo.processInfo.environment
        for (name, value) in self.environment { environment[name] = value }
        environment["KUBERNETES_EXEC_INFO"] =
            #"{"apiVersion":"\#(apiVersion)","kind":"ExecCredential","spec":{"interactive":false}}"#
        process.environment = environment
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        let source = "credential plugin \(command)"
        do {
            try process.run()
        } catch {
            throw KubeConfigError(source: source, message: "cannot be started: \(error.localizedDescription)")
        }
        // Read before waiting: a plugin that writes more than a pipe holds would block otherwise.
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw KubeConfigError(source: source, message: "exited with status \(process.terminationStatus): \(errorText.prefix(500))")
        }
        guard let credential = try? JSONDecoder().decode(Credential.self, from: data), let status = credential.status else {
            throw KubeConfigError(source: source, message: "did not print an ExecCredential with a status")
        }
        guard let token = status.token, !token.isEmpty else {
            let what = status.clientCertificateData != nil ? "a client certificate, which Portico does not support from plugins" : "no token"
            throw KubeConfigError(source: source, message: "returned \(what)")
        }
        let expires = status.expirationTimestamp.flatMap { ISO8601DateFormatter().date(from: $0) }
        return (token, expires)
    }
}

/// The `Authorization` header for each request: a fixed token, a token file re-read when it
/// changes (and at least every minute), or a plugin's token until shortly before it expires.
final class Authorizer: Sendable {
    private let credentials: KubeConfig.Credentials
    private struct Cached {
        var header: String?
        var validUntil: Date = .distantPast
        var fileStamp: Date?
    }
    private let cache = Mutex(Cached())

    init(credentials: KubeConfig.Credentials) {
        self.credentials = credentials
    }

    func header() async throws(KubeConfigError) -> String? {
        switch credentials {
        case .none, .clientCertificate: return nil
        case .token(let token): return "Bearer \(token)"
        case .tokenFile(let path):
            let stamp = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate]) as? Date
            if let header = cache.withLock({ $0.validUntil > Date() && $0.fileStamp == stamp ? $0.header : nil }) { return header }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw KubeConfigError(source: path, message: "the token file cannot be read")
            }
            let header = "Bearer \(text.trimmingCharacters(in: .whitespacesAndNewlines))"
            cache.withLock { $0 = Cached(header: header, validUntil: Date().addingTimeInterval(60), fileStamp: stamp) }
            return header
        case .exec(let plugin):
            if let header = cache.withLock({ $0.validUntil > Date() ? $0.header : nil }) { return header }
            let (token, expires) = try await plugin.fetch()
            let header = "Bearer \(token)"
            // Without an expiry the token is kept until the server refuses it (see `invalidate`).
            let validUntil = expires.map { $0.addingTimeInterval(-30) } ?? .distantFuture
            cache.withLock { $0 = Cached(header: header, validUntil: validUntil) }
            return header
        }
    }

    /// After a 401: fetch or read the credential again next time.
    func invalidate() {
        cache.withLock { $0.validUntil = .distantPast }
    }
}
