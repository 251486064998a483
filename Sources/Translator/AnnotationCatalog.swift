/// Every Ingress annotation Portico knows: each `nginx.ingress.kubernetes.io/…` annotation of
/// ingress-nginx (its annotations.md and its parsers), and Portico's own. One table, so the README's
/// compatibility table, `porticoctl annotations`, the warnings and the translator cannot disagree.
///
/// A supported annotation is read under either prefix, the `portico.io/` key winning. An unsupported
/// one is a warning (a `Rejection` with reason `UnsupportedAnnotation`) on the Ingress that carries
/// it, never silence; one that controls access (authentication, source ranges) rejects its Ingress,
/// because serving the Ingress without it would open what it closes.
public enum AnnotationCatalog {
    public static let nginxPrefix = "nginx.ingress.kubernetes.io/"
    public static let porticoPrefix = "portico.io/"

    public struct Entry: Sendable, Hashable {
        /// Without prefix: `rewrite-target`.
        public let name: String
        public let support: Support
        /// What differs, or what happens instead; empty for a supported annotation that behaves as in ingress-nginx.
        public let note: String
        /// ingress-nginx reads it (else it is Portico's own, read only under `portico.io/`).
        public let inIngressNginx: Bool
        /// Unsupported and security-relevant: the Ingress is rejected rather than served without it.
        public let rejectsIngress: Bool
        /// The value that asks for ingress-nginx's default (`false` for most switches), so there is
        /// nothing to honour: an unsupported annotation with it is not reported.
        public let inertValue: String?
    }

    public enum Support: String, Sendable, Hashable, CaseIterable {
        /// Same semantics as ingress-nginx.
        case supported
        /// Read, with a documented difference.
        case differs = "supported-with-difference"
        /// Not honoured; reported.
        case unsupported
    }

