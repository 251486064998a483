import GRPCCore
import GRPCProtobuf
import Logging
import RouteModel

/// Where `Dump` gets the source's rejections and load errors (the control plane's; a node agent has none).
public protocol DiagnosticsProvider: Sendable {
    var diagnostics: Portico_V1_Diagnostics { get }
}

/// The `portico.v1.Snapshots` service: `Watch` streams versions latest-wins and records ACKs and
/// NACKs; `Dump` returns the current table without private keys plus the subscriber list.
///
/// A subscriber's sender waits for "anything newer than what it was sent" only after its previous
/// write completed (a stalled reader holds up only its own sender); all subscribers share the one
/// encoded snapshot of each version.
public struct SnapshotService: RegistrableRPCService {
    public let latest: LatestSnapshot
    public let registry: SubscriberRegistry
    public let diagnostics: (any DiagnosticsProvider)?
    /// Requests over this size end their stream with RESOURCE_EXHAUSTED.
    public let maxMessageBytes: Int
    private let logger: Logger

    public init(
        latest: LatestSnapshot, registry: SubscriberRegistry = SubscriberRegistry(), diagnostics: (any DiagnosticsProvider)? = nil,
        maxMessageBytes: Int = 64 << 20, logger: Logger = Logger(label: "portico.snapshots")
    ) {
        self.latest = latest
        self.maxMessageBytes = maxMessageBytes
        self.registry = registry
        self.diagnostics = diagnostics
        self.logger = logger
    }

    /// Registers `Watch` with a serializer that sends pre-encoded snapshots, and `Dump` as generated.
    public func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Portico_V1_Snapshots.Method.Watch.descriptor,
            deserializer: ProtobufDeserializer<Portico_V1_WatchRequest>(),
            serializer: EncodedResponseSerializer(),
            handler: { request, context in
                StreamingServerResponse<EncodedResponse>(metadata: [:]) { writer in
                    try await self.watch(request: request.messages, response: writer, context: context)
                    return [:]
                }
            })
        router.registerHandler(
            forMethod: Portico_V1_Snapshots.Method.Dump.descriptor,
            deserializer: ProtobufDeserializer<Portico_V1_DumpRequest>(),
            serializer: ProtobufSerializer<Portico_V1_DumpResponse>(),
            handler: { request, context in
                let single = try await ServerRequest(stream: request)
                return StreamingServerResponse(
                    single: ServerResponse(message: try await self.dump(request: single.message, context: context), metadata: [:]))
            })
    }

    func watch(
        request: RPCAsyncSequence<Portico_V1_WatchRequest, any Error>,
        response: RPCWriter<EncodedResponse>,
        context: ServerContext
    ) async throws {
        var requests = request.makeAsyncIterator()
        guard let first = try await requests.next(), case .subscribe(let subscribe)? = first.request else {
            throw RPCError(code: .invalidArgument, message: "the first WatchRequest must be a subscribe naming the subscriber")
        }
        let identity = SubscriberIdentity(node: subscribe.node, workerID: subscribe.workerID, kind: subscribe.kind)
        let id = registry.add(identity: identity, peer: context.remotePeer)
        var logger = self.logger
        logger[metadataKey: "subscriber"] = "\(id)"
        logger[metadataKey: "node"] = "\(identity.node)"
        if !identity.workerID.isEmpty { logger[metadataKey: "worker"] = "\(identity.workerID)" }
        logger.info("subscriber connected", metadata: ["peer": "\(context.remotePeer)"])
        defer {
            registry.remove(id)
            logger.info("subscriber disconnected")
        }

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [latest, registry] in
                var sent: UInt64 = 0
                while true {
                    let snapshot = try await latest.next(after: sent)
                    var nonce = Portico_V1_WatchResponse()
                    nonce.nonce = "\(snapshot.version)-\(id)"
                    // A delta only on top of a table the subscriber said it applied; anything else
                    // (the first response, a NACK, an ACK still on its way, versions skipped) gets
                    // the whole snapshot.
                    let deltaBase = subscribe.acceptsDeltas && sent > 0 && registry.ackedVersion(id) == sent ? sent : nil
                    let shared = snapshot.encodedResponse(orDeltaFrom: deltaBase)
                    let encoded = EncodedResponse(shared: shared.bytes, suffix: try nonce.serializedBytes())
                    registry.sent(id, version: snapshot.version, asDelta: shared.isDelta)
                    try await response.write(encoded)
                    sent = snapshot.version
                }
            }
            while let message = try await requests.next() {
                try checkSize(message)
                switch message.request {
                case .ack(let ack)?:
                    registry.acked(id, version: ack.version, timing: ack.hasTiming ? ack.timing : nil)
                case .nack(let nack)?:
                    registry.nacked(id, nonce: nack.nonce, version: nack.version, errorDetail: nack.errorDetail)
                    logger.warning(
                        "subscriber refused a snapshot", metadata: ["version": "\(nack.version)", "error": "\(nack.errorDetail)"])
                case .report(let report)?:
                    registry.reported(id, workers: report.workers)
                case .subscribe?:
                    throw RPCError(code: .invalidArgument, message: "subscribe may only be the first WatchRequest")
                case nil:
                    throw RPCError(code: .invalidArgument, message: "empty WatchRequest")
                }
            }
            // The subscriber closed its side: stop sending.
            group.cancelAll()
        }
    }

    /// The transport drops a stream outright past its own ceiling (see `SnapshotServer`); below that,
    /// this check answers an oversized request with a status that says what happened.
    private func checkSize(_ message: Portico_V1_WatchRequest) throws {
        let size = (try? message.serializedBytes() as [UInt8])?.count ?? 0
        guard size <= maxMessageBytes else {
            throw RPCError(
                code: .resourceExhausted,
                message: "WatchRequest of \(size) bytes exceeds the server's limit of \(maxMessageBytes) bytes (--max-message-bytes)")
        }
    }

    func dump(request: Portico_V1_DumpRequest, context: ServerContext) async throws -> Portico_V1_DumpResponse {
        var dump = Portico_V1_DumpResponse()
        if request.subscribersOnly {
            dump.snapshot.version = latest.current?.version ?? 0
        } else if request.virtualHostLimit > 0 {
            if let current = latest.current {
                let table = await current.decodedTable()
                dump.snapshot.version = current.version
                dump.snapshot.contentHash = table.contentHash
                dump.snapshot.table.virtualHosts = table.virtualHosts.prefix(Int(request.virtualHostLimit)).map(\.proto)
            }
        } else {
            if let current = latest.current {
                dump.snapshot = Portico_V1_Snapshot(version: current.version, table: await current.decodedTable(), includePrivateKeys: false)
            }
            if let diagnostics { dump.diagnostics = diagnostics.diagnostics }
        }
        if let timing = latest.current?.timing { dump.publishTiming = timing }
        dump.subscribers = registry.statuses
        return dump
    }
}

/// A `WatchResponse` already serialised: the version's shared bytes, then this subscriber's nonce field.
struct EncodedResponse: Sendable {
    let shared: [UInt8]
    let suffix: [UInt8]
}

struct EncodedResponseSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: EncodedResponse) throws -> Bytes {
        var bytes = Bytes(repeating: 0, count: message.shared.count + message.suffix.count)
        bytes.withUnsafeMutableBytes { buffer in
            message.shared.withUnsafeBytes { buffer.copyMemory(from: $0) }
            message.suffix.withUnsafeBytes {
                UnsafeMutableRawBufferPointer(rebasing: buffer[message.shared.count...]).copyMemory(from: $0)
            }
        }
        return bytes
    }
}
