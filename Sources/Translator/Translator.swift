import KubeTypes
import RouteModel

/// The output of one translation.
public struct Translation: Sendable {
    public var table: RouteTable
    /// Sorted.
    public var rejections: [Rejection]
    /// Our Ingresses that contribute to the table (maybe partially), sorted: these get status.
    public var acceptedIngresses: [ObjectRef]
    /// Our Ingresses rejected as a whole, sorted.
    public var rejectedIngresses: [ObjectRef]
    /// Ingresses of other classes, left alone, sorted.
    public var ignoredIngresses: [ObjectRef]
    /// The Ingress whose `defaultBackend` answers for hosts without one of their own; nil for none.
    public var globalDefaultOwner: ObjectRef?
    /// Each `nginx.ingress.kubernetes.io/` and `portico.io/` annotation of our Ingresses and what was
    /// made of it, sorted.
    public var annotations: [AnnotationUse] = []
}

/// Kubernetes objects → route table. Pure: the same objects in any order give an equal table with
/// an equal hash, and nothing here reads files, sockets or clocks.
///
/// Rules (see DESIGN.md "Route semantics"):
/// - Ingresses are processed oldest first (`creationTimestamp`, then namespace/name; objects without
///   a timestamp count as newest), so on any conflict the oldest wins and the loser is reported.
/// - Every virtual host takes the rules of all Ingresses naming it. Within a host, an `Exact` route
///   equal to the path wins, else the longest prefix route, else the host's default backend.
/// - An Ingress's `defaultBackend` answers unmatched paths on the hosts of its rules. The oldest
///   Ingress with a `defaultBackend` also answers for hosts with no default of their own, and for
///   requests matching no host.
/// - A host in `spec.tls` gets the Secret's certificate (the default certificate when the Secret is
///   missing or invalid) and its plain-HTTP requests are redirected with 308 unless
///   `portico.io/ssl-redirect: "false"`. An exact host covered by a TLS wildcard inherits it.
public enum Translator {
    public static func translate(_ objects: KubeObjects, configuration: TranslatorConfiguration = .init()) -> Translation {
        var builder = TableBuilder(objects: objects, configuration: configuration)
        return builder.build()
    }

    /// Oldest first; timestamp-less objects last; then by namespace and name.
    static func olderFirst(_ lhs: Ingress, _ rhs: Ingress) -> Bool {
        switch (lhs.metadata.creationTimestamp, rhs.metadata.creationTimestamp) {
        case (.some(let left), .some(let right)) where left != right: return left < right
        case (.some, nil): return true
        case (nil, .some): return false
        default: return (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
        }
    }
}

/// One translation's working state. Used once.
private struct TableBuilder {
    let objects: KubeObjects
    let configuration: TranslatorConfiguration
    var rejections: [Rejection] = []

    private struct RouteEntry {
        let key: PathKey
        let match: PathMatch
        let backend: BackendReference
        let source: RouteSource
        let owner: ObjectRef
        let sslRedirect: Bool
        let options: RouteOptions
        let loadBalancing: LoadBalancingChoice?
    }

    private struct DefaultEntry {
        let backend: BackendReference
        let source: RouteSource
        let owner: ObjectRef
        let sslRedirect: Bool
        let options: RouteOptions
        let loadBalancing: LoadBalancingChoice?
    }

    private struct HostEntry {
        /// In insertion order. Most hosts have a handful of routes, where a linear search beats
        /// allocating and hashing into a dictionary per host; `positions` appears past `indexThreshold`.
        var routes: [RouteEntry] = []
        var positions: [PathKey: Int]?
        static let indexThreshold = 8

        func route(for key: PathKey) -> RouteEntry? {
            if let positions { return positions[key].map { routes[$0] } }
            return routes.first { $0.key == key }
        }

