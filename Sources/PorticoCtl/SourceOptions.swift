import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KubeTypes
import Manifests
import RouteModel
import SnapshotProtocol
import Translator

/// Where the route table comes from: manifests translated here, or a live server's `Dump`.
public struct SourceOptions: ParsableArguments, Sendable {
    @Option(name: .long, help: "A manifest file or directory (YAML or JSON) to translate offline.")
    public var manifests: String?

    @Option(name: .long, help: "A control plane or node agent to ask: unix:/path/to.sock or HOST:PORT.")
    public var server: String?

    @Option(name: .long, help: "With --manifests: the IngressClass name Portico serves.")
    public var ingressClass: String = TranslatorConfiguration().ingressClassName

    @Option(name: .long, help: "With --manifests: the controller name matched against IngressClass spec.controller.")
    public var controllerName: String = TranslatorConfiguration().controllerName

    @Option(name: .long, help: "With --server: give up after this many seconds.")
    public var timeout: Double = 10

    public init() {}

    /// Where deploy/ puts the node agent's and the control plane's sockets, tried in this order
    /// when neither --manifests nor --server is given (so `kubectl exec … porticoctl dump` needs no flags).
    public static let defaultSockets = ["/run/portico/data-plane.sock", "/run/portico/control-plane.sock"]

    /// --server, or the first default socket that exists.
    var serverAddress: String? {
        server ?? Self.defaultSockets.first { FileManager.default.fileExists(atPath: $0) }.map { "unix:\($0)" }
    }

    public func validate() throws {
        switch (manifests, serverAddress) {
        case (nil, nil):
            throw ValidationError("give --manifests PATH or --server ADDRESS (no socket at \(Self.defaultSockets.joined(separator: " or ")))")
        case (.some, .some) where server != nil: throw ValidationError("give either --manifests or --server, not both")
        case (.some, .some): break
        case (nil, .some(let server)):
            do { _ = try ServerAddress(parsing: server) } catch { throw ValidationError(error.description) }
        case (.some, nil): break
        }
    }

    func load() async throws -> LoadedTable {
        if let manifests {
            let set = try ManifestLoader.load(path: manifests)
            let configuration = TranslatorConfiguration(controllerName: controllerName, ingressClassName: ingressClass)
            let translation = Translator.translate(set.objects, configuration: configuration)
            return LoadedTable(
                table: translation.table,
                document: DumpDocument(manifests: manifests, set: set, translation: translation),
                manifestErrors: set.errors.map(\.description), rejections: translation.rejections.map(\.description))
        }
        let address = try ServerAddress(parsing: serverAddress ?? "")
        let response = try await Self.fetchDump(from: address, timeout: timeout)
        let table: RouteTable
        do {
            table = try RouteTable(proto: response.snapshot.table)
        } catch {
            throw SourceError("\(address) sent a table that cannot be decoded: \(error)")
        }
        let document = DumpDocument(server: address, response: response, table: table)
        return LoadedTable(
            table: table, document: document, manifestErrors: response.diagnostics.sourceErrors,
            rejections: document.rejections.map { "\($0.object)\($0.field.map { " \($0)" } ?? ""): \($0.reason): \($0.message)" },
            nacks: document.subscribers?.compactMap { subscriber in
                subscriber.lastNack.map { "subscriber \(subscriber.id) (\(subscriber.node)) NACKed version \($0.version): \($0.error)" }
            } ?? [])
    }

    /// `virtualHostLimit`: see `Portico_V1_DumpRequest.virtualHostLimit` (0: the whole table).
    public static func fetchDump(
        from address: ServerAddress, timeout: Double, subscribersOnly: Bool = false, virtualHostLimit: Int = 0
    ) async throws -> Portico_V1_DumpResponse {
        do {
            let transport = try HTTP2ClientTransport.Posix(target: address.target, transportSecurity: .plaintext)
            return try await withGRPCClient(transport: transport) { client in
                var options = CallOptions.defaults
                options.timeout = .milliseconds(Int64(timeout * 1000))
                options.maxRequestMessageBytes = 256 << 20
                options.maxResponseMessageBytes = 256 << 20
                var request = Portico_V1_DumpRequest()
                request.subscribersOnly = subscribersOnly
                request.virtualHostLimit = UInt32(clamping: virtualHostLimit)
                return try await Portico_V1_Snapshots.Client(wrapping: client).dump(request, options: options)
            }
        } catch let error as RPCError {
            throw SourceError("cannot get a dump from \(address): \(error.code): \(error.message)")
        }
    }
}

/// A table plus what to report about it.
struct LoadedTable {
    var table: RouteTable
    var document: DumpDocument
    var manifestErrors: [String]
    var rejections: [String]
    var nacks: [String] = []

    /// Lines for stderr.
    var problems: [String] {
        manifestErrors.map { "error: \($0)\n" } + rejections.map { "warning: \($0)\n" } + nacks.map { "warning: \($0)\n" }
    }
}

struct SourceError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
