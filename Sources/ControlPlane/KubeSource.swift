import Foundation
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
/// The informers feed a `RebuildLoop`, which holds changes off (the first change after a quiet
/// spell is applied at once; changes that follow within `holdOff` are batched until the source has
/// been quiet for `holdOff`, or `maxHoldOff` after the batch began, whichever comes first),
/// numbers and publishes the versions, and tells observers of every translation.
///
/// When only Ingresses, EndpointSlices and Secrets changed, and the Ingresses' old and new versions
/// touch nothing beyond their own hosts, just those hosts (and those of the Ingresses naming a
/// changed Secret in `spec.tls`) are translated again and just the changed Services' endpoints
/// resolved again (`IncrementalTranslator`): at 10k Ingresses that is a few milliseconds instead of
/// about 300. A full translation follows `verifyAfter` later, off the rebuild
/// loop so that it never delays a change: on a thread that only gets an otherwise idle CPU, or, once
/// the table has been unverified for `maxUnverified`, at nice 19 beside it. It provides the
/// rejections, Events and status (which therefore lag by that much), and any difference from the
/// incremental table is logged as an error, counted and published. Its result is dropped when a
/// change came meanwhile (the next one verifies that), one runs at a time, and the next starts no
/// sooner than the last one took, so verification takes at most half a core.
public final class KubeSource: Sendable {
    public struct Options: Sendable {
        public var holdOff: Duration = .milliseconds(100)
        public var maxHoldOff: Duration = .milliseconds(500)
        /// Namespace to watch; nil: all.
        public var namespace: String?
        public var watchTimeoutSeconds = 300
        /// How long after an incremental rebuild the full translation follows. It runs in the
        /// background and starts over when a rebuild happens meanwhile; once the table has been
        /// unverified for `maxUnverified` one also runs at nice 19 (a small share of a busy CPU).
        public var verifyAfter: Duration = .milliseconds(500)
        public var maxUnverified: Duration = .seconds(5)
        /// Called once a full translation is done with (the first table, a change the incremental
        /// translator cannot take, a verification): each leaves several times the table's size
        /// free in malloc's arenas, which `portico control-plane` hands back to the kernel here.
        public var afterFullTranslation: (@Sendable () -> Void)?
        public init() {}
    }

    public struct Status: Sendable, Equatable, RebuildLoopStatusReporting {
        /// From the rebuild loop: the version published, its hash, rebuilds and their time.
        public var loop = RebuildLoop.Status()
        /// Rebuilds that translated only the hosts of changed Ingresses.
        public var incrementalRebuilds = 0
        /// Full translations, with no change in between, whose table differed from the incremental
        /// one before it. Always 0 unless the incremental translation has a bug.
        public var incrementalMismatches = 0
        /// Full translations in the rebuild loop (the first table, and changes the incremental
        /// translator cannot take); verifications never run there.
        public var fullRebuilds = 0
        /// Background full translations that finished (adopted or dropped), and their time.
        public var verifications = 0
        public var verificationSeconds: Double = 0
    }

    public let configuration: TranslatorConfiguration
    public let loop: RebuildLoop
    public var latest: LatestSnapshot { loop.latest }
    public let diagnostics: DiagnosticsBoard
    public let ingresses: Informer<Ingress>
    public let ingressClasses: Informer<IngressClass>
    public let services: Informer<Service>
    public let endpointSlices: Informer<EndpointSlice>
    public let secrets: Informer<Secret>
    private let options: Options
    private let logger: Logger
    /// This source's own counts (the loop keeps the rest of `Status`).
    private let state = Mutex(Status())
    /// When `run` began, until the first full translation reports how long the first LISTs took.
    private let runStarted = Mutex<ContinuousClock.Instant?>(nil)
    /// State for incremental rebuilds: from the last full translation, with the incremental ones since.
    private let incremental = Mutex(IncrementalState())

    private struct IncrementalState {
        var translator: IncrementalTranslator?
        /// The published table came from incremental rebuilds since the last full translation.
        var unverified = false
        var verificationScheduled = false
        var verificationDue = false
        /// Since when the published table has been unverified.
        var unverifiedSince: ContinuousClock.Instant?
        /// Counts rebuilds that published, so that a background verification can tell it is stale.
        var generation = 0
        /// Background verifications running (an idle one, and a nice-19 one when the idle one
        /// starves past `maxUnverified`); how long the last one took.
        var runningVerifications = 0
        var urgentVerificationRunning = false
        var lastVerification: Duration = .zero
    }

