/// coordination.k8s.io/v1 Lease: who leads, until when.
public struct Lease: KubeObject {
    public static let kind = "Lease"
    public static let resource = "leases"
    public static let apiVersion = "coordination.k8s.io/v1"

    public var metadata: ObjectMeta
    public var spec: LeaseSpec?

    public init(metadata: ObjectMeta, spec: LeaseSpec? = nil) {
        self.metadata = metadata
        self.spec = spec
    }
}

public struct LeaseSpec: Codable, Sendable, Hashable {
    public var holderIdentity: String?
    public var leaseDurationSeconds: Int32?
    /// metav1.MicroTime: RFC 3339 with microseconds.
    public var acquireTime: String?
    public var renewTime: String?
    public var leaseTransitions: Int32?

    public init(
        holderIdentity: String? = nil, leaseDurationSeconds: Int32? = nil, acquireTime: String? = nil, renewTime: String? = nil,
        leaseTransitions: Int32? = nil
    ) {
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTime = acquireTime
        self.renewTime = renewTime
        self.leaseTransitions = leaseTransitions
    }
}

/// core/v1 Event: what `kubectl describe` shows under an object.
public struct KubeEvent: KubeObject {
    public static let kind = "Event"
    public static let resource = "events"
    public static let apiVersion = "v1"

    public var metadata: ObjectMeta
    public var involvedObject: InvolvedObject
    public var reason: String
    public var message: String
    /// `Normal` or `Warning`.
    public var type: String
    public var source: EventSource?
    public var firstTimestamp: String?
    public var lastTimestamp: String?
    public var count: Int32?
    public var reportingComponent: String?
    public var reportingInstance: String?

    public init(
        metadata: ObjectMeta, involvedObject: InvolvedObject, reason: String, message: String, type: String, source: EventSource? = nil,
        firstTimestamp: String? = nil, lastTimestamp: String? = nil, count: Int32? = nil, reportingComponent: String? = nil,
        reportingInstance: String? = nil
    ) {
        self.metadata = metadata
        self.involvedObject = involvedObject
        self.reason = reason
        self.message = message
        self.type = type
        self.source = source
        self.firstTimestamp = firstTimestamp
        self.lastTimestamp = lastTimestamp
        self.count = count
        self.reportingComponent = reportingComponent
        self.reportingInstance = reportingInstance
    }
}

public struct InvolvedObject: Codable, Sendable, Hashable {
    public var kind: String
    public var apiVersion: String?
    public var namespace: String?
    public var name: String
    public var uid: String?
    public var resourceVersion: String?

    public init(kind: String, apiVersion: String? = nil, namespace: String? = nil, name: String, uid: String? = nil, resourceVersion: String? = nil) {
        self.kind = kind
        self.apiVersion = apiVersion
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.resourceVersion = resourceVersion
    }
}

public struct EventSource: Codable, Sendable, Hashable {
    public var component: String?
    public var host: String?

    public init(component: String? = nil, host: String? = nil) {
        self.component = component
        self.host = host
    }
}
