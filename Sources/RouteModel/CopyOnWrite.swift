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

    /// Sets one field, copying the value only when that changes it: clearing a field that is nil
    /// already must not give a shared value's holder a copy of its own (the translator did so for
    /// every route, 225k copies at 100k Ingresses, none of them shared any more).
    mutating func set<Field: Equatable>(_ field: WritableKeyPath<Value, Field>, _ newValue: Field) {
        guard storage.value[keyPath: field] != newValue else { return }
        update { $0[keyPath: field] = newValue }
    }

    /// Whether both hold the one storage object (a copy not written to since).
    func sharesStorage(with other: Self) -> Bool { storage === other.storage }

    static func == (lhs: Self, rhs: Self) -> Bool { lhs.storage === rhs.storage || lhs.storage.value == rhs.storage.value }

    func hash(into hasher: inout Hasher) { hasher.combine(storage.value) }
}
