import KubeClient
import KubeTypes
import Logging
import RouteModel
import SnapshotProtocol
import Synchronization
import Translator

/// The control plane's Kubernetes source: informers for Ingress, IngressClass, Service,
/// EndpointSlice and `kubernetes.io/tls` Secrets feed the translator, and a new version is
/// published when the compiled table's hash changes.
///
/// Rebuilds are debounced with a hold-off: the first change after a quiet spell is applied at
/// once; changes that follow within `holdOff` are batched until the source has been quiet for
/// `holdOff`, or `maxHoldOff` after the batch began, whichever comes first.
public final class KubeSource: Sendable {
    public struct Options: Sendable {
        public var holdOff: Duration = .milliseconds(100)
        public var maxHoldOff: Duration = .milliseconds(500)
        /// Namespace to watch; nil: all.
        public var namespace: String?
        public var watchTimeoutSeconds = 300
        public init() {}
    }

    public struct Status: Sendable, Equatable {
        public var version: UInt64 = 0
        public var contentHash: UInt64?
        public var rebuilds = 0
        /// Time spent translating and publishing, summed over all rebuilds.
        public var rebuildSeconds: Double = 0
    }

    public let configuration: TranslatorConfiguration
    public let latest: LatestSnapshot
    public let diagnostics: DiagnosticsBoard
    public let ingresses: Informer<Ingress>
    public let ingressClasses: Informer<IngressClass>
    public let services: Informer<Service>
    public let endpointSlices: Informer<EndpointSlice>
    public let secrets: Informer<Secret>
    private let options: Options
    private let logger: Logger
    private let state = Mutex(Status())
    private let changes = Atomic<Int>(0)
    private let observers = Mutex<[@Sendable (Translation) -> Void]>([])

    public init(
        client: KubeClient, configuration: TranslatorConfiguration = .init(), latest: LatestSnapshot,
        diagnostics: DiagnosticsBoard = DiagnosticsBoard(), options: Options = .init(), logger: Logger = Logger(label: "portico.kube")
    ) {
        self.configuration = configuration
        self.latest = latest
        self.diagnostics = diagnostics
        self.options = options
        self.logger = logger
        let namespace = options.namespace
        let timeout = options.watchTimeoutSeconds
        ingresses = Informer(client: client, namespace: namespace, watchTimeoutSeconds: timeout, logger: logger)
        // IngressClasses are cluster-scoped: watched whole even when the rest is scoped.
        ingressClasses = Informer(client: client, watchTimeoutSeconds: timeout, logger: logger)
        services = Informer(client: client, namespace: namespace, watchTimeoutSeconds: timeout, logger: logger)
        endpointSlices = Informer(client: client, namespace: namespace, watchTimeoutSeconds: timeout, logger: logger)
        secrets = Informer(client: client, namespace: namespace, fieldSelector: "type=kubernetes.io/tls", watchTimeoutSeconds: timeout, logger: logger)
    }

    public var status: Status { state.withLock { $0 } }

    /// Watches opened and relists forced by 410, summed over the informers.
    public var watchStatistics: (watches: Int, relists: Int, errors: Int) {
        let all = [
            ingresses.statistics, ingressClasses.statistics, services.statistics, endpointSlices.statistics, secrets.statistics,
        ]
        return (all.map(\.watches).reduce(0, +), all.map(\.expired).reduce(0, +), all.map(\.errors).reduce(0, +))
    }

    /// Called after every rebuild with its translation (the status writer reconciles against it).
    public func observe(_ observer: @escaping @Sendable (Translation) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    private var synced: Bool {
        ingresses.hasSynced && ingressClasses.hasSynced && services.hasSynced && endpointSlices.hasSynced && secrets.hasSynced
    }

    /// Runs the informers and rebuilds on their changes until cancelled. The first table is
    /// published once every informer has listed, so no subscriber sees a half-loaded cluster.
    public func run() async {
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let onChange: @Sendable () -> Void = { [self] in
            changes.add(1, ordering: .relaxed)
            wake.yield()
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.ingresses.run(onChange: onChange) }
            group.addTask { await self.ingressClasses.run(onChange: onChange) }
            group.addTask { await self.services.run(onChange: onChange) }
            group.addTask { await self.endpointSlices.run(onChange: onChange) }
            group.addTask { await self.secrets.run(onChange: onChange) }
            group.addTask { await self.debounce(wakeups) }
            await group.waitForAll()
        }
    }

    private func debounce(_ wakeups: AsyncStream<Void>) async {
        var lastRebuild = ContinuousClock.now - .seconds(3600)
        for await _ in wakeups {
            guard synced else { continue }
            let start = ContinuousClock.now
            if start - lastRebuild < options.holdOff {
                // Part of a burst: wait for a quiet spell, at most maxHoldOff.
                var seen = changes.load(ordering: .relaxed)
                while ContinuousClock.now - start < options.maxHoldOff {
                    let remaining = options.maxHoldOff - (ContinuousClock.now - start)
                    do { try await Task.sleep(for: min(options.holdOff, remaining)) } catch { return }
                    let now = changes.load(ordering: .relaxed)
                    if now == seen { break }
                    seen = now
                }
            }
            rebuild()
            lastRebuild = ContinuousClock.now
        }
    }

    /// Translates the informers' current objects and publishes on a hash change.
    @discardableResult
    public func rebuild() -> Status {
        let started = ContinuousClock.now
        let objects = KubeObjects(
            ingresses: ingresses.objects, ingressClasses: ingressClasses.objects, services: services.objects,
            endpointSlices: endpointSlices.objects, secrets: secrets.objects)
        let gathered = ContinuousClock.now
        let translation = Translator.translate(objects, configuration: configuration)
        let translated = ContinuousClock.now
        diagnostics.update(translation: translation, errors: [], locations: [:])
        let status = state.withLock { state -> Status in
            state.rebuilds += 1
            let elapsed = ContinuousClock.now - started
            state.rebuildSeconds += Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if translation.table.contentHash != state.contentHash {
                state.version += 1
                state.contentHash = translation.table.contentHash
                latest.publish(version: state.version, table: translation.table)
            }
            return state
        }
        for observer in observers.withLock({ $0 }) { observer(translation) }
        let finished = ContinuousClock.now
        logger.info(
            "cluster objects translated",
            metadata: [
                "gather": "\(gathered - started)", "translate": "\(translated - gathered)", "publish": "\(finished - translated)",
                "version": "\(status.version)", "hash": "\(translation.table.contentHashHex)", "objects": "\(objects.count)",
                "rejections": "\(translation.rejections.count)",
            ])
        return status
    }
}
