/// A stable 64-bit hash for route-table content: FNV-1a's multiply, over 8-byte words where it can.
///
/// Unlike `Hasher`, the result is the same in every process and on every run, so the control plane and
/// data plane can compare hashes. It detects changes; it is not a cryptographic digest.
struct ContentHasher {
    private var state: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func combine(_ byte: UInt8) {
        state = (state ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
    }

    mutating func combine(_ value: Int64) {
        combine(word: UInt64(bitPattern: value))
    }

    mutating func combine(_ value: Int) { combine(Int64(value)) }

    mutating func combine(_ value: Bool) { combine(value ? 1 as UInt8 : 0) }

    /// Length-prefixed so that ("ab", "c") and ("a", "bc") differ. Eight bytes per step: this runs
    /// over every string of a table on each compile.
    mutating func combine(_ string: String) {
        if let done: Void = string.utf8.withContiguousStorageIfAvailable({ combine(bytes: $0) }) { return done }
        var copy = string
        copy.withUTF8 { combine(bytes: $0) }
    }


    private mutating func combine(bytes: UnsafeBufferPointer<UInt8>) {
        combine(bytes.count)
        var index = 0
        while index + 8 <= bytes.count {
            let word = UnsafeRawBufferPointer(bytes).loadUnaligned(fromByteOffset: index, as: UInt64.self)
            combine(word: UInt64(littleEndian: word))
            index += 8
        }
        while index < bytes.count {
            combine(bytes[index])
            index += 1
        }
    }

    private mutating func combine(word: UInt64) {
        state = (state ^ word) &* 0x0000_0100_0000_01b3
        state ^= state >> 29
    }

    mutating func combine(_ string: String?) {
        if let string {
            combine(true)
            combine(string)
        } else {
            combine(false)
        }
    }

    var value: UInt64 { state }

    /// The state run through a 64-bit finaliser (SplitMix64's): an entry's hash, well spread so
    /// that sums of entries' hashes stay distinct.
    var finished: UInt64 {
        var z = state &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
