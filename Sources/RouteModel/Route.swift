/// How a route's path is compared with a request path (networking.k8s.io/v1 `pathType`).
public enum PathMatchKind: String, Sendable, Hashable, CaseIterable {
    /// Case-sensitive equality of the whole path; `/foo` does not match `/foo/`.
    case exact = "Exact"
    /// Element-wise prefix on `/`-separated segments; a trailing slash is ignored.
    case prefix = "Prefix"
    /// Portico's choice: matched exactly like `Prefix`.
    case implementationSpecific = "ImplementationSpecific"

    /// Whether the path is matched as a segment prefix.
    public var matchesAsPrefix: Bool { self != .exact }
}

public struct PathMatch: Sendable, Hashable {
    public var kind: PathMatchKind
    /// The path in normalised form (see `RequestPath`); for prefixes the trailing slash is kept
    /// as written because it does not change what matches.
    public var path: String

    public init(kind: PathMatchKind, path: String) {
        self.kind = kind
        self.path = path
    }
}

/// The Ingress that contributed a route or backend: what `porticoctl explain` names.
public struct RouteSource: Sendable, Hashable, Comparable {
    public var namespace: String
    public var ingress: String

    public init(namespace: String, ingress: String) {
        self.namespace = namespace
        self.ingress = ingress
    }

    public static func < (lhs: RouteSource, rhs: RouteSource) -> Bool {
        (lhs.namespace, lhs.ingress) < (rhs.namespace, rhs.ingress)
    }
}

/// Where a matched request goes, and what is done before it goes there.
public struct Backend: Sendable, Hashable {
    /// Name of an entry of `RouteTable.clusters`.
    public var cluster: String
    public var source: RouteSource
    /// Plain-HTTP requests are answered with a 308 to the https URL.
    public var httpsRedirect: Bool
    public var options: RouteOptions

    public init(cluster: String, source: RouteSource, httpsRedirect: Bool = false, options: RouteOptions = RouteOptions()) {
        self.cluster = cluster
        self.source = source
        self.httpsRedirect = httpsRedirect
        self.options = options
    }
}

/// Per-route settings from Ingress annotations.
///
/// Stored behind one shared reference, copied on write: most routes have none of these (every
/// field nil), and inline they made a `Route` 440 bytes and a `VirtualHost`, whose default
/// backend holds them too, 496, most of a table's memory at 10k Ingresses. Routes without
/// options share one storage object.
public struct RouteOptions: Sendable, Hashable {
    private struct Fields: Sendable, Hashable {
        var maxRequestBodyBytes: Int64? = nil
        var rewriteTarget: String? = nil
        var redirect: RedirectRule? = nil
        var appRoot: String? = nil
        var forwardedPrefix: String? = nil
        var upstreamHost: String? = nil
        var upstream: UpstreamOptions? = nil
        var requestHeaders: HeaderEdits? = nil
        var responseHeaders: HeaderEdits? = nil
        var upstreamProtocol: UpstreamProtocol = .http
        var upstreamTLS: UpstreamTLS? = nil
        var defaultBackend: DefaultBackendRule? = nil
    }

    private static let none = CopyOnWrite(Fields())
    private var fields: CopyOnWrite<Fields>

