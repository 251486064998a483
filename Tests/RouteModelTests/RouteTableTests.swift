import Testing
@testable import RouteModel

@Suite struct RouteTableTests {
    static func backend(_ name: String) -> Backend {
        Backend(cluster: "default/\(name):80", source: RouteSource(namespace: "default", ingress: "ing"))
    }

    static func route(_ kind: PathMatchKind, _ path: String, _ service: String) -> Route {
        Route(match: PathMatch(kind: kind, path: path), backend: backend(service))
    }

    /// The same routes twice: as written (matched by scanning) and padded past
    /// `RouteIndex.linearLimit` routes (matched through the exact-path map and the segment trie).
    static let shopRoutes = [
        route(.prefix, "/", "root"), route(.prefix, "/api", "api"), route(.exact, "/api", "api-exact"),
        route(.prefix, "/api/v2/", "v2"), route(.exact, "/Case", "case"),
    ]
    static let padding = (0..<RouteIndex.linearLimit).map { route(.prefix, "/zz/pad\($0)", "pad") }

    static let table = makeTable(shop: shopRoutes)
    static let trieTable = makeTable(shop: shopRoutes + padding)

    static func makeTable(shop: [Route]) -> RouteTable { RouteTable(
        virtualHosts: [
            VirtualHost(hostname: .exact("shop.example.com"), routes: shop),
            VirtualHost(hostname: .wildcard(suffix: "example.com"), routes: [route(.prefix, "/", "wild")]),
            VirtualHost(hostname: .exact("nodefault.com"), routes: [route(.exact, "/only", "only")]),
            VirtualHost(
                hostname: .exact("fallback.com"), routes: [route(.prefix, "/x", "x")], defaultBackend: backend("fallback")),
            VirtualHost(hostname: .any, routes: [route(.prefix, "/any", "any")], defaultBackend: backend("catchall")),
        ],
        clusters: [], certificates: [])
    }

    func service(_ host: String, _ path: String, in table: RouteTable = Self.table) -> String {
        switch table.resolve(host: host, path: path) {
        case .route(let h, let r): String(table.virtualHosts[h].routes[r].backend.cluster.dropFirst(8).dropLast(3))
        case .defaultBackend(let h): "default:" + String(table.virtualHosts[h].defaultBackend!.cluster.dropFirst(8).dropLast(3))
        case .notFound: "404"
        }
    }

    @Test(arguments: [
        ("shop.example.com", "/", "root"),
        ("shop.example.com", "/anything", "root"),
        ("shop.example.com", "/api", "api-exact"),
        ("shop.example.com", "/api/", "api"),
        ("shop.example.com", "/api/v1", "api"),
        ("shop.example.com", "/apix", "root"),
        ("shop.example.com", "/api/v2", "v2"),
        ("shop.example.com", "/api/v2/x/y", "v2"),
        ("shop.example.com", "/api?debug=1", "api-exact"),
        ("shop.example.com", "/case", "root"),
        ("shop.example.com", "/Case", "case"),
        ("SHOP.Example.Com", "/api/v2", "v2"),
        ("shop.example.com:443", "/api/v2", "v2"),
        ("shop.example.com.", "/api/v2", "v2"),
        ("other.example.com", "/x", "wild"),
        ("a.b.example.com", "/x", "default:catchall"),
        ("example.com", "/x", "default:catchall"),
        ("nodefault.com", "/only", "only"),
        ("nodefault.com", "/only/", "404"),
        ("nodefault.com", "/other", "404"),
        ("fallback.com", "/x/1", "x"),
        ("fallback.com", "/y", "default:fallback"),
        ("unknown.org", "/any/thing", "any"),
        ("unknown.org", "/nothing", "default:catchall"),
        ("", "/any", "any"),
        ("[2001:db8::1]:8080", "/any", "any"),
        ("10.0.0.1", "/any", "any"),
    ])
    func resolves(_ host: String, _ path: String, _ expected: String) {
        #expect(service(host, path) == expected, "scanned")
        #expect(service(host, path, in: Self.trieTable) == expected, "through the trie")
    }

    @Test func paddedHostUsesTheTrie() {
        let shop = Self.trieTable.virtualHost(forHost: "shop.example.com")!
        #expect(Self.trieTable.index.hosts[shop].trieRoot >= 0)
        #expect(Self.table.index.hosts[Self.table.virtualHost(forHost: "shop.example.com")!].trieRoot < 0)
        #expect(service("shop.example.com", "/zz/pad3/x", in: Self.trieTable) == "pad")
        #expect(service("shop.example.com", "/zz", in: Self.trieTable) == "root")
    }

    @Test func withoutAnyHostUnknownHostsGet404() {
        let table = RouteTable(
            virtualHosts: [VirtualHost(hostname: .exact("a.com"), routes: [Self.route(.prefix, "/", "a")])], clusters: [], certificates: [])
        #expect(table.resolve(host: "b.com", path: "/") == .notFound)
        #expect(table.resolve(host: "a.com", path: "/") == .route(virtualHost: 0, route: 0))
    }

    @Test func emptyTableResolvesNothing() {
        #expect(RouteTable.empty.resolve(host: "a.com", path: "/") == .notFound)
        #expect(RouteTable.empty.contentHashHex.count == 16)
    }

