import AdminHTTP
import Synchronization

/// The backend the quickstart routes to, so that `portico run` works with no cluster: each listener
/// answers every request with the name of the Service it stands for and what it received (method,
/// path, Host and the forwarding fields the proxy added). Request bodies are read and dropped.
public struct DemoBackend: Sendable {
    public struct Listener: Sendable, Hashable {
        /// Shown in every answer, e.g. `default/blog`.
        public var name: String
        public var host: String
        public var port: Int

        public init(name: String, host: String, port: Int) {
            self.name = name
            self.host = host
            self.port = port
        }

        /// `NAME=HOST:PORT`.
        public init(parsing text: String) throws(DemoBackendError) {
            guard let equals = text.firstIndex(of: "="), let colon = text.lastIndex(of: ":"), equals < colon,
                let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
            else {
                throw DemoBackendError(description: "invalid listener \"\(text)\": expected NAME=HOST:PORT, e.g. default/blog=127.0.0.1:9003")
            }
            self.init(name: String(text[..<equals]), host: String(text[text.index(after: equals)..<colon]), port: port)
        }
    }

    public let listeners: [Listener]

    public init(listeners: [Listener]) {
        self.listeners = listeners
    }

    /// Binds every listener and serves until the task is cancelled.
    public func run(onListening: @escaping @Sendable ([Listener]) -> Void = { _ in }) async throws {
        let bound = BoundPorts(count: listeners.count)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, listener) in listeners.enumerated() {
                let name = listener.name
                let server = AdminServer(host: listener.host, port: listener.port, owner: "demo backend \(name)", routes: [:]) { request in
                    Self.answer(name: name, request: request)
                }
                group.addTask {
                    try await server.run { port in
                        if let all = bound.set(index, port) {
                            onListening(zip(listeners, all).map { Listener(name: $0.name, host: $0.host, port: $1) })
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// The Service's name, then what arrived: method, target, Host, the forwarding fields and every
    /// other field (so a rewrite or a header edit shows).
    static func answer(name: String, request: AdminServer.Request) -> AdminServer.Reply {
        let local = request.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        var body = "Hello from \(name) (Portico demo backend on \(local))\n\(request.head.method) \(request.head.uri)\n"
        let first = ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-request-id"]
        for field in first {
            if let value = request.head.headers[field].first { body += "\(field): \(value)\n" }
        }
        for (name, value) in request.head.headers where !first.contains(name.lowercased()) { body += "\(name.lowercased()): \(value)\n" }
        return AdminServer.Reply(.ok, body)
    }
}

public struct DemoBackendError: Error, CustomStringConvertible {
    public var description: String
}

/// The listeners' bound ports, reported once all are known.
private final class BoundPorts: Sendable {
    private let ports: Mutex<[Int?]>

    init(count: Int) { ports = Mutex(Array(repeating: nil, count: count)) }

    /// Records one; returns all once every listener is bound.
    func set(_ index: Int, _ port: Int) -> [Int]? {
        ports.withLock { ports in
            ports[index] = port
            let known = ports.compactMap { $0 }
            return known.count == ports.count ? known : nil
        }
    }
}
