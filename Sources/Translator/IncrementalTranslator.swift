import KubeTypes
import RouteModel

/// Re-translates only the virtual hosts a few Ingress changes touch, instead of all of them.
///
/// A virtual host's routes, default backend and TLS binding depend only on the Ingresses naming that
/// host (their rules or TLS hosts), the Ingress naming its parent wildcard in TLS, the Ingress owning
/// the catch-all default backend, and the Services, EndpointSlices and Secrets those name. So after
/// Ingress X changes from X0 to X1, the hosts of X0 and X1 are translated again from exactly those
/// Ingresses (with `Translator.translate`, so the rules are the same code), and every other host,
/// cluster and certificate is kept from the previous table.
///
/// What crosses hosts is left to a full translation: `apply` returns nil when X0 or X1 has a
/// `defaultBackend` (it may own the catch-all), a wildcard TLS host (exact hosts inherit it), or a
/// load-balancing, server-alias or from-to-www-redirect annotation (decided across hosts), when an
/// Ingress re-read has one of those annotations, and when anything but Ingresses, EndpointSlices
/// and Secrets changed (the caller knows that). EndpointSlice changes re-resolve only the endpoints
/// of their Services' clusters. A Secret change re-translates the hosts of the Ingresses naming it
/// in `spec.tls` (and declines when one names it in `proxy-ssl-secret`, which reaches clusters).
/// The result equals the full translation's table; rejections and Ingress lists come only from full
/// translations, which the caller runs after a while (and compares).
public struct IncrementalTranslator: Sendable {
    public private(set) var table: RouteTable
    private let configuration: TranslatorConfiguration
    private var ingresses: [String: Ingress]
    private var keysByHost: [HostPattern: KeyGroup] = [:]
    /// How many routes and default backends name each cluster, and hosts each certificate.
    private var clusterUses: [String: Int] = [:]
    private var certificateUses: [String: Int] = [:]
    private var globalDefaultOwner: String?
    private let ingressClasses: [IngressClass]
    private let services: [NamespacedName: Service]
    private var slices: [String: EndpointSlice] = [:]
    /// The keys (into `slices`) of each Service's slices.
    private var slicesByService: [NamespacedName: KeyGroup] = [:]
    private var secrets: [NamespacedName: Secret]
    /// The Ingresses naming each Secret in `spec.tls`, and in a `proxy-ssl-secret` annotation.
    private var keysByTLSSecret: [NamespacedName: Set<String>] = [:]
    private var keysByUpstreamSecret: [NamespacedName: Set<String>] = [:]
    /// What the `apply` calls since `takeTouched()` may have changed.
    private var touched = Touched()

    /// Hosts, clusters and certificates an incremental change may have altered (a superset): the
    /// delta from the table before to the one after looks at these only.
    public struct Touched: Sendable, Equatable {
        public var hosts = Set<HostPattern>()
        public var clusters = Set<String>()
        public var certificates = Set<String>()
    }

    /// What the `apply` calls since the last call touched, and starts counting afresh.
    public mutating func takeTouched() -> Touched {
        defer { touched = Touched() }
        return touched
    }

    /// The objects the table was translated from: a full translation of them gives the same table
    /// (what verifying an incremental rebuild checks, whatever the informers received since).
    public var objects: KubeObjects {
        KubeObjects(
            ingresses: Array(ingresses.values), ingressClasses: ingressClasses, services: Array(services.values),
            endpointSlices: Array(slices.values), secrets: Array(secrets.values))
    }

    /// The key of an Ingress in `apply`'s changes: `namespace/name`, the namespace empty when unset
    /// (as informers key their caches).
    public static func key(_ object: some KubeObject) -> String { "\(object.metadata.namespace ?? "")/\(object.metadata.name)" }

    /// Starts from a full translation of `objects`.
    public init(objects: KubeObjects, translation: Translation, configuration: TranslatorConfiguration = .init()) {
        self.init(index: Index(objects: objects, configuration: configuration), translation: translation)
    }

