import Foundation

/// The emulator's objects and their history, confined to its one event loop.
///
/// resourceVersion is one counter for the whole store, as etcd's revision is for the real server.
/// History keeps every change (up to a bound) so a watch can resume from any version after the
/// last compaction; older versions get 410 Gone.
final class ObjectStore {
    typealias Object = [String: Any]

    struct Change {
        var revision: Int
        var type: String  // ADDED, MODIFIED, DELETED
        var resource: ResourceType
        var object: Object
    }

    struct Watcher {
        var resource: ResourceType
        var namespace: String?
        var fieldSelector: Selector
        var labelSelector: Selector
        var send: (Change) -> Void
        var close: () -> Void
    }

    enum Failure: Error {
        case status(code: Int, reason: String, message: String)
    }

    private(set) var revision = 1
    /// Watches from versions before this one get 410 Gone.
    private(set) var compactedRevision = 1
    private var objects: [ResourceType: [String: Object]] = [:]
    /// Each resource's keys in order, as a real API server's cache keeps them: sorted again only
    /// after an object was added or removed.
    private var sortedKeys: [ResourceType: [String]] = [:]
    private var history: [Change] = []
    private var watchers: [Int: Watcher] = [:]
    private var nextWatcher = 0
    private let historyLimit = 50_000

    var watcherCount: Int { watchers.count }

    /// The newest paged LIST of each query (resource, namespace, selectors) and the revision it was
    /// made at, for the pages its `continue` tokens ask for.
    var listSnapshots: [String: (revision: Int, objects: [Object])] = [:]

    /// Each object's JSON as lists serve it, made once per version of the object (the real API
    /// server's watch cache also serializes an object once): serializing every item again for each
    /// LIST kept the emulator busy for a minute serving a 100k-Ingress cluster's first lists.
    private var encodedObjects: [String: (resourceVersion: String, json: [UInt8])] = [:]

    func encoded(_ object: Object, as resource: ResourceType) -> [UInt8] {
        let metadata = object["metadata"] as? Object ?? [:]
        let key = resource.resource + "|" + Self.key(namespace: metadata["namespace"] as? String, name: metadata["name"] as? String ?? "")
        let version = metadata["resourceVersion"] as? String ?? ""
        if let cached = encodedObjects[key], cached.resourceVersion == version { return cached.json }
        let json = [UInt8]((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8))
        encodedObjects[key] = (version, json)
        return json
    }

    /// `encoded` for every object, and every resource's keys in order.
    func encodeEverything() {
        for (resource, objects) in objects {
            for object in objects.values { _ = encoded(object, as: resource) }
            _ = keysInOrder(resource)
        }
    }

    private func keysInOrder(_ resource: ResourceType) -> [String] {
        if let keys = sortedKeys[resource] { return keys }
        let keys = (objects[resource] ?? [:]).keys.sorted()
        sortedKeys[resource] = keys
        return keys
    }

    static func key(namespace: String?, name: String) -> String { "\(namespace ?? "")/\(name)" }

    // MARK: Reads

    func get(_ resource: ResourceType, namespace: String?, name: String) -> Object? {
        objects[resource]?[Self.key(namespace: namespace, name: name)]
    }

    /// Sorted by namespace and name.
    func list(_ resource: ResourceType, namespace: String?, fieldSelector: Selector, labelSelector: Selector) -> [Object] {
        guard let stored = objects[resource] else { return [] }
        // Sorting the entries for each LIST (100k pairs, each a dictionary of `Any`) kept a
        // benchmark's control plane waiting most of a second for its first pages.
        let everything = namespace == nil && fieldSelector.requirements.isEmpty && labelSelector.requirements.isEmpty
        return keysInOrder(resource).compactMap { key in
            let object = stored[key]!
            guard everything
                || ((namespace == nil || Self.namespace(of: object) == namespace) && fieldSelector.matchesFields(object)
                    && labelSelector.matchesLabels(object))
            else { return nil }
            return object
        }
    }

    // MARK: Writes

