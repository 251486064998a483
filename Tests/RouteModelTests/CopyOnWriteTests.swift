import Testing
@testable import RouteModel

@Suite struct CopyOnWriteTests {
    struct Fields: Hashable, Sendable {
        var name: String? = nil
        var count = 0
    }

    @Test func settingAFieldToWhatItHoldsKeepsTheValueShared() {
        let original = CopyOnWrite(Fields(name: "a"))
        var copy = original
        copy.set(\.name, "a")
        copy.set(\.count, 0)
        #expect(copy.sharesStorage(with: original), "nothing changed, so nothing was copied")

        copy.set(\.name, nil)
        #expect(!copy.sharesStorage(with: original))
        #expect(copy.value.name == nil)
        #expect(original.value.name == "a", "the shared value never changes")

        // A copy taken before a change keeps what it saw.
        let before = copy
        copy.set(\.count, 2)
        #expect(copy.value.count == 2)
        #expect(before.value.count == 0)
    }
}