    /// Starts from `index` of some objects and their full translation.
    public init(index: consuming Index, translation: Translation) {
        self = index.translator
        table = translation.table
        // Its key: an Ingress without a namespace has "default" in its ref but none in its key.
        globalDefaultOwner = translation.globalDefaultOwner.flatMap { owner in
            ["\(owner.namespace)/\(owner.name)", "/\(owner.name)"].first { ingresses[$0]?.ref == owner }
        }
        for host in table.virtualHosts { Self.count(host, into: &clusterUses, &certificateUses, by: 1) }
    }

    /// What an incremental translator knows of the objects alone: their caches by key, and which
    /// Ingresses name each host and Secret. It needs no translation, so it is built beside the full
    /// one (at 100k Ingresses it took 1.5 s that used to follow the first table's publish, and to
    /// compete with its encoding); `init(index:translation:)` completes it.
    public struct Index: Sendable {
        /// Everything but what the translation gives (its table, the catch-all owner, the counts).
        fileprivate var translator: IncrementalTranslator

        public init(objects: KubeObjects, configuration: TranslatorConfiguration = .init()) {
            translator = IncrementalTranslator(indexing: objects, configuration: configuration)
        }
    }

    private init(indexing objects: KubeObjects, configuration: TranslatorConfiguration) {
        self.table = .empty
        self.configuration = configuration
        var ingresses: [String: Ingress] = [:]
        ingresses.reserveCapacity(objects.ingresses.count)
        for ingress in objects.ingresses { ingresses[Self.key(ingress)] = ingress }
        self.ingresses = ingresses
        self.globalDefaultOwner = nil
        self.ingressClasses = objects.ingressClasses
        // Each dictionary sized up front: at 100k objects their regrowth was a fifth of this index's time.
        var services: [NamespacedName: Service] = [:]
        services.reserveCapacity(objects.services.count)
        for service in objects.services { services[NamespacedName(service.namespace, service.name)] = service }
        self.services = services
        var secrets: [NamespacedName: Secret] = [:]
        secrets.reserveCapacity(objects.secrets.count)
        for secret in objects.secrets { secrets[NamespacedName(secret.namespace, secret.name)] = secret }
        self.secrets = secrets
        slices.reserveCapacity(objects.endpointSlices.count)
        slicesByService.reserveCapacity(objects.services.count)
        for slice in objects.endpointSlices { add(slice, key: Self.key(slice)) }
        keysByHost.reserveCapacity(ingresses.count)
        for (key, ingress) in ingresses {
            for host in Self.hosts(of: ingress) { keysByHost[host, default: KeyGroup()].insert(key) }
            index(secretsOf: ingress, key: key, adding: true)
        }
    }

    /// The table after the Ingresses of `changes` became their values (nil: deleted), or nil (and
    /// nothing changed here) when the change needs a full translation.
    public mutating func apply(_ changes: [String: Ingress?]) -> RouteTable? {
        apply(changes, refreshingCertificates: [])
    }

    /// The table after the Secrets of `changes` (keyed `namespace/name`) became their values (nil:
    /// deleted), or nil (and nothing changed here) when the change needs a full translation.
    public mutating func apply(secrets changes: [String: Secret?]) -> RouteTable? {
        guard !changes.isEmpty else { return table }
        var names = Set<NamespacedName>()
        for key in changes.keys {
            guard let slash = key.firstIndex(of: "/") else { return nil }
            names.insert(NamespacedName(String(key[..<slash]), String(key[key.index(after: slash)...])))
        }
        guard !names.contains(where: { keysByUpstreamSecret[$0] != nil }) else { return nil }
        let saved = secrets
        for (key, new) in changes {
            let slash = key.firstIndex(of: "/")!
            secrets[NamespacedName(String(key[..<slash]), String(key[key.index(after: slash)...]))] = new
        }
        let users = names.reduce(into: Set<String>()) { $0.formUnion(keysByTLSSecret[$1] ?? []) }
        guard !users.isEmpty else { return table }
        // The users re-translated as they are, their certificates taken anew even where the table
        // has one of that name (a renewed certificate keeps its Secret's name).
        let unchanged = Dictionary(uniqueKeysWithValues: users.map { ($0, ingresses[$0]) })
        guard let updated = apply(unchanged, refreshingCertificates: Set(names.map { "\($0.namespace)/\($0.name)" })) else {
            secrets = saved
            return nil
        }
        return updated
    }

