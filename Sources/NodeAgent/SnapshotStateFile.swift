import RouteModel
import SnapshotProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The node agent's last good snapshot on disk, for static stability: an agent that starts while the
/// control plane is unreachable serves this.
///
/// Saved atomically: written to a temporary file in the same directory, fsynced, renamed over the
/// old one, and the directory fsynced, so a crash at any point leaves either the old or the new
/// snapshot, never a torn one. The file holds private keys, so it is 0600.
public struct SnapshotStateFile: Sendable {
    public let path: String

    public init(directory: String) {
        self.path = directory.hasSuffix("/") ? directory + "snapshot.pb" : directory + "/snapshot.pb"
    }

    public enum Loaded: Sendable {
        case missing
        case snapshot(version: UInt64, table: RouteTable)
        /// The file exists but cannot be used; the text says why, naming the file.
        case unusable(String)
    }

    /// Reads and checks the file (it must decode and match its content hash).
    public func load() -> Loaded {
        let bytes: [UInt8]
        switch Self.readAll(path) {
        case .failure(let error) where error.code == ENOENT: return .missing
        case .failure(let error): return .unusable("cannot read state file \(path): \(error)")
        case .success(let read): bytes = read
        }
        do {
            // Entry by entry, on every core, as a received snapshot is.
            let (version, table) = try RouteTable.decoding(serializedSnapshot: bytes)
            guard version > 0 else { return .unusable("state file \(path) is corrupt: it holds no snapshot version") }
            return .snapshot(version: version, table: table)
        } catch {
            return .unusable("state file \(path) is corrupt (\(bytes.count) bytes): \(error)")
        }
    }

    /// Replaces the file with `table` as `version`.
    public func save(version: UInt64, table: RouteTable) throws(StateFileError) {
        try save(encoded: EncodedSnapshot(version: version, encoding: table).bytes)
    }

    /// Replaces the file with `snapshot`.
    public func save(_ snapshot: Portico_V1_Snapshot) throws(StateFileError) {
        let bytes: [UInt8]
        do {
            bytes = try snapshot.serializedBytes()
        } catch {
            throw StateFileError(path: path, operation: "encode", code: 0, detail: "\(error)")
        }
        try save(encoded: bytes)
    }

    /// Replaces the file with a serialised `Snapshot` message (one received from the control plane).
    public func save(encoded bytes: [UInt8]) throws(StateFileError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StateFileError(path: temporary, operation: "create", code: errno) }
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if result < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                unlink(temporary)
                throw StateFileError(path: temporary, operation: "write", code: code)
            }
            written += result
        }
        guard fsync(fd) == 0 else {
            let code = errno
            close(fd)
            unlink(temporary)
            throw StateFileError(path: temporary, operation: "fsync", code: code)
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw StateFileError(path: path, operation: "rename", code: code)
        }
        // The rename itself is durable only once the directory is.
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }

    private static func readAll(_ path: String) -> Result<[UInt8], StateFileError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(StateFileError(path: path, operation: "open", code: errno)) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(StateFileError(path: path, operation: "read", code: errno))
            }
            if count == 0 { return .success(bytes) }
            bytes.append(contentsOf: chunk[..<count])
        }
    }
}

public struct StateFileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var code: Int32
    public var detail: String?

    public var description: String {
        if let detail { return "cannot \(operation) \(path): \(detail)" }
        return "cannot \(operation) \(path): \(String(cString: strerror(code)))"
    }
}
