/// An open-addressing hash table from (scope, byte string) to a small integer, read without locks
/// once built (a patched table is a patched copy).
///
/// Keys live in a shared byte arena owned by the caller (`RouteIndex`), so a lookup takes a byte
/// buffer straight from the request and allocates nothing, and the bytes that follow a key in the
/// arena (a virtual host's routes) are likely in the same cache line. `scope` lets one table hold many
/// small maps, such as the children of every trie node. With `caseInsensitive`, ASCII letters hash
/// and compare lowercased: keys must then be stored lowercase.
struct FrozenByteMap: Sendable {
    struct Slot {
        var keyStart: UInt32
        var keyLength: UInt32
        var scope: UInt32
        /// -1 marks an empty slot.
        var value: Int32

        static let empty = Slot(keyStart: 0, keyLength: 0, scope: 0, value: -1)
    }

    fileprivate(set) var slots: [Slot]
    fileprivate(set) var mask: Int
    let caseInsensitive: Bool
    fileprivate(set) var count = 0

    init(caseInsensitive: Bool, capacity: Int = 8) {
        self.caseInsensitive = caseInsensitive
        var size = 8
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: .empty, count: size)
        mask = size - 1
    }

    @inline(__always)
    func lookup(scope: Int32, key: UnsafeBufferPointer<UInt8>, arena: UnsafeBufferPointer<UInt8>) -> Int32? {
        let hash = FrozenByteMap.hash(scope: scope, key: key, caseInsensitive: caseInsensitive)
        let scope = UInt32(bitPattern: scope)
        return slots.withUnsafeBufferPointer { slots in
            var index = Int(truncatingIfNeeded: hash) & mask
            while true {
                let slot = slots[index]
                if slot.value < 0 { return nil }
                if slot.scope == scope, Int(slot.keyLength) == key.count,
                    FrozenByteMap.equal(arena, Int(slot.keyStart), key, caseInsensitive) {
                    return slot.value
                }
                index = (index + 1) & mask
            }
        }
    }

    /// Inserts a key already stored in `arena`, or returns the value stored for an equal key.
    mutating func insert(scope: Int32, keyStart: Int, keyLength: Int, value: Int32, arena: [UInt8]) -> Int32 {
        arena.withUnsafeBufferPointer { arena in
            let key = UnsafeBufferPointer(rebasing: arena[keyStart..<keyStart + keyLength])
            if let existing = lookup(scope: scope, key: key, arena: arena) { return existing }
            if (count + 1) * 2 > slots.count { grow(arena: arena) }
            place(Slot(keyStart: UInt32(keyStart), keyLength: UInt32(keyLength), scope: UInt32(bitPattern: scope), value: value), arena: arena)
            count += 1
            return value
        }
    }

    /// Removes the key equal to `key`; returns whether there was one. Linear probing's backward shift
    /// keeps every other key reachable without tombstones.
    @discardableResult
    mutating func remove(scope: Int32, key: UnsafeBufferPointer<UInt8>, arena: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = Int(truncatingIfNeeded: FrozenByteMap.hash(scope: scope, key: key, caseInsensitive: caseInsensitive)) & mask
        let scopeBits = UInt32(bitPattern: scope)
        while true {
            let slot = slots[index]
            if slot.value < 0 { return false }
            if slot.scope == scopeBits, Int(slot.keyLength) == key.count, FrozenByteMap.equal(arena, Int(slot.keyStart), key, caseInsensitive) {
                break
            }
            index = (index + 1) & mask
        }
        // Moves later slots of the probe run back into the hole when their home is not after it.
        var hole = index
        var next = (hole + 1) & mask
        while slots[next].value >= 0 {
            let slot = slots[next]
            let slotKey = UnsafeBufferPointer(rebasing: arena[Int(slot.keyStart)..<Int(slot.keyStart + slot.keyLength)])
            let home = Int(truncatingIfNeeded: FrozenByteMap.hash(scope: Int32(bitPattern: slot.scope), key: slotKey, caseInsensitive: caseInsensitive)) & mask
            // The slot may move to the hole unless its home lies cyclically in (hole, next].
            let homeAfterHole = (home &- hole) & mask
            let nextAfterHole = (next &- hole) & mask
            if homeAfterHole == 0 || homeAfterHole > nextAfterHole {
                slots[hole] = slot
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = .empty
        count -= 1
        return true
    }

    /// Replaces every stored value with `transform(value)` (values stay >= 0).
    mutating func mapValues(_ transform: (Int32) -> Int32) {
        slots.withUnsafeMutableBufferPointer { slots in
            for index in slots.indices where slots[index].value >= 0 { slots[index].value = transform(slots[index].value) }
        }
    }

    private mutating func place(_ slot: Slot, arena: UnsafeBufferPointer<UInt8>) {
        let key = UnsafeBufferPointer(rebasing: arena[Int(slot.keyStart)..<Int(slot.keyStart + slot.keyLength)])
        var index = Int(truncatingIfNeeded: FrozenByteMap.hash(scope: Int32(bitPattern: slot.scope), key: key, caseInsensitive: caseInsensitive)) & mask
        while slots[index].value >= 0 { index = (index + 1) & mask }
        slots[index] = slot
    }

    private mutating func grow(arena: UnsafeBufferPointer<UInt8>) {
        let old = slots
        slots = Array(repeating: .empty, count: old.count * 2)
        mask = slots.count - 1
        for slot in old where slot.value >= 0 { place(slot, arena: arena) }
    }

    @inline(__always)
    private static func equal(
        _ arena: UnsafeBufferPointer<UInt8>, _ start: Int, _ key: UnsafeBufferPointer<UInt8>, _ caseInsensitive: Bool
    ) -> Bool {
        if caseInsensitive {
            for i in 0..<key.count where arena[start &+ i] != lowercase(key[i]) { return false }
        } else {
            for i in 0..<key.count where arena[start &+ i] != key[i] { return false }
        }
        return true
    }

    @inline(__always)
    static func lowercase(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    /// FNV-1a over the scope and the bytes, finished with a 64-bit mix so linear probing spreads well.
    @inline(__always)
    static func hash(scope: Int32, key: UnsafeBufferPointer<UInt8>, caseInsensitive: Bool) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(UInt32(bitPattern: scope))
        hash = hash &* 0x0000_0100_0000_01b3
        if caseInsensitive {
            for byte in key { hash = (hash ^ UInt64(lowercase(byte))) &* 0x0000_0100_0000_01b3 }
        } else {
            for byte in key { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        }
        hash ^= hash >> 33
        hash = hash &* 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        return hash
    }
}
