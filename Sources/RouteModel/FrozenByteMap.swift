/// An immutable open-addressing hash table from (scope, byte string) to a small integer.
///
/// Built once per snapshot and then only read, so lookups take a byte buffer straight from the
/// request without allocating a `String`. `scope` lets one table hold many small maps (for example
/// the children of every trie node). With `caseInsensitive`, ASCII letters hash and compare
/// lowercased: keys must then be inserted lowercase.
struct FrozenByteMap: Sendable {
    private struct Slot {
        var hash: UInt64
        var keyStart: Int32
        var keyLength: Int32
        var scope: Int32
        /// -1 marks an empty slot.
        var value: Int32
    }

    private let slots: [Slot]
    private let keyBytes: [UInt8]
    private let mask: Int
    let caseInsensitive: Bool
    let count: Int

    fileprivate init(entries: [(scope: Int32, key: [UInt8], value: Int32)], caseInsensitive: Bool) {
        self.caseInsensitive = caseInsensitive
        var capacity = 8
        while capacity < entries.count * 2 { capacity <<= 1 }
        var slots = [Slot](repeating: Slot(hash: 0, keyStart: 0, keyLength: 0, scope: 0, value: -1), count: capacity)
        var keyBytes: [UInt8] = []
        keyBytes.reserveCapacity(entries.reduce(0) { $0 + $1.key.count })
        let mask = capacity - 1
        for entry in entries {
            let hash = entry.key.withUnsafeBufferPointer {
                FrozenByteMap.hash(scope: entry.scope, key: $0, caseInsensitive: caseInsensitive)
            }
            var index = Int(truncatingIfNeeded: hash) & mask
            while slots[index].value >= 0 { index = (index + 1) & mask }
            slots[index] = Slot(
                hash: hash, keyStart: Int32(keyBytes.count), keyLength: Int32(entry.key.count),
                scope: entry.scope, value: entry.value)
            keyBytes.append(contentsOf: entry.key)
        }
        self.slots = slots
        self.keyBytes = keyBytes
        self.mask = mask
        self.count = entries.count
    }

    func lookup(scope: Int32, key: UnsafeBufferPointer<UInt8>) -> Int32? {
        let hash = FrozenByteMap.hash(scope: scope, key: key, caseInsensitive: caseInsensitive)
        return slots.withUnsafeBufferPointer { slots in
            keyBytes.withUnsafeBufferPointer { keyBytes in
                var index = Int(truncatingIfNeeded: hash) & mask
                while true {
                    let slot = slots[index]
                    if slot.value < 0 { return nil }
                    if slot.hash == hash, slot.scope == scope, Int(slot.keyLength) == key.count,
                        FrozenByteMap.equal(keyBytes, Int(slot.keyStart), key, caseInsensitive) {
                        return slot.value
                    }
                    index = (index + 1) & mask
                }
            }
        }
    }

    func lookup(scope: Int32, key: String) -> Int32? {
        var key = key
        return key.withUTF8 { lookup(scope: scope, key: $0) }
    }

    @inline(__always)
    private static func equal(
        _ stored: UnsafeBufferPointer<UInt8>, _ start: Int, _ key: UnsafeBufferPointer<UInt8>, _ caseInsensitive: Bool
    ) -> Bool {
        if caseInsensitive {
            for i in 0..<key.count where stored[start + i] != lowercase(key[i]) { return false }
        } else {
            for i in 0..<key.count where stored[start + i] != key[i] { return false }
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

/// Collects the entries of a `FrozenByteMap`, refusing duplicate keys.
struct FrozenByteMapBuilder {
    private var entries: [(scope: Int32, key: [UInt8], value: Int32)] = []
    private var seen: [ScopedKey: Int32] = [:]
    let caseInsensitive: Bool

    private struct ScopedKey: Hashable {
        var scope: Int32
        var key: [UInt8]
    }

    init(caseInsensitive: Bool) {
        self.caseInsensitive = caseInsensitive
    }

    /// Inserts the key, or returns the value already stored for it.
    mutating func insert(scope: Int32, key: some Sequence<UInt8>, value: Int32) -> Int32 {
        var bytes = Array(key)
        if caseInsensitive { bytes = bytes.map(FrozenByteMap.lowercase) }
        let scoped = ScopedKey(scope: scope, key: bytes)
        if let existing = seen[scoped] { return existing }
        seen[scoped] = value
        entries.append((scope, bytes, value))
        return value
    }

    func build() -> FrozenByteMap {
        FrozenByteMap(entries: entries, caseInsensitive: caseInsensitive)
    }
}
