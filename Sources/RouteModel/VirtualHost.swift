/// Routes for one host pattern, tried longest match first.
public struct VirtualHost: Sendable, Hashable {
    public var hostname: HostPattern
    /// Sorted; at most one route per (path, kind as matched).
    public var routes: [Route]
    /// Answers requests that match no route: the Ingress `defaultBackend`.
    public var defaultBackend: Backend?
    /// Present when the host is listed in an Ingress `spec.tls`.
    public var tls: TLSBinding?

    public init(hostname: HostPattern, routes: [Route] = [], defaultBackend: Backend? = nil, tls: TLSBinding? = nil) {
        self.hostname = hostname
        self.routes = routes
        self.defaultBackend = defaultBackend
        self.tls = tls
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
