import Foundation
import NodeAgent
import RouteModel
import SwiftProtobuf
@testable import SnapshotProtocol
import Testing
import TestSupport

private func temporaryDirectory() -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("portico-agent-\(UUID().uuidString.prefix(8))").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite struct SnapshotStateFileTests {
    @Test func savesAndLoadsPrivately() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = SnapshotStateFile(directory: directory)
        guard case .missing = file.load() else { Issue.record("a missing file is .missing"); return }
        let table = RandomRouteTable.make(seed: 7)
        try file.save(version: 3, table: table)
        guard case .snapshot(let version, let loaded) = file.load() else { Issue.record("the saved snapshot loads"); return }
        #expect(version == 3)
        #expect(loaded == table)
        let mode = try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(!FileManager.default.fileExists(atPath: file.path + ".tmp"))
    }

    @Test func aCorruptFileIsReportedByName() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = SnapshotStateFile(directory: directory)
        try Data("this is not a snapshot".utf8).write(to: URL(fileURLWithPath: file.path))
        guard case .unusable(let problem) = file.load() else { Issue.record("garbage is unusable"); return }
        #expect(problem.contains(file.path))
        #expect(problem.contains("corrupt"))

        // A well-formed snapshot whose table does not match its hash is refused too.
        var snapshot = Portico_V1_Snapshot(version: 2, table: RandomRouteTable.make(seed: 1))
        snapshot.contentHash &+= 1
        try Data(snapshot.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: file.path))
        guard case .unusable(let mismatch) = file.load() else { Issue.record("a hash mismatch is unusable"); return }
        #expect(mismatch.contains("content hash mismatch"))
    }
}

@Suite struct SnapshotRelayTests {
    @Test func keepsUpstreamVersionsAndSkipsUnchangedContent() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let relay = SnapshotRelay(stateFile: SnapshotStateFile(directory: directory))
        let first = RandomRouteTable.make(seed: 1)
        let second = RandomRouteTable.make(seed: 2)
        relay.accept(ReceivedSnapshot(version: 5, table: first))
        #expect(relay.latest.current?.version == 5)
        #expect(relay.upstreamVersion(forLocal: 5) == 5)

        // A restarted control plane counts from 1 again: same content is not republished…
        relay.accept(ReceivedSnapshot(version: 1, table: first))
        #expect(relay.latest.current?.version == 5)
        #expect(relay.upstreamVersion(forLocal: 5) == 1)
        // …and new content gets the next local version, mapped to the upstream one.
        relay.accept(ReceivedSnapshot(version: 2, table: second))
        #expect(relay.latest.current?.version == 6)
        #expect(relay.upstreamVersion(forLocal: 6) == 2)

        // What was accepted last is on disk, under the local version (saved in the background).
        relay.finishSaving()
        guard case .snapshot(let version, let table) = relay.stateFile.load() else { Issue.record("saved"); return }
        #expect(version == 6)
        #expect(table == second)

