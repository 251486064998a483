import ArgumentParser
import Foundation
import KubeTypes
import Manifests
import RouteModel
import Translator

/// The version printed by `--version`.
public enum PorticoVersion {
    public static let current = "0.1.0-dev"
}

/// What a command printed and how it ends; commands are run as functions so tests can call them.
public struct CommandResult: Sendable, Equatable {
    public var stdout: String
    public var stderr: String
    public var exitCode: Int32

    /// The manifests could not be read at all.
    init(failure: any Error) {
        self.init(stdout: "", stderr: "error: \(failure)\n", exitCode: Self.inputError)
    }

    public init(stdout: String, stderr: String, exitCode: Int32) {
        self.stdout = stdout
        self.stderr = stderr
        self.exitCode = exitCode
    }

    /// Exit codes: 0 success; 1 the input could not be read at all; 2 `--strict` found problems.
    public static let inputError: Int32 = 1
    public static let problemsFound: Int32 = 2
}

/// Where the route table comes from. Offline: a manifest file or directory, translated here.
public struct SourceOptions: ParsableArguments, Sendable {
    @Option(name: .long, help: "A manifest file or directory (YAML or JSON) to translate offline.")
    public var manifests: String

    @Option(name: .long, help: "The IngressClass name Portico serves.")
    public var ingressClass: String = TranslatorConfiguration().ingressClassName

    @Option(name: .long, help: "The controller name matched against IngressClass spec.controller.")
    public var controllerName: String = TranslatorConfiguration().controllerName

    public init() {}

    var configuration: TranslatorConfiguration {
        TranslatorConfiguration(controllerName: controllerName, ingressClassName: ingressClass)
    }

    /// Loads and translates, or returns the error text for a path that cannot be read.
    func load() -> Result<(ManifestSet, Translation), ManifestLoadError> {
        do {
            let set = try ManifestLoader.load(path: manifests)
            return .success((set, Translator.translate(set.objects, configuration: configuration)))
        } catch {
            return .failure(error)
        }
    }
}

public struct PorticoCtlCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "porticoctl",
        abstract: "Inspect what Portico routes, and why.",
        version: PorticoVersion.current,
        subcommands: [DumpCommand.self, ExplainCommand.self])

    public init() {}
}

public struct DumpCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Show virtual hosts, routes, backends, endpoints, certificates (metadata only) and rejections.",
        discussion: """
            Exit status: 0 when the table was built, 1 when the manifests cannot be read, \
            2 with --strict when a document failed to load or an object was rejected.
            """)

    @OptionGroup public var source: SourceOptions
    @Option(name: .shortAndLong, help: "Output format: table, json or yaml.")
    public var output: OutputFormat = .table
    @Flag(help: "Exit 2 when any document failed to load or any object was rejected (for CI linting).")
    public var strict = false

    public init() {}

    public func execute() -> CommandResult {
        switch source.load() {
        case .failure(let error):
            return CommandResult(failure: error)
        case .success(let (set, translation)):
            let document = DumpDocument(manifests: source.manifests, set: set, translation: translation)
            let text: String
            do {
                switch output {
                case .table: text = document.table
                case .json: text = try Render.json(document)
                case .yaml: text = try Render.yaml(document)
                }
            } catch {
                return CommandResult(stdout: "", stderr: "error: cannot render the dump: \(error)\n", exitCode: CommandResult.inputError)
            }
            // Problems go to stderr as well, so they are seen when stdout is piped to a file or jq.
            var stderr = set.errors.map { "error: \($0)\n" }.joined()
            stderr += translation.rejections.map { "warning: \($0)\n" }.joined()
            let failed = strict && !(set.errors.isEmpty && translation.rejections.isEmpty)
            return CommandResult(
                stdout: text.hasSuffix("\n") ? text : text + "\n", stderr: stderr, exitCode: failed ? CommandResult.problemsFound : 0)
        }
    }

    public func run() throws {
        try emit(execute())
    }
}

public struct ExplainCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show where a request for HOST and PATH goes, and why.",
        discussion: """
            With -o json the output is exactly one JSON object whose "result" is route, default-backend, \
            no-route (status 404), no-endpoints (status 503) or bad-request (status 400). \
            Exit status: 0 when a decision was made, 1 when the manifests cannot be read.
            """)

    @OptionGroup public var source: SourceOptions
    @Option(name: .long, help: "The Host header (a :port is ignored).")
    public var host: String
    @Option(name: .long, help: "The request path, with an optional query.")
    public var path: String
    @Option(name: .shortAndLong, help: "Output format: text or json.")
    public var output: ExplainFormat = .text

    public enum ExplainFormat: String, ExpressibleByArgument, CaseIterable, Sendable { case text, json }

    public init() {}

    public func execute() -> CommandResult {
        switch source.load() {
        case .failure(let error):
            return CommandResult(failure: error)
        case .success(let (set, translation)):
            let explanation = Explanation(table: translation.table, host: host, path: path)
            let stderr = set.errors.map { "error: \($0)\n" }.joined()
            let text: String
            switch output {
            case .text: text = explanation.text
            case .json: text = explanation.json
            }
            return CommandResult(stdout: text + "\n", stderr: stderr, exitCode: 0)
        }
    }

    public func run() throws {
        try emit(execute())
    }
}

private func emit(_ result: CommandResult) throws {
    FileHandle.standardOutput.write(Data(result.stdout.utf8))
    FileHandle.standardError.write(Data(result.stderr.utf8))
    if result.exitCode != 0 { throw ExitCode(result.exitCode) }
}
