import ArgumentParser
import PorticoCtl

/// The Portico server binary. The control plane, node agent and workers are its subcommands; they are
/// added as they land (see the open issues). Until then it only reports its version.
struct Portico: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portico",
        abstract: "A Kubernetes Ingress controller: control plane, node agent and proxy workers in one binary.",
        version: PorticoVersion.current)
}

Portico.main()