    /// Largest request body accepted (413 beyond); nil for no limit.
    public var maxRequestBodyBytes: Int64? {
        get { fields.value.maxRequestBodyBytes }
        set { fields.set(\.maxRequestBodyBytes, newValue) }
    }
    /// ingress-nginx's `rewrite-target`: the path sent upstream is this template (see `PathTemplate`)
    /// with the groups of the route's regular expression, found anywhere in the request path, filled
    /// in. Only on routes of hosts whose paths are regular expressions.
    public var rewriteTarget: String? {
        get { fields.value.rewriteTarget }
        set { fields.set(\.rewriteTarget, newValue) }
    }
    /// `permanent-redirect` / `temporal-redirect`: answered here instead of proxied.
    public var redirect: RedirectRule? {
        get { fields.value.redirect }
        set { fields.set(\.redirect, newValue) }
    }
    /// `app-root`: a request for `/` is answered 302 to this path.
    public var appRoot: String? {
        get { fields.value.appRoot }
        set { fields.set(\.appRoot, newValue) }
    }
    /// `x-forwarded-prefix`: sent upstream as X-Forwarded-Prefix (ingress-nginx sends it only with a rewrite).
    public var forwardedPrefix: String? {
        get { fields.value.forwardedPrefix }
        set { fields.set(\.forwardedPrefix, newValue) }
    }
    /// `upstream-vhost`: the Host sent upstream instead of the client's.
    public var upstreamHost: String? {
        get { fields.value.upstreamHost }
        set { fields.set(\.upstreamHost, newValue) }
    }
    /// Timeouts, retries and request buffering toward the route's Pods; nil: the cluster's and worker's.
    public var upstream: UpstreamOptions? {
        get { fields.value.upstream }
        set { fields.set(\.upstream, newValue) }
    }
    /// Fields changed in the request sent upstream (`portico.io/request-headers`, `proxy_set_header`).
    public var requestHeaders: HeaderEdits? {
        get { fields.value.requestHeaders }
        set { fields.set(\.requestHeaders, newValue) }
    }
    /// Fields changed in the response relayed to the client (`portico.io/response-headers`,
    /// `more_set_headers`, `more_clear_headers`, `add_header`).
    public var responseHeaders: HeaderEdits? {
        get { fields.value.responseHeaders }
        set { fields.set(\.responseHeaders, newValue) }
    }
    /// How the Pods are spoken to (`backend-protocol`).
    public var upstreamProtocol: UpstreamProtocol {
        get { fields.value.upstreamProtocol }
        set { fields.set(\.upstreamProtocol, newValue) }
    }
    /// TLS to the Pods, for HTTPS and GRPCS (`proxy-ssl-*`); nil otherwise.
    public var upstreamTLS: UpstreamTLS? {
        get { fields.value.upstreamTLS }
        set { fields.set(\.upstreamTLS, newValue) }
    }
    /// `default-backend` and `custom-http-errors`.
    public var defaultBackend: DefaultBackendRule? {
        get { fields.value.defaultBackend }
        set { fields.set(\.defaultBackend, newValue) }
    }

    public init(
        maxRequestBodyBytes: Int64? = nil, rewriteTarget: String? = nil, redirect: RedirectRule? = nil, appRoot: String? = nil,
        forwardedPrefix: String? = nil, upstreamHost: String? = nil, upstream: UpstreamOptions? = nil, requestHeaders: HeaderEdits? = nil,
        responseHeaders: HeaderEdits? = nil, upstreamProtocol: UpstreamProtocol = .http, upstreamTLS: UpstreamTLS? = nil,
        defaultBackend: DefaultBackendRule? = nil
    ) {
        let given = Fields(
            maxRequestBodyBytes: maxRequestBodyBytes,
            rewriteTarget: rewriteTarget,
            redirect: redirect,
            appRoot: appRoot,
            forwardedPrefix: forwardedPrefix,
            upstreamHost: upstreamHost,
            upstream: upstream,
            requestHeaders: requestHeaders,
            responseHeaders: responseHeaders,
            upstreamProtocol: upstreamProtocol,
            upstreamTLS: upstreamTLS,
            defaultBackend: defaultBackend)
        fields = given == Fields() ? Self.none : CopyOnWrite(given)
    }
}

/// Header changes in the manner of Gateway API's header filters: `remove` drops fields by name
/// (case-insensitive; a name ending in `*` drops every field with that prefix, as headers-more's
/// more_clear_headers does), `set` replaces any field of its name, `add` appends. Applied in that order.
public struct HeaderEdits: Sendable, Hashable {
    public var set: [HeaderField]
    public var add: [HeaderField]
    /// Lowercased.
    public var remove: [String]

    public init(set: [HeaderField] = [], add: [HeaderField] = [], remove: [String] = []) {
        self.set = set
        self.add = add
        self.remove = remove
    }

    public var isEmpty: Bool { self.set.isEmpty && add.isEmpty && remove.isEmpty }

    /// Whether a field of this name is dropped or replaced (names compared case-insensitively).
    public func replaces(_ name: some StringProtocol) -> Bool {
        let lowercased = name.lowercased()
        for removed in remove {
            if removed.hasSuffix("*") ? lowercased.hasPrefix(removed.dropLast()) : lowercased == removed { return true }
        }
        return self.set.contains { $0.name.lowercased() == lowercased }
    }