    @Test func manyHostsAndPathsAllResolve() {
        var hosts: [VirtualHost] = []
        for index in 0..<2000 {
            hosts.append(
                VirtualHost(
                    hostname: .exact("host-\(index).example.com"),
                    routes: [Self.route(.prefix, "/svc-\(index)", "s\(index)"), Self.route(.exact, "/e/\(index)", "e\(index)")]))
        }
        let table = RouteTable(virtualHosts: hosts, clusters: [], certificates: [])
        for index in stride(from: 0, to: 2000, by: 7) {
            let hostIndex = table.virtualHost(forHost: "host-\(index).example.com")!
            #expect(table.virtualHosts[hostIndex].hostname == .exact("host-\(index).example.com"))
            guard case .route(_, let route) = table.resolve(host: "host-\(index).example.com", path: "/svc-\(index)/x") else {
                Issue.record("no route for \(index)")
                continue
            }
            #expect(table.virtualHosts[hostIndex].routes[route].match.path == "/svc-\(index)")
            #expect(table.resolve(host: "host-\(index).example.com", path: "/svc-\(index + 1)") == .notFound)
        }
    }

    @Test func aLargeTableBuiltOnTwoCoresEqualsOneReachedByADelta() throws {
        // Past `PartedWork.partThreshold` hosts the index and the hashes are built on two cores;
        // a delta patches both from a small table one entry at a time.
        let count = PartedWork.partThreshold + 10
        let hosts = (0..<count).map { index in
            VirtualHost(hostname: .exact("host-\(index).example.com"), routes: [Self.route(.prefix, "/", "s\(index)")])
        }
        let clusters = (0..<count).map { index in
            Cluster(namespace: "default", service: "s\(index)", servicePort: .number(80), endpoints: [Endpoint(address: "10.0.0.1", port: 8080)])
        }
        let whole = RouteTable(virtualHosts: hosts.reversed(), clusters: clusters.reversed(), certificates: [])
        let small = RouteTable(virtualHosts: Array(hosts.prefix(3)), clusters: Array(clusters.prefix(3)), certificates: [])
        let patched = try small.applying(small.delta(to: whole))
        #expect(whole == patched)
        #expect(whole.contentHash == patched.contentHash)
        for index in stride(from: 0, to: count, by: 97) {
            #expect(whole.cluster(named: "default/s\(index):80")?.service == "s\(index)")
            guard case .route(let host, _) = whole.resolve(host: "host-\(index).example.com", path: "/x") else {
                Issue.record("no route for host \(index)")
                continue
            }
            #expect(whole.virtualHosts[host].hostname == .exact("host-\(index).example.com"))
        }
    }

    @Test func constructionSortsSoOrderDoesNotMatter() {
        let a = VirtualHost(hostname: .exact("a.com"), routes: [Self.route(.prefix, "/b", "b"), Self.route(.prefix, "/a", "a")])
        let b = VirtualHost(hostname: .wildcard(suffix: "a.com"), routes: [])
        let first = RouteTable(virtualHosts: [a, b], clusters: [], certificates: [])
        var reversed = a
        reversed.routes.reverse()
        let second = RouteTable(virtualHosts: [b, reversed], clusters: [], certificates: [])
        #expect(first == second)
        #expect(first.contentHash == second.contentHash)
        #expect(first.virtualHosts.map(\.hostname.text) == ["a.com", "*.a.com"])
    }

    @Test func hashIsStableAcrossRuns() {
        // A fixed table must hash to a fixed value: snapshots compare hashes between processes.
        let table = RouteTable(
            virtualHosts: [VirtualHost(hostname: .exact("a.com"), routes: [Self.route(.prefix, "/", "a")])],
            clusters: [Cluster(namespace: "default", service: "a", servicePort: .number(80), endpoints: [Endpoint(address: "10.0.0.1", port: 8080)])],
            certificates: [])
        #expect(table.contentHashHex == RouteTable(virtualHosts: table.virtualHosts, clusters: table.clusters, certificates: []).contentHashHex)
        #expect(table.contentHashHex == "6cc90d1121f56965")
    }
}

@Suite struct HostPatternTests {
    @Test(arguments: [
        ("", HostPattern.any), ("foo.com", .exact("foo.com")), ("FOO.com", .exact("foo.com")),
        ("*.foo.com", .wildcard(suffix: "foo.com")), ("a-b.c1.io", .exact("a-b.c1.io")), ("localhost", .exact("localhost")),
    ])
    func parses(_ input: String, _ expected: HostPattern) throws {
        #expect(try HostPattern.parse(input) == expected)
    }

    @Test(arguments: ["*", "*.", "foo.*.com", "*foo.com", "a..b", "-a.com", "a-.com", "a_b.com", "1.2.3.4", ".a.com", "a.com.", "ä.com"])
    func rejects(_ input: String) {
        #expect(throws: HostPatternError.self) { try HostPattern.parse(input) }
    }

    @Test func ordersExactThenWildcardThenAny() {
        let sorted = [HostPattern.any, .wildcard(suffix: "a.com"), .exact("b.com"), .exact("a.com")].sorted()
        #expect(sorted == [.exact("a.com"), .exact("b.com"), .wildcard(suffix: "a.com"), .any])
    }
}
