// Snapshot protocol benchmark:
// 1. encode and decode time and byte size of the snapshot of a 10k-Ingress cluster;
// 2. time from publishing a new version to its ACK by all of 100 subscribers over a Unix socket, for
//    that large table and for a small one (protocol overhead alone). Server and subscribers share
//    this process and its two cores, so the large case includes 100 decodes of a 10k-Ingress table.
//
// Run through scripts/bench-snapshot.sh, which builds in release mode.
//   --ingresses N     size of the large table (default 10000)
//   --subscribers N   (default 100)

import CPorticoSystem
import ControlPlane
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KubeTypes
import RouteModel
import SnapshotProtocol
import Synchronization
import TestSupport
import Translator

var ingressCount = 10_000
var subscriberCount = 100
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--ingresses": ingressCount = arguments.next().flatMap(Int.init) ?? ingressCount
    case "--subscribers": subscriberCount = arguments.next().flatMap(Int.init) ?? subscriberCount
    default:
        print("unknown argument \(argument); use --ingresses N --subscribers N")
        exit(64)
    }
}

let large = Translator.translate(GeneratedCluster.objects(count: ingressCount)).table
print("table: \(ingressCount) Ingresses → \(large.virtualHosts.count) virtual hosts, \(large.routeCount) routes, \(large.clusters.count) clusters")

var bytes: [UInt8] = []
let encode = try Measure.milliseconds(runs: 11) {
    bytes = try Portico_V1_Snapshot(version: 1, table: large).serializedBytes()
}
var decoded = RouteTable.empty
let decode = try Measure.milliseconds(runs: 11) {
    decoded = try Portico_V1_Snapshot(serializedBytes: bytes).decodeTable()
}
precondition(decoded == large)
// What the servers and subscribers do: the table encoded in parts on every core, and decoded from
// the bytes entry by entry (see PartedCoding).
var parted: [UInt8] = []
let partedEncode = Measure.milliseconds(runs: 11) {
    parted = EncodedSnapshot(version: 1, encoding: large).bytes
}
let entryDecode = try Measure.milliseconds(runs: 11) {
    decoded = try RouteTable.decoding(serializedSnapshot: parted).table
}
precondition(decoded == large)
// What a worker keeps of it: the heap a decoded table holds once its message and bytes are gone.
do {
    decoded = .empty
    let before = cportico_malloc_in_use()
    decoded = try Portico_V1_Snapshot(serializedBytes: bytes).decodeTable()
    let after = cportico_malloc_in_use()
    let held = Double(after &- before)
    print(
        "inline bytes: Route \(MemoryLayout<Route>.stride) (its RouteOptions \(MemoryLayout<RouteOptions>.stride)), VirtualHost \(MemoryLayout<VirtualHost>.stride), Cluster \(MemoryLayout<Cluster>.stride)"
    )
    print("decoded table holds \(Measure.format(held / 1_048_576, 1)) MiB of heap (\(Measure.format(held / Double(max(ingressCount, 1)), 0)) bytes per Ingress)")
}
print("snapshot size: \(bytes.count) bytes (\(Measure.format(Double(bytes.count) / 1_048_576, 2)) MiB)")
print("encode (table → proto → bytes), ms: median \(Measure.format(Measure.median(encode), 1))  min \(Measure.format(encode.min()!, 1))")
print("decode (bytes → proto → checked RouteTable with index and hash), ms: median \(Measure.format(Measure.median(decode), 1))  min \(Measure.format(decode.min()!, 1))")
print("  as sent: encoded in parts on every core, ms: median \(Measure.format(Measure.median(partedEncode), 1)); decoded entry by entry, ms: median \(Measure.format(Measure.median(entryDecode), 1))")

