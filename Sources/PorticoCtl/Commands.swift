import ArgumentParser
import Foundation
import KubeTypes
import Manifests
import RouteModel
import SnapshotProtocol
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

    /// Exit codes: 0 success; 1 the input could not be read at all (no manifests, no server);
    /// 2 `--strict` found problems.
    public static let inputError: Int32 = 1
    public static let problemsFound: Int32 = 2

    public init(stdout: String, stderr: String, exitCode: Int32) {
        self.stdout = stdout
        self.stderr = stderr
        self.exitCode = exitCode
    }

    /// The source could not be read at all.
    init(failure: any Error) {
        self.init(stdout: "", stderr: "error: \(failure)\n", exitCode: Self.inputError)
    }
}

public struct PorticoCtlCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "porticoctl",
        abstract: "Inspect what Portico routes, and why.",
        version: PorticoVersion.current,
        subcommands: [DumpCommand.self, ExplainCommand.self, StatusCommand.self, AnnotationsCommand.self])

    public init() {}
}

public struct DumpCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Show virtual hosts, routes, backends, endpoints, certificates (metadata only), rejections and subscribers.",
        discussion: """
            Exit status: 0 when the table was built or fetched, 1 when the manifests or the server cannot \
            be read, 2 with --strict when a document failed to load, an object was rejected, or a \
            subscriber NACKed.
            """)

    @OptionGroup public var source: SourceOptions
    @Option(name: .shortAndLong, help: "Output format: table, json or yaml.")
    public var output: OutputFormat = .table
    @Flag(help: "Exit 2 when any document failed to load, any object was rejected or any subscriber NACKed (for CI linting).")
    public var strict = false
    @Option(name: .long, help: "Show only this part: routes, clusters, certs, rejections, annotations or subscribers. Repeatable.")
    public var section: [DumpDocument.Section] = []

    public init() {}

    public func execute() async -> CommandResult {
        let loaded: LoadedTable
        do { loaded = try await source.load() } catch { return CommandResult(failure: error) }
        let document = loaded.document
        let text: String
        do {
            let sections = Set(section)
            switch output {
            case .table: text = sections.isEmpty ? document.table : document.table(sections: sections)
            case .json: text = sections.isEmpty ? try Render.json(document) : try Render.json(document.only(sections))
            case .yaml: text = sections.isEmpty ? try Render.yaml(document) : try Render.yaml(document.only(sections))
            }
        } catch {
            return CommandResult(stdout: "", stderr: "error: cannot render the dump: \(error)\n", exitCode: CommandResult.inputError)
        }
        // Problems go to stderr as well, so they are seen when stdout is piped to a file or jq.
        let stderr = loaded.problems.joined()
        let failed = strict && !loaded.problems.isEmpty
        return CommandResult(
            stdout: text.hasSuffix("\n") ? text : text + "\n", stderr: stderr, exitCode: failed ? CommandResult.problemsFound : 0)
    }

    public func run() async throws {
        try emit(await execute())
    }
}

public struct ExplainCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show where a request for HOST and PATH goes, and why.",
        discussion: """
            With -o json the output is exactly one JSON object whose "result" is route, default-backend, \
            no-route (status 404), no-endpoints (status 503) or bad-request (status 400). \
            Exit status: 0 when a decision was made, 1 when the manifests or the server cannot be read.
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

    public func execute() async -> CommandResult {
        let loaded: LoadedTable
        do { loaded = try await source.load() } catch { return CommandResult(failure: error) }
        let explanation = Explanation(table: loaded.table, host: host, path: path)
        let text: String
        switch output {
        case .text: text = explanation.text
        case .json: text = explanation.json
        }
        return CommandResult(stdout: text + "\n", stderr: loaded.manifestErrors.map { "error: \($0)\n" }.joined(), exitCode: 0)
    }

    public func run() async throws {
        try emit(await execute())
    }
}

private func emit(_ result: CommandResult) throws {
    FileHandle.standardOutput.write(Data(result.stdout.utf8))
    FileHandle.standardError.write(Data(result.stderr.utf8))
    if result.exitCode != 0 { throw ExitCode(result.exitCode) }
}