    private mutating func apply(_ changes: [String: Ingress?], refreshingCertificates refresh: Set<String>) -> RouteTable? {
        guard !changes.isEmpty else { return table }
        var affected = Set<HostPattern>()
        for (key, new) in changes {
            for ingress in [ingresses[key], new].compactMap({ $0 }) {
                guard !crossesHosts(ingress) else { return nil }
                affected.formUnion(Self.hosts(of: ingress))
            }
        }

        // Who can contribute to the affected hosts once the changes are in.
        func current(_ key: String) -> Ingress? {
            if let change = changes[key] { return change }
            return ingresses[key]
        }
        var keys = Set<String>()
        for host in affected {
            keysByHost[host]?.add(to: &keys)
            if case .exact(let name) = host, let parent = Self.parentWildcard(of: name) { keysByHost[parent]?.add(to: &keys) }
        }
        for (key, new) in changes where new != nil { keys.insert(key) }
        if let globalDefaultOwner { keys.insert(globalDefaultOwner) }
        let subset = keys.compactMap(current)
        guard !subset.contains(where: Self.annotationCrossesHosts) else { return nil }

        let partial = Translator.translate(objects(for: subset), configuration: configuration).table
        guard let spliced = splice(partial, hosts: affected, refreshing: refresh) else { return nil }
        table = spliced
        touched.hosts.formUnion(affected)
        for (key, new) in changes {
            if let old = ingresses[key] {
                for host in Self.hosts(of: old) where keysByHost[host]?.remove(key) == true { keysByHost[host] = nil }
                index(secretsOf: old, key: key, adding: false)
            }
            if let new {
                for host in Self.hosts(of: new) { keysByHost[host, default: KeyGroup()].insert(key) }
                index(secretsOf: new, key: key, adding: true)
            }
        }
        for (key, new) in changes { ingresses[key] = new }
        return table
    }

    /// The table after the EndpointSlices of `changes` became their values (nil: deleted): the
    /// clusters of the Services they belong to (before and after) resolve their endpoints again.
    /// Routes do not depend on endpoints, so nothing else changes; this never needs a full translation.
    public mutating func apply(endpointSlices changes: [String: EndpointSlice?]) -> RouteTable {
        var services = Set<NamespacedName>()
        for (key, new) in changes {
            if let old = slices[key] {
                if let service = old.serviceName { services.insert(NamespacedName(old.namespace, service)) }
                remove(old, key: key)
            }
            if let new {
                if let service = new.serviceName { services.insert(NamespacedName(new.namespace, service)) }
                add(new, key: key)
            }
        }
        var changed: [Cluster] = []
        for var cluster in table.clusters where services.contains(NamespacedName(cluster.namespace, cluster.service)) {
            // Only clusters resolved to a port number have endpoints; the others name a missing
            // Service or port, which no slice changes.
            guard case .number = cluster.servicePort else { continue }
            let name = NamespacedName(cluster.namespace, cluster.service)
            var resolver = BackendResolver(
                services: self.services[name].map { [$0] } ?? [], endpointSlices: slices(of: name))
            let handle = resolver.resolve(
                BackendReference(namespace: name.namespace, service: name.name, port: cluster.servicePort, field: IngressField(.defaultBackend)))
            let endpoints = resolver.cluster(handle).endpoints
            if endpoints != cluster.endpoints {
                cluster.endpoints = endpoints
                touched.clusters.insert(cluster.name)
                changed.append(cluster)
            }
        }
        guard !changed.isEmpty else { return table }
        // Replacing clusters the table holds with others of the same names cannot fail (were it to,
        // the table would stay as it was until the next verification replaced it).
        table = (try? table.applying(RouteTableDelta(upsertedClusters: changed, defaultCertificate: table.defaultCertificate))) ?? table
        return table
    }