    public init(
        client: KubeClient, configuration: TranslatorConfiguration = .init(), latest: LatestSnapshot,
        diagnostics: DiagnosticsBoard = DiagnosticsBoard(), options: Options = .init(), logger: Logger = Logger(label: "portico.kube")
    ) {
        self.configuration = configuration
        var loopOptions = RebuildLoop.Options()
        loopOptions.holdOff = options.holdOff
        loopOptions.maxHoldOff = options.maxHoldOff
        loop = RebuildLoop(latest: latest, options: loopOptions)
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
        // Only the Secrets Portico can use are kept: kubernetes.io/tls ones (spec.tls) and those
        // holding a CA or a client certificate (proxy-ssl-secret, often of type Opaque).
        secrets = Informer(client: client, namespace: namespace, keep: { Self.isUsable($0) }, watchTimeoutSeconds: timeout, logger: logger)
    }

    public var status: Status {
        var status = state.withLock { $0 }
        status.loop = loop.status
        return status
    }

    /// A Secret the translator can read: a TLS certificate, a CA bundle, or a certificate and key.
    static func isUsable(_ secret: Secret) -> Bool {
        func has(_ key: String) -> Bool { secret.data?[key] != nil || secret.stringData?[key] != nil }
        return secret.type == Secret.tlsType || has("ca.crt") || (has(Secret.certificateKey) && has(Secret.privateKeyKey))
    }

    /// Watches opened and relists forced by 410, summed over the informers.
    public var watchStatistics: (watches: Int, relists: Int, errors: Int) {
        let all = [
            ingresses.statistics, ingressClasses.statistics, services.statistics, endpointSlices.statistics, secrets.statistics,
        ]
        return (all.map(\.watches).reduce(0, +), all.map(\.expired).reduce(0, +), all.map(\.errors).reduce(0, +))
    }

    /// Called after every full translation (the status writer reconciles against it).
    public func observe(_ observer: @escaping @Sendable (Translation) -> Void) { loop.observe(observer) }

    private var synced: Bool {
        ingresses.hasSynced && ingressClasses.hasSynced && services.hasSynced && endpointSlices.hasSynced && secrets.hasSynced
    }

