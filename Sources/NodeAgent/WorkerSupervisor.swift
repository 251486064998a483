import Foundation
import Logging
import Synchronization

/// Runs N worker processes and keeps them running.
///
/// Each slot spawns its worker as a child process and waits for it to exit. A worker that exits
/// while the supervisor is not stopping is restarted: at once when it had run for `stableAfter`,
/// else after a capped exponential delay, so a worker that crashes at start does not spin. `stop()`
/// sends SIGTERM to every worker (they drain) and `run()` returns once all have exited.
public final class WorkerSupervisor: Sendable {
    public struct Configuration: Sendable {
        public var count: Int
        public var executable: String
        /// The worker's arguments for a slot.
        public var arguments: @Sendable (Int) -> [String]
        public var initialDelay: Duration = .milliseconds(100)
        public var maximumDelay: Duration = .seconds(10)
        /// A worker that ran this long before exiting is restarted without delay.
        public var stableAfter: Duration = .seconds(10)

        public init(count: Int, executable: String, arguments: @escaping @Sendable (Int) -> [String]) {
            self.count = count
            self.executable = executable
            self.arguments = arguments
        }
    }

    /// One slot, for reports and `Dump`.
    public struct WorkerState: Sendable, Equatable {
        public var slot: Int
        /// 0 while no process runs.
        public var pid: Int32 = 0
        public var restarts = 0
        public var lastExit: String?
    }

    public let configuration: Configuration
    private let logger: Logger
    private let slots: Mutex<[WorkerState]>
    private let stopping = Atomic<Bool>(false)

    public init(configuration: Configuration, logger: Logger = Logger(label: "portico.data-plane")) {
        precondition(configuration.count > 0, "at least one worker")
        self.configuration = configuration
        self.logger = logger
        self.slots = Mutex((0..<configuration.count).map { WorkerState(slot: $0) })
    }

    public var workers: [WorkerState] { slots.withLock { $0 } }

    /// Runs every slot until `stop()` (or cancellation of the calling task, which stops) and all
    /// workers have exited.
    public func run() async {
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                for slot in 0..<configuration.count {
                    group.addTask { await self.supervise(slot: slot) }
                }
            }
        } onCancel: {
            stop()
        }
    }

    /// Sends SIGTERM to every running worker and restarts none.
    public func stop() {
        guard !stopping.exchange(true, ordering: .sequentiallyConsistent) else { return }
        let pids = slots.withLock { $0.map(\.pid) }.filter { $0 > 0 }
        logger.info("stopping workers", metadata: ["pids": "\(pids)"])
        for pid in pids { kill(pid, SIGTERM) }
    }

    private func supervise(slot: Int) async {
        var quickExits = 0
        while !stopping.load(ordering: .sequentiallyConsistent) {
            let started = ContinuousClock.now
            let exit = await runOnce(slot: slot)
            slots.withLock {
                $0[slot].pid = 0
                $0[slot].lastExit = exit
            }
            if stopping.load(ordering: .sequentiallyConsistent) {
                logger.info("worker stopped", metadata: ["slot": "\(slot)", "exit": "\(exit)"])
                break
            }
            quickExits = ContinuousClock.now - started >= configuration.stableAfter ? 0 : quickExits + 1
            let delay = quickExits <= 1 ? Duration.zero : min(configuration.maximumDelay, configuration.initialDelay * (1 << min(quickExits - 2, 20)))
            logger.warning("worker exited; restarting", metadata: ["slot": "\(slot)", "exit": "\(exit)", "delay": "\(delay)"])
            // In short steps, so that a stop during a long delay is seen at once.
            let restartAt = ContinuousClock.now + delay
            while ContinuousClock.now < restartAt, !stopping.load(ordering: .sequentiallyConsistent) {
                try? await Task.sleep(for: min(.milliseconds(50), restartAt - ContinuousClock.now))
            }
            if stopping.load(ordering: .sequentiallyConsistent) { break }
            slots.withLock { $0[slot].restarts += 1 }
        }
    }

    /// Spawns the slot's worker and waits for it to exit; returns how it ended.
    private func runOnce(slot: Int) async -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: configuration.executable)
        process.arguments = configuration.arguments(slot)
        let ended: String = await withCheckedContinuation { continuation in
            process.terminationHandler = { process in
                switch process.terminationReason {
                case .exit: continuation.resume(returning: "exit status \(process.terminationStatus)")
                case .uncaughtSignal: continuation.resume(returning: "signal \(process.terminationStatus)")
                @unknown default: continuation.resume(returning: "status \(process.terminationStatus)")
                }
            }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(returning: "could not start \(configuration.executable): \(error)")
                return
            }
            let pid = process.processIdentifier
            slots.withLock { $0[slot].pid = pid }
            logger.info("worker started", metadata: ["slot": "\(slot)", "pid": "\(pid)"])
            // A stop that raced with the spawn saw no pid to signal.
            if stopping.load(ordering: .sequentiallyConsistent) { kill(pid, SIGTERM) }
        }
        return ended
    }
}