    private mutating func add(_ slice: EndpointSlice, key: String) {
        slices[key] = slice
        if let service = slice.serviceName { slicesByService[NamespacedName(slice.namespace, service), default: KeyGroup()].insert(key) }
    }

    private func slices(of service: NamespacedName) -> [EndpointSlice] {
        var found: [EndpointSlice] = []
        slicesByService[service]?.forEach { if let slice = slices[$0] { found.append(slice) } }
        return found
    }

    private mutating func remove(_ slice: EndpointSlice, key: String) {
        slices[key] = nil
        if let service = slice.serviceName {
            let name = NamespacedName(slice.namespace, service)
            if slicesByService[name]?.remove(key) == true { slicesByService[name] = nil }
        }
    }

    /// Adds `key` to (or removes it from) the users of the Secrets `ingress` names.
    private mutating func index(secretsOf ingress: Ingress, key: String, adding: Bool) {
        let (tls, upstream) = Self.secretNames(of: ingress)
        for name in tls {
            if adding { keysByTLSSecret[name, default: []].insert(key) } else { Self.remove(key, from: &keysByTLSSecret, at: name) }
        }
        for name in upstream {
            if adding { keysByUpstreamSecret[name, default: []].insert(key) } else { Self.remove(key, from: &keysByUpstreamSecret, at: name) }
        }
    }

    private static func remove(_ key: String, from index: inout [NamespacedName: Set<String>], at name: NamespacedName) {
        index[name]?.remove(key)
        if index[name]?.isEmpty == true { index[name] = nil }
    }

    /// The Secrets an Ingress names: in `spec.tls`, and in `proxy-ssl-secret` (`namespace/name`).
    private static func secretNames(of ingress: Ingress) -> (tls: Set<NamespacedName>, upstream: Set<NamespacedName>) {
        var tls = Set<NamespacedName>()
        var upstream = Set<NamespacedName>()
        for entry in ingress.spec?.tls ?? [] {
            if let secret = entry.secretName { tls.insert(NamespacedName(ingress.namespace, secret)) }
        }
        for prefix in [AnnotationCatalog.porticoPrefix, AnnotationCatalog.nginxPrefix] {
            guard let value = ingress.metadata.annotations?[prefix + "proxy-ssl-secret"] else { continue }
            let parts = value.split(separator: "/")
            if parts.count == 2 { upstream.insert(NamespacedName(String(parts[0]), String(parts[1]))) }
        }
        return (tls, upstream)
    }

    /// Whether an Ingress affects hosts other than its own (see the type's comment).
    private func crossesHosts(_ ingress: Ingress) -> Bool {
        guard let spec = ingress.spec else { return false }
        if spec.defaultBackend != nil { return true }
        if Self.annotationCrossesHosts(ingress) { return true }
        for entry in spec.tls ?? [] {
            for raw in entry.hosts ?? [] {
                if case .wildcard? = try? HostPattern.parse(raw) { return true }
            }
        }
        return false
    }

    /// A cluster's balancing policy is decided across hosts, and aliases and www redirects add hosts
    /// that depend on every other Ingress's hosts.
    private static func annotationCrossesHosts(_ ingress: Ingress) -> Bool {
        guard let annotations = ingress.metadata.annotations else { return false }
        for name in ["load-balance", "server-alias", "from-to-www-redirect"] {
            if annotations[AnnotationCatalog.porticoPrefix + name] != nil || annotations[AnnotationCatalog.nginxPrefix + name] != nil { return true }
        }
        return false
    }

