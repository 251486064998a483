import KubeTypes
import Manifests
import SnapshotProtocol
import Synchronization
import Translator

/// The source's latest rejections, load errors and Ingress counts, for `Dump`.
public final class DiagnosticsBoard: DiagnosticsProvider {
    private let current = Mutex(Portico_V1_Diagnostics())

    public init() {}

    public var diagnostics: Portico_V1_Diagnostics { current.withLock { $0 } }

    public func update(translation: Translation, errors: [ManifestError], locations: [ObjectRef: ManifestLocation]) {
        var diagnostics = Portico_V1_Diagnostics()
        diagnostics.rejections = translation.rejections.map { rejection in
            var status = Portico_V1_RejectionStatus()
            status.object = rejection.object.description
            status.reason = rejection.reason.rawValue
            status.effect = rejection.effect.rawValue
            status.field = rejection.field ?? ""
            status.message = rejection.message
            status.location = locations[rejection.object]?.description ?? ""
            return status
        }
        diagnostics.annotations = translation.annotations.map { use in
            var status = Portico_V1_AnnotationStatus()
            status.object = use.object.description
            status.key = use.key
            status.status = use.status.rawValue
            status.message = use.message
            return status
        }
        diagnostics.sourceErrors = errors.map(\.description)
        diagnostics.acceptedIngresses = UInt32(translation.acceptedIngresses.count)
        diagnostics.rejectedIngresses = UInt32(translation.rejectedIngresses.count)
        diagnostics.ignoredIngresses = UInt32(translation.ignoredIngresses.count)
        current.withLock { $0 = diagnostics }
    }
}
