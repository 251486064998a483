import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import RouteModel
import Synchronization

/// Who is subscribing: sent in the first `WatchRequest` and shown by `Dump`.
public struct SubscriberIdentity: Sendable, Hashable {
    public var node: String
    public var workerID: String
    public var kind: Portico_V1_SubscriberKind

    public init(node: String, workerID: String = "", kind: Portico_V1_SubscriberKind) {
        self.node = node
        self.workerID = workerID
        self.kind = kind
    }
}

/// A snapshot that decoded and passed its checks, handed to the caller to apply.
public struct ReceivedSnapshot: Sendable {
    public var version: UInt64
    public var table: RouteTable
    /// The bytes of the `Snapshot` message it was decoded from, for relays (a subscriber made with
    /// `keepsEncodedSnapshots`): passing them on skips encoding the table again.
    public var encoded: EncodedSnapshot?
    /// When it came as a delta: the changes from the sender's version `base`, for relays to pass on
    /// instead of comparing the whole tables again.
    public var delta: (base: UInt64, changes: RouteTableDelta)?

    public init(version: UInt64, table: RouteTable, encoded: EncodedSnapshot? = nil, delta: (base: UInt64, changes: RouteTableDelta)? = nil) {
        self.version = version
        self.table = table
        self.encoded = encoded
        self.delta = delta
    }
}

/// A whole snapshot as it came, before it is decoded: offered to a relay (`SnapshotSubscriber.run(
/// forward:apply:)`), which may pass the bytes on first.
public struct UndecodedSnapshot: Sendable {
    /// The `WatchResponse`'s version.
    public var version: UInt64
    /// The content hash the sender computed (the decode checks the table against it).
    public var contentHash: UInt64
    /// The `Snapshot` message's bytes, at the snapshot's own version.
    public var encoded: EncodedSnapshot
}

/// Subscribes to a Snapshots server and keeps subscribing.
///
/// Each received snapshot is decoded and checked (a bad one is NACKed without reaching the caller),
/// then handed to `apply`. When `apply` returns the snapshot is ACKed; when it throws, it is NACKed
/// with the error's text and the caller keeps its previous table. On any disconnect the subscriber
/// reconnects with capped exponential backoff and jitter, until its task is cancelled.
public final class SnapshotSubscriber: Sendable {
    public let address: ServerAddress
    public let identity: SubscriberIdentity
    private let maxMessageBytes: Int
    /// Mutual TLS for a TCP server; nil: plaintext.
    private let tls: SnapshotTLS?
    private let logger: Logger
    private let backoffPolicy: Backoff
    private let keepsEncodedSnapshots: Bool
    private let status = Mutex(Status())
    /// The newest worker report (node agents only) and the open stream's request sink, if any.
    private let reporting = Mutex<(latest: Portico_V1_WatchRequest?, sink: AsyncStream<Portico_V1_WatchRequest>.Continuation?)>((nil, nil))

    /// What the subscriber has done so far, for callers and tests.
    public struct Status: Sendable, Equatable {
        public var connected = false
        /// Sessions that received at least one snapshot.
        public var sessions = 0
        public var appliedVersion: UInt64?
        public var nacks = 0
        public var lastError: String?
    }

    public init(
        address: ServerAddress, identity: SubscriberIdentity, backoff: Backoff = Backoff(), maxMessageBytes: Int = 64 << 20,
        tls: SnapshotTLS? = nil, keepsEncodedSnapshots: Bool = false, logger: Logger = Logger(label: "portico.subscriber")
    ) {
        self.address = address
        self.keepsEncodedSnapshots = keepsEncodedSnapshots
        self.tls = tls
        self.identity = identity
        self.backoffPolicy = backoff
        self.maxMessageBytes = maxMessageBytes
        var logger = logger
        logger[metadataKey: "server"] = "\(address)"
        self.logger = logger
    }

    public var currentStatus: Status { status.withLock { $0 } }

