import Synchronization
import Testing
import TestSupport
@testable import DataPlane

@Suite struct ReleaseAfterChangesTests {
    /// A burst of table changes releases once, after it, not per change.
    @Test func aBurstOfChangesReleasesOnceAfterIt() async throws {
        let releases = Atomic<Int>(0)
        let release = ReleaseAfterChanges(release: { releases.add(1, ordering: .relaxed) }, quiet: .milliseconds(200))

        for _ in 0..<50 { release.changed() }
        #expect(releases.load(ordering: .relaxed) == 0, "no release while the changes keep coming")
        try await eventually("the burst is followed by a release") { releases.load(ordering: .relaxed) == 1 }

        release.changed()
        try await eventually("the next change is followed by a release") { releases.load(ordering: .relaxed) == 2 }
    }
}

extension ReleaseAfterChangesTests {
    /// Changes that never pause still release by the cap.
    @Test func changesThatNeverPauseReleaseByTheCap() async throws {
        let releases = Atomic<Int>(0)
        let release = ReleaseAfterChanges(release: { releases.add(1, ordering: .relaxed) }, quiet: .seconds(60), cap: .milliseconds(100))
        let deadline = ContinuousClock.now + .seconds(30)
        while releases.load(ordering: .relaxed) == 0, ContinuousClock.now < deadline {
            release.changed()
            await Task.yield()
        }
        #expect(releases.load(ordering: .relaxed) >= 1, "a release came while changes kept coming")
    }
}
