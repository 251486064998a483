/// What makes an Ingress Portico's.
public struct TranslatorConfiguration: Sendable, Hashable {
    /// IngressClasses whose `spec.controller` equals this are ours.
    public var controllerName: String
    /// Ingresses naming this class are ours even when no IngressClass object of that name exists
    /// (as with a manifest directory that does not define one). An IngressClass of this name that
    /// names another controller wins: then the class is not ours.
    public var ingressClassName: String

    public init(controllerName: String = "portico.io/ingress-controller", ingressClassName: String = "portico") {
        self.controllerName = controllerName
        self.ingressClassName = ingressClassName
    }

    /// Annotation keys read from Ingresses; `nginx.ingress.kubernetes.io/…` equivalents are read too,
    /// so Ingresses written for ingress-nginx keep their meaning, with Portico's key winning.
    public enum Annotation {
        public static let sslRedirect = "portico.io/ssl-redirect"
        public static let nginxSSLRedirect = "nginx.ingress.kubernetes.io/ssl-redirect"
        /// Largest request body, in nginx's size syntax: `8m`, `512k`, `1g`, bytes, or `0` for no limit.
        public static let proxyBodySize = "portico.io/proxy-body-size"
        public static let nginxProxyBodySize = "nginx.ingress.kubernetes.io/proxy-body-size"
        /// Strict-Transport-Security for the TLS hosts this Ingress declares, in the header's own
        /// syntax: `max-age=31536000; includeSubDomains; preload`. `true` means ingress-nginx's
        /// default (`max-age=31536000; includeSubDomains`); absent or `false`, none.
        public static let hsts = "portico.io/hsts"
        /// `round-robin` (default) or `least-request` for the Services this Ingress routes to.
        public static let loadBalance = "portico.io/load-balance"
        /// ingress-nginx's: `round_robin`, or `ewma` (served as `least-request`).
        public static let nginxLoadBalance = "nginx.ingress.kubernetes.io/load-balance"
    }
}