    /// The fields written after the kept ones, for a response of `status` (request edits: any).
    public func written(status: Int? = nil) -> [HeaderField] {
        let success = status.map { [200, 201, 204, 206, 301, 302, 303, 304, 307, 308].contains($0) } ?? true
        return (self.set + add).filter { success || !$0.onlySuccess }
    }
}

public struct HeaderField: Sendable, Hashable {
    public var name: String
    public var value: String
    /// nginx's add_header without `always`: only on 2xx and 3xx responses of the kinds nginx lists.
    public var onlySuccess: Bool

    public init(name: String, value: String, onlySuccess: Bool = false) {
        self.name = name
        self.value = value
        self.onlySuccess = onlySuccess
    }

    /// A token (RFC 9110 §5.6.2), the only thing a field name may be.
    public static func isName(_ text: some StringProtocol) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { byte in
            (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// Visible ASCII, spaces and tabs, not starting or ending with whitespace: nothing that could
    /// end the field or the head.
    public static func isValue(_ text: some StringProtocol) -> Bool {
        text.utf8.allSatisfy { ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 } && text.first != " " && text.last != " "
    }
}

/// ingress-nginx's `backend-protocol`: what the worker speaks to a route's Pods.
public enum UpstreamProtocol: String, Sendable, Hashable, CaseIterable {
    /// HTTP/1.1 in cleartext.
    case http = "HTTP"
    /// HTTP/1.1 over TLS.
    case https = "HTTPS"
    /// HTTP/2 in cleartext, with prior knowledge.
    case h2c = "H2C"
    /// gRPC: HTTP/2 in cleartext; the worker's own errors are answered as gRPC statuses.
    case grpc = "GRPC"
    /// gRPC over TLS (HTTP/2, ALPN h2).
    case grpcs = "GRPCS"

    public var usesTLS: Bool { self == .https || self == .grpcs }
    public var isHTTP2: Bool { self == .h2c || self == .grpc || self == .grpcs }
    public var isGRPC: Bool { self == .grpc || self == .grpcs }
}

/// TLS to a route's Pods (ingress-nginx's `proxy-ssl-*`). Verification is off unless asked for,
/// as in ingress-nginx: Pods usually present certificates no public CA signed.
public struct UpstreamTLS: Sendable, Hashable {
    /// The name sent as SNI and, when verifying, the one the Pod's certificate must be for.
    public var serverName: String
    /// `proxy-ssl-server-name: off`: no SNI is sent.
    public var sendsServerName: Bool
    /// `proxy-ssl-verify: on`: the Pod's certificate must chain to `trustedCertificatesPEM` and name `serverName`.
    public var verify: Bool
    /// The CA certificates trusted (the `ca.crt` of `proxy-ssl-secret`), PEM; with `verify` and
    /// none, no Pod certificate is accepted.
    public var trustedCertificatesPEM: String?
    /// The certificate chain and key presented to the Pod (`tls.crt` and `tls.key` of `proxy-ssl-secret`), PEM.
    public var clientCertificatePEM: String?
    public var clientKeyPEM: String?

    public init(
        serverName: String, sendsServerName: Bool = true, verify: Bool = false, trustedCertificatesPEM: String? = nil,
        clientCertificatePEM: String? = nil, clientKeyPEM: String? = nil
    ) {
        self.serverName = serverName
        self.sendsServerName = sendsServerName
        self.verify = verify
        self.trustedCertificatesPEM = trustedCertificatesPEM
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKeyPEM = clientKeyPEM
    }
}

/// ingress-nginx's `default-backend` and `custom-http-errors` for one route.
///
/// The default backend (of `default-backend`) serves the route while the route's own cluster has no endpoints. An answer
/// with one of `interceptedStatuses` (the Pod's, or the worker's own 502, 503 or 504) is replaced by
/// the default backend's answer to an error request for `/` (the client's method, no body) carrying `X-Code`,
/// `X-Format`, `X-Original-URI`, `X-Namespace`, `X-Ingress-Name`, `X-Service-Name`,
/// `X-Service-Port` and `X-Request-ID`, relayed as it is (its status too).
public struct DefaultBackendRule: Sendable, Hashable {
    /// The default backend's cluster.
    public var cluster: String
    /// Sorted, each 400...599.
    public var interceptedStatuses: [Int]
    /// False (`disable-proxy-intercept-errors`): only the worker's own answers are replaced.
    public var interceptsPodAnswers: Bool
    /// True for `default-backend`: it serves the route (as any request) while the route's cluster has
    /// no endpoints. False for the catch-all default backend that only answers custom-http-errors.
    public var servesWithoutEndpoints: Bool

    public init(cluster: String, interceptedStatuses: [Int] = [], interceptsPodAnswers: Bool = true, servesWithoutEndpoints: Bool = true) {
        self.cluster = cluster
        self.interceptedStatuses = interceptedStatuses
        self.interceptsPodAnswers = interceptsPodAnswers
        self.servesWithoutEndpoints = servesWithoutEndpoints
    }
}

/// ingress-nginx's `proxy-connect-timeout`, `proxy-read-timeout`, `proxy-send-timeout`,
/// `proxy-next-upstream(-tries)` and `proxy-request-buffering` for one route. Nil fields keep the
/// cluster's or the worker's setting.
public struct UpstreamOptions: Sendable, Hashable {
    public var connectTimeoutMilliseconds: Int?
    /// Between two reads from the Pod, the wait for the response head included.
    public var readTimeoutMilliseconds: Int?
    /// Between two writes to the Pod that it does not take.
    public var sendTimeoutMilliseconds: Int?
    /// Connection attempts in all, each on another endpoint.
    public var maxAttempts: Int?
    /// A refused or failed connect is tried on another endpoint (`error`).
    public var retryOnConnectError: Bool
    /// A connect that timed out is tried on another endpoint (`timeout`).
    public var retryOnConnectTimeout: Bool
    /// `proxy-request-buffering: on`: up to this many bytes of the request body are read before the
    /// Pod is connected to (a slow client then costs the Pod nothing); past them the body streams.
    public var requestBufferBytes: Int?
    /// `proxy-next-upstream` given: a request already sent is sent again to another endpoint when
    /// its connection fails (`error`) or its answer is late (`timeout`) before the response head, or
    /// the answer has one of `retryStatuses` (`http_502`…); only a request without a body (nothing is
    /// kept to replay) and, unless `retryNonIdempotent`, not POST, LOCK or PATCH.
    public var retryAfterSending: Bool
    public var retryStatuses: [Int]
    public var retryNonIdempotent: Bool

    public init(
        connectTimeoutMilliseconds: Int? = nil, readTimeoutMilliseconds: Int? = nil, sendTimeoutMilliseconds: Int? = nil,
        maxAttempts: Int? = nil, retryOnConnectError: Bool = true, retryOnConnectTimeout: Bool = true, requestBufferBytes: Int? = nil,
        retryAfterSending: Bool = false, retryStatuses: [Int] = [], retryNonIdempotent: Bool = false
    ) {
        self.retryAfterSending = retryAfterSending
        self.retryStatuses = retryStatuses
        self.retryNonIdempotent = retryNonIdempotent
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.readTimeoutMilliseconds = readTimeoutMilliseconds
        self.sendTimeoutMilliseconds = sendTimeoutMilliseconds
        self.maxAttempts = maxAttempts
        self.retryOnConnectError = retryOnConnectError
        self.retryOnConnectTimeout = retryOnConnectTimeout
        self.requestBufferBytes = requestBufferBytes
    }
}

/// A redirect answered instead of proxying: the status (301, 302, 307, 308…) and the Location, a
/// `PathTemplate` (so `https://example.com$request_uri` keeps the path).
public struct RedirectRule: Sendable, Hashable {
    public var status: Int
    public var location: String

    public init(status: Int, location: String) {
        self.status = status
        self.location = location
    }
}

public struct Route: Sendable, Hashable {
    public var match: PathMatch
    public var backend: Backend

    public init(match: PathMatch, backend: Backend) {
        self.match = match
        self.backend = backend
    }
}

extension Route: Comparable {
    /// Sorted by path, then match kind, so a table's order does not depend on input order.
    public static func < (lhs: Route, rhs: Route) -> Bool {
        if lhs.match.path != rhs.match.path { return lhs.match.path < rhs.match.path }
        return lhs.match.kind.rawValue < rhs.match.kind.rawValue
    }
}
