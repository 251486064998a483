import CPorticoRE2
import Synchronization

/// A regular expression over request paths, compiled by RE2: matching is linear in the path's
/// length whatever the pattern (no backtracking, so no pattern can stall a worker), and a compiled
/// program's memory is bounded. The syntax is Perl's without backreferences and lookaround, which
/// covers what ingress-nginx users write for paths; a pattern RE2 refuses is an error here.
///
/// Immutable and safe to share across threads (RE2 matches from any thread). Compiled programs are
/// cached by pattern, so translating a table again does not compile its patterns again.
public final class PathRegex: @unchecked Sendable {
    private let program: OpaquePointer
    /// Capturing groups, not counting the whole match.
    public let groupCount: Int
    public let pattern: String

    public struct CompileError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    private init(program: OpaquePointer, pattern: String) {
        self.program = program
        self.pattern = pattern
        self.groupCount = Int(portico_regex_group_count(program))
    }

    deinit { portico_regex_free(program) }

    private struct Key: Hashable {
        let pattern: String
        let caseInsensitive: Bool
    }

    private static let cache = Mutex<[Key: PathRegex]>([:])
    private static let cacheLimit = 50_000

    /// Compiles `pattern`, or returns the cached program for it.
    public static func compile(_ pattern: String, caseInsensitive: Bool) throws(CompileError) -> PathRegex {
        let key = Key(pattern: pattern, caseInsensitive: caseInsensitive)
        if let cached = cache.withLock({ $0[key] }) { return cached }
        var error = [CChar](repeating: 0, count: 256)
        var text = pattern
        let program = text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                portico_regex_compile(chars.baseAddress, chars.count, caseInsensitive ? 1 : 0, &error, error.count)
            }
        }
        guard let program else {
            let message = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CompileError(description: message.isEmpty ? "invalid regular expression" : message)
        }
        let regex = PathRegex(program: program, pattern: pattern)
        cache.withLock { cache in
            // Tables hold their programs themselves; the cache only saves compiling them again.
            if cache.count >= cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[key] = regex
        }
        return regex
    }

    /// Whether the pattern matches at the start of `text` (nginx's `~* "^…"`).
    public func matchesPrefix(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        text.withMemoryRebound(to: CChar.self) { chars in
            portico_regex_match(program, chars.baseAddress, chars.count, 1, nil, 0) == 1
        }
    }

    /// The leftmost match anywhere in `text`: the byte ranges of the whole match (index 0) and of each
    /// group (nil when it did not take part), or nil when nothing matches.
    public func firstMatch(in text: String) -> [Range<Int>?]? {
        var text = text
        let pairs = groupCount + 1
        var spans = [Int](repeating: -1, count: pairs * 2)
        let matched = text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                spans.withUnsafeMutableBufferPointer { spans in
                    portico_regex_match(program, chars.baseAddress, chars.count, 0, spans.baseAddress, Int32(pairs))
                }
            }
        }
        guard matched == 1 else { return nil }
        return (0..<pairs).map { index in spans[2 * index] < 0 ? nil : spans[2 * index]..<spans[2 * index + 1] }
    }
}
