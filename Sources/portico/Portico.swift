import ArgumentParser
import Logging
import PorticoCtl

/// The Portico server binary: `run` (everything on one machine), and each part on its own.
@main
struct Portico: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portico",
        abstract: "A Kubernetes Ingress controller: control plane, node agent and proxy workers in one binary.",
        version: PorticoVersion.current,
        subcommands: [RunCommand.self, ControlPlaneCommand.self, DataPlaneCommand.self, WorkerCommand.self, DemoBackendCommand.self])
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
