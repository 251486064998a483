import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import DataPlane

/// One request as a reader saw it, for comparing readers.
struct ReadRequest: Equatable, CustomStringConvertible {
    var method: String
    var uri: String
    var minorVersion: Int
    /// Name and value of each field.
    var fields: [[String]]
    var body: [UInt8]
    var trailers: [[String]]?

    var description: String {
        "\(method) \(uri) HTTP/1.\(minorVersion) \(fields) body \(body.count) bytes trailers \(trailers ?? [])"
    }

    init(_ head: HTTPRequestHead) {
        method = head.method.rawValue
        uri = head.uri
        minorVersion = head.version.minor
        fields = head.headers.map { [$0.name, $0.value] }
        body = []
    }
}

/// What a reader made of some bytes: the complete requests, in order, and then why it stopped (a
/// refusal's status), if it did.
struct ReadOutcome: CustomStringConvertible {
    var requests: [ReadRequest] = []
    var refusal: HTTPResponseStatus?
    /// The reason `RequestFacts` or the parser gave.
    var reason: String?
    /// What was written back to the client.
    var answer = ""

    var description: String { "\(requests) refusal \(refusal.map { "\($0.code) \(reason ?? "")" } ?? "none")" }
}

enum HTTP1Reading {
    /// Portico's reader (`HTTP1ServerHandler`), fed `chunks` one read each.
    static func portico(_ chunks: [[UInt8]], maxHeadBytes: Int = 64 << 10, maxFields: Int = 100) throws -> ReadOutcome {
        let channel = EmbeddedChannel()
        let collector = Collector()
        try channel.pipeline.syncOperations.addHandler(HTTP1ServerHandler(maxHeadBytes: maxHeadBytes, maxFields: maxFields, counters: CounterBox()))
        try channel.pipeline.syncOperations.addHandler(collector)
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(bytes: chunk))
            if collector.outcome.refusal != nil { break }
        }
        var outcome = collector.outcome
        while let written = try channel.readOutbound(as: ByteBuffer.self) { outcome.answer += String(buffer: written) }
        if outcome.refusal == nil, let status = Self.status(of: outcome.answer) { outcome.refusal = status }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return outcome
    }

    /// NIO's `HTTPRequestDecoder` (llhttp), fed the same way: the reference in differential tests.
    static func nio(_ chunks: [[UInt8]]) throws -> ReadOutcome {
        let channel = EmbeddedChannel()
        let collector = NIOCollector()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        try channel.pipeline.syncOperations.addHandler(collector)
        for chunk in chunks {
            do {
                try channel.writeInbound(ByteBuffer(bytes: chunk))
            } catch {
                collector.outcome.refusal = .badRequest
                collector.outcome.reason = "\(error)"
                break
            }
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return collector.outcome
    }

    private static func status(of answer: String) -> HTTPResponseStatus? {
        guard answer.hasPrefix("HTTP/1.1 "), let code = Int(answer.dropFirst(9).prefix(3)) else { return nil }
        return HTTPResponseStatus(statusCode: code)
    }

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = HTTP1RequestPart
        var outcome = ReadOutcome()
        private var current: ReadRequest?

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head, .success):
                current = ReadRequest(head)
            case .head(_, .failure(let refusal)):
                outcome.refusal = refusal.status
                outcome.reason = refusal.reason
            case .body(let body):
                current?.body += Array(buffer: body)
            case .end(let trailers):
                guard var request = current.take() else { return }
                request.trailers = trailers.map { $0.map { [$0.name, $0.value] } }
                outcome.requests.append(request)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            guard let error = error as? HTTP1ProtocolError else { return }
            outcome.refusal = error.refusal.status
            outcome.reason = error.refusal.reason
        }
    }

    final class NIOCollector: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        var outcome = ReadOutcome()
        private var current: ReadRequest?

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): current = ReadRequest(head)
            case .body(let body): current?.body += Array(buffer: body)
            case .end(let trailers):
                guard var request = current.take() else { return }
                request.trailers = trailers.map { $0.map { [$0.name, $0.value] } }
                outcome.requests.append(request)
            }
        }
    }
}
