import NIOCore

/// A timeout that is re-armed on every request without touching the event loop's timer heap: arming
/// only moves the deadline; the one scheduled task checks it when it fires and reschedules itself if
/// the deadline moved later. Scheduling and cancelling two tasks per request showed up in the proxy
/// profile. Used on one event loop only.
final class LazyTimer {
    private var deadline: NIODeadline?
    private var scheduledFor: NIODeadline?
    private var scheduled: Scheduled<Void>?
    private var generation = 0
    private var action: (() -> Void)?

    func arm(in delay: TimeAmount, on eventLoop: any EventLoop, action: @escaping () -> Void) {
        let deadline = NIODeadline.now() + delay
        self.deadline = deadline
        self.action = action
        if let scheduledFor, scheduledFor <= deadline { return }
        schedule(at: deadline, on: eventLoop)
    }

    /// Also breaks the reference cycle through `action`.
    func disarm() {
        deadline = nil
        action = nil
    }

    /// For good, when the owner goes away: the scheduled task leaves the loop's timer heap too,
    /// instead of waiting there until its time (a minute, for thousands of closed connections).
    func cancel() {
        disarm()
        scheduled?.cancel()
        scheduled = nil
        scheduledFor = nil
        generation += 1
    }

    private func schedule(at time: NIODeadline, on eventLoop: any EventLoop) {
        generation += 1
        let generation = generation
        scheduledFor = time
        scheduled = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: time) { [weak self] in self?.fire(generation, on: eventLoop) }
    }

    private func fire(_ generation: Int, on eventLoop: any EventLoop) {
        guard generation == self.generation else { return }  // superseded by an earlier deadline
        scheduledFor = nil
        guard let deadline else { return }
        if NIODeadline.now() < deadline {
            schedule(at: deadline, on: eventLoop)
            return
        }
        let action = self.action
        disarm()
        action?()
    }
}
