import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import PorticoCtl
import RouteModel
@testable import SnapshotProtocol
import Synchronization
import Testing
import TestSupport
@testable import ControlPlane

@Suite(.serialized) struct SnapshotStreamTests {
    @Test(arguments: Transport.allCases)
    func hundredSubscribersAllAckTheNewVersion(_ transport: Transport) async throws {
        let server = try await startServer(at: transport.freshAddress())
        defer { Task { await server.stop() } }
        server.latest.publish(version: 1, table: table(version: 1))
        let subscribers = (0..<100).map { RecordingSubscriber(address: server.address, id: "w\($0)") }
        try await eventually("100 subscribers ACK version 1") {
            server.registry.all.count == 100 && server.registry.all.allSatisfy { $0.ackedVersion == 1 }
        }
        server.latest.publish(version: 2, table: table(version: 2))
        try await eventually("100 subscribers ACK version 2") { server.registry.all.allSatisfy { $0.ackedVersion == 2 } }
        #expect(subscribers.allSatisfy { $0.lastVersion == 2 && $0.lastTable == table(version: 2) })
        for subscriber in subscribers { await subscriber.stop() }
        try await eventually("subscribers are gone from the registry") { server.registry.all.isEmpty }
        await server.stop()
    }

    /// One subscriber reads its first snapshot and then stops reading. The others must get every new
    /// version at once, and when the stalled one reads again it gets the newest version, not a backlog.
    @Test(arguments: Transport.allCases)
    func aStalledSubscriberDelaysNobodyAndQueuesNothing(_ transport: Transport) async throws {
        let server = try await startServer(at: transport.freshAddress())
        server.latest.publish(version: 1, table: table(version: 1, hosts: 400))
        let others = (0..<5).map { RecordingSubscriber(address: server.address, id: "ok\($0)") }

        let (gate, openGate) = AsyncStream<Void>.makeStream()
        let (keepOpen, closeRequests) = AsyncStream<Void>.makeStream()
        let read = Mutex<[UInt64]>([])
        let finalVersion: UInt64 = 60
        let stalled = Task {
            // The smallest standard HTTP/2 window, so the server is blocked after a few messages
            // instead of after filling megabytes of buffers on the way.
            try await withGRPCClient(transport: try clientTransport(server.address, windowSize: 65_535)) { client in
                var options = CallOptions.defaults
                options.maxRequestMessageBytes = 64 << 20
                try await Portico_V1_Snapshots.Client(wrapping: client).watch(
                    options: options,
                    requestProducer: { writer in
                        try await writer.write(watchRequest { $0.subscribe.workerID = "stalled"; $0.subscribe.kind = .worker })
                        for await _ in keepOpen {}
                    },
                    onResponse: { response in
                        var messages = response.messages.makeAsyncIterator()
                        if let first = try await messages.next() { read.withLock { $0.append(first.version) } }
                        for await _ in gate { break }
                        while let message = try await messages.next() {
                            read.withLock { $0.append(message.version) }
                            if message.version == finalVersion { return }
                        }
                    })
            }
        }
        try await eventually("the stalled subscriber read version 1") { read.withLock { $0 } == [1] }
        try await eventually("the others ACK version 1") { others.allSatisfy { $0.lastVersion == 1 } }

        for version in 2...finalVersion {
            server.latest.publish(version: version, table: table(version: version, hosts: 400))
            // Every other subscriber keeps up with each version while one subscriber is stalled.
            try await eventually("the others ACK version \(version)") { others.allSatisfy { $0.lastVersion == version } }
        }
        // Its sender is parked on one write; the transport buffers between the two ends hold a
        // bounded number of messages (about a dozen here), not one per version.
        let stalledRecord = try #require(server.subscriber("stalled"))
        #expect(stalledRecord.sentVersion < finalVersion / 2, "sent \(stalledRecord.sentVersion) of \(finalVersion)")

        openGate.yield()
        _ = try await stalled.value
        let versions = read.withLock { $0 }
        #expect(versions.last == finalVersion)
        #expect(versions.count < Int(finalVersion) / 2, "read \(versions): what was in flight, then the newest; no backlog")
        print("stalled subscriber read versions \(versions) of \(finalVersion); its sender had sent \(stalledRecord.sentVersion)")
        #expect(versions.dropLast().last.map { $0 < finalVersion - 10 } == true, "the newest version came right after the buffered ones")
        closeRequests.finish()
        for subscriber in others { await subscriber.stop() }
        await server.stop()
    }

