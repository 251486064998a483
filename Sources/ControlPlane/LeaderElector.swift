import Foundation
import KubeClient
import KubeTypes
import Logging
import Synchronization

/// Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules and default timings.
///
/// - A candidate takes the Lease when it is free or its holder has not renewed it for
///   `leaseDuration`, measured on the candidate's own clock from when it last saw the record
///   change (so clock skew between replicas does not matter).
/// - The leader renews every `retryPeriod`; if it cannot renew within `renewDeadline` it stops
///   leading (before anyone else may take over, since renewDeadline < leaseDuration).
/// - Every write is conditional on the Lease's resourceVersion: two candidates never both win.
/// - A leader that stops (cancellation) releases the Lease so a successor need not wait.
public final class LeaderElector: Sendable {
    public struct Timings: Sendable {
        public var leaseDuration: Duration = .seconds(15)
        public var renewDeadline: Duration = .seconds(10)
        public var retryPeriod: Duration = .seconds(2)
        /// Give the Lease up when stopped, so a successor need not wait out the duration. Off, a
        /// stop looks to the others like a crash (tests use this).
        public var releaseOnStop = true
        public init() {}
    }

    public let namespace: String
    public let name: String
    public let identity: String
    private let client: KubeClient
    private let timings: Timings
    private let logger: Logger
    private let leading = Atomic<Bool>(false)
    private let transitions = Atomic<Int>(0)

    public init(
        client: KubeClient, namespace: String, name: String = "portico-leader", identity: String, timings: Timings = .init(),
        logger: Logger = Logger(label: "portico.leader")
    ) {
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timings = timings
        self.logger = logger
    }

    public var isLeader: Bool { leading.load(ordering: .acquiring) }

    /// How many times this elector started or stopped leading.
    public var changes: Int { transitions.load(ordering: .relaxed) }

    /// Campaigns and renews until cancelled; `onChange` is called with each change of leadership.
    public func run(onChange: @escaping @Sendable (Bool) -> Void = { _ in }) async {
        var observed: (record: LeaseSpec?, at: ContinuousClock.Instant)?
        var lastRenewal = ContinuousClock.now
        while !Task.isCancelled {
            let acquired: Bool
            do {
                acquired = try await tryAcquireOrRenew(observed: &observed)
            } catch {
                logger.warning("lease update failed", metadata: ["lease": "\(namespace)/\(name)", "error": "\(error)"])
                acquired = false
            }
            if acquired {
                lastRenewal = ContinuousClock.now
                if !isLeader { setLeading(true, onChange) }
            } else if isLeader, ContinuousClock.now - lastRenewal >= timings.renewDeadline || observed?.record?.holderIdentity != identity {
                setLeading(false, onChange)
            }
            do { try await Task.sleep(for: timings.retryPeriod) } catch { break }
        }
        if isLeader {
            setLeading(false, onChange)
            // In a task of its own: this one is cancelled, and its requests would fail at once.
            if timings.releaseOnStop { await Task { await release() }.value }
        }
    }

    private func setLeading(_ value: Bool, _ onChange: @Sendable (Bool) -> Void) {
        leading.store(value, ordering: .releasing)
        transitions.add(1, ordering: .relaxed)
        logger.notice(value ? "started leading" : "stopped leading", metadata: ["lease": "\(namespace)/\(name)", "identity": "\(identity)"])
        onChange(value)
    }

    private func tryAcquireOrRenew(observed: inout (record: LeaseSpec?, at: ContinuousClock.Instant)?) async throws -> Bool {
        let now = Self.microTime(Date())
        let durationSeconds = Int32(timings.leaseDuration.components.seconds)
        let lease: Lease
        do {
            lease = try await client.get(Lease.self, namespace: namespace, name: name)
        } catch let error as KubeAPIError where error.status == 404 {
            let fresh = Lease(
                metadata: ObjectMeta(name: name, namespace: namespace),
                spec: LeaseSpec(holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0))
            do {
                _ = try await client.create(fresh)
            } catch let error as KubeAPIError where error.status == 409 {
                return false  // someone else created it first
            }
            observed = (fresh.spec, .now)
            return true
        }
        let record = lease.spec ?? LeaseSpec()
        if observed?.record != record { observed = (record, .now) }
        let heldByOther = record.holderIdentity.map { !$0.isEmpty && $0 != identity } ?? false
        let duration = record.leaseDurationSeconds.map { Duration.seconds(Int64($0)) } ?? timings.leaseDuration
        if heldByOther, let seen = observed?.at, ContinuousClock.now - seen < duration {
            return false
        }
        var updated = lease
        var spec = record
        if spec.holderIdentity != identity {
            spec.acquireTime = now
            spec.leaseTransitions = (spec.leaseTransitions ?? 0) + (spec.holderIdentity?.isEmpty == false ? 1 : 0)
        }
        spec.holderIdentity = identity
        spec.leaseDurationSeconds = durationSeconds
        spec.renewTime = now
        updated.spec = spec
        do {
            _ = try await client.replace(updated)
        } catch let error as KubeAPIError where error.status == 409 {
            return false  // lost a race: the next round re-reads
        }
        observed = (spec, .now)
        return true
    }

    /// Gives the Lease up (holder cleared), so another replica need not wait out the duration.
    private func release() async {
        guard var lease = try? await client.get(Lease.self, namespace: namespace, name: name), lease.spec?.holderIdentity == identity else { return }
        lease.spec?.holderIdentity = ""
        lease.spec?.leaseDurationSeconds = 1
        _ = try? await client.replace(lease)
    }

    static func microTime(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"
        return formatter.string(from: date)
    }
}
