import NIOCore
import Prometheus

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One finished exchange, for metrics and the access log.
struct ExchangeRecord {
    var started: NIODeadline
    var method = ""
    var host = ""
    var path = ""
    var status: UInt16 = 0
    var bytesIn = 0
    var bytesOut = 0
    var upstream: String?
    var requestID: String? = nil
    var namespace = ""
    var ingress = ""
    var service = ""
}

/// A worker's metrics (Prometheus) and access log, used on its event loop.
///
/// Per-route instruments are looked up once per exchange in a dictionary keyed by the route's
/// namespace, Ingress and Service; the counters themselves are atomics of swift-prometheus, read by
/// the scrape from another thread.
public final class WorkerObservability: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    let accessLog: AccessLog?

    private struct RouteKey: Hashable {
        var namespace: String
        var ingress: String
        var service: String
    }

    private final class RouteInstruments {
        let labels: [(String, String)]
        let duration: DurationHistogram
        let bytesIn: Counter
        let bytesOut: Counter
        var byStatus: [UInt16: Counter] = [:]

        init(labels: [(String, String)], registry: PrometheusCollectorRegistry) {
            self.labels = labels
            duration = registry.makeDurationHistogram(
                descriptor: .init(namespace: "portico", metricName: "request_duration", unitName: "seconds", helpText: "Time from the request head to the end of the response."),
                labels: labels, buckets: WorkerObservability.durationBuckets)
            bytesIn = registry.makeCounter(
                descriptor: .init(namespace: "portico", metricName: "request", unitName: "bytes_total", helpText: "Request body bytes received from clients."),
                labels: labels)
            bytesOut = registry.makeCounter(
                descriptor: .init(namespace: "portico", metricName: "response", unitName: "bytes_total", helpText: "Response body bytes sent to clients."),
                labels: labels)
        }
    }

    static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    // Touched on the worker's event loop only.
    private var routes: [RouteKey: RouteInstruments] = [:]
    private var lastRoute: (key: RouteKey, instruments: RouteInstruments)?

    let activeConnections: Gauge
    let snapshotVersion: Gauge
    let snapshotApply: DurationHistogram

    public init(accessLog: Bool) {
        self.accessLog = accessLog ? AccessLog() : nil
        activeConnections = registry.makeGauge(
            descriptor: .init(namespace: "portico", metricName: "active_connections", unitName: "", helpText: "Open client connections."))
        snapshotVersion = registry.makeGauge(
            descriptor: .init(namespace: "portico", metricName: "snapshot_version", unitName: "", helpText: "Version of the route table in use."))
        snapshotApply = registry.makeDurationHistogram(
            descriptor: .init(namespace: "portico", metricName: "snapshot_apply", unitName: "seconds", helpText: "Time to check, decode and swap in a snapshot."),
            labels: [], buckets: Self.durationBuckets)
    }

    /// Counts a finished exchange and logs it. On the worker's event loop.
    func record(_ exchange: ExchangeRecord, now: NIODeadline) {
        let key = RouteKey(namespace: exchange.namespace, ingress: exchange.ingress, service: exchange.service)
        let instruments: RouteInstruments
        if let last = lastRoute, last.key == key {
            // Consecutive requests mostly go to the same route, whose strings share storage with
            // the table's: comparing them is cheaper than hashing them.
            instruments = last.instruments
        } else if let known = routes[key] {
            instruments = known
            lastRoute = (key, known)
        } else {
            instruments = RouteInstruments(
                labels: [("namespace", key.namespace), ("ingress", key.ingress), ("service", key.service)], registry: registry)
            routes[key] = instruments
            lastRoute = (key, instruments)
        }
        let counter: Counter
        if let known = instruments.byStatus[exchange.status] {
            counter = known
        } else {
            counter = registry.makeCounter(
                descriptor: .init(namespace: "portico", metricName: "requests", unitName: "total", helpText: "Requests answered, by route and status code."),
                labels: instruments.labels + [("code", String(exchange.status))])
            instruments.byStatus[exchange.status] = counter
        }
        counter.increment()
        let elapsed = now - exchange.started
        instruments.duration.recordNanoseconds(elapsed.nanoseconds)
        if exchange.bytesIn > 0 { instruments.bytesIn.increment(by: Int64(exchange.bytesIn)) }
        if exchange.bytesOut > 0 { instruments.bytesOut.increment(by: Int64(exchange.bytesOut)) }
        accessLog?.append(exchange, elapsedNanoseconds: elapsed.nanoseconds)
    }

    /// The Prometheus text exposition of everything above (the loop's counters are
    /// `Worker.exposition()`'s).
    public func exposition() -> String { registry.emitToString() }
}

