import ArgumentParser
import PorticoCtl

/// The command lives in the PorticoCtl library so tests can run it; this is only its entry point.
@main
enum PorticoCtlMain {
    static func main() async {
        await PorticoCtlCommand.main()
    }
}
