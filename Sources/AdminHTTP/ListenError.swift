import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A listener that could not be opened, said the way a user reads it: who wanted it, where, and
/// why ("worker 0: cannot listen on 127.0.0.1:8080: address already in use"). Every listener of
/// every command reports its failure this way.
public struct ListenError: Error, CustomStringConvertible {
    /// Who wanted the listener: "worker 0", "node agent admin server", ...
    public let owner: String
    /// `host:port`, or `unix:PATH`.
    public let address: String
    public let reason: String

    public init(owner: String, address: String, cause: any Error) {
        self.owner = owner
        self.address = address
        self.reason = Self.reason(cause)
    }

    public var description: String { "\(owner): cannot listen on \(address): \(reason)" }

    /// The system's own words for a failed system call (lowercased: they follow a colon), else
    /// the error as it describes itself.
    static func reason(_ cause: any Error) -> String {
        guard let io = cause as? IOError else { return "\(cause)" }
        let text = String(cString: strerror(io.errnoCode))
        return text.prefix(1).lowercased() + text.dropFirst()
    }

    /// Runs `bind`, turning a failure into a ListenError.
    public static func naming<T>(_ owner: String, _ address: String, _ bind: () async throws -> T) async throws -> T {
        do {
            return try await bind()
        } catch let error as ListenError {
            throw error
        } catch {
            throw ListenError(owner: owner, address: address, cause: error)
        }
    }
}