    /// The Ingresses, with every class and the Services, slices and Secrets they name.
    private func objects(for subset: [Ingress]) -> KubeObjects {
        var serviceNames = Set<NamespacedName>()
        var secretNames = Set<NamespacedName>()
        for ingress in subset {
            guard let spec = ingress.spec else { continue }
            var backends = spec.defaultBackend.map { [$0] } ?? []
            for rule in spec.rules ?? [] { backends += rule.http?.paths.map(\.backend) ?? [] }
            for backend in backends {
                if let service = backend.service { serviceNames.insert(NamespacedName(ingress.namespace, service.name)) }
            }
            let named = Self.secretNames(of: ingress)
            secretNames.formUnion(named.tls)
            secretNames.formUnion(named.upstream)
            // default-backend: a Service of the Ingress's namespace.
            for prefix in [AnnotationCatalog.porticoPrefix, AnnotationCatalog.nginxPrefix] {
                guard let value = ingress.metadata.annotations?[prefix + "default-backend"] else { continue }
                serviceNames.insert(NamespacedName(ingress.namespace, String(value[...].trimmingWhitespace())))
            }
        }
        return KubeObjects(
            ingresses: subset, ingressClasses: ingressClasses, services: serviceNames.compactMap { services[$0] },
            endpointSlices: serviceNames.flatMap(slices(of:)), secrets: secretNames.compactMap { secrets[$0] })
    }

    /// Every host an Ingress names in its rules (no host: `.any`) or TLS entries; unparsable ones
    /// are left out (the Ingress is rejected for them).
    static func hosts(of ingress: Ingress) -> Set<HostPattern> {
        var hosts = Set<HostPattern>()
        for rule in ingress.spec?.rules ?? [] {
            if let host = try? HostPattern.parse(rule.host ?? "") { hosts.insert(host) }
        }
        for entry in ingress.spec?.tls ?? [] {
            for raw in entry.hosts ?? [] {
                if let host = try? HostPattern.parse(raw), host != .any { hosts.insert(host) }
            }
        }
        // Hosts it may add (aliases, www redirects): a change to their own Ingresses must see it.
        if let annotations = ingress.metadata.annotations {
            for prefix in [AnnotationCatalog.porticoPrefix, AnnotationCatalog.nginxPrefix] {
                for alias in annotations[prefix + "server-alias"]?.split(separator: ",") ?? [] {
                    if let host = try? HostPattern.parse(String(alias.trimmingWhitespace())), host != .any { hosts.insert(host) }
                }
                if annotations[prefix + "from-to-www-redirect"] != nil {
                    for case .exact(let name) in Array(hosts) {
                        let other = name.hasPrefix("www.") ? String(name.dropFirst(4)) : "www." + name
                        if let host = try? HostPattern.parse(other) { hosts.insert(host) }
                    }
                }
            }
        }
        return hosts
    }

    static func parentWildcard(of name: String) -> HostPattern? {
        guard let dot = name.utf8.firstIndex(of: UInt8(ascii: ".")) else { return nil }
        return .wildcard(suffix: String(name[name.utf8.index(after: dot)...]))
    }

    /// The table with the `hosts` replaced by their versions in `partial` (or removed where `partial`
    /// has none), and the clusters and certificates the result names: the previous table's values
    /// where it has them (a partial translation does not see every Ingress naming a cluster), else
    /// the partial table's. Nil, with nothing changed, when the result would not be a valid table.
    private mutating func splice(_ partial: RouteTable, hosts: Set<HostPattern>, refreshing refresh: Set<String>) -> RouteTable? {
        // Use counts change by these steps once the splice succeeds (only the names touched: the
        // whole maps are neither copied nor scanned).
        var clusterSteps: [String: Int] = [:]
        var certificateSteps: [String: Int] = [:]
        var delta = RouteTableDelta(defaultCertificate: table.defaultCertificate)
        for host in hosts {
            let position = table.virtualHosts.lowerBound(of: host, key: \.hostname)
            let present = position < table.virtualHosts.count && table.virtualHosts[position].hostname == host
            if present { Self.count(table.virtualHosts[position], into: &clusterSteps, &certificateSteps, by: -1) }
            let newPosition = partial.virtualHosts.lowerBound(of: host, key: \.hostname)
            if newPosition < partial.virtualHosts.count, partial.virtualHosts[newPosition].hostname == host {
                Self.count(partial.virtualHosts[newPosition], into: &clusterSteps, &certificateSteps, by: 1)
                delta.upsertedHosts.append(partial.virtualHosts[newPosition])
            } else if present {
                delta.removedHosts.append(host)
            }
        }
        (delta.upsertedClusters, delta.removedClusters) = Self.reconcile(
            table.clusters, uses: clusterUses, steps: clusterSteps, from: partial.clusters, key: \.name)
        (delta.upsertedCertificates, delta.removedCertificates) = Self.reconcile(
            table.certificates, uses: certificateUses, steps: certificateSteps, from: partial.certificates, key: \.name, refreshing: refresh)
        guard let spliced = try? table.applying(delta) else { return nil }
        Self.merge(clusterSteps, into: &clusterUses)
        Self.merge(certificateSteps, into: &certificateUses)
        touched.clusters.formUnion(delta.upsertedClusters.map(\.name) + delta.removedClusters)
        touched.certificates.formUnion(delta.upsertedCertificates.map(\.name) + delta.removedCertificates)
        return spliced
    }

