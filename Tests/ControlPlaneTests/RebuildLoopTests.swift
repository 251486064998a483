import RouteModel
import SnapshotProtocol
import Synchronization
import Testing
import TestSupport
@testable import ControlPlane

/// The rebuild loop's rules: when it rebuilds (a pure schedule, driven by made-up instants), and
/// what it publishes (versions in sequence, none for an unchanged table), awaited through its
/// sequence number.
@Suite struct RebuildLoopTests {
    let t0 = ContinuousClock.now

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { t0 + .milliseconds(milliseconds) }

    func schedule(leadingEdge: Bool = true) -> HoldOffSchedule {
        HoldOffSchedule(holdOff: .milliseconds(100), maxHoldOff: .milliseconds(500), leadingEdge: leadingEdge)
    }

    /// Runs one rebuild that starts at `start` and ends at `end`; returns whether it took changes.
    func rebuild(_ schedule: inout HoldOffSchedule, from start: Int, to end: Int) -> Bool {
        #expect(schedule.next(at: at(start)) == .rebuild)
        let changed = schedule.start()
        #expect(schedule.next(at: at(start)) == .idle, "no second rebuild while one runs")
        schedule.finish(at: at(end), changed: changed)
        return changed
    }

    @Test func aLoneChangeIsRebuiltAtOnce() {
        var schedule = schedule()
        #expect(schedule.next(at: at(0)) == .idle)
        schedule.changed(at: at(0))
        #expect(rebuild(&schedule, from: 0, to: 5))
        #expect(schedule.next(at: at(5)) == .idle)
        // Quiet for longer than the hold-off: the next change is rebuilt at once too.
        schedule.changed(at: at(200))
        #expect(schedule.next(at: at(200)) == .rebuild)
    }

    @Test func aBurstWaitsForAQuietSpell() {
        var schedule = schedule()
        schedule.changed(at: at(0))
        _ = rebuild(&schedule, from: 0, to: 5)
        // Within the hold-off of that rebuild: a burst, applied once it has been quiet 100 ms.
        schedule.changed(at: at(10))
        #expect(schedule.next(at: at(10)) == .wait(until: at(110)))
        schedule.changed(at: at(60))
        #expect(schedule.next(at: at(110)) == .wait(until: at(160)), "each change restarts the quiet spell")
        #expect(schedule.next(at: at(160)) == .rebuild)
        #expect(rebuild(&schedule, from: 160, to: 170))
    }

    @Test func aBurstThatNeverQuietsIsRebuiltAtTheCap() {
        var schedule = schedule()
        schedule.changed(at: at(0))
        _ = rebuild(&schedule, from: 0, to: 5)
        var now = 10
        while now < 500 {
            schedule.changed(at: at(now))
            #expect(schedule.next(at: at(now)) == .wait(until: at(min(now + 100, 510))))
            now += 50
        }
        // The burst began at 10 ms: 500 ms later it is rebuilt, changes still coming.
        schedule.changed(at: at(505))
        #expect(schedule.next(at: at(509)) == .wait(until: at(510)))
        #expect(schedule.next(at: at(510)) == .rebuild)
    }

    @Test func aChangeDuringARebuildWaitsForTheNextQuietSpell() {
        var schedule = schedule()
        schedule.changed(at: at(0))
        #expect(schedule.next(at: at(0)) == .rebuild)
        let changed = schedule.start()
        schedule.changed(at: at(30))
        schedule.finish(at: at(300), changed: changed)
        // Not lost, and not taken as a lone change: it came before the rebuild finished.
        #expect(schedule.hasChanges)
        #expect(schedule.next(at: at(300)) == .rebuild, "its quiet spell (30 + 100 ms) has passed")
        schedule = self.schedule()
        schedule.changed(at: at(0))
        let first = schedule.start()
        schedule.changed(at: at(3))
        schedule.finish(at: at(5), changed: first)
        #expect(schedule.next(at: at(5)) == .wait(until: at(103)))
    }

    @Test func withoutTheLeadingEdgeEveryChangeWaits() {
        var schedule = schedule(leadingEdge: false)
        schedule.changed(at: at(0))
        #expect(schedule.next(at: at(0)) == .wait(until: at(100)))
        #expect(rebuild(&schedule, from: 100, to: 110))
        schedule.changed(at: at(1000))
        #expect(schedule.next(at: at(1000)) == .wait(until: at(1100)))
    }

    @Test func aRequestIsServedAtOnceAndLeavesTheHoldOffAlone() {
        var schedule = schedule()
        schedule.changed(at: at(0))
        _ = rebuild(&schedule, from: 0, to: 5)
        schedule.request()
        #expect(!rebuild(&schedule, from: 7, to: 8), "a request is no change")
        // The request did not count as a rebuild of changes: 50 ms after the last one is a burst.
        schedule.changed(at: at(55))
        #expect(schedule.next(at: at(55)) == .wait(until: at(155)))
        schedule.request()
        #expect(schedule.next(at: at(56)) == .rebuild)
        let took = schedule.start()
        #expect(took, "the rebuild takes the waiting changes along")
    }

