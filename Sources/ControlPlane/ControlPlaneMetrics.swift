import SnapshotProtocol
import Translator

private enum AnnotationStatusNames {
    static let all = AnnotationUse.Status.allCases.map(\.rawValue)
}

/// The control plane's `/metrics`, in Prometheus text format, read from its parts at scrape time.
public struct ControlPlaneMetrics: Sendable {
    public struct Sample: Sendable {
        public var version: UInt64 = 0
        public var rebuilds = 0
        public var rebuildSeconds: Double = 0
        public var subscribers: [Portico_V1_SubscriberKind: Int] = [:]
        public var nacks = 0
        /// Kubernetes source only.
        public var watches: Int?
        public var relists: Int?
        public var watchErrors: Int?
        public var leader: Bool?
        public var incrementalRebuilds: Int?
        public var incrementalMismatches: Int?
        /// Background full translations that verified incremental rebuilds (or were dropped for a
        /// newer change), and their time.
        public var verifications: Int?
        public var verificationSeconds: Double?
        /// The latest full translation's rejections, by reason (annotation warnings included).
        public var rejections: [String: Int] = [:]
        /// Our Ingresses' catalogued annotations, by status (supported, unsupported, invalid…).
        public var annotations: [String: Int] = [:]

        public init() {}
    }

    public static func render(_ sample: Sample) -> String {
        var text = ""
        func family(_ name: String, _ type: String, _ help: String, _ lines: [String]) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for line in lines { text += line + "\n" }
        }
        family("portico_control_plane_snapshot_version", "gauge", "Newest published snapshot version.", ["portico_control_plane_snapshot_version \(sample.version)"])
        family("portico_control_plane_rebuilds_total", "counter", "Translations of the source.", ["portico_control_plane_rebuilds_total \(sample.rebuilds)"])
        family(
            "portico_control_plane_rebuild_seconds_total", "counter", "Time spent translating and publishing.",
            ["portico_control_plane_rebuild_seconds_total \(sample.rebuildSeconds)"])
        let kinds: [(Portico_V1_SubscriberKind, String)] = [(.nodeAgent, "node-agent"), (.worker, "worker"), (.debugger, "debugger")]
        family(
            "portico_control_plane_subscribers", "gauge", "Connected subscribers, by kind.",
            kinds.map { "portico_control_plane_subscribers{kind=\"\($0.1)\"} \(sample.subscribers[$0.0] ?? 0)" })
        family(
            "portico_control_plane_rejections", "gauge",
            "Problems the latest translation reported, by reason (UnsupportedAnnotation, UnknownAnnotation, InvalidAnnotation, PathConflict…).",
            sample.rejections.sorted { $0.key < $1.key }.map { "portico_control_plane_rejections{reason=\"\($0.key)\"} \($0.value)" })
        family(
            "portico_control_plane_ingress_annotations", "gauge",
            "nginx.ingress.kubernetes.io/ and portico.io/ annotations on our Ingresses, by how Portico takes them.",
            AnnotationStatusNames.all.map { "portico_control_plane_ingress_annotations{status=\"\($0)\"} \(sample.annotations[$0] ?? 0)" })
        family("portico_control_plane_nacks_total", "counter", "Snapshots refused by subscribers.", ["portico_control_plane_nacks_total \(sample.nacks)"])
        if let watches = sample.watches {
            family("portico_control_plane_watches_total", "counter", "Kubernetes watches opened (restarts included).", ["portico_control_plane_watches_total \(watches)"])
        }
        if let relists = sample.relists {
            family("portico_control_plane_relists_total", "counter", "Relists forced by 410 Gone.", ["portico_control_plane_relists_total \(relists)"])
        }
        if let errors = sample.watchErrors {
            family("portico_control_plane_watch_errors_total", "counter", "Failed lists and watches.", ["portico_control_plane_watch_errors_total \(errors)"])
        }
        if let incremental = sample.incrementalRebuilds {
            family(
                "portico_control_plane_incremental_rebuilds_total", "counter",
                "Rebuilds that translated only the changed Ingresses' hosts and Services' endpoints.",
                ["portico_control_plane_incremental_rebuilds_total \(incremental)"])
        }
        if let mismatches = sample.incrementalMismatches {
            family(
                "portico_control_plane_incremental_mismatches_total", "counter",
                "Incremental tables a full translation found different (a bug; the full table was published).",
                ["portico_control_plane_incremental_mismatches_total \(mismatches)"])
        }
        if let verifications = sample.verifications {
            family(
                "portico_control_plane_verifications_total", "counter",
                "Full translations run beside the rebuild loop to verify incremental rebuilds.",
                ["portico_control_plane_verifications_total \(verifications)"])
        }
        if let seconds = sample.verificationSeconds {
            family(
                "portico_control_plane_verification_seconds_total", "counter", "Time those verifications took.",
                ["portico_control_plane_verification_seconds_total \(seconds)"])
        }
        if let leader = sample.leader {
            family("portico_control_plane_leader", "gauge", "1 while this replica holds the Lease.", ["portico_control_plane_leader \(leader ? 1 : 0)"])
        }
        return text
    }
}