        mutating func add(_ route: RouteEntry) {
            routes.append(route)
            if positions != nil {
                positions?[route.key] = routes.count - 1
            } else if routes.count > Self.indexThreshold {
                positions = Dictionary(uniqueKeysWithValues: routes.enumerated().map { ($1.key, $0) })
            }
        }
        var defaultBackend: DefaultEntry?
    }

    private struct TLSEntry {
        /// `namespace/name`, or nil for the default certificate.
        let secret: String?
        let owner: ObjectRef
        let hsts: HSTSPolicy?
    }

    /// Virtual hosts in first-seen order, with an index by pattern: iterating a dictionary of entries
    /// copies each one.
    private var hostPatterns: [HostPattern] = []
    private var hostEntries: [HostEntry] = []
    private var hostIndex: [HostPattern: Int] = [:]

    private mutating func entryIndex(for pattern: HostPattern) -> Int {
        if let index = hostIndex[pattern] { return index }
        hostIndex[pattern] = hostEntries.count
        hostPatterns.append(pattern)
        hostEntries.append(HostEntry())
        return hostEntries.count - 1
    }
    private var tls: [HostPattern: TLSEntry] = [:]
    private var globalDefault: DefaultEntry?

    init(objects: KubeObjects, configuration: TranslatorConfiguration) {
        self.objects = objects
        self.configuration = configuration
    }

    mutating func build() -> Translation {
        let selector = IngressClassSelector(classes: objects.ingressClasses, configuration: configuration)
        var ours: [Int] = []
        var ignored: [ObjectRef] = []
        objects.ingresses.withUnsafeBufferPointer { ingresses in
            for index in ingresses.indices {
                if selector.isOurs(ingresses[index]) { ours.append(index) } else { ignored.append(ingresses[index].ref) }
            }
        }
        // Sorted by index: moving whole Ingress values while sorting costs more than the comparisons.
        objects.ingresses.withUnsafeBufferPointer { ingresses in
            ours.sort { Translator.olderFirst(ingresses[$0], ingresses[$1]) }
        }

        var validator = IngressValidator()
        var validated: [ValidatedIngress] = []
        var rejected: [ObjectRef] = []
        validated.reserveCapacity(ours.count)
        objects.ingresses.withUnsafeBufferPointer { ingresses in
            for index in ours {
                if let valid = validator.validate(ingresses[index]) { validated.append(valid) } else { rejected.append(ingresses[index].ref) }
            }
        }
        rejections.append(contentsOf: validator.rejections)

        let secretUsers = bindTLSHosts(validated)
        for ingress in validated { addRoutes(of: ingress) }
        let certificates = loadCertificates(secretUsers)
        let (virtualHosts, clusters) = assemble(certificates: certificates)

        return Translation(
            table: RouteTable(virtualHosts: virtualHosts, clusters: clusters, certificates: Array(certificates.values)),
            rejections: rejections.sorted(),
            acceptedIngresses: validated.map(\.ref).sorted(),
            rejectedIngresses: rejected.sorted(),
            ignoredIngresses: ignored.sorted(),
            globalDefaultOwner: globalDefault?.owner,
            annotations: validator.uses.sorted())
    }

    /// Binds each TLS host to a Secret, oldest Ingress first. Returns who uses which Secret.
    private mutating func bindTLSHosts(_ ingresses: [ValidatedIngress]) -> [String: [(ObjectRef, String)]] {
        var users: [String: [(ObjectRef, String)]] = [:]
        for ingress in ingresses {
            for entry in ingress.tls {
                let secret = entry.secretName.map { "\(ingress.ref.namespace)/\($0)" }
                var used = false
                for host in entry.hosts {
                    if let existing = tls[host] {
                        if existing.secret != secret {
                            let current = existing.secret.map { "Secret \($0)" } ?? "the default certificate"
                            let by = existing.owner == ingress.ref ? "an earlier entry of this Ingress" : "older \(existing.owner)"
                            rejections.append(
                                Rejection(
                                    object: ingress.ref, reason: .tlsHostConflict, effect: .partiallyIgnored, field: entry.field,
                                    message: "host \(host) already uses \(current) (set by \(by)); this entry is ignored for it"))
                        }
                        continue
                    }
                    tls[host] = TLSEntry(secret: secret, owner: ingress.ref, hsts: ingress.hsts)
                    _ = entryIndex(for: host)
                    used = true
                }
                if used, let secret { users[secret, default: []].append((ingress.ref, entry.field)) }
            }
        }
        return users
    }

