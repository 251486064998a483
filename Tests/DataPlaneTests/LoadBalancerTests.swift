import NIOCore
import RouteModel
import Testing
@testable import DataPlane

@Suite struct LoadBalancerTests {
    static let endpoints = (1...3).map { Endpoint(address: "10.0.0.\($0)", port: 8080) }

    func cluster(_ policy: LoadBalancingPolicy) -> Cluster {
        Cluster(namespace: "default", service: "web", servicePort: .number(80), endpoints: Self.endpoints, loadBalancing: policy)
    }

    @Test func roundRobinCycles() {
        let balancer = LoadBalancer()
        let picks = (0..<6).map { _ in balancer.pick(cluster(.roundRobin))! }
        #expect(picks == Self.endpoints + Self.endpoints)
    }

    @Test func retriesSkipTriedEndpoints() {
        let balancer = LoadBalancer()
        var tried: [Endpoint] = []
        for _ in 0..<3 { tried.append(balancer.pick(cluster(.roundRobin), skipping: tried)!) }
        #expect(Set(tried) == Set(Self.endpoints))
        #expect(balancer.pick(cluster(.roundRobin), skipping: tried) == nil)
    }

    @Test func leastRequestPrefersTheLessBusyOfTwo() {
        let balancer = LoadBalancer()
        for _ in 0..<5 {
            balancer.started(Self.endpoints[0])
            balancer.started(Self.endpoints[1])
        }
        // Any pair of two random choices includes endpoint 3 or is (1, 2): endpoint 3 must win whenever drawn.
        var counts: [Endpoint: Int] = [:]
        for _ in 0..<300 { counts[balancer.pick(cluster(.leastRequest))!, default: 0] += 1 }
        #expect(counts[Self.endpoints[2], default: 0] > 150, "\(counts)")
        for _ in 0..<5 { balancer.finished(Self.endpoints[0]) }
        #expect(balancer.pick(cluster(.leastRequest), skipping: [Self.endpoints[2]]) == Self.endpoints[0])
    }

    @Test func consecutiveConnectFailuresEjectWithGrowingBackoff() {
        let balancer = LoadBalancer(policy: .init(ejectAfter: 3, baseEjection: .seconds(5), maxEjection: .seconds(12)))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        let bad = Self.endpoints[0]
        #expect(!balancer.connectFailed(bad, now: start))
        #expect(!balancer.connectFailed(bad, now: start))
        #expect(balancer.connectFailed(bad, now: start), "the third consecutive failure ejects")
        #expect(balancer.isEjected(bad, now: start + .seconds(4)))
        #expect(!balancer.isEjected(bad, now: start + .seconds(6)))
        for _ in 0..<(3 * 10) { balancer.pick(cluster(.roundRobin), now: start + .seconds(1)).map { #expect($0 != bad) } }
        // Ejected again: twice as long, then capped.
        for _ in 0..<3 { balancer.connectFailed(bad, now: start + .seconds(6)) }
        #expect(balancer.isEjected(bad, now: start + .seconds(15)))
        #expect(!balancer.isEjected(bad, now: start + .seconds(17)))
        for _ in 0..<3 { balancer.connectFailed(bad, now: start + .seconds(20)) }
        #expect(!balancer.isEjected(bad, now: start + .seconds(33)), "capped at 12 s")
    }

    @Test func aSuccessResetsTheFailureCount() {
        let balancer = LoadBalancer()
        let endpoint = Self.endpoints[1]
        balancer.connectFailed(endpoint)
        balancer.connectFailed(endpoint)
        balancer.connectSucceeded(endpoint)
        #expect(!balancer.connectFailed(endpoint))
        #expect(!balancer.isEjected(endpoint))
    }

    @Test func withEveryEndpointEjectedAllAreUsedAgain() {
        let balancer = LoadBalancer(policy: .init(ejectAfter: 1))
        for endpoint in Self.endpoints { balancer.connectFailed(endpoint) }
        #expect(balancer.pick(cluster(.roundRobin)) != nil)
    }
}
