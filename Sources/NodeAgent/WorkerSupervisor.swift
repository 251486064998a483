import Foundation
import Logging
import Synchronization

/// Runs N worker processes (or any child processes: `portico run` supervises its control plane and
/// node agent with it) and keeps them running.
///
/// Each slot spawns its process as a child and waits for it to exit. One that exits while the
/// supervisor is not stopping is restarted: at once when it had run for `stableAfter`, else after
/// a capped exponential delay, so one that crashes at start does not spin. `stop()` sends SIGTERM
/// to every process (workers drain) and `run()` returns once all have exited.
///
/// With a `pidDirectory`, each slot's pid is kept in `<role>-<slot>.pid` there, and a supervisor
/// that starts where a predecessor ran (a node agent restarted after a crash) adopts the
/// predecessor's processes that still run, instead of starting new ones beside them: orphaned
/// workers keep serving, and resubscribe to the new agent's socket. An adopted process is not a
/// child, so its exit is seen by polling.
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
        /// What the processes are, for logs and pid files: "worker", "control plane", ...
        public var role = "worker"
        /// Where pid files are kept, to adopt a predecessor's processes; nil: none.
        public var pidDirectory: String?

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
        var adoptable = adoptablePid(slot: slot)
        while !stopping.load(ordering: .sequentiallyConsistent) {
            let started = ContinuousClock.now
            let exit: String
            if let pid = adoptable.take() {
                exit = await adopt(pid, slot: slot)
            } else {
                exit = await runOnce(slot: slot)
            }
            slots.withLock {
                $0[slot].pid = 0
                $0[slot].lastExit = exit
            }
            if stopping.load(ordering: .sequentiallyConsistent) {
                logger.info("\(configuration.role) stopped", metadata: ["slot": "\(slot)", "exit": "\(exit)"])
                break
            }
            quickExits = ContinuousClock.now - started >= configuration.stableAfter ? 0 : quickExits + 1
            let delay = quickExits <= 1 ? Duration.zero : min(configuration.maximumDelay, configuration.initialDelay * (1 << min(quickExits - 2, 20)))
            logger.warning("\(configuration.role) exited; restarting", metadata: ["slot": "\(slot)", "exit": "\(exit)", "delay": "\(delay)"])
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
            writePidFile(pid, slot: slot)
            logger.info("\(configuration.role) started", metadata: ["slot": "\(slot)", "pid": "\(pid)"])
            // A stop that raced with the spawn saw no pid to signal.
            if stopping.load(ordering: .sequentiallyConsistent) { kill(pid, SIGTERM) }
        }
        return ended
    }

    // MARK: Adoption

    private func pidFile(slot: Int) -> String? {
        configuration.pidDirectory.map { "\($0)/\(configuration.role.replacingOccurrences(of: " ", with: "-"))-\(slot).pid" }
    }

    private func writePidFile(_ pid: Int32, slot: Int) {
        guard let path = pidFile(slot: slot) else { return }
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data("\(pid)\n".utf8), attributes: [.posixPermissions: 0o600]),
            rename(temporary, path) == 0
        else {
            logger.warning("cannot write the pid file", metadata: ["path": "\(path)", "error": "\(String(cString: strerror(errno)))"])
            return
        }
    }

    /// The pid in the slot's pid file, if that process still runs and is the one this slot would
    /// start (the same executable and arguments): a reused pid is not adopted.
    private func adoptablePid(slot: Int) -> Int32? {
        guard let path = pidFile(slot: slot), let text = try? String(contentsOfFile: path, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, pid != getpid(), Self.isRunning(pid),
            let commandLine = FileHandle(forReadingAtPath: "/proc/\(pid)/cmdline")?.readDataToEndOfFile()  // procfs reports size 0
        else { return nil }
        // NUL-terminated arguments, the executable first.
        let arguments = commandLine.dropLast().split(separator: 0, omittingEmptySubsequences: false).dropFirst()
            .map { String(decoding: $0, as: UTF8.self) }
        // The parent's pid differs between predecessor and successor: compared without it.
        guard Self.withoutParentPid(arguments) == Self.withoutParentPid(configuration.arguments(slot)) else { return nil }
        return pid
    }

    private static func withoutParentPid(_ arguments: [String]) -> [String] {
        guard let flag = arguments.firstIndex(of: "--parent-pid") else { return arguments }
        return Array(arguments[..<flag] + arguments[min(flag + 2, arguments.count)...])
    }

    /// Watches a predecessor's process until it exits (or, on `stop()`, is told to).
    private func adopt(_ pid: Int32, slot: Int) async -> String {
        slots.withLock { $0[slot].pid = pid }
        logger.notice("\(configuration.role) adopted from the previous run", metadata: ["slot": "\(slot)", "pid": "\(pid)"])
        if stopping.load(ordering: .sequentiallyConsistent) { kill(pid, SIGTERM) }
        while Self.isRunning(pid) {
            try? await Task.sleep(for: .milliseconds(100))
        }
        return "exited (adopted, pid \(pid))"
    }

    /// Alive and not a zombie: an orphan's new parent may never reap it.
    static func isRunning(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }
}
