#if canImport(Glibc)
import CPorticoNative
import Glibc

/// A fixed-capacity byte buffer in memory allocated once per connection: reads land in it, writes
/// go out of it, with no allocation and no reference counting per request. Freed by its owner.
struct NativeBuffer {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    /// The readable bytes are `start..<end`.
    private(set) var start = 0
    private(set) var end = 0

    init(capacity: Int) {
        self.capacity = capacity
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    func free() { base.deallocate() }

    var count: Int { end - start }
    var isEmpty: Bool { start == end }
    var readable: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + start, count: end - start) }
    /// Room after the readable bytes, once they are moved to the front.
    var room: Int { capacity - count }

    mutating func consume(_ bytes: Int) {
        start += bytes
        if start == end {
            start = 0
            end = 0
        }
    }

    mutating func clear() {
        start = 0
        end = 0
    }

    /// Moves the readable bytes to the front, so all the room is after them.
    mutating func compact() {
        guard start > 0 else { return }
        memmove(base, base + start, end - start)
        end -= start
        start = 0
    }

    /// Reads from `fd` into the room after the readable bytes: the byte count, 0 at end of file,
    /// -1 with `errno` set.
    mutating func read(from fd: Int32) -> Int {
        if end == capacity { compact() }
        let n = Glibc.read(fd, base + end, capacity - end)
        if n > 0 { end += n }
        return n
    }

    /// After a read: it filled less than the room it had, so the socket is drained (as nginx
    /// assumes, which saves the read that would return EAGAIN; the next bytes bring a new
    /// edge-triggered event).
    var lastReadWasShort: Bool { end < capacity }

    /// Writes the readable bytes to `fd` as far as it takes them; false on an error other than EAGAIN.
    mutating func write(to fd: Int32) -> Bool {
        while start < end {
            // send with MSG_NOSIGNAL: a peer that closed is an error here, not a SIGPIPE.
            let n = send(fd, base + start, end - start, Int32(MSG_NOSIGNAL))
            if n > 0 {
                consume(n)
                continue
            }
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
        }
        return true
    }

    /// Appends `bytes` if they fit.
    @discardableResult
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if bytes.count > capacity - end { compact() }
        guard bytes.count <= capacity - end else { return false }
        if let source = bytes.baseAddress { (base + end).copyMemory(from: source, byteCount: bytes.count) }
        end += bytes.count
        return true
    }

    mutating func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { _ = append(UnsafeRawBufferPointer($0)) }
    }

    mutating func append(byte: UInt8) {
        if end == capacity { compact() }
        guard end < capacity else { return }
        base.storeBytes(of: byte, toByteOffset: end, as: UInt8.self)
        end += 1
    }

    /// Body bytes as they go on the wire: as one chunk (RFC 9112 §7.1) when `chunked`.
    mutating func append(body bytes: UnsafeRawBufferPointer, chunked: Bool) {
        guard chunked else {
            append(bytes)
            return
        }
        append(number: bytes.count, radix: 16)
        append("\r\n")
        append(bytes)
        append("\r\n")
    }

    /// `value` in decimal (radix 10) or hexadecimal (16), no allocation.
    mutating func append(number value: Int, radix: Int = 10) {
        var digits: (UInt64, UInt64) = (0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { scratch in
            repeat {
                let digit = rest % radix
                scratch[15 - count] = UInt8(digit < 10 ? 48 + digit : 87 + digit)
                rest /= radix
                count += 1
            } while rest > 0 && count < 16
            append(UnsafeRawBufferPointer(rebasing: scratch[(16 - count)...]))
        }
    }
}

/// The system calls the native engine makes, each wrapped once.
enum NativeSocket {
    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// A non-blocking TCP listener on `host:port` with SO_REUSEPORT (every worker binds the same
    /// port and the kernel spreads connections), and TCP_NODELAY, which accepted sockets inherit.
    /// Returns the socket and its bound port.
    static func listen(host: String, port: Int) throws(NativeEngineError) -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        guard var address = ipv4(host, port) else {
            close(fd)
            throw .address(host)
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let error = errno
            close(fd)
            throw .system("bind \(host):\(port)", error)
        }
        guard Glibc.listen(fd, 1024) == 0 else {
            let error = errno
            close(fd)
            throw .system("listen", error)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: actual.sin_port)))
    }

    /// Starts a non-blocking connect; the fd, or -1 when it failed at once.
    static func connect(to address: sockaddr_in) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = address
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result == 0 || errno == EINPROGRESS { return fd }
        close(fd)
        return -1
    }

    /// Whether a non-blocking connect completed without an error.
    static func connectSucceeded(_ fd: Int32) -> Bool {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0
    }

    static func ipv4(_ host: String, _ port: Int) -> sockaddr_in? {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
        return address
    }

    /// The peer's IPv4 address as text.
    static func peerAddress(_ fd: Int32) -> String? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &address.sin_addr, &text, socklen_t(INET_ADDRSTRLEN)) != nil else { return nil }
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

public enum NativeEngineError: Error, CustomStringConvertible {
    case system(String, Int32)
    case address(String)

    public var description: String {
        switch self {
        case .system(let call, let code): "native engine: \(call) failed: \(String(cString: strerror(code)))"
        case .address(let host): "native engine: \(host) is not an IPv4 address (the native engine binds IPv4 only)"
        }
    }
}
#endif
