import Foundation
import Yams

/// How to reach and authenticate to a Kubernetes API server: from a kubeconfig file (its current
/// context) or from inside a Pod (the service account).
public struct KubeConfig: Sendable {
    /// `https://host:port`, no trailing slash.
    public var server: String
    /// PEM trust roots for the server; nil: the system's.
    public var certificateAuthorityPEM: String?
    public var insecureSkipTLSVerify = false
    public var credentials: Credentials
    /// The context's namespace, or the service account's.
    public var namespace: String?

    public enum Credentials: Sendable {
        case none
        case token(String)
        /// Re-read when it changes: projected service-account tokens rotate.
        case tokenFile(String)
        case clientCertificate(certificatePEM: String, keyPEM: String)
        case exec(ExecCredentialPlugin)
    }

    public init(server: String, certificateAuthorityPEM: String? = nil, credentials: Credentials = .none, namespace: String? = nil) {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.credentials = credentials
        self.namespace = namespace
    }

    /// The service account's token, CA and namespace, under `/var/run/secrets/kubernetes.io/serviceaccount`.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = "/var/run/secrets/kubernetes.io/serviceaccount"
    ) throws(KubeConfigError) -> KubeConfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"], !host.isEmpty else {
            throw KubeConfigError(
                source: "in-cluster configuration", message: "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; outside a Pod, pass --kubeconfig")
        }
        let tokenFile = directory + "/token"
        guard FileManager.default.isReadableFile(atPath: tokenFile) else {
            throw KubeConfigError(source: tokenFile, message: "the service-account token cannot be read")
        }
        let ca = try? String(contentsOfFile: directory + "/ca.crt", encoding: .utf8)
        let namespace = (try? String(contentsOfFile: directory + "/namespace", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return KubeConfig(server: "https://\(hostPart):\(port)", certificateAuthorityPEM: ca, credentials: .tokenFile(tokenFile), namespace: namespace)
    }

    /// The current context (or `context`) of a kubeconfig file. Relative file paths in it are
    /// resolved against the file's directory, as kubectl does.
    public static func load(kubeconfig path: String, context requested: String? = nil) throws(KubeConfigError) -> KubeConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw KubeConfigError(source: path, message: "cannot be read: \(error.localizedDescription)")
        }
        let file: KubeconfigFile
        do {
            file = try YAMLDecoder().decode(KubeconfigFile.self, from: text)
        } catch {
            throw KubeConfigError(source: path, message: "is not a kubeconfig: \(error)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        func resolve(_ file: String) -> String { file.hasPrefix("/") || directory.isEmpty ? file : directory + "/" + file }
        func read(_ file: String, _ what: String) throws(KubeConfigError) -> String {
            do {
                return try String(contentsOfFile: resolve(file), encoding: .utf8)
            } catch {
                throw KubeConfigError(source: path, message: "\(what) \(resolve(file)) cannot be read")
            }
        }
        func decode(_ base64: String, _ what: String) throws(KubeConfigError) -> String {
            guard let data = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)), let text = String(data: data, encoding: .utf8)
            else { throw KubeConfigError(source: path, message: "\(what) is not base64-encoded PEM") }
            return text
        }

        guard let contextName = requested ?? file.currentContext, !contextName.isEmpty else {
            throw KubeConfigError(source: path, message: "names no current-context; pass a context")
        }
        guard let context = file.contexts?.first(where: { $0.name == contextName })?.context else {
            throw KubeConfigError(source: path, message: "has no context \"\(contextName)\"")
        }
        guard let cluster = file.clusters?.first(where: { $0.name == context.cluster })?.cluster else {
            throw KubeConfigError(source: path, message: "context \"\(contextName)\" names cluster \"\(context.cluster)\", which is not defined")
        }
        guard let server = cluster.server, !server.isEmpty else {
            throw KubeConfigError(source: path, message: "cluster \"\(context.cluster)\" has no server")
        }
        var config = KubeConfig(server: server, namespace: context.namespace)
        if let data = cluster.certificateAuthorityData {
            config.certificateAuthorityPEM = try decode(data, "certificate-authority-data of cluster \"\(context.cluster)\"")
        } else if let file = cluster.certificateAuthority {
            config.certificateAuthorityPEM = try read(file, "certificate-authority")
        }
        config.insecureSkipTLSVerify = cluster.insecureSkipTLSVerify ?? false

        if let userName = context.user, !userName.isEmpty {
            guard let user = file.users?.first(where: { $0.name == userName })?.user else {
                throw KubeConfigError(source: path, message: "context \"\(contextName)\" names user \"\(userName)\", which is not defined")
            }
            if let token = user.token {
                config.credentials = .token(token)
            } else if let tokenFile = user.tokenFile {
                config.credentials = .tokenFile(resolve(tokenFile))
            } else if user.clientCertificateData != nil || user.clientCertificate != nil {
                let certificate: String
                if let data = user.clientCertificateData {
                    certificate = try decode(data, "client-certificate-data")
                } else {
                    certificate = try read(user.clientCertificate!, "client-certificate")
                }
                let key: String
                if let data = user.clientKeyData {
                    key = try decode(data, "client-key-data")
                } else if let file = user.clientKey {
                    key = try read(file, "client-key")
                } else {
                    throw KubeConfigError(source: path, message: "user \"\(userName)\" has a client certificate but no client key")
                }
                config.credentials = .clientCertificate(certificatePEM: certificate, keyPEM: key)
            } else if let exec = user.exec {
                config.credentials = .exec(
                    ExecCredentialPlugin(
                        command: exec.command.contains("/") ? resolve(exec.command) : exec.command, arguments: exec.args ?? [],
                        environment: Dictionary((exec.env ?? []).map { ($0.name, $0.value) }, uniquingKeysWith: { $1 }),
                        apiVersion: exec.apiVersion ?? "client.authentication.k8s.io/v1"))
            } else if user.username != nil {
                throw KubeConfigError(source: path, message: "user \"\(userName)\" uses basic authentication, which Portico does not support")
            }
        }
        return config
    }
}