    /// Runs the informers and rebuilds on their changes until cancelled. The first table is
    /// published once every informer has listed, so no subscriber sees a half-loaded cluster.
    public func run() async {
        let loop = loop
        let onChange: @Sendable () -> Void = { loop.changed() }
        runStarted.withLock { $0 = ContinuousClock.now }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.ingresses.run(onChange: onChange) }
            group.addTask { await self.ingressClasses.run(onChange: onChange) }
            group.addTask { await self.services.run(onChange: onChange) }
            group.addTask { await self.endpointSlices.run(onChange: onChange) }
            group.addTask { await self.secrets.run(onChange: onChange) }
            // `rebuildNow`, not `rebuild`: the loop counts its rebuilds itself (wrapped in `rebuild`'s
            // count too, each was counted twice, in the sequence tests await and in the metrics).
            group.addTask { await loop.run(ready: { self.synced }, rebuild: { self.rebuildNow() }) }
            await group.waitForAll()
        }
    }

    /// Translates what changed since the last rebuild (incrementally when it can, see the type's
    /// comment) and publishes on a hash change.
    @discardableResult
    public func rebuild() -> Status {
        loop.rebuilding { rebuildNow() }
        return status
    }

    private func rebuildNow() {
        let started = ContinuousClock.now
        // Every informer's changes are taken, whichever path follows.
        let ingressChanges = ingresses.takeChanges()
        let sliceChanges = endpointSlices.takeChanges()
        let secretChanges = secrets.takeChanges()
        let othersQuiet = [ingressClasses.takeChanges()?.isEmpty, services.takeChanges()?.isEmpty].allSatisfy { $0 == true }
        let nothingChanged =
            othersQuiet && ingressChanges?.isEmpty == true && sliceChanges?.isEmpty == true && secretChanges?.isEmpty == true

        if nothingChanged {
            enum Next { case nothing, verifyInBackground(generation: Int, urgent: Bool, objects: KubeObjects), translateNow }
            let next = incremental.withLock { state -> Next in
                // No incremental translator yet (it is built after a full translation): in full.
                guard state.translator != nil else { return .translateNow }
                guard state.unverified, state.verificationDue else { return .nothing }
                let overdue = state.unverifiedSince.map { ContinuousClock.now - $0 > options.maxUnverified } ?? false
                // One at a time, but an overdue table gets a nice-19 one beside a starved idle one.
                guard state.runningVerifications == 0 || (overdue && !state.urgentVerificationRunning) else { return .nothing }
                state.verificationDue = false
                state.runningVerifications += 1
                if overdue { state.urgentVerificationRunning = true }
                // The incremental translator's own inputs: a change an informer holds but the loop
                // has not taken yet is not in the table, and must not be in its check either.
                return .verifyInBackground(generation: state.generation, urgent: overdue, objects: state.translator!.objects)
            }
            switch next {
            case .nothing: return
            case .verifyInBackground(let generation, let urgent, let objects):
                verifyInBackground(objects, generation: generation, urgent: urgent)
                // An idle-priority thread may wait long on a busy machine: past `maxUnverified`
                // a nice-19 one joins it.
                if !urgent { scheduleVerification(after: options.maxUnverified) }
                return
            case .translateNow: break
            }
        } else if othersQuiet, let changes = ingressChanges, let sliceChanges, let secretChanges, changes.count <= 64, sliceChanges.count <= 1024,
            secretChanges.count <= 64
        {
            let outcome = incremental.withLock { state -> (RouteTable, RebuildLoop.Status)? in
                // In place: a copy of the translator would copy its caches.
                guard state.translator != nil else { return nil }
                let before = state.translator!.table
                _ = state.translator!.takeTouched()
                var table = before
                if !sliceChanges.isEmpty { table = state.translator!.apply(endpointSlices: sliceChanges) }
                if !secretChanges.isEmpty {
                    guard let updated = state.translator!.apply(secrets: secretChanges) else { return nil }
                    table = updated
                }
                if !changes.isEmpty {
                    guard let updated = state.translator!.apply(changes) else { return nil }
                    table = updated
                }
                let touched = state.translator!.takeTouched()
                state.generation += 1
                if !state.unverified { state.unverifiedSince = ContinuousClock.now }
                state.unverified = true
                // The delta comes from what the rebuild touched, not from comparing the whole tables.
                let delta = { before.delta(to: table, hosts: touched.hosts, clusters: touched.clusters, certificates: touched.certificates) }
                self.state.withLock { $0.incrementalRebuilds += 1 }
                return (table, loop.publish(table, base: before.contentHash, changes: delta))
            }
            if let (table, status) = outcome {
                scheduleVerification()
                logger.info(
                    "changes translated incrementally",
                    metadata: [
                        "ingresses": "\(changes.count)", "endpointSlices": "\(sliceChanges.count)", "secrets": "\(secretChanges.count)",
                        "elapsed": "\(ContinuousClock.now - started)", "version": "\(status.version)", "hash": "\(table.contentHashHex)",
                    ])
                return
            }
        }

        let objects = gather()
        let gathered = ContinuousClock.now
        state.withLock { $0.fullRebuilds += 1 }
        // The next incremental rebuilds' index of these objects needs no translation: on a thread
        // of its own meanwhile, mostly on a core the translation leaves idle.
        let indexing = ThreadResult { [configuration] in IncrementalTranslator.Index(objects: objects, configuration: configuration) }
        let translation = Translator.translate(objects, configuration: configuration)
        let translated = ContinuousClock.now
        // The translator for the next incremental rebuilds is completed after publishing.
        let (status, generation) = incremental.withLock { state -> (RebuildLoop.Status, Int) in
            let status = adoptFull(translation.table, translator: nil, verifying: nothingChanged, state: &state)
            return (status, state.generation)
        }
        report(translation)
        let published = ContinuousClock.now
        let translator = IncrementalTranslator(index: indexing.wait(), translation: translation)
        incremental.withLock { if $0.generation == generation { $0.translator = translator } }
        // The first time: from the informers' start until every one of them had listed.
        let lists = runStarted.withLock { start in
            defer { start = nil }
            return start.map { started - $0 }
        }
        logger.info(
            "cluster objects translated",
            metadata: [
                "lists": "\(lists.map { "\($0)" } ?? "-")", "gather": "\(gathered - started)", "translate": "\(translated - gathered)",
                "publish": "\(published - translated)",
                "index": "\(ContinuousClock.now - published)", "version": "\(status.version)", "hash": "\(translation.table.contentHashHex)",
                "objects": "\(objects.count)", "rejections": "\(translation.rejections.count)",
            ])
        options.afterFullTranslation?()
    }

    /// Every informer's objects. The three kinds that grow with the cluster are copied out of their
    /// caches on two cores at once: at 100k of each, one after another took 0.28 s on one core.
    private func gather() -> KubeObjects {
        let concurrently = PartedWork.parts(for: ingresses.count + services.count + endpointSlices.count) > 1
        let (ingresses, (services, endpointSlices)) = PartedWork.pair(
            concurrently: concurrently, { [self] in self.ingresses.objects },
            { [self] in (self.services.objects, self.endpointSlices.objects) })
        return KubeObjects(
            ingresses: ingresses, ingressClasses: ingressClasses.objects, services: services, endpointSlices: endpointSlices,
            secrets: secrets.objects)
    }

    /// Hands a full translation to the diagnostics and the observers (the status writer).
    private func report(_ translation: Translation) {
        diagnostics.update(translation: translation, errors: [], locations: [:])
        loop.report(translation)
    }

    /// Publishes a full translation's table, under the `incremental` lock: incremental rebuilds start
    /// over from it. When it `verifies` incremental rebuilds (no change came in between), a table
    /// different from theirs is logged as an error and counted.
    private func adoptFull(
        _ table: RouteTable, translator: IncrementalTranslator?, verifying: Bool, state: inout IncrementalState
    ) -> RebuildLoop.Status {
        let incrementalHash = loop.status.contentHash
        let mismatch = verifying && state.unverified && table.contentHash != incrementalHash
        if mismatch {
            logger.error(
                "the incremental translation differed from the full one; publishing the full table",
                metadata: ["incremental": "\(incrementalHash.map { String($0, radix: 16) } ?? "none")", "full": "\(table.contentHashHex)"])
        }
        state.generation += 1
        state.unverified = false
        state.unverifiedSince = nil
        state.translator = translator
        if mismatch { self.state.withLock { $0.incrementalMismatches += 1 } }
        return loop.publish(table)
    }

    /// The full translation after incremental rebuilds, off the rebuild loop: on a thread that runs
    /// only when a CPU is otherwise idle, or (`urgent`, unverified for too long) at nice 19,
    /// so that it delays no rebuild. Its result counts only if no rebuild happened meanwhile
    /// (`generation`); otherwise another verification is scheduled, no sooner than this one took.
    private func verifyInBackground(_ objects: KubeObjects, generation: Int, urgent: Bool) {
        let configuration = configuration
        Task { [self] in
            let started = ContinuousClock.now
            let work: @Sendable () -> (Translation, IncrementalTranslator) = {
                // On this thread only: at idle priority, it must not use other threads at normal priority.
                let translation = Translator.translate(objects, configuration: configuration, onEveryCore: false)
                return (translation, IncrementalTranslator(objects: objects, translation: translation, configuration: configuration))
            }
            let (translation, translator) = await IdleThread.run(idle: !urgent, work)
            let took = ContinuousClock.now - started
            let adopted = incremental.withLock { state -> Bool in
                state.runningVerifications -= 1
                if urgent { state.urgentVerificationRunning = false }
                state.lastVerification = took
                guard state.generation == generation, state.unverified else { return false }
                _ = adoptFull(translation.table, translator: translator, verifying: true, state: &state)
                return true
            }
            state.withLock {
                $0.verifications += 1
                $0.verificationSeconds += Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
            }
            if adopted {
                report(translation)
                logger.info(
                    "incremental rebuilds verified by a full translation",
                    metadata: ["elapsed": "\(took)", "urgent": "\(urgent)", "hash": "\(translation.table.contentHashHex)"])
            } else {
                logger.debug("a change came during the verification; it runs again", metadata: ["elapsed": "\(took)"])
                scheduleVerification()
            }
            options.afterFullTranslation?()
        }
    }

    /// Wakes the rebuild loop `delay` (`verifyAfter`) from now for a full translation, unless a
    /// wake-up is pending.
    private func scheduleVerification(after delay: Duration? = nil) {
        let schedule = incremental.withLock { state -> Bool in
            defer { state.verificationScheduled = true }
            return !state.verificationScheduled
        }
        guard schedule else { return }
        // No sooner than the last verification took: at most half a core goes to verifying.
        let delay = max(delay ?? options.verifyAfter, incremental.withLock { $0.lastVerification })
        Task { [self] in
            try? await Task.sleep(for: delay)
            incremental.withLock {
                $0.verificationScheduled = false
                $0.verificationDue = true
            }
            loop.request()
        }
    }
}

/// The result of `body`, run on a thread of its own from now on.
final class ThreadResult<Value: Sendable>: Sendable {
    private let result = Mutex<Value?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () -> Value) {
        Thread { [self] in
            let value = body()
            result.withLock { $0 = value }
            done.signal()
        }.start()
    }

    /// Blocks until `body` returned. Once only.
    func wait() -> Value {
        done.wait()
        return result.withLock { $0.take()! }
    }
}

/// Runs work on a thread of its own, under Linux's SCHED_IDLE policy (`idle`: it gets a CPU only
/// when nothing else wants one) or at nice 19 (it gets a small share of a busy CPU, so it finishes,
/// and still yields to everything else).
enum IdleThread {
    static func run<T: Sendable>(idle: Bool = true, _ body: @escaping @Sendable () -> T) async -> T {
        guard idle else { return await LowPriorityThread.run(body) }
        return await withCheckedContinuation { continuation in
            let thread = Thread {
                #if os(Linux)
                var parameters = sched_param()
                // SCHED_IDLE (5); Glibc's module does not export the constant.
                _ = pthread_setschedparam(pthread_self(), 5, &parameters)
                #endif
                continuation.resume(returning: body())
            }
            thread.start()
        }
    }
}