    private static func merge(_ steps: [String: Int], into uses: inout [String: Int]) {
        for (name, step) in steps where step != 0 {
            let count = (uses[name] ?? 0) + step
            uses[name] = count > 0 ? count : nil
        }
    }

    private static func count(_ host: VirtualHost, into clusters: inout [String: Int], _ certificates: inout [String: Int], by step: Int) {
        for route in host.routes {
            clusters[route.backend.cluster, default: 0] += step
            if let rule = route.backend.options.defaultBackend { clusters[rule.cluster, default: 0] += step }
        }
        if let backend = host.defaultBackend {
            clusters[backend.cluster, default: 0] += step
            if let rule = backend.options.defaultBackend { clusters[rule.cluster, default: 0] += step }
        }
        if let certificate = host.tls?.certificate { certificates[certificate, default: 0] += step }
    }

    /// The entries no longer used once `steps` are counted (count 0), to drop, and the used ones
    /// missing, from `partial`, to add; those named in `refresh` are taken from `partial` even when present.
    private static func reconcile<T>(
        _ entries: [T], uses: [String: Int], steps: [String: Int], from partial: [T], key: (T) -> String, refreshing refresh: Set<String> = []
    ) -> (added: [T], dropped: [String]) {
        func isPresent(_ name: String) -> Bool {
            let position = entries.lowerBound(of: name, key: key)
            return position < entries.count && key(entries[position]) == name
        }
        var dropped: [String] = []
        for (name, step) in steps where step < 0 && (uses[name] ?? 0) + step <= 0 && isPresent(name) { dropped.append(name) }
        var added: [T] = []
        for entry in partial {
            let name = key(entry)
            guard (uses[name] ?? 0) + (steps[name] ?? 0) > 0 else { continue }
            if refresh.contains(name) || !isPresent(name) { added.append(entry) }
        }
        return (added, dropped)
    }
}

/// The keys under one entry of an index: almost always one (a host's Ingress, a Service's slice),
/// held then without a Set's allocation (at 100k hosts, a one-element Set each was 100k
/// allocations and their regrowth).
struct KeyGroup: Sendable {
    private enum Keys: Sendable {
        case none
        case one(String)
        case many(Set<String>)
    }
    private var keys = Keys.none

    init() {}

    mutating func insert(_ key: String) {
        switch keys {
        case .none: keys = .one(key)
        case .one(let only) where only == key: break
        case .one(let only): keys = .many([only, key])
        case .many(var all):
            // Taken out first, so that the Set is referenced once and grows in place.
            keys = .none
            all.insert(key)
            keys = .many(all)
        }
    }

    /// Removes `key`; returns whether the group is empty now.
    mutating func remove(_ key: String) -> Bool {
        switch keys {
        case .none: break
        case .one(let only): if only == key { keys = .none }
        case .many(var all):
            keys = .none
            all.remove(key)
            keys = all.count == 1 ? .one(all.first!) : all.isEmpty ? .none : .many(all)
        }
        if case .none = keys { return true }
        return false
    }

    func forEach(_ body: (String) -> Void) {
        switch keys {
        case .none: break
        case .one(let only): body(only)
        case .many(let all): all.forEach(body)
        }
    }

    func add(to set: inout Set<String>) { forEach { set.insert($0) } }
}
