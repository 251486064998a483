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
    /// `onEveryCore`: the parts of a large translation that can run in parallel (validation) do, on
    /// Dispatch's threads. Off for a translation that must stay on its own thread: one at idle
    /// priority (a verification) would otherwise compete at normal priority with what it yields to.
    public static func translate(
        _ objects: KubeObjects, configuration: TranslatorConfiguration = .init(), onEveryCore: Bool = true
    ) -> Translation {
        var builder = TableBuilder(objects: objects, configuration: configuration, onEveryCore: onEveryCore)
        return builder.build()
    }

    /// Where an Ingress goes in processing order: oldest first; timestamp-less objects last; then
    /// by namespace and name. Taken once per Ingress, so that sorting compares these few fields
    /// instead of copying two whole Ingresses (and retaining each of their parts) per comparison.
    struct Age: Comparable {
        let creationTimestamp: KubeTime?
        let namespace: String
        let name: String

        init(_ ingress: Ingress) {
            creationTimestamp = ingress.metadata.creationTimestamp
            namespace = ingress.namespace
            name = ingress.name
        }

        static func < (lhs: Age, rhs: Age) -> Bool {
            switch (lhs.creationTimestamp, rhs.creationTimestamp) {
            case (.some(let left), .some(let right)) where left != right: return left < right
            case (.some, nil): return true
            case (nil, .some): return false
            default: return (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
            }
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
        /// As written, for hosts whose paths are regular expressions.
        let rawPath: String
        let backend: BackendReference
        let source: RouteSource
        let owner: ObjectRef
        let sslRedirect: Bool
        let forceSSLRedirect: Bool
        let options: RouteOptions
        let loadBalancing: LoadBalancingChoice?
        /// The Ingress asked for regular expressions itself (its paths were checked then).
        let ownRegex: Bool
    }

    private struct DefaultEntry {
        let backend: BackendReference
        let source: RouteSource
        let owner: ObjectRef
        let sslRedirect: Bool
        let forceSSLRedirect: Bool
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
    /// Hosts of an Ingress with `use-regex` or a `rewrite-target`, and the first such Ingress.
    private var regexHosts: [HostPattern: ObjectRef] = [:]
    /// `server-alias` and `from-to-www-redirect` asks, oldest Ingress first.
    private var aliasRequests: [(alias: HostPattern, of: HostPattern, owner: ObjectRef, key: String)] = []
    private var wwwRequests: [(host: String, owner: ObjectRef)] = []
    /// `default-backend` and `custom-http-errors` of the Ingresses that have them.
    private var errorPages: [ObjectRef: ErrorPageSettings] = [:]
    /// Ingresses whose class asks for ingress-nginx's path behaviour (`IngressClassSelector.nginxPathsAnnotation`).
    private var nginxPathIngresses = Set<ObjectRef>()

    let onEveryCore: Bool

    init(objects: KubeObjects, configuration: TranslatorConfiguration, onEveryCore: Bool) {
        self.objects = objects
        self.configuration = configuration
        self.onEveryCore = onEveryCore
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
        // Indices sorted by age keys: moving whole Ingress values while sorting costs more than the
        // comparisons, and comparing them copied both each time.
        var ages = objects.ingresses.withUnsafeBufferPointer { ingresses in ours.map { (age: Translator.Age(ingresses[$0]), index: $0) } }
        ages.sort { $0.age < $1.age }
        ours = ages.map(\.index)

        var validated: [ValidatedIngress] = []
        var rejected: [ObjectRef] = []
        var uses: [AnnotationUse] = []
        validated.reserveCapacity(ours.count)
        for part in Self.validate(ours, of: objects.ingresses, onEveryCore: onEveryCore) {
            for (index, valid) in zip(part.indices, part.validated) {
                if let valid {
                    validated.append(valid)
                    if selector.usesIngressNginxPaths(objects.ingresses[index]) { nginxPathIngresses.insert(valid.ref) }
                } else {
                    rejected.append(objects.ingresses[index].ref)
                }
            }
            rejections.append(contentsOf: part.validator.rejections)
            uses.append(contentsOf: part.validator.uses)
        }
        resolveUpstreamSecrets(&validated)
        for ingress in validated where !ingress.errorPages.isEmpty { errorPages[ingress.ref] = ingress.errorPages }

        // Room for every host at once: grown step by step, 100k hosts' entries were copied a dozen
        // times, into memory fresh from the kernel each time.
        let rules = validated.reduce(1) { $0 + $1.rules.count }
        hostPatterns.reserveCapacity(rules)
        hostEntries.reserveCapacity(rules)
        hostIndex.reserveCapacity(rules)
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
            annotations: uses.sorted())
    }

    /// A run of `ours` (indices into the Ingresses), each validated (nil: rejected), and the
    /// validator that saw that run.
    private struct ValidatedPart: Sendable {
        var indices: ArraySlice<Int>
        var validated: [ValidatedIngress?]
        var validator: IngressValidator
    }

    /// The Ingresses `ours` validated in order, in runs on every core at once (validating is a
    /// pure function of each Ingress: at 100k it was a sixth of the first translation, on one core
    /// while the other idled). Each run has its own validator; the runs in order give what one
    /// validator over all of them gives, rejections and annotation uses included.
    private static func validate(_ ours: [Int], of ingresses: [Ingress], onEveryCore: Bool) -> [ValidatedPart] {
        let parts = onEveryCore ? PartedWork.parts(for: ours.count) : 1
        return PartedWork.map(parts: parts) { part in
            let indices = ours[PartedWork.range(part, of: parts, count: ours.count)]
            var validator = IngressValidator()
            let validated = ingresses.withUnsafeBufferPointer { ingresses in indices.map { validator.validate(ingresses[$0]) } }
            return ValidatedPart(indices: indices, validated: validated, validator: validator)
        }
    }

    /// Reads each `proxy-ssl-secret` into its Ingress's settings; a missing or incomplete one is reported.
    private mutating func resolveUpstreamSecrets(_ validated: inout [ValidatedIngress]) {
        guard validated.contains(where: { $0.upstreamProtocol.secret != nil }) else { return }
        var secrets: [String: Secret] = [:]
        for secret in objects.secrets { secrets["\(secret.namespace)/\(secret.name)"] = secret }
        for index in validated.indices where validated[index].upstreamProtocol.secret != nil {
            guard let problem = validated[index].upstreamProtocol.resolve(secrets: secrets) else { continue }
            rejections.append(
                Rejection(
                    object: validated[index].ref, reason: .tlsSecretNotFound, effect: .defaultApplied,
                    field: validated[index].upstreamProtocol.secretKey.map(IngressAnnotations.field), message: problem))
        }
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
            if ingress.usesRegex, regexHosts[rule.host] == nil { regexHosts[rule.host] = ingress.ref }
            for alias in ingress.aliases {
                aliasRequests.append((alias, rule.host, ingress.ref, ingress.aliasKey ?? ""))
            }
            if ingress.fromToWWW, case .exact(let name) = rule.host { wwwRequests.append((name, ingress.ref)) }
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
                backend: backend, source: ingress.source, owner: ingress.ref, sslRedirect: ingress.sslRedirect,
                forceSSLRedirect: ingress.forceSSLRedirect, options: ingress.defaultBackendOptions(backend), loadBalancing: ingress.loadBalancing)
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
            var options = ingress.options
            options.upstreamTLS = ingress.upstreamProtocol.tls(
                service: path.backend.service, namespace: path.backend.namespace, upstreamHost: options.upstreamHost)
            if let target = ingress.rewriteTarget, target != path.rawPath {
                options.rewriteTarget = target
            } else {
                // ingress-nginx sends X-Forwarded-Prefix only with a rewrite.
                options.forwardedPrefix = nil
            }
            entry.add(RouteEntry(
                key: path.key, match: path.match, rawPath: path.rawPath, backend: path.backend, source: ingress.source, owner: ingress.ref,
                sslRedirect: ingress.sslRedirect, forceSSLRedirect: ingress.forceSSLRedirect, options: options,
                loadBalancing: ingress.loadBalancing, ownRegex: ingress.usesRegex))
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
                backend: backend, source: ingress.source, owner: ingress.ref, sslRedirect: ingress.sslRedirect,
                forceSSLRedirect: ingress.forceSSLRedirect, options: ingress.defaultBackendOptions(backend), loadBalancing: ingress.loadBalancing)
        }
    }

    /// nginx's answer to a request for a location's path without its trailing slash: a 301 to the
    /// path with it. ingress-nginx serves `Prefix /foo` also as `= /foo`, so only a path that ends in
    /// `/` has it, and only when no route of the host is exactly the bare path. The redirect is an
    /// `Exact` route for the bare path.
    private static func slashRedirect(for match: PathMatch, in entry: HostEntry) -> ((Backend) -> Route)? {
        guard match.path.count > 1, match.path.hasSuffix("/") else { return nil }
        let bare = String(match.path.dropLast())
        if entry.route(for: PathKey(PathMatch(kind: .exact, path: bare))) != nil { return nil }
        if let prefix = entry.route(for: PathKey(PathMatch(kind: .prefix, path: bare))), prefix.match.path == bare { return nil }
        // A Prefix `/foo/` and an Exact `/foo/` of one host would both ask for it: the first one does.
        if match.kind != .exact, entry.route(for: PathKey(PathMatch(kind: .exact, path: match.path))) != nil { return nil }
        return { backend in
            var backend = backend
            backend.options = RouteOptions(redirect: RedirectRule(status: 301, location: "$scheme://$http_host$uri/$is_args$args"))
            return Route(match: PathMatch(kind: .exact, path: bare), backend: backend)
        }
    }

    /// `server-alias`: each alias serves a copy of its host, unless some Ingress defines the alias as a
    /// host (ingress-nginx skips those too). `from-to-www-redirect`: `www.` + host (or the host without
    /// `www.`) answers 308 to the host, with the host's certificate when it covers the name.
    private mutating func addAliases(to virtualHosts: inout [VirtualHost], certificates: [String: TLSCertificate]) {
        guard !aliasRequests.isEmpty || !wwwRequests.isEmpty else { return }
        var byPattern: [HostPattern: Int] = [:]
        for index in virtualHosts.indices { byPattern[virtualHosts[index].hostname] = index }
        var added: [VirtualHost] = []
        var taken = Set(byPattern.keys)
        for request in aliasRequests {
            guard let source = byPattern[request.of] else { continue }
            guard taken.insert(request.alias).inserted else {
                if byPattern[request.alias] != nil {
                    rejections.append(
                        Rejection(
                            object: request.owner, reason: .invalidAnnotation, effect: .partiallyIgnored, field: "metadata.annotations[\(request.key)]",
                            message: "alias \(request.alias) is a host of its own; the alias is not used"))
                }
                continue
            }
            var copy = virtualHosts[source]
            copy.hostname = request.alias
            added.append(copy)
        }
        for request in wwwRequests {
            let from = request.host.hasPrefix("www.") ? String(request.host.dropFirst(4)) : "www." + request.host
            guard let fromPattern = try? HostPattern.parse(from), taken.insert(fromPattern).inserted,
                let source = byPattern[.exact(request.host)]
            else { continue }
            var tls: TLSBinding?
            if let binding = virtualHosts[source].tls {
                let covers = binding.certificate.flatMap { certificates[$0] }?.metadata.dnsNames.contains { name in
                    name.lowercased() == from || (name.hasPrefix("*.") && from.split(separator: ".", maxSplits: 1).last.map(String.init) == String(name.dropFirst(2)).lowercased())
                } ?? false
                tls = covers ? TLSBinding(certificate: binding.certificate) : nil
            }
            added.append(VirtualHost(hostname: fromPattern, tls: tls, redirectToHost: request.host))
        }
        virtualHosts.append(contentsOf: added)
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

    /// The virtual hosts and the clusters their routes use. Hosts are assembled in runs on every
    /// core for a large table (at 100k hosts this was a sixth of the first translation, on one core
    /// while the other idled), each run with its own resolver over one shared index. What needs a
    /// run's place among the others (rejections reported once, the oldest load-balancing choice per
    /// cluster) is recorded by each run and settled here, in host order: the runs together give what
    /// one pass over every host gives.
    private mutating func assemble(certificates: [String: TLSCertificate]) -> ([VirtualHost], [Cluster]) {
        let index = BackendResolver.Index(services: objects.services, endpointSlices: objects.endpointSlices)
        let count = hostEntries.count
        let parts = onEveryCore ? PartedWork.parts(for: count) : 1
        let builder = self
        let assembled = PartedWork.map(parts: parts) { part in
            var assembler = HostAssembler(
                builder: builder, certificates: certificates,
                resolver: BackendResolver(index: index, expectedBackends: index.serviceCount / parts + 1))
            let range = PartedWork.range(part, of: parts, count: count)
            assembler.virtualHosts.reserveCapacity(range.count)
            for host in range { assembler.assemble(host) }
            return AssembledPart(
                virtualHosts: assembler.virtualHosts, resolutions: assembler.resolver.resolutions,
                sliceRejections: assembler.resolver.sliceRejections, events: assembler.events)
        }

        var virtualHosts: [VirtualHost] = []
        virtualHosts.reserveCapacity(count)
        var resolutions: [BackendResolver.Resolution] = []
        var sliceRejections: [Rejection] = []
        var reported = Set<String>()
        var reportedSlices = Set<ObjectRef>()
        var policies: [String: (policy: LoadBalancingPolicy, owner: ObjectRef)] = [:]
        for part in assembled {
            virtualHosts += part.virtualHosts
            resolutions += part.resolutions
            for rejection in part.sliceRejections where reportedSlices.insert(rejection.object).inserted { sliceRejections.append(rejection) }
            for event in part.events {
                switch event {
                case .rejection(let key, let rejection):
                    if key.map({ reported.insert($0).inserted }) ?? true { rejections.append(rejection) }
                case .loadBalancing(let name, let policy, let owner, let annotation):
                    guard let existing = policies[name] else {
                        policies[name] = (policy, owner)
                        continue
                    }
                    if existing.policy != policy, reported.insert("lb|\(owner)|\(name)").inserted {
                        rejections.append(
                            Rejection(
                                object: owner, reason: .invalidAnnotation, effect: .partiallyIgnored, field: IngressAnnotations.field(annotation),
                                message: "\(name) already balances \(existing.policy.rawValue) for older \(existing.owner); this Ingress's choice is not used for it"))
                    }
                }
            }
        }
        addAliases(to: &virtualHosts, certificates: certificates)
        rejections.append(contentsOf: sliceRejections)
        var clusters = BackendResolver.clusters(resolutions)
        if !policies.isEmpty {
            for index in clusters.indices {
                if let policy = policies[clusters[index].name]?.policy { clusters[index].loadBalancing = policy }
            }
        }
        return (virtualHosts, clusters)
    }

    /// A run of hosts assembled, the clusters it resolved (distinct within the run) and what it found
    /// that `assemble` settles in host order.
    private struct AssembledPart: Sendable {
        var virtualHosts: [VirtualHost]
        var resolutions: [BackendResolver.Resolution]
        var sliceRejections: [Rejection]
        var events: [AssemblyEvent]
    }

    private enum AssemblyEvent: Sendable {
        /// Reported once per `key` over the whole translation; without a key, always.
        case rejection(key: String?, Rejection)
        /// A route of `owner` asked cluster `name` to balance with `policy` (annotation `annotation`):
        /// the first choice of each cluster, in host order, holds.
        case loadBalancing(name: String, policy: LoadBalancingPolicy, owner: ObjectRef, annotation: String)
    }

    /// Assembles hosts of the builder's entries, by index, in order.
    private struct HostAssembler {
        let builder: TableBuilder
        let certificates: [String: TLSCertificate]
        var resolver: BackendResolver
        var virtualHosts: [VirtualHost] = []
        var events: [AssemblyEvent] = []
        /// Keys this run reported already (the whole translation's check is in `assemble`).
        private var reported = Set<String>()
        /// Each owner's error-page rule.
        private var errorRules: [ObjectRef: DefaultBackendRule?] = [:]

        init(builder: TableBuilder, certificates: [String: TLSCertificate], resolver: BackendResolver) {
            self.builder = builder
            self.certificates = certificates
            self.resolver = resolver
        }

        private mutating func report(_ rejection: Rejection, once key: String? = nil) {
            if let key, !reported.insert(key).inserted { return }
            events.append(.rejection(key: key, rejection))
        }

        /// The cluster name of `backend`, reporting a backend without endpoints once per owner and
        /// cluster, and recording the owner's load-balancing choice.
        private mutating func use(_ backend: BackendReference, owner: ObjectRef, loadBalancing choice: LoadBalancingChoice? = nil) -> String {
            let resolved = resolver.resolve(backend)
            let name = resolver.clusterName(resolved)
            if let choice { events.append(.loadBalancing(name: name, policy: choice.policy, owner: owner, annotation: choice.key)) }
            if let problem = resolver.problem(resolved) {
                report(
                    Rejection(object: owner, reason: problem.reason, effect: .backendUnavailable, field: backend.field.backend, message: problem.message),
                    once: "backend|\(owner)|\(name)")
            }
            return name
        }

        /// default-backend's Service (its first port, as ingress-nginx takes it), else the catch-all
        /// default backend for custom-http-errors; once per Ingress.
        private mutating func errorRule(for owner: ObjectRef) -> DefaultBackendRule? {
            guard !builder.errorPages.isEmpty, let settings = builder.errorPages[owner] else { return nil }
            if let known = errorRules[owner] { return known }
            var cluster: String?
            if let name = settings.service, let key = settings.serviceKey {
                if let service = resolver.index.service(NamespacedName(owner.namespace, name)), let port = service.spec?.ports?.first?.port {
                    let reference = BackendReference(
                        namespace: owner.namespace, service: name, port: .number(Int(port)), field: IngressField(.annotation(key)))
                    cluster = use(reference, owner: owner)
                } else {
                    report(
                        Rejection(
                            object: owner, reason: .invalidAnnotation, effect: .defaultApplied, field: IngressAnnotations.field(key),
                            message: "Service \(owner.namespace)/\(name) does not exist or has no port; no default backend is used"),
                        once: "error-page|\(owner)")
                }
            } else if let key = settings.statusesKey {
                if let global = builder.globalDefault {
                    cluster = use(global.backend, owner: global.owner, loadBalancing: global.loadBalancing)
                } else {
                    report(
                        Rejection(
                            object: owner, reason: .invalidAnnotation, effect: .defaultApplied, field: IngressAnnotations.field(key),
                            message: "no default backend to answer the errors: neither default-backend on this Ingress nor a catch-all "
                                + "spec.defaultBackend; the Pods' answers are relayed as they are"),
                        once: "error-page|\(owner)")
                }
            }
            let rule = cluster.map {
                DefaultBackendRule(
                    cluster: $0, interceptedStatuses: settings.statuses, interceptsPodAnswers: !settings.keepsPodAnswers,
                    servesWithoutEndpoints: settings.service != nil)
            }
            errorRules[owner] = .some(rule)
            return rule
        }

        mutating func assemble(_ index: Int) {
            let pattern = builder.hostPatterns[index]
            let entry = builder.hostEntries[index]
            var binding: TLSEntry?
            if !builder.tls.isEmpty {
                binding = builder.tls[pattern]
                if binding == nil, case .exact(let name) = pattern, let dot = name.utf8.firstIndex(of: UInt8(ascii: ".")) {
                    binding = builder.tls[.wildcard(suffix: String(name[name.utf8.index(after: dot)...]))]
                }
            }
            let tlsBinding = binding.map { TLSBinding(certificate: $0.secret.flatMap { certificates[$0] == nil ? nil : $0 }, hsts: $0.hsts) }
            let hasTLS = tlsBinding != nil
            let regexOwner = builder.regexHosts[pattern]
            var routes: [Route] = []
            routes.reserveCapacity(entry.routes.count)
            for route in entry.routes {
                var match = route.match
                var options = route.options
                if let regexOwner {
                    // ingress-nginx's use-regex turns every path of the host into a regular expression.
                    match.path = route.rawPath
                    if !route.ownRegex, (try? PathRegex.compile(route.rawPath, caseInsensitive: true)) == nil {
                        report(
                            Rejection(
                                object: route.owner, reason: .invalidPath, effect: .partiallyIgnored, field: nil,
                                message: "host \(pattern) matches paths as regular expressions (use-regex or rewrite-target on \(regexOwner)), "
                                    + "and \"\(route.rawPath)\" is not one; this path is ignored"))
                        continue
                    }
                } else {
                    options.rewriteTarget = nil
                    options.forwardedPrefix = nil
                }
                let cluster = use(route.backend, owner: route.owner, loadBalancing: route.loadBalancing)
                if let rule = errorRule(for: route.owner) { options.defaultBackend = rule }
                routes.append(
                    Route(
                        match: match,
                        backend: Backend(
                            cluster: cluster, source: route.source, httpsRedirect: (hasTLS && route.sslRedirect) || route.forceSSLRedirect,
                            options: options)))
                if regexOwner == nil, !builder.nginxPathIngresses.isEmpty, builder.nginxPathIngresses.contains(route.owner),
                    let redirect = TableBuilder.slashRedirect(for: route.match, in: entry) {
                    routes.append(redirect(Backend(cluster: cluster, source: route.source)))
                }
            }
            let fallback = entry.defaultBackend ?? builder.globalDefault
            let defaultBackend = fallback.map { fallback in
                var options = fallback.options
                if let rule = errorRule(for: fallback.owner) { options.defaultBackend = rule }
                return Backend(
                    cluster: use(fallback.backend, owner: fallback.owner, loadBalancing: fallback.loadBalancing), source: fallback.source,
                    httpsRedirect: (hasTLS && fallback.sslRedirect) || fallback.forceSSLRedirect, options: options)
            }
            virtualHosts.append(
                VirtualHost(hostname: pattern, routes: routes, defaultBackend: defaultBackend, tls: tlsBinding, regexPaths: regexOwner != nil))
        }
    }
}
