import Foundation
import KubeClient
import KubeTypes
import Logging
import Synchronization
import Translator

/// Writes what users read back from the cluster, and only while this replica leads:
/// - `status.loadBalancer.ingress` of every accepted Ingress is set to the published addresses, and
///   cleared on an Ingress that stops being served (only when it still shows our addresses, so
///   another controller's status is never touched);
/// - each rejection of an Ingress becomes a `Warning` Event on it, once per object generation and
///   reason, as `kubectl describe ingress` shows them.
public final class StatusWriter: Sendable {
    public enum Addresses: Sendable {
        /// Neither flag: status is left alone; Events are still posted.
        case none
        /// `--publish-address`: IPs or host names.
        case fixed([String])
        /// `--publish-service NAMESPACE/NAME`: its load balancer addresses, else its external
        /// IPs, else its cluster IP (an ExternalName Service: its name).
        case service(Informer<Service>)
    }

    public struct Statistics: Sendable, Equatable {
        public var statusWrites = 0
        public var events = 0
        public var errors = 0
    }

    private let client: KubeClient
    private let ingresses: Informer<Ingress>
    private let addresses: Addresses
    private let elector: LeaderElector?
    private let component: String
    private let instance: String
    private let logger: Logger
    private struct State {
        var translation: Translation?
        var emittedEvents: Set<String> = []
        var statistics = Statistics()
    }
    private let state = Mutex(State())
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    public init(
        client: KubeClient, ingresses: Informer<Ingress>, addresses: Addresses, elector: LeaderElector?, instance: String,
        component: String = "portico", logger: Logger = Logger(label: "portico.status")
    ) {
        self.client = client
        self.ingresses = ingresses
        self.addresses = addresses
        self.elector = elector
        self.instance = instance
        self.component = component
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// A new translation to reconcile against (from `KubeSource`).
    public func translated(_ translation: Translation) {
        state.withLock { $0.translation = translation }
        wake.yield()
    }

    /// Something else changed: leadership, or the published Service.
    public func poke() { wake.yield() }

    /// Reconciles on every wake-up until cancelled.
    public func run() async {
        if case .service(let informer) = addresses {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await informer.run { [weak self] in self?.poke() } }
                group.addTask { await self.loop() }
                await group.next()
                group.cancelAll()
            }
        } else {
            await loop()
        }
    }

    private func loop() async {
        for await _ in wakeups {
            guard elector?.isLeader ?? true else { continue }
            await reconcile()
        }
    }

    public var publishedAddresses: [IngressLoadBalancerIngress] {
        let names: [String]
        switch addresses {
        case .none: return []
        case .fixed(let list): names = list
        case .service(let informer):
            guard let service = informer.objects.first else { return [] }
            if let balancers = service.status?.loadBalancer?.ingress, !balancers.isEmpty {
                return balancers.map { IngressLoadBalancerIngress(ip: $0.ip, hostname: $0.hostname) }
            }
            if service.spec?.type == "ExternalName", let name = service.spec?.externalName { names = [name] }
            else if let external = service.spec?.externalIPs, !external.isEmpty { names = external }
            else { names = [service.spec?.clusterIP].compactMap { $0 }.filter { !$0.isEmpty && $0 != "None" } }
        }
        return names.map { name in
            name.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }) && name.contains(where: { $0 == "." || $0 == ":" })
                ? IngressLoadBalancerIngress(ip: name) : IngressLoadBalancerIngress(hostname: name)
        }
    }

    func reconcile() async {
        guard let translation = state.withLock({ $0.translation }) else { return }
        let desired = publishedAddresses
        let accepted = Set(translation.acceptedIngresses)
        var writesStatus = true
        if case .none = addresses { writesStatus = false }
        for ingress in ingresses.objects where writesStatus {
            let current = ingress.status?.loadBalancer?.ingress ?? []
            let target: [IngressLoadBalancerIngress]
            if accepted.contains(ingress.ref) {
                target = desired
            } else if !current.isEmpty, current == desired {
                target = []
            } else {
                continue
            }
            guard current != target else { continue }
            await writeStatus(ingress, target)
        }
        for rejection in translation.rejections where rejection.object.kind == Ingress.kind {
            guard let ingress = ingresses.objects.first(where: { $0.ref == rejection.object }) else { continue }
            let key = "\(ingress.metadata.uid ?? ingress.ref.description)/\(ingress.metadata.generation ?? 0)/\(rejection.reason.rawValue)/\(rejection.message)"
            guard state.withLock({ !$0.emittedEvents.contains(key) }) else { continue }
            if await postEvent(about: ingress, rejection) { state.withLock { _ = $0.emittedEvents.insert(key) } }
        }
    }

    private func writeStatus(_ ingress: Ingress, _ addresses: [IngressLoadBalancerIngress]) async {
        struct Patch: Encodable {
            struct Status: Encodable {
                struct LoadBalancer: Encodable {
                    var ingress: [IngressLoadBalancerIngress]?
                    func encode(to encoder: any Encoder) throws {
                        var container = encoder.container(keyedBy: CodingKeys.self)
                        // An explicit null clears the list (JSON merge patch).
                        if let ingress { try container.encode(ingress, forKey: .ingress) } else { try container.encodeNil(forKey: .ingress) }
                    }
                    enum CodingKeys: String, CodingKey { case ingress }
                }
                var loadBalancer: LoadBalancer
            }
            var status: Status
        }
        let patch = Patch(status: .init(loadBalancer: .init(ingress: addresses.isEmpty ? nil : addresses)))
        do {
            _ = try await client.mergePatch(
                Ingress.self, namespace: ingress.metadata.namespace ?? "default", name: ingress.name, subresource: "status",
                patch: try JSONEncoder().encode(patch))
            state.withLock { $0.statistics.statusWrites += 1 }
            logger.info(
                addresses.isEmpty ? "cleared Ingress status" : "set Ingress status",
                metadata: ["ingress": "\(ingress.ref)", "addresses": "\(addresses.map { $0.ip ?? $0.hostname ?? "" })"])
        } catch {
            state.withLock { $0.statistics.errors += 1 }
            logger.warning("cannot write Ingress status", metadata: ["ingress": "\(ingress.ref)", "error": "\(error)"])
        }
    }

    private func postEvent(about ingress: Ingress, _ rejection: Rejection) async -> Bool {
        let now = Self.timestamp(Date())
        let namespace = ingress.metadata.namespace ?? "default"
        let event = KubeEvent(
            metadata: ObjectMeta(name: "\(ingress.name).\(String(UInt64(Date().timeIntervalSince1970 * 1e9), radix: 16))", namespace: namespace),
            involvedObject: InvolvedObject(
                kind: Ingress.kind, apiVersion: Ingress.apiVersion, namespace: namespace, name: ingress.name, uid: ingress.metadata.uid,
                resourceVersion: ingress.metadata.resourceVersion),
            reason: rejection.reason.rawValue, message: rejection.field.map { "\($0): \(rejection.message)" } ?? rejection.message, type: "Warning",
            source: EventSource(component: component), firstTimestamp: now, lastTimestamp: now, count: 1, reportingComponent: component,
            reportingInstance: instance)
        do {
            _ = try await client.create(event)
            state.withLock { $0.statistics.events += 1 }
            return true
        } catch {
            state.withLock { $0.statistics.errors += 1 }
            logger.warning("cannot post an Event", metadata: ["ingress": "\(ingress.ref)", "error": "\(error)"])
            return false
        }
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