    /// `portico run`'s banner asks for a few hosts: the Dump carries those and nothing else of the
    /// table, where a whole Dump carries it all.
    @Test func aDumpWithAVirtualHostLimitCarriesOnlyTheFirstHosts() async throws {
        let server = try await startServer(at: Transport.unix.freshAddress())
        let published = table(version: 4, hosts: 50)
        server.latest.publish(version: 4, table: published)
        let preview = try await SourceOptions.fetchDump(from: server.address, timeout: 5, virtualHostLimit: 3)
        #expect(preview.snapshot.version == 4)
        #expect(preview.snapshot.contentHash == published.contentHash)
        #expect(preview.snapshot.table.virtualHosts == published.virtualHosts.prefix(3).map(\.proto))
        #expect(preview.snapshot.table.clusters.isEmpty)
        let whole = try await SourceOptions.fetchDump(from: server.address, timeout: 5)
        #expect(whole.snapshot.table.virtualHosts.count == 50)
        #expect(try whole.snapshot.decodeTable() == published)
        await server.stop()
    }

    @Test func anAckCarriesTheSubscribersTimingAndTheServerItsRoundTrip() async throws {
        let server = try await startServer(at: Transport.unix.freshAddress())
        server.latest.publish(version: 1, table: table(version: 1))
        // Applying takes 20 ms of work (not a wait): the ACK says so, and the round trip holds it.
        let slow = RecordingSubscriber(address: server.address, id: "slow") { _ in
            let until = ContinuousClock.now + .milliseconds(20)
            while ContinuousClock.now < until {}
            return nil
        }
        try await eventually("version 1 is ACKed") { server.subscriber("slow")?.ackedVersion == 1 }
        let record = try #require(server.subscriber("slow"))
        let timing = try #require(record.ackedTiming)
        #expect(timing.applyMicros >= 20_000)
        let roundTrip = try #require(record.ackRoundTrip)
        #expect(roundTrip >= .microseconds(Int64(timing.applyMicros + timing.decodeMicros)))
        let status = try #require(server.registry.statuses.first { $0.workerID == "slow" })
        #expect(status.ackedTiming == timing, "Dump shows the subscriber's timing of the version it ACKed")
        #expect(status.ackRoundTripMicros == roundTrip.microseconds)
        await slow.stop()
        await server.stop()
    }

    @Test(arguments: Transport.allCases)
    func aNackIsRecordedAndThePreviousTableKept(_ transport: Transport) async throws {
        let server = try await startServer(at: transport.freshAddress())
        server.latest.publish(version: 1, table: table(version: 1))
        let picky = RecordingSubscriber(address: server.address, id: "picky") { snapshot in
            snapshot.version == 2 ? "listener 443 is busy" : nil
        }
        try await eventually("version 1 is ACKed") { server.subscriber("picky")?.ackedVersion == 1 }
        server.latest.publish(version: 2, table: table(version: 2))
        try await eventually("the NACK is recorded") { server.subscriber("picky")?.lastNack != nil }
        let record = try #require(server.subscriber("picky"))
        #expect(record.ackedVersion == 1)
        #expect(record.lastNack?.version == 2)
        #expect(record.lastNack?.nonce == "2-\(record.id)")
        #expect(record.lastNack?.errorDetail == "listener 443 is busy")
        #expect(picky.lastVersion == 1, "a NACKed snapshot is never applied")
        #expect(picky.subscriber.currentStatus.nacks == 1)
        await picky.stop()
        await server.stop()
    }

