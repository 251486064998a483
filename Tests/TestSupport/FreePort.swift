#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A free TCP port on 127.0.0.1, for a process a test or benchmark starts: bound and released, and
/// the kernel does not hand it out again at once.
public func freePort() throws -> Int {
    let (fd, port) = try boundSocket()
    close(fd)
    return port
}

/// A TCP socket bound to a port on 127.0.0.1 the kernel picked, and the port.
private func boundSocket() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw FreePortError() }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else {
        close(fd)
        throw FreePortError()
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

public struct FreePortError: Error {}

/// A port on 127.0.0.1 that refuses connections for as long as the test process runs: a socket is
/// bound to it and never listens, so no other listener (ours or another test's, which binds port 0
/// at the same time) can be handed the port, and a connect gets ECONNREFUSED.
public func refusingPort() throws -> Int {
    // Kept open on purpose: the port stays taken until the process exits.
    try boundSocket().port
}