    /// Sorted by name.
    public static let entries: [Entry] = {
        var entries: [Entry] = []
        // Switches whose `false` is ingress-nginx's default.
        let offByDefault: Set = [
            "use-regex", "from-to-www-redirect", "force-ssl-redirect", "enable-cors", "canary", "ssl-passthrough", "enable-modsecurity",
            "enable-owasp-core-rules", "enable-opentelemetry", "service-upstream", "http2-push-preload", "enable-rewrite-log",
            "auth-tls-pass-certificate-to-upstream", "enable-global-auth", "relative-redirects", "use-port-in-redirects",
            "preserve-trailing-slash", "session-cookie-secure",
        ]
        let offValues: Set = ["proxy-ssl-verify", "proxy-ssl-server-name"]
        func add(
            _ support: Support, _ names: [String], _ note: String = "", nginx: Bool = true, rejects: Bool = false, inert: String? = nil
        ) {
            for name in names {
                entries.append(
                    Entry(name: name, support: support, note: note, inIngressNginx: nginx, rejectsIngress: rejects,
                        inertValue: inert ?? (offByDefault.contains(name) ? "false" : offValues.contains(name) ? "off" : nil)))
            }
        }
        add(.supported, ["ssl-redirect"])
        add(
            .supported, ["proxy-body-size"],
            "`0` turns the limit off; without the annotation Portico sets none (ingress-nginx's global default is 1m)")
        add(
            .differs, ["load-balance"],
            "`round_robin` is round robin; `ewma` is served as `least-request` (power of two choices by outstanding requests, not latency-weighted). Portico's key also takes `round-robin` and `least-request`")
        add(
            .differs,
            ["proxy-buffer-size", "proxy-buffers-number", "proxy-busy-buffers-size", "proxy-max-temp-file-size"],
            "accepted and without effect: Portico streams bodies with backpressure and never spools them to disk")
        add(.differs, ["enable-rewrite-log"], "accepted and without effect: `porticoctl explain` shows how a path is rewritten")
        add(.differs, ["http2-push-preload"], "accepted and without effect: HTTP/2 server push is not offered (nginx dropped it too)")

        let later = "not supported yet; the Ingress is served without it"
        add(
            .differs, ["use-regex"],
            "paths are RE2 expressions (Perl syntax without backreferences or lookaround, matched in linear time); as in ingress-nginx they match case-insensitively at the start of the path, every path of the host (of every Ingress) becomes one, and the longest path is tried first")
        add(
            .differs, ["rewrite-target"],
            "as nginx's `rewrite (?i)<path> <target> break`, which also makes the host's paths regular expressions; the target may use $1-$9, $scheme, $host, $http_host, $server_port, $request_uri, $uri, $args and $query_string, nothing else")
        add(
            .differs, ["app-root"],
            "a request for `/` that reaches a route of the Ingress is answered 302 to the path; the Ingress needs a path matching `/` (ingress-nginx also redirects from the default location it adds)")
        add(
            .supported, ["permanent-redirect", "temporal-redirect"],
            "the URL may use the variables rewrite-target takes; temporal-redirect wins when both are set")
        add(.supported, ["permanent-redirect-code"], "300-308; anything else is 301")
        add(.supported, ["temporal-redirect-code"], "300-307; anything else is 302")
        add(.supported, ["from-to-www-redirect"], "308 to the other name, with the port, as ingress-nginx; skipped when an Ingress defines the other name")
        add(.supported, ["force-ssl-redirect"], "308 to https even on hosts without TLS")
        add(.supported, ["x-forwarded-prefix"], "sent only with a rewrite-target, as ingress-nginx does")
        add(.supported, ["upstream-vhost"], "the Host sent to the Pod; X-Forwarded-Host keeps the client's")
        add(.supported, ["server-alias"], "comma-separated hosts served like the Ingress's host; an alias another Ingress defines as its host is not used")
        add(
            .unsupported, ["relative-redirects", "use-port-in-redirects", "preserve-trailing-slash"],
            "not supported yet; Portico's redirects are absolute URLs")
        add(.unsupported, ["connection-proxy-header", "custom-headers", "proxy-cookie-domain",
             "proxy-cookie-path", "proxy-redirect-from", "proxy-redirect-to"], later)
        add(
            .supported, ["backend-protocol"],
            "HTTP, HTTPS (TLS to the Pod), GRPC and GRPCS (HTTP/2, trailers relayed; the worker's own errors become gRPC statuses), and Portico's H2C; AUTO_HTTP and FCGI are not supported")
        add(
            .supported, ["proxy-connect-timeout", "proxy-send-timeout"],
            "seconds, or nginx's units (500ms, 10s, 1m); defaults 5 s (connect, per Service) and 60 s (send)")
        add(
            .supported, ["proxy-read-timeout"],
            "seconds or nginx's units; the wait for the response head and each gap between reads of its body; default 60 s")
        add(
            .differs, ["proxy-next-upstream"],
            "`error`, `timeout`, `invalid_header` and `http_5xx`/`http_403`/`http_404`/`http_429` try the next endpoint, after a failed connect or after the request was sent, "
                + "POST, LOCK and PATCH only with `non_idempotent`, `off` tries none; a request with a body is not sent twice (Portico keeps no copy to replay), "
                + "and without the annotation only failed connects are retried")
        add(.supported, ["proxy-next-upstream-tries"], "attempts in all, 0 for as many as there are endpoints; default 3")
        add(
            .differs, ["proxy-request-buffering"],
            "`on` reads up to client-body-buffer-size (default 1m here) of the body before connecting to the Pod, then streams the rest; `off` and the default stream at once (ingress-nginx buffers whole bodies by default, spilling to disk)")
        add(
            .differs, ["client-body-buffer-size"],
            "the bound of proxy-request-buffering `on` (at most 64m); otherwise no effect, as bodies are never spooled to disk")
        add(
            .differs, ["proxy-buffering"],
            "accepted and without effect: responses are always relayed with backpressure, as with `off`")
        add(.unsupported, ["proxy-next-upstream-timeout", "proxy-http-version"], "not supported yet; Portico speaks HTTP/1.1 to Pods and bounds retries by tries only")
        add(
            .supported, ["proxy-ssl-secret"],
            "namespace/name in the Ingress's namespace: ca.crt verifies the Pod (with proxy-ssl-verify), tls.crt and tls.key are presented to it")
        add(.supported, ["proxy-ssl-verify"], "`on` checks the Pod's certificate against the Secret's ca.crt and the name; off by default, as in ingress-nginx")
        add(.supported, ["proxy-ssl-name"], "the name checked in the Pod's certificate and sent as SNI")
        add(
            .differs, ["proxy-ssl-server-name"],
            "Portico sends SNI by default (proxy-ssl-name, else upstream-vhost, else service.namespace.svc); `off` sends none", inert: "on")
        add(
            .differs, ["proxy-ssl-verify-depth"],
            "accepted; the chain is verified to the Secret's CA whatever its depth (OpenSSL's limit)")
        add(
            .unsupported, ["proxy-ssl-ciphers", "proxy-ssl-protocols"],
            "not supported: TLS to Pods uses TLS 1.2 or 1.3 with OpenSSL's default ciphers")
        // proxy-ssl-verify's default, "off", asks for nothing.
        add(
            .supported, ["default-backend"],
            "a Service of the Ingress's namespace (its first port): serves the paths whose Services have no endpoints, and answers custom-http-errors")
        add(
            .supported, ["custom-http-errors"],
            "the Pod's answers with these statuses, and the worker's own 502/503/504, are replaced by the default backend's answer to a request for / "
                + "with X-Code, X-Format, X-Original-URI, X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port and X-Request-ID; "
                + "without default-backend the catch-all spec.defaultBackend answers")
        add(.supported, ["disable-proxy-intercept-errors"], "`true`: only the worker's own 502/503/504 are replaced", inert: "false")
        add(
            .differs, ["configuration-snippet"],
            "read as data, never as configuration: only `more_set_headers`, `more_clear_headers`, `proxy_set_header` and `add_header` lines with literal values (no $variables, no -s/-t); any other content makes the whole snippet unsupported (reported) and none of it applies")
        add(
            .unsupported,
            ["server-snippet", "stream-snippet", "auth-snippet", "modsecurity-snippet"],
            "snippets are nginx configuration; Portico never interprets them")
        add(
            .unsupported,
            ["enable-cors", "cors-allow-origin", "cors-allow-methods", "cors-allow-headers", "cors-expose-headers", "cors-allow-credentials", "cors-max-age"],
            "not supported yet; CORS headers are not added, so browsers see what the backend answers")
        add(
            .unsupported,
            ["affinity", "affinity-mode", "affinity-canary-behavior", "session-cookie-name", "session-cookie-path", "session-cookie-domain",
             "session-cookie-expires", "session-cookie-max-age", "session-cookie-samesite", "session-cookie-conditional-samesite-none",
             "session-cookie-secure", "session-cookie-change-on-failure", "upstream-hash-by", "upstream-hash-by-subset", "upstream-hash-by-subset-size"],
            "not supported yet; requests are balanced without stickiness")
        add(
            .unsupported,
            ["canary"], "not supported yet: a canary Ingress is rejected, so all traffic stays on the primary Ingress", rejects: true)
        add(
            .unsupported,
            ["canary-by-header", "canary-by-header-value", "canary-by-header-pattern", "canary-by-cookie", "canary-weight", "canary-weight-total"],
            "not supported yet (see canary)")
        let access = "not supported yet; the Ingress is rejected rather than served without the access control it asks for"
        add(
            .unsupported,
            ["auth-type", "auth-secret", "auth-url", "auth-tls-secret", "auth-tls-verify-client", "whitelist-source-range", "allowlist-source-range",
             "denylist-source-range"], access, rejects: true)
        add(
            .unsupported,
            ["auth-realm", "auth-secret-type", "auth-method", "auth-signin", "auth-signin-redirect-param", "auth-request-redirect", "auth-response-headers",
             "auth-proxy-set-headers", "auth-cache-key", "auth-cache-duration", "auth-keepalive", "auth-keepalive-requests", "auth-keepalive-share-vars",
             "auth-keepalive-timeout", "auth-always-set-cookie", "enable-global-auth", "auth-tls-verify-depth", "auth-tls-error-page",
             "auth-tls-pass-certificate-to-upstream", "auth-tls-match-cn", "satisfy"],
            "not supported yet (see auth-type, auth-url and auth-tls-secret, which reject the Ingress)")
        add(
            .unsupported,
            ["limit-rps", "limit-rpm", "limit-connections", "limit-burst-multiplier", "limit-rate", "limit-rate-after", "limit-whitelist", "limit-allowlist"],
            "not supported yet; requests are not rate-limited")
        add(.unsupported, ["mirror-target", "mirror-host", "mirror-request-body"], "not supported yet; requests are not mirrored")
        add(.unsupported, ["enable-modsecurity", "enable-owasp-core-rules", "modsecurity-transaction-id"], "Portico has no web application firewall")
        add(
            .unsupported, ["enable-opentelemetry", "opentelemetry-trust-incoming-span", "opentelemetry-operation-name"],
            "not supported yet; no spans are exported (traceparent headers pass through unchanged)")
        add(.unsupported, ["enable-access-log"], "not supported yet; every request is logged when the worker's access log is on")
        add(.unsupported, ["ssl-ciphers", "ssl-prefer-server-ciphers"], "not supported; Portico's TLS settings apply to every host")
        add(.unsupported, ["ssl-passthrough"], "not supported yet; TLS is terminated by Portico")
        add(.unsupported, ["service-upstream"], "not supported yet; requests go to the Pods' endpoints, not the Service's cluster IP")
        add(.unsupported, ["fastcgi-index", "fastcgi-params-configmap"], "FastCGI backends are not supported")

        add(.supported, ["hsts"], "Strict-Transport-Security for the Ingress's TLS hosts: `true`, `false` or the header's value", nginx: false)
        add(
            .supported, ["request-headers", "response-headers"],
            "Gateway API's header filters as YAML: `set` and `add` (name: value), `remove` (names; in responses a trailing * matches a prefix); framing and forwarding fields are Portico's and refused",
            nginx: false)
        return entries.sorted { $0.name < $1.name }
    }()

    static let byName: [String: Entry] = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })

    public static func entry(_ name: String) -> Entry? { byName[name] }
}