// What one small change costs at each stage of its way, for this table size: building the new
// table afresh (what every hop did before tables were patched), finding the delta by comparing the
// whole tables or only the named entries (as an incremental rebuild does), encoding it, and
// decoding + patching + checking it (what the agent and each worker do). Work proportional to the
// table shows here, not in the fan-out below.
do {
    let middle = large.virtualHosts.count / 2
    var withEndpoint = large.clusters
    withEndpoint[withEndpoint.count / 2].endpoints.append(Endpoint(address: "10.254.0.1", port: 8080))
    var editedHosts = large.virtualHosts
    editedHosts[middle].routes[0].match.path += "-edited"
    editedHosts[middle].routes.sort()
    let addedCluster = Cluster(namespace: "zz-new", service: "svc", servicePort: .number(80), endpoints: [Endpoint(address: "10.254.0.2", port: 8080)])
    let addedHost = VirtualHost(
        hostname: .exact("zz-new.example.com"),
        routes: [Route(match: PathMatch(kind: .prefix, path: "/"), backend: Backend(cluster: addedCluster.name, source: RouteSource(namespace: "zz-new", ingress: "new")))])
    var removedHosts = large.virtualHosts
    let removed = removedHosts.remove(at: middle)
    // The removed host's clusters too, where no other host names them (an Ingress deleted with its
    // Service's cluster): a delta that removes names.
    let stillNamed = Set(removedHosts.flatMap { $0.routes.map(\.backend.cluster) })
    let withoutItsClusters = large.clusters.filter { stillNamed.contains($0.name) }
    precondition(withoutItsClusters.count < large.clusters.count, "the removed host's cluster is named elsewhere")
    let cases: [(String, [VirtualHost], [Cluster], Set<HostPattern>, Set<String>)] = [
        ("endpoint added", large.virtualHosts, withEndpoint, [], [withEndpoint[withEndpoint.count / 2].name]),
        ("host edited", editedHosts, large.clusters, [editedHosts[middle].hostname], []),
        ("host added", large.virtualHosts + [addedHost], large.clusters + [addedCluster], [addedHost.hostname], [addedCluster.name]),
        ("host removed", removedHosts, large.clusters, [removed.hostname], []),
        ("host + cluster removed", removedHosts, withoutItsClusters, [removed.hostname], Set(large.clusters.map(\.name)).subtracting(withoutItsClusters.map(\.name))),
    ]
    print("one change, per stage, ms (median of 11): build afresh | whole diff | named diff | delta encode | decode + patch + hash check")
    for (name, hosts, clusters, touchedHosts, touchedClusters) in cases {
        var newer = RouteTable.empty
        let build = Measure.milliseconds(runs: 11) {
            newer = RouteTable(virtualHosts: hosts, clusters: clusters, certificates: large.certificates, defaultCertificate: large.defaultCertificate)
        }
        var changes = RouteTableDelta()
        let diff = Measure.milliseconds(runs: 11) { changes = large.delta(to: newer) }
        let namedDiff = Measure.milliseconds(runs: 11) {
            changes = large.delta(to: newer, hosts: touchedHosts, clusters: touchedClusters, certificates: [])
        }
        precondition(changes == large.delta(to: newer))
        var deltaBytes: [UInt8] = []
        let encodeDelta = try Measure.milliseconds(runs: 11) {
            var response = Portico_V1_WatchResponse()
            response.delta = Portico_V1_SnapshotDelta(base: 1, contentHash: newer.contentHash, changes: changes)
            deltaBytes = try response.serializedBytes()
        }
        var applied = RouteTable.empty
        let applyDelta = try Measure.milliseconds(runs: 11) {
            applied = try Portico_V1_WatchResponse(serializedBytes: deltaBytes).delta.apply(to: large)
        }
        precondition(applied == newer)
        let columns = [build, diff, namedDiff, encodeDelta, applyDelta].map { Measure.format(Measure.median($0), 2) }
        print("  \(name): " + columns.joined(separator: " | ") + "  (\(deltaBytes.count) bytes)")
    }
}

