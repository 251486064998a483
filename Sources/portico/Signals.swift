import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Waits until one of `signals` arrives and returns it. The signals' default actions are disabled
/// for the rest of the process, so the caller decides how to stop.
func waitForSignal(_ signals: [Int32]) async -> Int32 {
    await withCheckedContinuation { continuation in
        let queue = DispatchQueue(label: "portico.signals")
        let sources = signals.map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            return DispatchSource.makeSignalSource(signal: number, queue: queue)
        }
        nonisolated(unsafe) var resumed = false
        for (number, source) in zip(signals, sources) {
            source.setEventHandler {
                guard !resumed else { return }
                resumed = true
                for source in sources { source.cancel() }
                continuation.resume(returning: number)
            }
            source.resume()
        }
    }
}
