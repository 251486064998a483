import Foundation

/// A `portico run` started by a benchmark: waits until it says it is running and finds its run
/// directory (from the porticoctl hint it prints).
public struct PorticoRun {
    public let process: Process
    /// `/tmp/portico-run.XXXXXX`.
    public let runDirectory: String

    public var controlPlaneSocket: String { runDirectory + "/control-plane.sock" }

    public static func start(executable: String, arguments: [String]) throws -> PorticoRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["run"] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var printed = ""
        while !printed.contains("Ctrl-C") {
            let data = output.fileHandleForReading.availableData
            guard !data.isEmpty else { throw PorticoRunError(description: "portico run exited:\n\(printed)") }
            printed += String(decoding: data, as: UTF8.self)
        }
        guard let match = printed.firstMatch(of: /unix:(\/tmp\/portico-run\.[A-Za-z0-9]+)\/control-plane\.sock/) else {
            throw PorticoRunError(description: "no run directory in:\n\(printed)")
        }
        return PorticoRun(process: process, runDirectory: String(match.1))
    }

    /// Ctrl-C, then waits for everything to stop.
    public func stop() {
        process.interrupt()
        process.waitUntilExit()
    }
}

public struct PorticoRunError: Error, CustomStringConvertible {
    public var description: String
}