    @Test(arguments: Transport.allCases)
    func aSubscriberReconnectsAfterTheServerRestarts(_ transport: Transport) async throws {
        let first = try await startServer(at: transport.freshAddress())
        first.latest.publish(version: 1, table: table(version: 1))
        let subscriber = RecordingSubscriber(address: first.address, id: "w")
        try await eventually("version 1 is applied") { subscriber.lastVersion == 1 }
        await first.stop()
        try await eventually("the subscriber notices") { !subscriber.subscriber.currentStatus.connected }

        // A restarted control plane starts its versions again; the subscriber takes whatever is current.
        let restarted = LatestSnapshot()
        restarted.publish(version: 1, table: table(version: 7))
        let second = try await startServer(at: first.address, latest: restarted)
        try await eventually("the restarted server's table is applied") { subscriber.lastTable == table(version: 7) }
        #expect(subscriber.subscriber.currentStatus.sessions == 2)
        try await eventually("the restarted server sees the ACK") { second.subscriber("w")?.ackedVersion == 1 }
        await subscriber.stop()
        await second.stop()
    }

    @Test(arguments: Transport.allCases)
    func anOversizedMessageEndsOnlyThatStream(_ transport: Transport) async throws {
        let server = try await startServer(at: transport.freshAddress(), maxMessageBytes: 4096)
        server.latest.publish(version: 1, table: table(version: 1))
        let bystander = RecordingSubscriber(address: server.address, id: "bystander")
        try await eventually("the bystander has version 1") { bystander.lastVersion == 1 }

        let error = await #expect(throws: RPCError.self) {
            try await withGRPCClient(transport: try clientTransport(server.address)) { client in
                try await Portico_V1_Snapshots.Client(wrapping: client).watch(
                    requestProducer: { writer in
                        try await writer.write(watchRequest { $0.subscribe.workerID = "big" })
                        try await writer.write(watchRequest { $0.nack.errorDetail = String(repeating: "x", count: 10_000) })
                        for await _ in AsyncStream<Void>.makeStream().stream {}
                    },
                    onResponse: { response in for try await _ in response.messages {} })
            }
        }
        #expect(error?.code == .resourceExhausted, "\(String(describing: error)) \(error?.message ?? "")")
        server.latest.publish(version: 2, table: table(version: 2))
        try await eventually("the bystander still gets version 2") { bystander.lastVersion == 2 }
        await bystander.stop()
        await server.stop()
    }

    @Test(arguments: Transport.allCases)
    func anUndecodableMessageEndsOnlyThatStream(_ transport: Transport) async throws {
        let server = try await startServer(at: transport.freshAddress())
        server.latest.publish(version: 1, table: table(version: 1))
        let bystander = RecordingSubscriber(address: server.address, id: "bystander")
        try await eventually("the bystander has version 1") { bystander.lastVersion == 1 }

        let error = await #expect(throws: RPCError.self) {
            try await withGRPCClient(transport: try clientTransport(server.address)) { client in
                try await client.bidirectionalStreaming(
                    request: StreamingClientRequest<Portico_V1_WatchRequest> { writer in
                        try await writer.write(Portico_V1_WatchRequest())
                        for await _ in AsyncStream<Void>.makeStream().stream {}
                    },
                    descriptor: Portico_V1_Snapshots.Method.Watch.descriptor, serializer: TruncatedMessage(),
                    deserializer: ProtobufDeserializer<Portico_V1_WatchResponse>(), options: .defaults,
                    onResponse: { response in for try await _ in response.messages {} })
            }
        }
        #expect(error != nil)
        #expect(server.registry.all.map(\.identity.workerID) == ["bystander"])
        server.latest.publish(version: 2, table: table(version: 2))
        try await eventually("the bystander still gets version 2") { bystander.lastVersion == 2 }
        await bystander.stop()
        await server.stop()
    }

    @Test func theFirstRequestMustSubscribe() async throws {
        let server = try await startServer(at: Transport.unix.freshAddress())
        server.latest.publish(version: 1, table: table(version: 1))
        let error = await #expect(throws: RPCError.self) {
            try await withGRPCClient(transport: try clientTransport(server.address)) { client in
                try await Portico_V1_Snapshots.Client(wrapping: client).watch(
                    requestProducer: { writer in
                        try await writer.write(watchRequest { $0.ack.version = 1 })
                        for await _ in AsyncStream<Void>.makeStream().stream {}
                    },
                    onResponse: { response in for try await _ in response.messages {} })
            }
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("subscribe") == true)
        await server.stop()
    }

    @Test func aBrokenSnapshotIsNackedBeforeItReachesTheCaller() async throws {
        // A hash mismatch stands for any corruption the decoder catches.
        let latest = LatestSnapshot()
        let server = try await startServer(at: Transport.unix.freshAddress(), latest: latest)
        latest.publish(version: 1, table: table(version: 1))
        let subscriber = RecordingSubscriber(address: server.address, id: "w")
        try await eventually("version 1 applied") { subscriber.lastVersion == 1 }
        latest.publishCorrupted(version: 2, table: table(version: 2))
        try await eventually("the corrupt version is NACKed") { server.subscriber("w")?.lastNack?.version == 2 }
        #expect(server.subscriber("w")?.lastNack?.errorDetail.contains("content hash mismatch") == true)
        #expect(subscriber.lastVersion == 1)
        await subscriber.stop()
        await server.stop()
    }

    /// A relay's subscriber offers each whole snapshot before decoding it; once the relay took one,
    /// the decode's outcome goes to the relay before `apply`: the table, or nil for a snapshot the
    /// checks refuse, which is NACKed as always.
    @Test func aForwardedSnapshotIsDecodedAfterwardAndItsOutcomeReported() async throws {
        let latest = LatestSnapshot()
        let server = try await startServer(at: Transport.unix.freshAddress(), latest: latest)
        latest.publish(version: 1, table: table(version: 1))
        let offered = Mutex<[UndecodedSnapshot]>([])
        let outcomes = Mutex<[RouteTable?]>([])
        let subscriber = RecordingSubscriber(
            address: server.address, id: "relay",
            forward: { undecoded in
                offered.withLock { $0.append(undecoded) }
                return { table in outcomes.withLock { $0.append(table) } }
            })
        try await eventually("version 1 applied") { subscriber.lastVersion == 1 }
        let first = try #require(offered.withLock { $0.first })
        #expect(first.version == 1)
        #expect(first.encoded.version == 1)
        #expect(first.contentHash == table(version: 1).contentHash)
        #expect(try RouteTable.decoding(serializedSnapshot: first.encoded.bytes).table == table(version: 1))
        #expect(outcomes.withLock { $0 } == [table(version: 1)], "the decoded table reached the relay")

        // Corrupt in both forms: the delta is NACKed, and on the next stream the whole version 2,
        // offered before its decode too, is refused by it.
        latest.publishCorrupted(version: 2, table: table(version: 2))
        try await eventually("the corrupt version is offered whole, and its decode's refusal reported") {
            outcomes.withLock { $0.count } == 2 && subscriber.subscriber.currentStatus.nacks == 2
                && server.subscriber("relay")?.lastNack?.version == 2
        }
        #expect(offered.withLock { $0.map(\.version) } == [1, 2])
        #expect(outcomes.withLock { $0.last } == .some(nil))
        #expect(server.subscriber("relay")?.lastNack?.errorDetail.contains("content hash mismatch") == true)
        #expect(subscriber.lastVersion == 1)
        await subscriber.stop()
        await server.stop()
    }

    /// After the first whole snapshot, a version the subscriber's ACKed table can grow into is sent
    /// as the entries that changed, and the subscriber ends with a table equal to the published one.
    @Test(arguments: Transport.allCases)
    func laterVersionsTravelAsDeltas(_ transport: Transport) async throws {
        let server = try await startServer(at: transport.freshAddress())
        let first = table(version: 1, hosts: 50)
        server.latest.publish(version: 1, table: first)
        let subscriber = RecordingSubscriber(address: server.address, id: "w")
        try await eventually("version 1 is ACKed") { server.subscriber("w")?.ackedVersion == 1 }

        var hosts = first.virtualHosts
        let trimmed = try #require(hosts.firstIndex { $0.hostname == .exact("host-7.example.com") })
        hosts[trimmed].routes.removeLast()
        hosts.removeAll { $0.hostname == .exact("host-20.example.com") }
        hosts.append(VirtualHost(hostname: .wildcard(suffix: "new.example.com"), routes: hosts[0].routes))
        let second = RouteTable(virtualHosts: hosts, clusters: first.clusters, certificates: [])
        server.latest.publish(version: 2, table: second)
        try await eventually("version 2 is ACKed") { server.subscriber("w")?.ackedVersion == 2 }

        let record = try #require(server.subscriber("w"))
        #expect(record.deltasSent == 1)
        let applied = subscriber.applied.withLock { $0 }
        #expect(applied.map(\.version) == [1, 2])
        #expect(applied.first?.delta == nil, "the first version is a whole snapshot")
        #expect(applied.last?.delta?.base == 1, "the second is a delta")
        #expect(applied.last?.table == second)
        #expect(applied.last?.table.contentHash == second.contentHash)
        let delta = try #require(server.latest.current?.delta)
        #expect(delta.base == 1)
        #expect(delta.changes.upsertedHosts.map(\.hostname) == [.exact("host-7.example.com"), .wildcard(suffix: "new.example.com")])
        #expect(delta.changes.removedHosts == [.exact("host-20.example.com")])
        #expect(delta.changes.upsertedClusters.isEmpty && delta.changes.removedClusters.isEmpty)
        await subscriber.stop()
        await server.stop()
    }

    /// A delta whose result does not hash to what the server says is NACKed; the subscriber opens a
    /// new stream, which starts with a whole snapshot, and later deltas apply on top of that.
    @Test func aDeltaThatDoesNotApplyIsNackedAndTheNextStreamStartsWhole() async throws {
        let server = try await startServer(at: Transport.unix.freshAddress())
        server.latest.publish(version: 1, table: table(version: 1))
        let subscriber = RecordingSubscriber(address: server.address, id: "w")
        // A delta goes only to a subscriber whose ACK the server has.
        try await eventually("version 1 is ACKed") { server.subscriber("w")?.ackedVersion == 1 }
        server.latest.publishCorrupted(version: 2, table: table(version: 2))
        // The delta is NACKed; the new stream's whole version 2 carries the same wrong hash and is
        // NACKed too (DeltaTests check the delta's refusal text).
        try await eventually("the corrupt delta is NACKed, and on the new stream the whole version 2 too") {
            subscriber.subscriber.currentStatus.sessions == 2 && subscriber.subscriber.currentStatus.nacks == 2
                && server.subscriber("w")?.lastNack?.errorDetail.contains("content hash mismatch") == true
        }
        server.latest.publish(version: 3, table: table(version: 3))
        try await eventually("version 3 applied") { subscriber.lastVersion == 3 }
        #expect(subscriber.lastTable == table(version: 3))
        #expect(subscriber.applied.withLock { $0.map(\.version) } == [1, 3])
        try await eventually("version 3 is ACKed") { server.subscriber("w")?.ackedVersion == 3 }
        server.latest.publish(version: 4, table: table(version: 4))
        try await eventually("version 4 applied") { subscriber.lastVersion == 4 }
        #expect(subscriber.applied.withLock { $0.last?.delta?.base == 3 }, "a delta again, on top of the whole version 3")
        await subscriber.stop()
        await server.stop()
    }

    @Test func socketDirectoryIs0700AndSocketIs0600() async throws {
        let address = Transport.unix.freshAddress()
        let server = try await startServer(at: address)
        guard case .unix(let path) = address else { return }
        let directory = (path as NSString).deletingLastPathComponent
        #expect(try FileManager.default.attributesOfItem(atPath: directory)[.posixPermissions] as? Int == 0o700)
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
        await server.stop()
    }
}

/// Serialises any request as a truncated protobuf field, which no decoder accepts.
struct TruncatedMessage: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: Portico_V1_WatchRequest) throws -> Bytes {
        Bytes([0x0a, 0x7f, 0x01])
    }
}
