/// Routes for one host pattern, tried longest match first.
public struct VirtualHost: Sendable, Hashable {
    public var hostname: HostPattern
    /// Sorted; at most one route per (path, kind as matched).
    public var routes: [Route]
    /// Answers requests that match no route: the Ingress `defaultBackend`.
    public var defaultBackend: Backend?
    /// Present when the host is listed in an Ingress `spec.tls`.
    public var tls: TLSBinding?
    /// ingress-nginx's `use-regex` (or `rewrite-target`) on any Ingress of the host: every route's path
    /// is a regular expression matched case-insensitively at the start of the request path, tried
    /// in ingress-nginx's order (longest path first, then the greater path), the first match winning.
    public var regexPaths: Bool
    /// ingress-nginx's `from-to-www-redirect`: every request is answered 308 to this host, keeping the path.
    public var redirectToHost: String?

    public init(
        hostname: HostPattern, routes: [Route] = [], defaultBackend: Backend? = nil, tls: TLSBinding? = nil, regexPaths: Bool = false,
        redirectToHost: String? = nil
    ) {
        self.hostname = hostname
        self.routes = routes
        self.defaultBackend = defaultBackend
        self.tls = tls
        self.regexPaths = regexPaths
        self.redirectToHost = redirectToHost
    }
}

/// The certificate served for a TLS host.
public struct TLSBinding: Sendable, Hashable {
    /// Name of an entry of `RouteTable.certificates`, or nil for the worker's default certificate
    /// (no secret named, or the named secret is missing or invalid).
    public var certificate: String?
    /// Strict-Transport-Security for HTTPS responses of this host; nil for none.
    public var hsts: HSTSPolicy?

    public init(certificate: String?, hsts: HSTSPolicy? = nil) {
        self.certificate = certificate
        self.hsts = hsts
    }
}

public struct HSTSPolicy: Sendable, Hashable {
    public var maxAgeSeconds: Int
    public var includeSubdomains: Bool
    public var preload: Bool

    public init(maxAgeSeconds: Int, includeSubdomains: Bool = false, preload: Bool = false) {
        self.maxAgeSeconds = maxAgeSeconds
        self.includeSubdomains = includeSubdomains
        self.preload = preload
    }
}
