/// A stable 64-bit FNV-1a hash for route-table content.
///
/// Unlike `Hasher`, the result is the same in every process and on every run, so the control plane and
/// data plane can compare hashes. It detects changes; it is not a cryptographic digest.
struct ContentHasher {
    private var state: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func combine(_ byte: UInt8) {
        state = (state ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
    }

    mutating func combine(_ value: Int64) {
        var value = UInt64(bitPattern: value)
        for _ in 0..<8 {
            combine(UInt8(truncatingIfNeeded: value))
            value >>= 8
        }
    }

    mutating func combine(_ value: Int) { combine(Int64(value)) }

    mutating func combine(_ value: Bool) { combine(value ? 1 as UInt8 : 0) }

    /// Length-prefixed so that ("ab", "c") and ("a", "bc") differ.
    mutating func combine(_ string: String) {
        combine(string.utf8.count)
        for byte in string.utf8 { combine(byte) }
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
}