    private mutating func addRoutes(of ingress: ValidatedIngress) {
        for rule in ingress.rules {
            // Mutated in place: copying the entry out would copy its route dictionary.
            let index = entryIndex(for: rule.host)
            Self.add(rule, of: ingress, to: &hostEntries[index], rejections: &rejections)
        }
        guard let backend = ingress.defaultBackend else { return }
        if let existing = globalDefault {
            let effect = ingress.rules.isEmpty ? "this one is not used" : "this one applies only to this Ingress's hosts"
            rejections.append(
                Rejection(
                    object: ingress.ref, reason: .defaultBackendConflict, effect: .partiallyIgnored, field: "spec.defaultBackend",
                    message: "the catch-all default backend is already set by older \(existing.owner); \(effect)"))
        } else {
            globalDefault = DefaultEntry(
                backend: backend, source: ingress.source, owner: ingress.ref, sslRedirect: ingress.sslRedirect, options: ingress.options,
                loadBalancing: ingress.loadBalancing)
            _ = entryIndex(for: .any)
        }
    }

    private static func add(_ rule: ValidatedIngress.Rule, of ingress: ValidatedIngress, to entry: inout HostEntry, rejections: inout [Rejection]) {
        for path in rule.paths {
            if let existing = entry.route(for: path.key) {
                let by = existing.owner == ingress.ref ? "an earlier path of this Ingress" : "older \(existing.owner)"
                rejections.append(
                    Rejection(
                        object: ingress.ref, reason: .pathConflict, effect: .partiallyIgnored, field: path.field.description,
                        message: "\(path.match.kind.rawValue) \(path.match.path) on host \(rule.host) is already routed by \(by); this path is ignored"))
                continue
            }
            entry.add(RouteEntry(
                key: path.key, match: path.match, backend: path.backend, source: ingress.source, owner: ingress.ref, sslRedirect: ingress.sslRedirect, options: ingress.options,
                loadBalancing: ingress.loadBalancing))
        }
        guard let backend = ingress.defaultBackend else { return }
        if let existing = entry.defaultBackend {
            if existing.owner != ingress.ref {
                rejections.append(
                    Rejection(
                        object: ingress.ref, reason: .defaultBackendConflict, effect: .partiallyIgnored, field: "spec.defaultBackend",
                        message: "host \(rule.host) already has the defaultBackend of older \(existing.owner); this one is not used there"))
            }
        } else {
            entry.defaultBackend = DefaultEntry(
                backend: backend, source: ingress.source, owner: ingress.ref, sslRedirect: ingress.sslRedirect, options: ingress.options,
                loadBalancing: ingress.loadBalancing)
        }
    }

    /// Loads each Secret named by a TLS host once; problems are reported to every Ingress naming it.
    private mutating func loadCertificates(_ users: [String: [(ObjectRef, String)]]) -> [String: TLSCertificate] {
        guard !users.isEmpty else { return [:] }
        var secrets: [String: Secret] = [:]
        for secret in objects.secrets { secrets["\(secret.namespace)/\(secret.name)"] = secret }
        var certificates: [String: TLSCertificate] = [:]
        for (name, referrers) in users {
            let failure: (Rejection.Reason, String)
            if let secret = secrets[name] {
                switch CertificateLoader.load(secret) {
                case .success(let certificate):
                    certificates[name] = certificate
                    continue
                case .failure(let error):
                    failure = (.tlsSecretInvalid, error.message)
                }
            } else {
                failure = (.tlsSecretNotFound, "Secret \(name) does not exist")
            }
            var reported = Set<ObjectRef>()
            for (ingress, field) in referrers where reported.insert(ingress).inserted {
                rejections.append(
                    Rejection(
                        object: ingress, reason: failure.0, effect: .defaultCertificate, field: field + ".secretName",
                        message: failure.1 + "; its hosts are served with the default certificate"))
            }
        }
        return certificates
    }

