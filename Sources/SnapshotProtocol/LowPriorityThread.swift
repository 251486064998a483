import CPorticoSystem
import Foundation

/// Work on a thread of its own at nice 19: it gets a small share of a busy CPU, so it finishes, and
/// yields to everything else. A node agent's background saves and its decode of a snapshot it
/// passed on already run this way, beside the workers that serve and decode on the same cores.
public enum LowPriorityThread {
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread {
                _ = cportico_set_thread_nice(19)
                continuation.resume(returning: body())
            }.start()
        }
    }
}
