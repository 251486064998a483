import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Waits until one of `signals` arrives and returns it; returns nil when the waiting task is
/// cancelled (another reason to stop came first). The signals' default actions are disabled for the
/// rest of the process, so the caller decides how to stop.
@discardableResult
func waitForSignal(_ signals: [Int32]) async -> Int32? {
    let queue = DispatchQueue(label: "portico.signals")
    nonisolated(unsafe) let sources = signals.map { number -> any DispatchSourceSignal in
        signal(number, SIG_IGN)
        return DispatchSource.makeSignalSource(signal: number, queue: queue)
    }
    // Resumed once: by the first signal or by cancellation, whichever wins the lock.
    let pending = Mutex<CheckedContinuation<Int32?, Never>?>(nil)
    @Sendable func finish(_ value: Int32?) {
        let continuation = pending.withLock { continuation -> CheckedContinuation<Int32?, Never>? in
            defer { continuation = nil }
            return continuation
        }
        guard let continuation else { return }
        for source in sources { source.cancel() }
        continuation.resume(returning: value)
    }
    return await withTaskCancellationHandler {
        await withCheckedContinuation { continuation in
            pending.withLock { $0 = continuation }
            for (number, source) in zip(signals, sources) {
                source.setEventHandler { finish(number) }
                source.resume()
            }
            if Task.isCancelled { finish(nil) }
        }
    } onCancel: {
        finish(nil)
    }
}
