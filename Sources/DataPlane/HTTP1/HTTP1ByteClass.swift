/// One frozen table of what each byte may be in an HTTP/1.1 message (RFC 9110 §5.6.2, §5.5;
/// RFC 9112 §3), read once per byte by the request parser instead of a chain of comparisons.
enum HTTP1ByteClass {
    /// A tchar: methods and field names.
    static let token: UInt8 = 1
    /// A byte of a field value: VCHAR, obs-text, SP or HTAB. No CTL (NUL, CR, LF, DEL…).
    static let fieldValue: UInt8 = 2
    /// A byte of a request target: visible ASCII (RFC 3986 characters and the ones clients send
    /// unencoded anyway, such as `"` or `{`). No space, no CTL, nothing above 0x7E.
    static let target: UInt8 = 4

    static let table: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 256)
        for byte in 0x21...0x7E {
            table[byte] |= fieldValue | target
        }
        for byte in 0x80...0xFF { table[byte] |= fieldValue }
        table[0x20] |= fieldValue
        table[0x09] |= fieldValue
        for byte in 0...255 where HTTPSyntax.isTokenCharacter(UInt8(byte)) { table[byte] |= token }
        return table
    }()
}
