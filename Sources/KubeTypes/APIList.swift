/// A LIST response: `{"metadata": {"resourceVersion", "continue"}, "items": [...]}`.
public struct KubeList<Object: KubeObject>: Codable, Sendable {
    public var metadata: ListMeta
    public var items: [Object]

    public init(metadata: ListMeta, items: [Object]) {
        self.metadata = metadata
        self.items = items
    }
}

public struct ListMeta: Codable, Sendable, Hashable {
    public var resourceVersion: String?
    /// Present when the list was cut at `limit`: pass it back to get the next page.
    public var `continue`: String?
    /// With `continue`: how many objects the following pages hold, when the server can tell.
    public var remainingItemCount: Int?

    public init(resourceVersion: String? = nil, continue: String? = nil, remainingItemCount: Int? = nil) {
        self.resourceVersion = resourceVersion
        self.continue = `continue`
        self.remainingItemCount = remainingItemCount
    }
}

/// metav1.Status, as the API server reports a failure (and as a watch reports 410 Gone).
public struct KubeStatus: Codable, Sendable, Hashable, Error, CustomStringConvertible {
    public var code: Int?
    public var reason: String?
    public var message: String?

    public init(code: Int?, reason: String?, message: String?) {
        self.code = code
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(code.map(String.init) ?? "?") \(reason ?? ""): \(message ?? "")" }
}

/// One line of a WATCH stream.
public enum WatchEvent<Object: KubeObject>: Sendable {
    case added(Object)
    case modified(Object)
    case deleted(Object)
    /// Nothing changed, but the stream is at this resourceVersion.
    case bookmark(resourceVersion: String)
    /// The watch failed; 410 means the requested version is gone and a relist is needed.
    case error(KubeStatus)
}

extension WatchEvent: Decodable {
    private enum Keys: String, CodingKey { case type, object }

    private struct BookmarkObject: Decodable {
        struct Meta: Decodable { var resourceVersion: String? }
        var metadata: Meta
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "ADDED": self = .added(try container.decode(Object.self, forKey: .object))
        case "MODIFIED": self = .modified(try container.decode(Object.self, forKey: .object))
        case "DELETED": self = .deleted(try container.decode(Object.self, forKey: .object))
        case "BOOKMARK":
            self = .bookmark(resourceVersion: try container.decode(BookmarkObject.self, forKey: .object).metadata.resourceVersion ?? "")
        case "ERROR": self = .error(try container.decode(KubeStatus.self, forKey: .object))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "unknown watch event type \(other)")
        }
    }
}