    /// Sends the state of the workers this subscriber relays to (a node agent's) on the open stream,
    /// and again at the start of every later session. Only the newest report is kept.
    public func report(workers: [Portico_V1_SubscriberStatus]) {
        var request = Portico_V1_WatchRequest()
        request.report.workers = workers
        reporting.withLock {
            $0.latest = request
            $0.sink?.yield(request)
        }
    }

    /// Called with each whole snapshot before it is decoded; a returned closure means the bytes were
    /// passed on already: the decode then runs on one thread at nice 19, off the way of whoever
    /// decodes them next on this machine, and the closure gets the table (nil: it was refused)
    /// before `apply` does.
    public typealias Forward = @Sendable (UndecodedSnapshot) -> (@Sendable (RouteTable?) -> Void)?

    /// Runs until the calling task is cancelled.
    public func run(forward: Forward? = nil, apply: @escaping @Sendable (ReceivedSnapshot) async throws -> Void) async {
        var backoff = backoffPolicy
        while !Task.isCancelled {
            do {
                let received = try await session(forward: forward, apply: apply)
                if received { backoff.reset() }
                logger.info("snapshot stream ended; reconnecting")
            } catch where Task.isCancelled {
                break
            } catch {
                status.withLock { $0.lastError = String(describing: error) }
                logger.warning("snapshot stream failed; reconnecting", metadata: ["error": "\(error)"])
            }
            status.withLock { $0.connected = false }
            let delay = backoff.next()
            do { try await Task.sleep(for: delay) } catch { break }
        }
        status.withLock { $0.connected = false }
    }

    /// One connection. Returns whether any snapshot arrived.
    private func session(forward: Forward?, apply: @escaping @Sendable (ReceivedSnapshot) async throws -> Void) async throws -> Bool {
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.backoff = .init(initial: .milliseconds(50), max: .milliseconds(50), multiplier: 1, jitter: 0)
        var security = HTTP2ClientTransport.Posix.TransportSecurity.plaintext
        if case .tcp = address, let tls { security = tls.clientSecurity }
        let transport = try HTTP2ClientTransport.Posix(target: address.target, transportSecurity: security, config: config)
        return try await withGRPCClient(transport: transport) { client in
            let (requests, requestSink) = AsyncStream<Portico_V1_WatchRequest>.makeStream()
            var subscribe = Portico_V1_WatchRequest()
            subscribe.subscribe.node = identity.node
            subscribe.subscribe.workerID = identity.workerID
            subscribe.subscribe.kind = identity.kind
            subscribe.subscribe.acceptsDeltas = true
            // Under the lock, so that a concurrent report cannot overtake the subscribe.
            reporting.withLock {
                requestSink.yield(subscribe)
                if let report = $0.latest { requestSink.yield(report) }
                $0.sink = requestSink
            }
            var options = CallOptions.defaults
            options.maxRequestMessageBytes = maxMessageBytes
            options.maxResponseMessageBytes = maxMessageBytes
            options.waitForReady = false
            defer {
                reporting.withLock { $0.sink = nil }
                requestSink.finish()
            }
            // The generated client's call, with a deserializer that can keep the snapshot's bytes.
            return try await client.bidirectionalStreaming(
                request: StreamingClientRequest(producer: { writer in
                    for await request in requests { try await writer.write(request) }
                }),
                descriptor: Portico_V1_Snapshots.Method.Watch.descriptor,
                serializer: ProtobufSerializer<Portico_V1_WatchRequest>(),
                deserializer: WatchResponseDeserializer(),
                options: options,
                onResponse: { response in
                    var received = false
                    // The table applied last on this stream: deltas apply on top of it.
                    var held: (version: UInt64, table: RouteTable)?
                    for try await message in response.messages {
                        if !received {
                            received = true
                            self.status.withLock {
                                $0.connected = true
                                $0.sessions += 1
                            }
                        }
                        let outcome = await self.handle(message, holding: held, forward: forward, apply: apply)
                        requestSink.yield(outcome.reply)
                        if let applied = outcome.applied { held = applied }
                        if outcome.deltaRefused {
                            // The server sends deltas while this stream lasts; a new stream starts
                            // with a whole snapshot. Closing our side ends the stream once the
                            // NACK went out.
                            break
                        }
                    }
                    requestSink.finish()
                    return received
                })
        }
    }