    func create(_ resource: ResourceType, namespace: String?, object: Object) throws(Failure) -> Object {
        var object = object
        var metadata = object["metadata"] as? Object ?? [:]
        guard let name = metadata["name"] as? String, !name.isEmpty else {
            throw .status(code: 422, reason: "Invalid", message: "metadata.name: Required value")
        }
        let namespace = resource.namespaced ? (metadata["namespace"] as? String ?? namespace ?? "default") : nil
        let key = Self.key(namespace: namespace, name: name)
        guard objects[resource]?[key] == nil else {
            throw .status(code: 409, reason: "AlreadyExists", message: "\(resource.resource) \"\(name)\" already exists")
        }
        revision += 1
        if let namespace { metadata["namespace"] = namespace }
        metadata["uid"] = UUID().uuidString.lowercased()
        metadata["resourceVersion"] = String(revision)
        metadata["creationTimestamp"] = Self.now()
        metadata["generation"] = 1
        object["metadata"] = metadata
        object["kind"] = resource.kind
        object["apiVersion"] = resource.groupVersion
        objects[resource, default: [:]][key] = object
        sortedKeys[resource] = nil
        _ = encoded(object, as: resource)  // at write time, as the watch cache does
        record(Change(revision: revision, type: "ADDED", resource: resource, object: object))
        return object
    }

    /// PUT: a resourceVersion in the body must match the stored one (409 otherwise).
    func update(_ resource: ResourceType, namespace: String?, name: String, object: Object, statusOnly: Bool) throws(Failure) -> Object {
        let key = Self.key(namespace: resource.namespaced ? namespace : nil, name: name)
        guard let current = objects[resource]?[key] else {
            throw .status(code: 404, reason: "NotFound", message: "\(resource.resource) \"\(name)\" not found")
        }
        let given = (object["metadata"] as? Object)?["resourceVersion"] as? String
        let stored = (current["metadata"] as? Object)?["resourceVersion"] as? String
        if let given, !given.isEmpty, given != stored {
            throw .status(
                code: 409, reason: "Conflict",
                message: "Operation cannot be fulfilled on \(resource.resource) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again")
        }
        var next = current
        if statusOnly {
            next["status"] = object["status"]
        } else {
            next = object
            next["status"] = object["status"] ?? current["status"]
        }
        return store(resource, key: key, previous: current, next: next, bumpGeneration: !statusOnly)
    }

    /// JSON merge patch (RFC 7386); on the status subresource only `.status` is taken.
    func patch(_ resource: ResourceType, namespace: String?, name: String, patch: Object, statusOnly: Bool) throws(Failure) -> Object {
        let key = Self.key(namespace: resource.namespaced ? namespace : nil, name: name)
        guard let current = objects[resource]?[key] else {
            throw .status(code: 404, reason: "NotFound", message: "\(resource.resource) \"\(name)\" not found")
        }
        var effective = patch
        if statusOnly { effective = patch["status"].map { ["status": $0] } ?? [:] }
        let next = Self.mergePatch(current, effective) as? Object ?? current
        return store(resource, key: key, previous: current, next: next, bumpGeneration: !statusOnly && patch["spec"] != nil)
    }

    func delete(_ resource: ResourceType, namespace: String?, name: String) throws(Failure) -> Object {
        let key = Self.key(namespace: resource.namespaced ? namespace : nil, name: name)
        sortedKeys[resource] = nil
        guard var object = objects[resource]?.removeValue(forKey: key) else {
            throw .status(code: 404, reason: "NotFound", message: "\(resource.resource) \"\(name)\" not found")
        }
        revision += 1
        var metadata = object["metadata"] as? Object ?? [:]
        metadata["resourceVersion"] = String(revision)
        object["metadata"] = metadata
        record(Change(revision: revision, type: "DELETED", resource: resource, object: object))
        return object
    }

    private func store(_ resource: ResourceType, key: String, previous: Object, next: Object, bumpGeneration: Bool) -> Object {
        var next = next
        var metadata = next["metadata"] as? Object ?? [:]
        let old = previous["metadata"] as? Object ?? [:]
        // Fields the server owns.
        for field in ["uid", "creationTimestamp", "name", "namespace"] { metadata[field] = old[field] }
        revision += 1
        metadata["resourceVersion"] = String(revision)
        metadata["generation"] = (old["generation"] as? Int ?? 1) + (bumpGeneration ? 1 : 0)
        next["metadata"] = metadata
        next["kind"] = resource.kind
        next["apiVersion"] = resource.groupVersion
        objects[resource]?[key] = next
        _ = encoded(next, as: resource)
        record(Change(revision: revision, type: "MODIFIED", resource: resource, object: next))
        return next
    }