    @Test func anUnchangedTableIsNoNewVersionAndVersionsFollowInSequence() throws {
        let loop = RebuildLoop()
        #expect(loop.publish(table(version: 1)).version == 1)
        #expect(loop.latest.current?.delta == nil)
        let same = loop.publish(table(version: 1))
        #expect(same.version == 1 && same.unchanged == 1)
        #expect(loop.latest.current?.version == 1)
        let next = table(version: 2)
        #expect(loop.publish(next).version == 2)
        #expect(loop.latest.current?.delta?.base == 1, "a version carries its change from the one before")
        // A source that knows its change passes it on; from another base it is not trusted.
        let third = table(version: 3)
        let status = loop.publish(third, base: next.contentHash) { next.delta(to: third) }
        #expect(status.version == 3)
        let passed = try #require(loop.latest.current?.delta)
        #expect(try next.applying(passed.changes) == third)
        let fourth = table(version: 4)
        loop.publish(fourth, base: 12345) { Issue.record("a delta from another table was used"); return next.delta(to: fourth) }
        #expect(loop.latest.current?.version == 4 && loop.latest.current?.table == fourth)
    }

    @Test func aVersionSaysHowLongItsChangesWaitedAndItsTranslationTook() async throws {
        var options = RebuildLoop.Options()
        options.holdOff = .milliseconds(30)
        options.leadingEdge = false
        let loop = RebuildLoop(options: options)
        // The translation is 10 ms of work (not a wait).
        let run = Task {
            await loop.run {
                let until = ContinuousClock.now + .milliseconds(10)
                while ContinuousClock.now < until {}
                loop.publish(table(version: 1))
            }
        }
        defer { run.cancel() }
        loop.changed()
        _ = try await rebuilt(loop, after: 0)
        let timing = try #require(loop.latest.current?.timing)
        #expect(timing.waitedMicros >= 30_000, "the change waited out the hold-off")
        #expect(timing.translatedMicros >= 10_000)
        #expect(timing.publishedMicros < 1_000_000)
        // Published outside a rebuild (a test, a tool): no timing to speak of.
        loop.publish(table(version: 2))
        #expect(loop.latest.current?.timing == nil)
        run.cancel()
        await run.value
    }

    @Test func changesAreRebuiltByTheRunningLoopAndAwaitedBySequence() async throws {
        var options = RebuildLoop.Options()
        options.holdOff = .milliseconds(1)
        options.maxHoldOff = .milliseconds(5)
        let loop = RebuildLoop(options: options)
        let content = Mutex<UInt64>(1)
        let ready = Atomic<Bool>(false)
        let run = Task { await loop.run(ready: { ready.load(ordering: .relaxed) }) { loop.publish(table(version: content.withLock { $0 })) } }
        defer { run.cancel() }

        // Changes before the source is ready wait for it, as one.
        loop.changed()
        loop.changed()
        ready.store(true, ordering: .relaxed)
        loop.changed()
        var status = try await rebuilt(loop, after: 0)
        #expect(status.version == 1)

        // Every finished rebuild advances the sequence; only new content a version.
        let sequence = status.rebuilds
        loop.changed()
        status = try await rebuilt(loop, after: sequence)
        #expect(status.version == 1 && status.unchanged >= 1)
        for next in UInt64(2)...5 {
            content.withLock { $0 = next }
            let before = loop.sequence
            loop.changed()
            status = try await rebuilt(loop, after: before)
            #expect(status.version == next)
        }
        #expect(loop.latest.current?.table == table(version: 5))
        run.cancel()
        await run.value
    }
}

/// The loop's status once it has finished more than `sequence` rebuilds; fails after `timeout`.
func rebuilt(
    _ loop: RebuildLoop, after sequence: Int, timeout: Duration = .seconds(60), sourceLocation: SourceLocation = #_sourceLocation
) async throws -> RebuildLoop.Status {
    try await withThrowingTaskGroup(of: RebuildLoop.Status?.self) { group in
        group.addTask { await loop.rebuilt(after: sequence) }
        group.addTask {
            // A deadline, not a wait: the first task normally ends this one.
            try? await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let status = try await group.next() ?? nil, status.rebuilds > sequence else {
            Issue.record("timed out waiting for rebuild \(sequence + 1)", sourceLocation: sourceLocation)
            throw TimedOut(what: "rebuild \(sequence + 1)", timeout: timeout)
        }
        return status
    }
}
