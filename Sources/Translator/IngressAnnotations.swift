import KubeTypes

/// How one annotation of one Ingress was taken: what `porticoctl dump` lists.
public struct AnnotationUse: Sendable, Hashable, Comparable {
    public var object: ObjectRef
    /// The whole key, prefix included.
    public var key: String
    public var status: Status
    /// Why, or what differs; empty when there is nothing to say.
    public var message: String

    public enum Status: String, Sendable, Hashable, CaseIterable {
        case supported
        case differs = "supported-with-difference"
        case unsupported
        /// Its value could not be read; the default applies (see the rejection).
        case invalid
        /// Not an annotation Portico or ingress-nginx knows.
        case unknown
        /// The same annotation under `portico.io/` wins over this one.
        case shadowed
    }

    public init(object: ObjectRef, key: String, status: Status, message: String) {
        self.object = object
        self.key = key
        self.status = status
        self.message = message
    }

    public static func < (lhs: AnnotationUse, rhs: AnnotationUse) -> Bool { (lhs.object, lhs.key) < (rhs.object, rhs.key) }
}

/// The `nginx.ingress.kubernetes.io/` and `portico.io/` annotations of one Ingress, classified by
/// `AnnotationCatalog`. Parsers ask for a value by name and report a malformed one; everything the
/// Ingress carries ends up in `uses`, and what Portico does not honour in `rejections`.
struct IngressAnnotations {
    let ref: ObjectRef
    /// Winning key and value for each catalogued name.
    private var values: [String: (key: String, value: String)] = [:]
    private(set) var uses: [AnnotationUse] = []
    private(set) var rejections: [Rejection] = []
    /// An access-control annotation Portico cannot honour is present: the Ingress must not be served.
    private(set) var rejectsIngress = false

    init(_ ingress: Ingress) {
        ref = ingress.ref
        guard let annotations = ingress.metadata.annotations, !annotations.isEmpty else { return }
        var shadowed: [String] = []
        for (key, value) in annotations {
            let name: Substring
            let isPortico: Bool
            if key.hasPrefix(AnnotationCatalog.nginxPrefix) {
                name = key.dropFirst(AnnotationCatalog.nginxPrefix.utf8.count)
                isPortico = false
            } else if key.hasPrefix(AnnotationCatalog.porticoPrefix) {
                name = key.dropFirst(AnnotationCatalog.porticoPrefix.utf8.count)
                isPortico = true
            } else {
                continue
            }
            guard let entry = AnnotationCatalog.entry(String(name)), isPortico || entry.inIngressNginx else {
                let known = isPortico ? "Portico" : "ingress-nginx"
                uses.append(AnnotationUse(object: ref, key: key, status: .unknown, message: "not an annotation \(known) knows; it has no effect"))
                rejections.append(
                    Rejection(
                        object: ref, reason: .unknownAnnotation, effect: .defaultApplied, field: Self.field(key),
                        message: "\(key) is not an annotation \(known) knows; it has no effect"))
                continue
            }
            if let existing = values[entry.name] {
                // Both prefixes: portico.io/ wins.
                if isPortico {
                    shadowed.append(existing.key)
                    values[entry.name] = (key, value)
                } else {
                    shadowed.append(key)
                }
            } else {
                values[entry.name] = (key, value)
            }
        }
        for key in shadowed {
            let name = key.dropFirst(AnnotationCatalog.nginxPrefix.utf8.count)
            uses.append(AnnotationUse(object: ref, key: key, status: .shadowed, message: "\(AnnotationCatalog.porticoPrefix)\(name) is set too and wins"))
        }
        for (name, (key, value)) in values {
            guard let entry = AnnotationCatalog.entry(name) else { continue }
            switch entry.support {
            case .supported: uses.append(AnnotationUse(object: ref, key: key, status: .supported, message: entry.note))
            case .differs: uses.append(AnnotationUse(object: ref, key: key, status: .differs, message: entry.note))
            case .unsupported:
                if let inert = entry.inertValue, Substring(value).trimmingWhitespace().lowercased() == inert.lowercased() {
                    uses.append(AnnotationUse(object: ref, key: key, status: .supported, message: "\"\(value)\" asks for nothing to be done"))
                    continue
                }
                uses.append(AnnotationUse(object: ref, key: key, status: .unsupported, message: entry.note))
                rejections.append(
                    Rejection(
                        object: ref, reason: .unsupportedAnnotation, effect: entry.rejectsIngress ? .ingressRejected : .defaultApplied,
                        field: Self.field(key), message: entry.note))
                if entry.rejectsIngress { rejectsIngress = true }
            }
        }
    }

    /// The value of a catalogued annotation, under whichever prefix won.
    func value(_ name: String) -> (key: String, value: String)? { values[name] }

    /// A value that could not be read: reported, and the use marked invalid. `effect` says what was done instead.
    mutating func invalid(_ key: String, _ message: String, effect: Rejection.Effect = .defaultApplied) {
        report(key, .invalid, reason: .invalidAnnotation, effect: effect, message)
    }

    /// One problem with the annotation `key`: its use takes `status` and the message, and a rejection says it.
    mutating func report(_ key: String, _ status: AnnotationUse.Status, reason: Rejection.Reason, effect: Rejection.Effect, _ message: String) {
        if let index = uses.firstIndex(where: { $0.key == key }) {
            uses[index].status = status
            uses[index].message = message
        }
        appendRejection(Rejection(object: ref, reason: reason, effect: effect, field: Self.field(key), message: message))
    }

    mutating func appendRejection(_ rejection: Rejection) { rejections.append(rejection) }

    static func field(_ key: String) -> String { "metadata.annotations[\(key)]" }
}
