import ArgumentParser
import PorticoCtl

/// The command lives in the PorticoCtl library so tests can run it; this is only its entry point.
@main
struct PorticoCtlMain: AsyncMainProtocol {
    typealias Command = PorticoCtlCommand
}