    private func record(_ change: Change) {
        history.append(change)
        if history.count > historyLimit {
            history.removeFirst(history.count - historyLimit)
            compactedRevision = history.first?.revision ?? revision
        }
        for watcher in watchers.values where Self.matches(change, watcher) { watcher.send(change) }
    }

    // MARK: Watches

    /// Registers a watcher after replaying what happened after `since` (nil: synthetic ADDED for
    /// every current object, as `resourceVersion=0` does). Returns nil, registering nothing, when
    /// `since` was compacted away.
    func watch(since: Int?, _ watcher: Watcher) -> Int? {
        if let since {
            guard since >= compactedRevision - 1 else { return nil }
            for change in history where change.revision > since && Self.matches(change, watcher) { watcher.send(change) }
        } else {
            for object in list(watcher.resource, namespace: watcher.namespace, fieldSelector: watcher.fieldSelector, labelSelector: watcher.labelSelector) {
                watcher.send(Change(revision: revision, type: "ADDED", resource: watcher.resource, object: object))
            }
        }
        nextWatcher += 1
        watchers[nextWatcher] = watcher
        return nextWatcher
    }

    func removeWatcher(_ id: Int) {
        watchers[id] = nil
    }

    /// Closes every watch connection mid-stream.
    func cutWatches() {
        let all = watchers.values
        watchers.removeAll()
        for watcher in all { watcher.close() }
    }

    /// Forgets all history: a watch from any version before now gets 410 Gone.
    func compact() {
        history.removeAll()
        compactedRevision = revision + 1
    }

    private static func matches(_ change: Change, _ watcher: Watcher) -> Bool {
        change.resource == watcher.resource && (watcher.namespace == nil || namespace(of: change.object) == watcher.namespace)
            && watcher.fieldSelector.matchesFields(change.object) && watcher.labelSelector.matchesLabels(change.object)
    }

    static func namespace(of object: Object) -> String? { (object["metadata"] as? Object)?["namespace"] as? String }

    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }

    static func mergePatch(_ target: Any?, _ patch: Any) -> Any? {
        guard let patch = patch as? Object else { return patch }
        var result = target as? Object ?? [:]
        for (key, value) in patch {
            if value is NSNull { result[key] = nil } else { result[key] = mergePatch(result[key], value) }
        }
        return result
    }
}

/// A field or label selector: comma-separated `key=value`, `key==value`, `key!=value`, and, for
/// labels, `key` and `!key`.
struct Selector {
    enum Requirement {
        case equals(String, String)
        case notEquals(String, String)
        case exists(String)
        case notExists(String)
    }

    var requirements: [Requirement] = []

    init(_ text: String?) {
        guard let text, !text.isEmpty else { return }
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            if let range = part.range(of: "!=") {
                requirements.append(.notEquals(String(part[..<range.lowerBound]), String(part[range.upperBound...])))
            } else if let range = part.range(of: "==") ?? part.range(of: "=") {
                requirements.append(.equals(String(part[..<range.lowerBound]), String(part[range.upperBound...])))
            } else if part.hasPrefix("!") {
                requirements.append(.notExists(String(part.dropFirst())))
            } else {
                requirements.append(.exists(part))
            }
        }
    }

    func matchesFields(_ object: [String: Any]) -> Bool {
        requirements.allSatisfy { requirement in
            switch requirement {
            case .equals(let path, let value): Self.field(path, in: object) == value
            case .notEquals(let path, let value): Self.field(path, in: object) != value
            case .exists(let path): Self.field(path, in: object) != nil
            case .notExists(let path): Self.field(path, in: object) == nil
            }
        }
    }

    func matchesLabels(_ object: [String: Any]) -> Bool {
        let labels = (object["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:]
        return requirements.allSatisfy { requirement in
            switch requirement {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .exists(let key): labels[key] != nil
            case .notExists(let key): labels[key] == nil
            }
        }
    }

    private static func field(_ path: String, in object: [String: Any]) -> String? {
        var current: Any? = object
        for component in path.split(separator: ".") { current = (current as? [String: Any])?[String(component)] }
        switch current {
        case let text as String: return text
        case let number as Int: return String(number)
        case let flag as Bool: return String(flag)
        default: return nil
        }
    }
}
