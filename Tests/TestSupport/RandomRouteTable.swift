import RouteModel

/// Generated route tables covering every field, for round-trip tests and benchmarks.
public enum RandomRouteTable {
    public static func make(seed: UInt64, hosts: Int = 20) -> RouteTable {
        var random = SplitMix64(seed: seed)
        func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }
        func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
        func word() -> String { pick(["api", "web", "shop", "v1", "v2", "static", "ö", "a-b", "x%2F"]) + String(random.next() % 50) }
        /// For header values, which are ASCII.
        func asciiWord() -> String { pick(["api", "web", "shop", "v1", "a-b"]) + String(random.next() % 50) }

        var clusters: [Cluster] = []
        for index in 0..<max(1, hosts / 2) {
            let endpoints = (0..<Int(random.next() % 4)).map { pod in
                chance(20)
                    ? Endpoint(address: "fd00::\(index):\(pod)", port: Int(1 + random.next() % 65535))
                    : Endpoint(address: "10.\(index % 256).\(pod).\(random.next() % 256)", port: Int(1 + random.next() % 65535))
            }
            clusters.append(
                Cluster(
                    namespace: "ns\(index % 3)", service: "svc\(index)",
                    servicePort: chance(30) ? .name("http\(index)") : .number(Int(1 + random.next() % 65535)),
                    endpoints: endpoints, loadBalancing: chance(50) ? .roundRobin : .leastRequest,
                    timeouts: ClusterTimeouts(
                        connectMilliseconds: Int(random.next() % 10_000), responseHeaderMilliseconds: Int(random.next() % 100_000),
                        idleMilliseconds: Int(random.next() % 100_000))))
        }
        var certificates: [TLSCertificate] = []
        for index in 0..<Int(random.next() % 4) {
            certificates.append(
                TLSCertificate(
                    name: "ns\(index)/tls\(index)", certificateChainPEM: "-----BEGIN CERTIFICATE-----\n\(word())\n-----END CERTIFICATE-----\n",
                    privateKeyPEM: "-----BEGIN PRIVATE KEY-----\n\(word())\n-----END PRIVATE KEY-----\n",
                    metadata: CertificateMetadata(
                        subject: "CN=\(word())", issuer: "CN=issuer", dnsNames: [word(), word()], serialNumber: "01:02",
                        notBefore: Int64(random.next() % 2_000_000_000), notAfter: Int64(random.next() % 4_000_000_000) - 1_000_000_000)))
        }
        func backend() -> Backend {
            var options = RouteOptions(maxRequestBodyBytes: chance(30) ? Int64(random.next() % 1_000_000) + 1 : nil)
            if chance(10) {
                // ingress-nginx annotations' settings.
                options.rewriteTarget = chance(50) ? "/$1" : nil
                options.redirect = chance(30) ? RedirectRule(status: chance(50) ? 301 : 307, location: "https://\(asciiWord()).test$request_uri") : nil
                options.appRoot = chance(30) ? "/\(asciiWord())" : nil
                options.forwardedPrefix = chance(30) ? "/\(asciiWord())" : nil
                options.upstreamHost = chance(30) ? "\(asciiWord()).internal" : nil
                options.upstreamProtocol = pick(UpstreamProtocol.allCases)
                if options.upstreamProtocol.usesTLS || chance(10) {
                    options.upstreamTLS = UpstreamTLS(
                        serverName: "\(asciiWord()).svc", sendsServerName: chance(80), verify: chance(50),
                        trustedCertificatesPEM: chance(50) ? "-----BEGIN CERTIFICATE-----\n\(asciiWord())\n-----END CERTIFICATE-----\n" : nil)
                }
                if chance(20) {
                    options.upstream = UpstreamOptions(
                        connectTimeoutMilliseconds: chance(50) ? 1000 : nil, maxAttempts: chance(50) ? Int(random.next() % 4) : nil,
                        retryOnConnectError: chance(80), retryOnConnectTimeout: chance(80), requestBufferBytes: chance(30) ? 65536 : nil,
                        retryAfterSending: chance(50), retryStatuses: chance(50) ? [502, 503] : [], retryNonIdempotent: chance(20))
                }
                if chance(20) {
                    options.defaultBackend = DefaultBackendRule(
                        cluster: pick(clusters).name, interceptedStatuses: chance(50) ? [404, 503] : [], interceptsPodAnswers: chance(70),
                        servesWithoutEndpoints: chance(70))
                }
            }
            return Backend(
                cluster: pick(clusters).name, source: RouteSource(namespace: "ns\(random.next() % 3)", ingress: word()),
                httpsRedirect: chance(50), options: options)
        }
        var virtualHosts: [VirtualHost] = []
        var seen = Set<HostPattern>()
        for index in 0..<hosts {
            let hostname: HostPattern = index == 0 ? .any : (chance(20) ? .wildcard(suffix: "\(word()).example.com") : .exact("\(word())-\(index).example.com"))
            guard seen.insert(hostname).inserted else { continue }
            var routes: [Route] = []
            var keys = Set<String>()
            for _ in 0..<Int(random.next() % 25) {
                let kind = pick(PathMatchKind.allCases)
                let path = "/" + (0..<Int(random.next() % 4)).map { _ in word() }.joined(separator: "/")
                guard keys.insert("\(kind.matchesAsPrefix)\(path)").inserted else { continue }
                routes.append(Route(match: PathMatch(kind: kind, path: path), backend: backend()))
            }
            let tls: TLSBinding? = chance(40)
                ? TLSBinding(
                    certificate: certificates.isEmpty || chance(30) ? nil : pick(certificates).name,
                    hsts: chance(50) ? HSTSPolicy(maxAgeSeconds: Int(random.next() % 63_072_000), includeSubdomains: chance(50), preload: chance(50)) : nil)
                : nil
            virtualHosts.append(
                VirtualHost(
                    hostname: hostname, routes: routes, defaultBackend: chance(30) ? backend() : nil, tls: tls, regexPaths: chance(10),
                    redirectToHost: chance(5) ? "www.\(asciiWord()).test" : nil))
        }
        return RouteTable(
            virtualHosts: virtualHosts, clusters: clusters, certificates: certificates,
            defaultCertificate: certificates.isEmpty || chance(50) ? nil : pick(certificates).name)
    }
}
