import KubeTypes

/// Something in the input that the route table could not honour, and what Portico did instead.
///
/// Rejections are a side output of translation: status and event writers, `porticoctl dump` and
/// logs read them. One object's problem never removes anything contributed by another object.
public struct Rejection: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var object: ObjectRef
    public var reason: Reason
    public var effect: Effect
    /// The field the problem is in, for example `spec.rules[0].http.paths[1].path`.
    public var field: String?
    public var message: String

    public init(object: ObjectRef, reason: Reason, effect: Effect, field: String? = nil, message: String) {
        self.object = object
        self.reason = reason
        self.effect = effect
        self.field = field
        self.message = message
    }

    /// Machine-readable causes, named like Kubernetes event reasons.
    public enum Reason: String, Sendable, Hashable, CaseIterable, Codable {
        case ingressClassConflict = "IngressClassConflict"
        case invalidHost = "InvalidHost"
        case invalidPath = "InvalidPath"
        case invalidPathType = "InvalidPathType"
        case invalidBackend = "InvalidBackend"
        case unsupportedBackend = "UnsupportedBackend"
        case noRules = "NoRules"
        case pathConflict = "PathConflict"
        case defaultBackendConflict = "DefaultBackendConflict"
        case serviceNotFound = "ServiceNotFound"
        case servicePortNotFound = "ServicePortNotFound"
        case unsupportedServiceType = "UnsupportedServiceType"
        case invalidEndpoint = "InvalidEndpoint"
        case tlsHostConflict = "TLSHostConflict"
        case tlsSecretNotFound = "TLSSecretNotFound"
        case tlsSecretInvalid = "TLSSecretInvalid"
        case tlsWithoutHosts = "TLSWithoutHosts"
        case invalidAnnotation = "InvalidAnnotation"
        /// An annotation Portico does not honour (see `AnnotationCatalog`).
        case unsupportedAnnotation = "UnsupportedAnnotation"
        /// An annotation under a known prefix that neither Portico nor ingress-nginx defines.
        case unknownAnnotation = "UnknownAnnotation"
    }

    /// What happened to the object's contribution.
    public enum Effect: String, Sendable, Hashable, Codable {
        /// The whole Ingress is ignored.
        case ingressRejected = "IngressRejected"
        /// One route, default backend or TLS host of the object is ignored; the rest is used.
        case partiallyIgnored = "PartiallyIgnored"
        /// The route is kept and answers 503 until the backend can be resolved.
        case backendUnavailable = "BackendUnavailable"
        /// The host is served with the default certificate.
        case defaultCertificate = "DefaultCertificate"
        /// A setting is ignored and its default applies.
        case defaultApplied = "DefaultApplied"
    }

    public var description: String {
        let location = field.map { "\(object) \($0)" } ?? "\(object)"
        return "\(location): \(reason.rawValue): \(message)"
    }

    public static func < (lhs: Rejection, rhs: Rejection) -> Bool {
        (lhs.object, lhs.field ?? "", lhs.reason.rawValue, lhs.message)
            < (rhs.object, rhs.field ?? "", rhs.reason.rawValue, rhs.message)
    }
}
