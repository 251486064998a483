import ArgumentParser
import Foundation
import SnapshotProtocol

/// `porticoctl status`: the fleet at a glance, from a control plane (or one node agent).
public struct StatusCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show every node agent and worker, the version each applied, and who is behind or refused a snapshot.",
        discussion: """
            Asks the server for its subscribers only (no table is transferred). Exit status: 0 when every \
            subscriber applied the current version, 1 when the server cannot be reached, 2 when any is \
            behind or its last answer was a NACK.
            """)

    @Option(name: .long, help: "A control plane or node agent: unix:/path/to.sock or HOST:PORT (default: the deploy/ sockets).")
    public var server: String?
    @Option(name: .long, help: "Give up after this many seconds.")
    public var timeout: Double = 10
    @Option(name: .shortAndLong, help: "Output format: table, json or yaml.")
    public var output: OutputFormat = .table

    public init() {}

    public struct Fleet: Codable, Sendable, Equatable {
        public var server: String
        public var version: UInt64
        public var nodes: [Node]
        /// Subscribers that are not node agents or their workers (porticoctl, workers subscribed directly).
        public var others: [Member]
        public var behind: Int
        public var nacked: Int
    }

    public struct Node: Codable, Sendable, Equatable {
        public var node: String
        public var agent: Member
        public var workers: [Member]
    }

    public struct Member: Codable, Sendable, Equatable {
        public var id: String
        public var kind: String
        public var worker: String?
        public var pid: UInt32?
        public var restarts: UInt32?
        public var ackedVersion: UInt64
        public var lag: UInt64
        public var lastNack: String?
    }

    public func execute() async -> CommandResult {
        let address: ServerAddress
        do {
            guard let text = server ?? SourceOptions.defaultSockets.first(where: { FileManager.default.fileExists(atPath: $0) }).map({ "unix:\($0)" }) else {
                return CommandResult(
                    stdout: "", stderr: "error: give --server ADDRESS (no socket at \(SourceOptions.defaultSockets.joined(separator: " or ")))\n",
                    exitCode: CommandResult.inputError)
            }
            address = try ServerAddress(parsing: text)
        } catch {
            return CommandResult(failure: error)
        }
        let response: Portico_V1_DumpResponse
        do {
            response = try await SourceOptions.fetchDump(from: address, timeout: timeout, subscribersOnly: true)
        } catch {
            return CommandResult(failure: error)
        }
        let fleet = Self.fleet(server: "\(address)", response: response)
        let text: String
        do {
            switch output {
            case .table: text = Self.table(fleet)
            case .json: text = try Render.json(fleet)
            case .yaml: text = try Render.yaml(fleet)
            }
        } catch {
            return CommandResult(stdout: "", stderr: "error: cannot render: \(error)\n", exitCode: CommandResult.inputError)
        }
        let healthy = fleet.behind == 0 && fleet.nacked == 0
        return CommandResult(stdout: text.hasSuffix("\n") ? text : text + "\n", stderr: "", exitCode: healthy ? 0 : CommandResult.problemsFound)
    }

    public func run() async throws {
        let result = await execute()
        FileHandle.standardOutput.write(Data(result.stdout.utf8))
        FileHandle.standardError.write(Data(result.stderr.utf8))
        if result.exitCode != 0 { throw ExitCode(result.exitCode) }
    }

    static func fleet(server: String, response: Portico_V1_DumpResponse) -> Fleet {
        let version = response.snapshot.version
        func member(_ status: Portico_V1_SubscriberStatus) -> Member {
            Member(
                id: status.id, kind: DumpDocument.kindName(status.kind), worker: status.workerID.isEmpty ? nil : status.workerID,
                pid: status.pid == 0 ? nil : status.pid, restarts: status.relayedBy.isEmpty ? nil : status.restarts,
                ackedVersion: status.ackedVersion, lag: version > status.ackedVersion ? version - status.ackedVersion : 0,
                lastNack: status.hasLastNack ? "version \(status.lastNack.version): \(status.lastNack.errorDetail)" : nil)
        }
        let agents = response.subscribers.filter { $0.kind == .nodeAgent }
        let agentIDs = Set(agents.map(\.id))
        let nodes = agents.map { agent in
            Node(node: agent.node, agent: member(agent), workers: response.subscribers.filter { $0.relayedBy == agent.id }.map(member))
        }
        let others = response.subscribers.filter { $0.kind != .nodeAgent && !agentIDs.contains($0.relayedBy) }.map(member)
        let everyone = nodes.flatMap { [$0.agent] + $0.workers } + others
        // Debuggers (porticoctl watching) apply nothing; they do not count as behind.
        let counted = everyone.filter { $0.kind != "debugger" }
        return Fleet(
            server: server, version: version, nodes: nodes, others: others, behind: counted.filter { $0.lag > 0 }.count,
            nacked: everyone.filter { $0.lastNack != nil }.count)
    }

    static func table(_ fleet: Fleet) -> String {
        var rows: [[String]] = []
        func add(_ node: String, _ member: Member) {
            rows.append([
                node, member.kind + (member.worker.map { " \($0)" } ?? ""), member.pid.map(String.init) ?? "-",
                member.restarts.map(String.init) ?? "-", member.ackedVersion == 0 ? "-" : String(member.ackedVersion),
                member.lag == 0 ? "current" : "\(member.lag) behind", member.lastNack ?? "-",
            ])
        }
        for node in fleet.nodes {
            add(node.node.isEmpty ? "-" : node.node, node.agent)
            for worker in node.workers { add("", worker) }
        }
        for other in fleet.others { add("-", other) }
        var summary = "\(fleet.server)  version \(fleet.version): \(fleet.nodes.count) node\(fleet.nodes.count == 1 ? "" : "s"), "
        summary += "\(fleet.nodes.map(\.workers.count).reduce(0, +)) workers"
        summary += fleet.behind == 0 && fleet.nacked == 0 ? ", all current" : ", \(fleet.behind) behind, \(fleet.nacked) with a NACK"
        return summary + "\n\n" + TextTable.render(header: ["NODE", "MEMBER", "PID", "RESTARTS", "APPLIED", "STATE", "LAST NACK"], rows: rows)
    }
}