    private mutating func assemble(certificates: [String: TLSCertificate]) -> ([VirtualHost], [Cluster]) {
        var resolver = BackendResolver(services: objects.services, endpointSlices: objects.endpointSlices)
        var reported = Set<String>()
        var policies: [String: (policy: LoadBalancingPolicy, owner: ObjectRef)] = [:]

        func use(_ backend: BackendReference, owner: ObjectRef, loadBalancing choice: LoadBalancingChoice? = nil) -> String {
            let resolved = resolver.resolve(backend)
            if let choice {
                let loadBalancing = choice.policy
                let name = resolver.clusterName(resolved)
                if let existing = policies[name] {
                    if existing.policy != loadBalancing, reported.insert("lb|\(owner)|\(name)").inserted {
                        rejections.append(
                            Rejection(
                                object: owner, reason: .invalidAnnotation, effect: .partiallyIgnored,
                                field: IngressAnnotations.field(choice.key),
                                message: "\(name) already balances \(existing.policy.rawValue) for older \(existing.owner); this Ingress's choice is not used for it"))
                    }
                } else {
                    policies[name] = (loadBalancing, owner)
                }
            }
            if let problem = resolver.problem(resolved), reported.insert("\(owner)|\(resolver.clusterName(resolved))").inserted {
                rejections.append(
                    Rejection(object: owner, reason: problem.reason, effect: .backendUnavailable, field: backend.field.backend, message: problem.message))
            }
            return resolver.clusterName(resolved)
        }

        var virtualHosts: [VirtualHost] = []
        virtualHosts.reserveCapacity(hostEntries.count)
        for index in hostEntries.indices {
            let pattern = hostPatterns[index]
            let entry = hostEntries[index]
            var binding: TLSEntry?
            if !tls.isEmpty {
                binding = tls[pattern]
                if binding == nil, case .exact(let name) = pattern, let dot = name.utf8.firstIndex(of: UInt8(ascii: ".")) {
                    binding = tls[.wildcard(suffix: String(name[name.utf8.index(after: dot)...]))]
                }
            }
            let tlsBinding = binding.map { TLSBinding(certificate: $0.secret.flatMap { certificates[$0] == nil ? nil : $0 }, hsts: $0.hsts) }
            let hasTLS = tlsBinding != nil
            let routes = entry.routes.map { route in
                Route(
                    match: route.match,
                    backend: Backend(
                        cluster: use(route.backend, owner: route.owner, loadBalancing: route.loadBalancing), source: route.source,
                        httpsRedirect: hasTLS && route.sslRedirect, options: route.options))
            }
            let fallback = entry.defaultBackend ?? globalDefault
            let defaultBackend = fallback.map {
                Backend(
                    cluster: use($0.backend, owner: $0.owner, loadBalancing: $0.loadBalancing), source: $0.source,
                    httpsRedirect: hasTLS && $0.sslRedirect, options: $0.options)
            }
            virtualHosts.append(VirtualHost(hostname: pattern, routes: routes, defaultBackend: defaultBackend, tls: tlsBinding))
        }
        rejections.append(contentsOf: resolver.sliceRejections)
        var clusters = resolver.clusters
        if !policies.isEmpty {
            for index in clusters.indices {
                if let policy = policies[clusters[index].name]?.policy { clusters[index].loadBalancing = policy }
            }
        }
        return (virtualHosts, clusters)
    }
}