/// Starts a server and `count` subscribers, then measures publish → all ACKed for each table after
/// the first. `decode: false` subscribers ACK on receipt, which isolates the server and transport.
func fanOut(tables: [RouteTable], subscribers count: Int, decode: Bool = true) async throws -> [Double] {
    let socket = "/tmp/portico-bench-\(UUID().uuidString.prefix(8))/cp.sock"
    let latest = LatestSnapshot()
    let registry = SubscriberRegistry()
    let server = SnapshotServer(service: SnapshotService(latest: latest, registry: registry), addresses: [.unix(path: socket)])
    let listening = Mutex(false)
    let serverTask = Task { try await server.run { _ in listening.withLock { $0 = true } } }
    while !listening.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
    latest.publish(version: 1, table: tables[0])
    let tasks = (0..<count).map { index in
        Task {
            if decode {
                let subscriber = SnapshotSubscriber(
                    address: .unix(path: socket), identity: SubscriberIdentity(node: "bench", workerID: "\(index)", kind: .worker))
                await subscriber.run { _ in }
            } else {
                try? await ackOnReceipt(socket: socket, id: "\(index)")
            }
        }
    }
    func allAcked(_ version: UInt64) async throws {
        while !(registry.all.count == count && registry.all.allSatisfy { $0.ackedVersion >= version }) {
            try await Task.sleep(for: .microseconds(200))
        }
    }
    try await allAcked(1)
    var times: [Double] = []
    for (index, table) in tables.enumerated().dropFirst() {
        let version = UInt64(index + 1)
        let start = ContinuousClock.now
        latest.publish(version: version, table: table)
        try await allAcked(version)
        times.append(Measure.seconds(ContinuousClock.now - start) * 1000)
    }
    for task in tasks { task.cancel() }
    serverTask.cancel()
    _ = await serverTask.result
    return times
}

/// A subscriber that ACKs each response as soon as it arrives, without decoding the table.
func ackOnReceipt(socket: String, id: String) async throws {
    let transport = try HTTP2ClientTransport.Posix(target: ServerAddress.unix(path: socket).target, transportSecurity: .plaintext)
    try await withGRPCClient(transport: transport) { client in
        let (requests, sink) = AsyncStream<Portico_V1_WatchRequest>.makeStream()
        var subscribe = Portico_V1_WatchRequest()
        subscribe.subscribe.workerID = id
        sink.yield(subscribe)
        var options = CallOptions.defaults
        options.maxRequestMessageBytes = 64 << 20
        try await Portico_V1_Snapshots.Client(wrapping: client).watch(
            options: options,
            requestProducer: { writer in for await request in requests { try await writer.write(request) } },
            onResponse: { response in
                for try await message in response.messages {
                    var ack = Portico_V1_WatchRequest()
                    ack.ack.version = message.version
                    ack.ack.nonce = message.nonce
                    sink.yield(ack)
                }
            })
    }
}

func variant(of table: RouteTable, _ version: Int) -> RouteTable {
    var clusters = table.clusters
    clusters[version % clusters.count].endpoints.append(Endpoint(address: "10.255.\(version / 256 % 256).\(version % 256)", port: 8080))
    return RouteTable(virtualHosts: table.virtualHosts, clusters: clusters, certificates: table.certificates)
}

let small = Translator.translate(GeneratedCluster.objects(count: 10)).table
let smallTimes = try await fanOut(tables: (0..<21).map { variant(of: small, $0) }, subscribers: subscriberCount)
print(
    "fan-out of a 10-Ingress table to \(subscriberCount) subscribers (publish → all ACKed), ms: median \(Measure.format(Measure.median(smallTimes), 1))  max \(Measure.format(smallTimes.max()!, 1))  (20 versions)")
let largeTables = (0..<6).map { variant(of: large, $0) }
let rawTimes = try await fanOut(tables: largeTables, subscribers: subscriberCount, decode: false)
print(
    "fan-out of the \(ingressCount)-Ingress table to \(subscriberCount) subscribers that ACK on receipt (server + transport only), ms: median \(Measure.format(Measure.median(rawTimes), 1))  max \(Measure.format(rawTimes.max()!, 1))  (5 versions)")
let largeTimes = try await fanOut(tables: largeTables, subscribers: subscriberCount)
print(
    "fan-out of the \(ingressCount)-Ingress table to \(subscriberCount) decoding subscribers (100 decodes share these 2 cores), ms: median \(Measure.format(Measure.median(largeTimes), 1))  max \(Measure.format(largeTimes.max()!, 1))  (5 versions)")
