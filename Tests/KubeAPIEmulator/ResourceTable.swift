/// The kinds the emulator serves, as the real API server names them.
struct ResourceType: Hashable, Sendable {
    var group: String  // "" for core
    var version: String
    var resource: String
    var kind: String
    var namespaced: Bool
    /// Has a `/status` subresource whose writes touch only `.status`.
    var hasStatus: Bool

    var groupVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    var shortNames: [String] {
        switch resource {
        case "services": ["svc"]
        case "ingresses": ["ing"]
        case "events": ["ev"]
        case "namespaces": ["ns"]
        default: []
        }
    }

    static let all: [ResourceType] = [
        .init(group: "", version: "v1", resource: "namespaces", kind: "Namespace", namespaced: false, hasStatus: true),
        .init(group: "", version: "v1", resource: "services", kind: "Service", namespaced: true, hasStatus: true),
        .init(group: "", version: "v1", resource: "secrets", kind: "Secret", namespaced: true, hasStatus: false),
        .init(group: "", version: "v1", resource: "events", kind: "Event", namespaced: true, hasStatus: false),
        .init(group: "", version: "v1", resource: "configmaps", kind: "ConfigMap", namespaced: true, hasStatus: false),
        .init(group: "discovery.k8s.io", version: "v1", resource: "endpointslices", kind: "EndpointSlice", namespaced: true, hasStatus: false),
        .init(group: "networking.k8s.io", version: "v1", resource: "ingresses", kind: "Ingress", namespaced: true, hasStatus: true),
        .init(group: "networking.k8s.io", version: "v1", resource: "ingressclasses", kind: "IngressClass", namespaced: false, hasStatus: false),
        .init(group: "coordination.k8s.io", version: "v1", resource: "leases", kind: "Lease", namespaced: true, hasStatus: false),
        .init(group: "events.k8s.io", version: "v1", resource: "events", kind: "Event", namespaced: true, hasStatus: false),
    ]

    static func find(group: String, version: String, resource: String) -> ResourceType? {
        all.first { $0.group == group && $0.version == version && $0.resource == resource }
    }

    static func find(kind: String, groupVersion: String) -> ResourceType? {
        all.first { $0.kind == kind && $0.groupVersion == groupVersion }
    }

    /// `/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION` documents for discovery (kubectl).
    static func discovery(path: String) -> [String: Any]? {
        switch path {
        case "/api":
            return ["kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [["clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"]]]
        case "/apis":
            let groups = Dictionary(grouping: all.filter { !$0.group.isEmpty }, by: \.group).keys.sorted()
            return [
                "kind": "APIGroupList", "apiVersion": "v1",
                "groups": groups.map { group -> [String: Any] in
                    let version = ["groupVersion": "\(group)/v1", "version": "v1"]
                    return ["name": group, "versions": [version], "preferredVersion": version]
                },
            ]
        case "/version":
            return ["major": "1", "minor": "32", "gitVersion": "v1.32.0-portico-emulator", "platform": "linux/amd64"]
        default:
            let groupVersion: String
            if path.hasPrefix("/api/") {
                groupVersion = String(path.dropFirst("/api/".count))
            } else if path.hasPrefix("/apis/") {
                groupVersion = String(path.dropFirst("/apis/".count))
            } else {
                return nil
            }
            let resources = all.filter { $0.groupVersion == groupVersion }
            guard !resources.isEmpty else { return nil }
            var list: [[String: Any]] = []
            for type in resources {
                list.append([
                    "name": type.resource, "singularName": type.kind.lowercased(), "namespaced": type.namespaced, "kind": type.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": type.shortNames,
                ])
                if type.hasStatus {
                    list.append(["name": "\(type.resource)/status", "singularName": "", "namespaced": type.namespaced, "kind": type.kind, "verbs": ["get", "patch", "update"]])
                }
            }
            return ["kind": "APIResourceList", "apiVersion": "v1", "groupVersion": groupVersion, "resources": list]
        }
    }
}
