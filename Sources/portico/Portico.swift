import ArgumentParser
import Logging
import PorticoCtl

/// The Portico server binary: the control plane today; the node agent and workers join as they land.
@main
struct Portico: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portico",
        abstract: "A Kubernetes Ingress controller: control plane, node agent and proxy workers in one binary.",
        version: PorticoVersion.current,
        subcommands: [ControlPlaneCommand.self, WorkerCommand.self])
}

/// Structured logs on stderr, one event per line.
func bootstrapLogging(level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
