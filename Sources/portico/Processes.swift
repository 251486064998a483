import CPorticoSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// This executable's own path, for starting its subcommands as child processes.
func currentExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

/// How a user runs porticoctl from a shell, for the hints `portico run` prints: `porticoctl` when
/// the one on PATH is the one beside this executable (an installed image), else that one by its
/// path (`swift run` puts neither on PATH), else `swift run porticoctl` (not built yet: it works
/// from the repository).
func porticoctlCommand() -> String {
    let beside = URL(fileURLWithPath: currentExecutable()).deletingLastPathComponent().appendingPathComponent("porticoctl").path
    let onPath = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/porticoctl" }
        .first { FileManager.default.isExecutableFile(atPath: $0) }
    let resolve = { (path: String) in URL(fileURLWithPath: path).resolvingSymlinksInPath().path }
    guard FileManager.default.isExecutableFile(atPath: beside) else { return onPath == nil ? "swift run porticoctl" : "porticoctl" }
    if let onPath, resolve(onPath) == resolve(beside) { return "porticoctl" }
    return beside
}

/// Returns once the process that started this one (`parent`) is gone: its children are re-parented,
/// so `getppid()` changes. Lets `portico run` and the node agent's children stop (gracefully) when
/// their parent was killed outright, instead of lingering. Returns false when cancelled first.
@discardableResult
func waitForParentExit(_ parent: Int32) async -> Bool {
    while getppid() == parent {
        do { try await Task.sleep(for: .milliseconds(200)) } catch { return false }
    }
    return true
}

/// Keeps freed memory in the worker's malloc arenas instead of handing it back to the kernel after
/// every burst. With glibc's defaults the worker's arena shrank and regrew all the time under load
/// (mprotect, then page faults zeroing fresh pages: 7% of its CPU in an HTTP/2 benchmark, 1% after).
/// Memory stays bounded: a peak is kept for reuse, not grown by this.
func keepFreedMemoryForReuse() {
    _ = cportico_malloc_keep_freed(128 << 20, 8 << 20)
}

/// Hands malloc's free pages back to the kernel, after a rare burst (a whole snapshot decoded)
/// whose garbage `keepFreedMemoryForReuse` would otherwise keep resident for good.
@Sendable func releaseFreedMemory() {
    _ = cportico_malloc_release_free()
}

/// `path` made absolute against the current directory: children may run elsewhere.
func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}
