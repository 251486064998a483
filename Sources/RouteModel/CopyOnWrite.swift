/// A value stored behind one shared reference and copied on write, for large, rarely changed parts
/// of a table: copying a table's arrays then copies one reference per element, and equal values
/// compare by identity first.
struct CopyOnWrite<Value: Hashable & Sendable>: Hashable, Sendable {
    /// Mutated only while uniquely referenced (`update`), so shared copies never change.
    private final class Storage: @unchecked Sendable {
        var value: Value
        init(_ value: Value) { self.value = value }
    }

    private var storage: Storage

    init(_ value: Value) { storage = Storage(value) }

    var value: Value { storage.value }

    /// Changes the value in place, after copying it when another copy shares it.
    mutating func update(_ change: (inout Value) -> Void) {
        if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.value) }
        change(&storage.value)
    }

    static func == (lhs: Self, rhs: Self) -> Bool { lhs.storage === rhs.storage || lhs.storage.value == rhs.storage.value }

    func hash(into hasher: inout Hasher) { hasher.combine(storage.value) }
}