        // A new agent restores it before any control plane answers.
        let restarted = SnapshotRelay(stateFile: SnapshotStateFile(directory: directory))
        #expect(restarted.restore() == nil)
        #expect(restarted.latest.current?.version == 6)
        #expect(restarted.latest.current?.table == second)
        #expect(restarted.upstreamVersion(forLocal: 6) == 0)
    }

    /// A whole snapshot goes on to the workers and to disk as the bytes that came (encoding 100k
    /// Ingresses again took the agent a second); under another local version it is encoded afresh.
    /// An unknown field in the received bytes shows which happened.
    @Test func aWholeSnapshotIsPassedOnAndSavedAsItCame() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let relay = SnapshotRelay(stateFile: SnapshotStateFile(directory: directory))
        func received(_ version: UInt64, _ table: RouteTable) throws -> ReceivedSnapshot {
            // Field 99, varint 1: what a newer control plane might add.
            let bytes: [UInt8] = try Portico_V1_Snapshot(version: version, table: table).serializedBytes() + [0x98, 0x06, 0x01]
            return ReceivedSnapshot(version: version, table: table, encoded: EncodedSnapshot(version: version, bytes: bytes))
        }
        func sent() throws -> Portico_V1_WatchResponse {
            try Portico_V1_WatchResponse(serializedBytes: try #require(relay.latest.current).encodedResponse)
        }
        let first = RandomRouteTable.make(seed: 1)
        let passed = try received(5, first)
        relay.accept(passed)
        #expect(try sent().version == 5)
        #expect(try sent().snapshot.version == 5)
        #expect(try sent().snapshot.unknownFields.data.count == 3, "the received bytes, unknown field and all")
        #expect(try sent().snapshot.decodeTable() == first)
        relay.finishSaving()
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: relay.stateFile.path))) == passed.encoded?.bytes)

        // A restarted control plane's version 1 with new content is the agent's version 6.
        let second = RandomRouteTable.make(seed: 2)
        relay.accept(try received(1, second))
        #expect(try sent().version == 6)
        #expect(try sent().snapshot.version == 6)
        #expect(try sent().snapshot.unknownFields.data.isEmpty, "encoded from the table")
        #expect(try sent().snapshot.decodeTable() == second)
        relay.finishSaving()
        guard case .snapshot(let version, let table) = relay.stateFile.load() else { Issue.record("saved"); return }
        #expect(version == 6)
        #expect(table == second)
    }

    /// A delta from the upstream version the agent serves is passed on as it came (the agent does
    /// not compare the whole tables again); one from another base is worked out afresh.
    @Test func aDeltaFromTheServedVersionIsPassedOn() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let relay = SnapshotRelay(stateFile: SnapshotStateFile(directory: directory))
        let first = RandomRouteTable.make(seed: 1)
        var clusters = first.clusters
        clusters[0].endpoints.append(Endpoint(address: "10.254.0.1", port: 80))
        let second = RouteTable(virtualHosts: first.virtualHosts, clusters: clusters, certificates: first.certificates)
        relay.accept(ReceivedSnapshot(version: 7, table: first))
        // The upstream's delta, as a subscriber decodes it, with an unchanged cluster upserted too
        // (valid, and never what a comparison yields): that it arrives so shows it was passed on.
        try #require(first.clusters.count > 1)
        var changes = first.delta(to: second)
        changes.upsertedClusters = (changes.upsertedClusters + [first.clusters[1]]).sorted { $0.name < $1.name }
        #expect(changes != first.delta(to: second))
        relay.accept(ReceivedSnapshot(version: 8, table: second, delta: (base: 7, changes: changes)))
        let passed = try #require(relay.latest.current?.delta)
        #expect(passed.base == 7)
        #expect(passed.changes == changes)
        #expect(try first.applying(passed.changes) == second)

        // A delta whose base is not what the agent serves: the agent's own comparison.
        let third = RouteTable(virtualHosts: Array(second.virtualHosts.dropLast()), clusters: second.clusters, certificates: second.certificates)
        relay.accept(ReceivedSnapshot(version: 9, table: third, delta: (base: 3, changes: RouteTableDelta())))
        let worked = try #require(relay.latest.current?.delta)
        #expect(worked.base == 8)
        #expect(try second.applying(worked.changes) == third)
    }

    /// The agent's first table goes to the workers before the agent decodes it: its version is
    /// published with the bytes that came, readers of its table wait for the decode, and once the
    /// table is there it is saved and the same content arriving decoded is not republished. Any
    /// later snapshot is decoded first (workers holding a table get a delta to it).
    @Test func theFirstSnapshotIsPassedOnBeforeItIsDecoded() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let relay = SnapshotRelay(stateFile: SnapshotStateFile(directory: directory))
        let first = RandomRouteTable.make(seed: 1)
        // Field 99, varint 1: the bytes that came, not an encoding of the table, reach the workers.
        let bytes: [UInt8] = try Portico_V1_Snapshot(version: 5, table: first).serializedBytes() + [0x98, 0x06, 0x01]
        let undecoded = UndecodedSnapshot(version: 5, contentHash: first.contentHash, encoded: EncodedSnapshot(version: 5, bytes: bytes))

        let decoded = try #require(relay.forward(undecoded), "the first snapshot is passed on")
        let published = try #require(relay.latest.current)
        #expect(published.version == 5)
        #expect(published.delta == nil)
        let sent = try Portico_V1_WatchResponse(serializedBytes: published.encodedResponse)
        #expect(sent.version == 5)
        #expect(sent.snapshot.unknownFields.data.count == 3)
        let waiting = Task { await published.decodedTable() }
        #expect(relay.forward(undecoded) == nil, "only the first table is passed on undecoded")

        decoded(first)
        #expect(await waiting.value == first)
        #expect(relay.latest.current?.table == first)
        relay.accept(ReceivedSnapshot(version: 5, table: first, encoded: undecoded.encoded))
        #expect(relay.latest.current?.version == 5, "the same content is not published again")
        #expect(relay.upstreamVersion(forLocal: 5) == 5)
        relay.finishSaving()
        #expect(try Array(Data(contentsOf: URL(fileURLWithPath: relay.stateFile.path))) == bytes)

        // An agent that restored a table decodes before relaying, so that workers get a delta.
        let restarted = SnapshotRelay(stateFile: SnapshotStateFile(directory: directory))
        #expect(restarted.restore() == nil)
        #expect(restarted.forward(undecoded) == nil)
    }

    /// A first snapshot the agent's decode refuses was passed on (its workers refuse it with the same
    /// checks); the agent's version then holds an empty table and the next snapshot is new content.
    /// Bytes whose own version is not the response's are decoded before relaying.
    @Test func aForwardedSnapshotThatFailsToDecodeLeavesAnEmptyTable() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let relay = SnapshotRelay(stateFile: SnapshotStateFile(directory: directory))
        let first = RandomRouteTable.make(seed: 1)
        let bytes: [UInt8] = try Portico_V1_Snapshot(version: 3, table: first).serializedBytes()
        let mismatched = UndecodedSnapshot(version: 4, contentHash: first.contentHash, encoded: EncodedSnapshot(version: 3, bytes: bytes))
        #expect(relay.forward(mismatched) == nil)
        #expect(relay.latest.current == nil)

        let undecoded = UndecodedSnapshot(version: 3, contentHash: first.contentHash, encoded: EncodedSnapshot(version: 3, bytes: bytes))
        let decoded = try #require(relay.forward(undecoded))
        decoded(nil)
        #expect(relay.latest.current?.version == 3)
        #expect(relay.latest.current?.table.virtualHosts.isEmpty == true)
        relay.accept(ReceivedSnapshot(version: 3, table: first))
        #expect(relay.latest.current?.version == 4, "the same upstream version, decoded now, is new content")
        #expect(relay.latest.current?.table == first)
    }

    @Test func aCorruptStateFileIsIgnored() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let relay = SnapshotRelay(stateFile: SnapshotStateFile(directory: directory))
        try Data([0xff, 0xff, 0xff]).write(to: URL(fileURLWithPath: relay.stateFile.path))
        let problem = relay.restore()
        #expect(problem?.contains(relay.stateFile.path) == true)
        #expect(relay.latest.current == nil)
        relay.accept(ReceivedSnapshot(version: 1, table: RandomRouteTable.make(seed: 3)))
        #expect(relay.latest.current?.version == 1)
        relay.finishSaving()
        guard case .snapshot = relay.stateFile.load() else { Issue.record("the next accepted snapshot replaces the corrupt file"); return }
    }
}

