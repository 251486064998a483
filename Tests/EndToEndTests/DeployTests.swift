import Foundation
import Testing
import Yams

/// `deploy/` renders with kustomize and holds what a cluster install needs.
@Suite struct DeployTests {
    static let deploy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("deploy").path
    static let kubectl = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: kubectl != nil))
    func rendersWithKustomize() async throws {
        let render = try ChildProcess(Self.kubectl!, ["kustomize", Self.deploy])
        #expect(try await render.waitForExit() == 0, "\(render.text)")
        let documents = try Yams.load_all(yaml: render.text).compactMap { $0 as? [String: Any] }
        func objects(_ kind: String) -> [[String: Any]] { documents.filter { $0["kind"] as? String == kind } }
        func name(_ object: [String: Any]) -> String { (object["metadata"] as? [String: Any])?["name"] as? String ?? "" }

        #expect(objects("Namespace").map(name) == ["portico-system"])
        #expect(Set(objects("ServiceAccount").map(name)) == ["portico-control-plane", "portico-data-plane"])
        #expect(objects("IngressClass").first.flatMap { ($0["spec"] as? [String: Any])?["controller"] as? String } == "portico.io/ingress-controller")
        #expect(objects("ClusterRole").count == 1 && objects("Role").count == 1)

        // The control plane may read what it routes and write only status, Events, its Lease and its Secrets.
        let rules = (objects("ClusterRole").first?["rules"] as? [[String: Any]]) ?? []
        let writes = rules.filter { (($0["verbs"] as? [String]) ?? []).contains { ["create", "update", "patch", "delete"].contains($0) } }
        #expect(Set(writes.flatMap { ($0["resources"] as? [String]) ?? [] }) == ["ingresses/status", "events"])

        let deployment = try #require(objects("Deployment").first)
        let deploymentSpec = try #require(deployment["spec"] as? [String: Any])
        #expect(deploymentSpec["replicas"] as? Int == 2)
        let controlPlane = try #require(Self.container(deployment))
        #expect((controlPlane["args"] as? [String])?.contains("--tls-bootstrap") == true)
        #expect(controlPlane["readinessProbe"] != nil && controlPlane["livenessProbe"] != nil)

        let daemonSet = try #require(objects("DaemonSet").first)
        let pod = try #require(((daemonSet["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        let dataPlane = try #require(Self.container(daemonSet))
        let ports = (dataPlane["ports"] as? [[String: Any]]) ?? []
        #expect(Set(ports.compactMap { $0["hostPort"] as? Int }) == [80, 443])
        let security = try #require(dataPlane["securityContext"] as? [String: Any])
        #expect(security["readOnlyRootFilesystem"] as? Bool == true)
        #expect(((security["capabilities"] as? [String: Any])?["add"] as? [String]) == ["NET_BIND_SERVICE"])
        #expect((pod["securityContext"] as? [String: Any])?["runAsNonRoot"] as? Bool == true)
        let args = (dataPlane["args"] as? [String]) ?? []
        let drain = args.first { $0.hasPrefix("--drain-timeout=") }.flatMap { Int($0.dropFirst("--drain-timeout=".count)) } ?? 25
        let grace = pod["terminationGracePeriodSeconds"] as? Int ?? 30
        #expect(grace > drain, "the kubelet waits longer than the workers drain")
        #expect(args.contains("--tls-certificate=/etc/portico/tls/tls.crt"))
    }

    static func container(_ workload: [String: Any]) -> [String: Any]? {
        let pod = ((workload["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any]
        return (pod?["containers"] as? [[String: Any]])?.first
    }
}
