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

/// Keeps freed memory in malloc's arenas instead of handing it back to the kernel after every
/// burst. With glibc's defaults an arena shrank and regrew all the time (mprotect, then page faults
/// zeroing fresh pages): in a worker under proxy load. Memory stays bounded: a peak is kept for
/// reuse, not grown by this, and `releaseFreedMemory` hands it back after the rare bursts.
///
/// `largeBlocksFromArenas` also serves blocks up to 32 MiB from the arenas instead of from an mmap
/// each: for the control plane, whose first sync at 100k Ingresses spent 30% of its CPU zeroing
/// fresh pages for them. Not for workers and the node agent: every delta replaces a table's large
/// arrays, and kept in the arenas they held 40 MB more per process at 10k Ingresses.
func keepFreedMemoryForReuse(largeBlocksFromArenas: Bool = false) {
    // Setting any of these fixes the mmap threshold, by default at 128 KiB; 32 MiB is the largest
    // glibc takes on 64-bit (HEAP_MAX_SIZE / 2).
    _ = cportico_malloc_keep_freed(128 << 20, 8 << 20, largeBlocksFromArenas ? 32 << 20 : 128 << 10)
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