public struct KubeConfigError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var message: String
    public var description: String { "\(source): \(message)" }
}

/// The kubeconfig fields Portico reads.
struct KubeconfigFile: Decodable {
    struct NamedCluster: Decodable {
        var name: String
        var cluster: Cluster
    }
    struct Cluster: Decodable {
        var server: String?
        var certificateAuthority: String?
        var certificateAuthorityData: String?
        var insecureSkipTLSVerify: Bool?

        enum CodingKeys: String, CodingKey {
            case server
            case certificateAuthority = "certificate-authority"
            case certificateAuthorityData = "certificate-authority-data"
            case insecureSkipTLSVerify = "insecure-skip-tls-verify"
        }
    }
    struct NamedContext: Decodable {
        var name: String
        var context: Context
    }
    struct Context: Decodable {
        var cluster: String
        var user: String?
        var namespace: String?
    }
    struct NamedUser: Decodable {
        var name: String
        var user: User
    }
    struct User: Decodable {
        var token: String?
        var tokenFile: String?
        var clientCertificate: String?
        var clientCertificateData: String?
        var clientKey: String?
        var clientKeyData: String?
        var username: String?
        var exec: Exec?

        enum CodingKeys: String, CodingKey {
            case token, tokenFile, username, exec
            case clientCertificate = "client-certificate"
            case clientCertificateData = "client-certificate-data"
            case clientKey = "client-key"
            case clientKeyData = "client-key-data"
        }
    }
    struct Exec: Decodable {
        struct Variable: Decodable {
            var name: String
            var value: String
        }
        var command: String
        var args: [String]?
        var env: [Variable]?
        var apiVersion: String?
    }

    var clusters: [NamedCluster]?
    var contexts: [NamedContext]?
    var users: [NamedUser]?
    var currentContext: String?

    enum CodingKeys: String, CodingKey {
        case clusters, contexts, users
        case currentContext = "current-context"
    }
}