/// JSON access-log lines on stdout, one per exchange, written once per event-loop tick so that a
/// busy worker makes one `write` for many requests. Writes end on line boundaries and stay under
/// PIPE_BUF, so lines of several workers sharing a pipe never interleave.
final class AccessLog {
    private var buffer: [UInt8] = []
    private var flushScheduled = false
    /// Where the lines go: stdout, unless told otherwise.
    private let descriptor: Int32

    init(descriptor: Int32 = 1) {
        self.descriptor = descriptor
    }

    func append(_ exchange: ExchangeRecord, elapsedNanoseconds: Int64) {
        var line = "{\"time\":\""
        line += Self.timestamp()
        line += "\",\"host\":"
        Self.appendJSONString(exchange.host, to: &line)
        line += ",\"method\":"
        Self.appendJSONString(exchange.method, to: &line)
        line += ",\"path\":"
        Self.appendJSONString(exchange.path, to: &line)
        line += ",\"status\":\(exchange.status),\"bytes_in\":\(exchange.bytesIn),\"bytes_out\":\(exchange.bytesOut)"
        line += ",\"duration_ms\":\(Double(elapsedNanoseconds / 1000) / 1000)"
        line += ",\"upstream\":"
        if let upstream = exchange.upstream { Self.appendJSONString(upstream, to: &line) } else { line += "null" }
        line += ",\"request_id\":"
        if let id = exchange.requestID { Self.appendJSONString(id, to: &line) } else { line += "null" }
        line += ",\"namespace\":"
        Self.appendJSONString(exchange.namespace, to: &line)
        line += ",\"ingress\":"
        Self.appendJSONString(exchange.ingress, to: &line)
        line += ",\"service\":"
        Self.appendJSONString(exchange.service, to: &line)
        line += "}\n"
        buffer.append(contentsOf: line.utf8)
    }

    /// Schedules the write at the end of the current tick (once).
    func scheduleFlush(on eventLoop: any EventLoop) {
        guard !flushScheduled, !buffer.isEmpty else { return }
        flushScheduled = true
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        eventLoop.execute { bound.value.flush() }
    }

    func flush() {
        flushScheduled = false
        var start = 0
        while start < buffer.count {
            var end = min(buffer.count, start + 4096)
            if end < buffer.count, let newline = buffer[start..<end].lastIndex(of: UInt8(ascii: "\n")) { end = newline + 1 }
            buffer.withUnsafeBytes { bytes in
                var offset = start
                while offset < end {
                    let written = write(descriptor, bytes.baseAddress! + offset, end - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return  // the output is gone: the log is lost, the proxy goes on
                    }
                    offset += written
                }
            }
            start = end
        }
        buffer.removeAll(keepingCapacity: buffer.count < 1 << 20)
    }

    static func appendJSONString(_ text: String, to line: inout String) {
        line += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                line += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }

    /// RFC 3339 with milliseconds, UTC.
    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var time = spec.tv_sec
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let milliseconds = Int(spec.tv_nsec / 1_000_000)
        let millisecondsText = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millisecondsText)Z"
    }
}
