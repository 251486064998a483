/// metav1.ObjectMeta: the fields Portico reads.
public struct ObjectMeta: Codable, Sendable, Hashable {
    public var name: String
    /// Nil in a manifest means the `default` namespace, as `kubectl apply` does.
    public var namespace: String?
    public var uid: String?
    public var resourceVersion: String?
    public var generation: Int64?
    public var creationTimestamp: KubeTime?
    public var labels: [String: String]?
    public var annotations: [String: String]?

    public init(
        name: String, namespace: String? = nil, uid: String? = nil, resourceVersion: String? = nil,
        generation: Int64? = nil, creationTimestamp: KubeTime? = nil, labels: [String: String]? = nil,
        annotations: [String: String]? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.generation = generation
        self.creationTimestamp = creationTimestamp
        self.labels = labels
        self.annotations = annotations
    }

    public func annotation(_ key: String) -> String? { annotations?[key] }
    public func label(_ key: String) -> String? { labels?[key] }
}

/// A Kubernetes object that lives in a namespace.
public protocol KubeObject: Codable, Sendable, Hashable {
    static var kind: String { get }
    /// `group/version`, or `v1` for the core group.
    static var apiVersion: String { get }
    /// The plural name in API paths: `ingresses`.
    static var resource: String { get }
    /// False for cluster-scoped kinds such as IngressClass.
    static var isNamespaced: Bool { get }
    var metadata: ObjectMeta { get }
    /// The object at the reader's position, from an API server's JSON (`KubeJSON`).
    static func read(kubeJSON reader: inout KubeJSONReader) throws(KubeJSONError) -> Self
}

extension KubeObject {
    public static var isNamespaced: Bool { true }
}

extension KubeObject {
    public var namespace: String { metadata.namespace ?? "default" }
    public var name: String { metadata.name }
    public var ref: ObjectRef { ObjectRef(kind: Self.kind, namespace: namespace, name: name) }
}

/// Identifies an object for messages and maps: `Ingress default/web`.
public struct ObjectRef: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var kind: String
    /// Empty for cluster-scoped objects such as IngressClass.
    public var namespace: String
    public var name: String

    public init(kind: String, namespace: String, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    public var description: String {
        namespace.isEmpty ? "\(kind) \(name)" : "\(kind) \(namespace)/\(name)"
    }

    public static func < (lhs: ObjectRef, rhs: ObjectRef) -> Bool {
        (lhs.kind, lhs.namespace, lhs.name) < (rhs.kind, rhs.namespace, rhs.name)
    }
}