    /// Decodes (or applies the delta to `held`), checks and applies one response. Returns the ACK or
    /// NACK to send, the table applied if any, and whether a delta could not be applied to `held`
    /// (as opposed to a table the caller refused, which leaves `held` a good base).
    private func handle(
        _ response: ReceivedWatchResponse, holding held: (version: UInt64, table: RouteTable)?, forward: Forward?,
        apply: @Sendable (ReceivedSnapshot) async throws -> Void
    ) async -> (reply: Portico_V1_WatchRequest, applied: (version: UInt64, table: RouteTable)?, deltaRefused: Bool) {
        let message = response.message
        var reply = Portico_V1_WatchRequest()
        var deltaRefused = message.hasDelta
        do {
            let decoding = ContinuousClock.now
            let received: ReceivedSnapshot
            if message.hasDelta {
                guard let held, held.version == message.delta.baseVersion else {
                    throw SnapshotDecodingError(
                        "delta from version \(message.delta.baseVersion), but the table applied last is version \(held?.version ?? 0)")
                }
                let (table, changes) = try message.delta.applyReturningChanges(to: held.table)
                received = ReceivedSnapshot(version: message.version, table: table, delta: (message.delta.baseVersion, changes))
                deltaRefused = false
            } else if let bytes = response.snapshotBytes {
                let (snapshotVersion, table) = try await decode(bytes, version: message.version, forward: forward)
                // Kept only by relays: a worker holding them would hold the table twice.
                let encoded = keepsEncodedSnapshots ? EncodedSnapshot(version: snapshotVersion, bytes: bytes) : nil
                received = ReceivedSnapshot(version: message.version, table: table, encoded: encoded)
            } else {
                received = ReceivedSnapshot(version: message.version, table: try message.snapshot.decodeTable())
            }
            let applying = ContinuousClock.now
            try await apply(received)
            reply.ack.nonce = message.nonce
            reply.ack.version = message.version
            reply.ack.timing.decodeMicros = (applying - decoding).microseconds
            reply.ack.timing.applyMicros = (ContinuousClock.now - applying).microseconds
            status.withLock { $0.appliedVersion = message.version }
            logger.debug("applied snapshot", metadata: ["version": "\(message.version)", "delta": "\(message.hasDelta)"])
            return (reply, (message.version, received.table), false)
        } catch {
            reply.nack.nonce = message.nonce
            reply.nack.version = message.version
            reply.nack.errorDetail = String(describing: error)
            status.withLock { $0.nacks += 1 }
            logger.warning("refused snapshot", metadata: ["version": "\(message.version)", "error": "\(error)"])
            return (reply, nil, deltaRefused)
        }
    }

    /// A whole snapshot's table: decoded on every core, or, once `forward` passed the bytes on, on
    /// one thread at nice 19, telling `forward`'s closure the outcome.
    private func decode(
        _ bytes: [UInt8], version: UInt64, forward: Forward?
    ) async throws(SnapshotDecodingError) -> (version: UInt64, table: RouteTable) {
        guard let forward, let header = try? SnapshotHeader(serializedSnapshot: bytes),
            let decoded = forward(UndecodedSnapshot(version: version, contentHash: header.contentHash, encoded: EncodedSnapshot(version: header.version, bytes: bytes)))
        else { return try RouteTable.decoding(serializedSnapshot: bytes) }
        let result = await LowPriorityThread.run { () -> Result<(version: UInt64, table: RouteTable), SnapshotDecodingError> in
            Result { () throws(SnapshotDecodingError) in try RouteTable.decoding(serializedSnapshot: bytes, onEveryCore: false) }
        }
        decoded(try? result.get().table)
        return try result.get()
    }
}