@Suite struct WorkerSupervisorTests {
    @Test func restartsAWorkerThatExitsAndStopsOnRequest() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Slot 0 exits at once every time; slot 1 runs until signalled.
        var configuration = WorkerSupervisor.Configuration(count: 2, executable: "/bin/sh") { slot in
            slot == 0 ? ["-c", "exit 3"] : ["-c", "trap 'exit 0' TERM; while true; do sleep 0.05; done"]
        }
        configuration.initialDelay = .milliseconds(1)
        configuration.maximumDelay = .milliseconds(20)
        let supervisor = WorkerSupervisor(configuration: configuration)
        let run = Task { await supervisor.run() }
        try await eventually("slot 0 restarted three times and slot 1 runs", timeout: .seconds(30)) {
            supervisor.workers[0].restarts >= 3 && supervisor.workers[1].pid != 0
        }
        #expect(supervisor.workers[0].restarts >= 3)
        #expect(supervisor.workers[0].lastExit == "exit status 3")
        let longRunning = supervisor.workers[1].pid
        #expect(longRunning > 0)
        #expect(supervisor.workers[1].restarts == 0)

        supervisor.stop()
        await run.value
        #expect(supervisor.workers.allSatisfy { $0.pid == 0 })
        #expect(supervisor.workers[1].lastExit == "exit status 0")
        #expect(kill(longRunning, 0) != 0)
    }
}
