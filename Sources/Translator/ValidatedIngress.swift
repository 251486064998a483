import KubeTypes
import RouteModel

/// An Ingress after validation: parsed hosts, normalised paths, typed backends.
struct ValidatedIngress: Sendable {
    let ref: ObjectRef
    let source: RouteSource
    let rules: [Rule]
    let defaultBackend: BackendReference?
    let tls: [TLSEntry]
    /// False when an annotation turns the HTTP→HTTPS redirect off.
    let sslRedirect: Bool
    /// Per-route settings from annotations, applied to every route and default backend of the Ingress.
    let options: RouteOptions
    /// The load-balancing policy asked for the Ingress's backends; nil when not set.
    let loadBalancing: LoadBalancingChoice?
    /// HSTS for the TLS hosts this Ingress declares; nil for none.
    let hsts: HSTSPolicy?
    /// ingress-nginx's `use-regex`, or a `rewrite-target` that changes a path: every path of the
    /// Ingress's hosts, its own and other Ingresses', is then a regular expression.
    let usesRegex: Bool
    /// `rewrite-target`, checked; applied to each path it differs from.
    let rewriteTarget: String?
    /// `force-ssl-redirect`: plain HTTP is redirected even on hosts without TLS.
    let forceSSLRedirect: Bool
    /// `server-alias`: more hosts served with the same routes.
    let aliases: [HostPattern]
    /// `from-to-www-redirect`.
    let fromToWWW: Bool
    /// The key `server-alias` was read from, for reports.
    let aliasKey: String?
    /// `backend-protocol` and `proxy-ssl-*`; the translator reads the Secret into it.
    var upstreamProtocol: UpstreamProtocolSettings
    /// `default-backend`, `custom-http-errors`, `disable-proxy-intercept-errors`.
    var errorPages = ErrorPageSettings()

    /// The options a default backend takes: no rewrite (it has no path to rewrite from).
    func defaultBackendOptions(_ backend: BackendReference) -> RouteOptions {
        var options = options
        options.rewriteTarget = nil
        options.forwardedPrefix = nil
        options.upstreamTLS = upstreamProtocol.tls(service: backend.service, namespace: backend.namespace, upstreamHost: options.upstreamHost)
        return options
    }

    struct Rule {
        let host: HostPattern
        let paths: [Path]
    }

    struct Path {
        let match: PathMatch
        /// The path as written: what a regex host matches with.
        let rawPath: String
        let key: PathKey
        let backend: BackendReference
        let field: IngressField
    }

    struct TLSEntry {
        let hosts: [HostPattern]
        /// Nil when the entry names no Secret: the default certificate is served.
        let secretName: String?
        let field: String
    }
}

/// A load-balancing annotation's policy, and the key it was read from (for reports).
struct LoadBalancingChoice {
    let policy: LoadBalancingPolicy
    let key: String
}

/// Two routes of one virtual host collide when their keys are equal.
struct PathKey: Hashable {
    /// Prefix and ImplementationSpecific match the same way, so they collide with each other.
    let isPrefix: Bool
    /// For prefixes, without the trailing slash (it does not change what matches).
    let path: String

    init(_ match: PathMatch) {
        isPrefix = match.kind.matchesAsPrefix
        if isPrefix, match.path.count > 1, match.path.hasSuffix("/") {
            path = String(match.path.dropLast())
        } else {
            path = match.path
        }
    }
}

/// Where a path or backend sits in its Ingress. Rendered to text only when a rejection needs it:
/// building the string for every path of 10k Ingresses showed up in the compile profile.
struct IngressField: Hashable, CustomStringConvertible {
    enum Place: Hashable {
        case path(rule: Int, path: Int)
        case defaultBackend
        /// A backend an annotation names (`default-backend`).
        case annotation(String)
    }

    let place: Place

    init(_ place: Place) { self.place = place }

    /// `spec.rules[0].http.paths[1]` or `spec.defaultBackend`.
    var description: String {
        switch place {
        case .path(let rule, let path): "spec.rules[\(rule)].http.paths[\(path)]"
        case .defaultBackend: "spec.defaultBackend"
        case .annotation(let key): IngressAnnotations.field(key)
        }
    }

    /// The backend's own field.
    var backend: String {
        switch place {
        case .path: description + ".backend"
        case .defaultBackend, .annotation: description
        }
    }
}

/// A Service port named by an Ingress backend. Equal references resolve to the same cluster.
struct BackendReference: Hashable {
    let namespace: String
    let service: String
    let port: ServicePortReference
    /// Where it was written; not part of its identity.
    let field: IngressField

    static func == (lhs: BackendReference, rhs: BackendReference) -> Bool {
        lhs.namespace == rhs.namespace && lhs.service == rhs.service && lhs.port == rhs.port
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(namespace)
        hasher.combine(service)
        hasher.combine(port)
    }
}

/// Checks one Ingress the way the API server would, plus what Portico cannot serve.
///
/// Structural problems (bad host, bad path, missing port) reject the whole Ingress: serving part of
/// a malformed object would surprise its author more than serving none. A backend Portico does not
/// support drops only that path.
struct IngressValidator: Sendable {
    var rejections: [Rejection] = []
    /// Every catalogued annotation of every Ingress validated, and what was made of it.
    var uses: [AnnotationUse] = []

    mutating func validate(_ ingress: Ingress) -> ValidatedIngress? {
        let ref = ingress.ref
        let spec = ingress.spec ?? IngressSpec()
        var errors: [Rejection] = []
        var partial: [Rejection] = []
        func reject(_ reason: Rejection.Reason, _ field: String, _ message: String) {
            errors.append(Rejection(object: ref, reason: reason, effect: .ingressRejected, field: field, message: message))
        }

        if let annotation = ingress.metadata.annotation(Ingress.legacyClassAnnotation), let className = spec.ingressClassName,
            annotation != className {
            reject(
                .ingressClassConflict, "spec.ingressClassName",
                "is \"\(className)\" but annotation \(Ingress.legacyClassAnnotation) is \"\(annotation)\"; set only one")
        }

        var rules: [ValidatedIngress.Rule] = []
        for (ruleIndex, rule) in (spec.rules ?? []).enumerated() {
            let host: HostPattern
            do {
                host = try HostPattern.parse(rule.host ?? "")
            } catch {
                reject(.invalidHost, "spec.rules[\(ruleIndex)].host", error.description)
                continue
            }
            var paths: [ValidatedIngress.Path] = []
            for (pathIndex, path) in (rule.http?.paths ?? []).enumerated() {
                let place = IngressField(.path(rule: ruleIndex, path: pathIndex))
                var field: String { place.description }
                guard let pathTypeText = path.pathType else {
                    reject(.invalidPathType, field + ".pathType", "required: one of Exact, Prefix, ImplementationSpecific")
                    continue
                }
                guard let kind = PathMatchKind(rawValue: pathTypeText) else {
                    reject(
                        .invalidPathType, field + ".pathType",
                        "\"\(pathTypeText)\" is not one of Exact, Prefix, ImplementationSpecific")
                    continue
                }
                let match: PathMatch
                switch Self.validatePath(path.path, kind: kind) {
                case .success(let normalised): match = PathMatch(kind: kind, path: normalised)
                case .failure(let message):
                    reject(.invalidPath, field + ".path", message.description)
                    continue
                }
                switch validateBackend(path.backend, namespace: ref.namespace, field: place) {
                case .service(let backend):
                    paths.append(
                        ValidatedIngress.Path(
                            match: match, rawPath: path.path.flatMap { $0.isEmpty ? nil : $0 } ?? "/", key: PathKey(match), backend: backend,
                            field: place))
                case .unsupported(let message):
                    partial.append(
                        Rejection(object: ref, reason: .unsupportedBackend, effect: .partiallyIgnored, field: field + ".backend", message: message))
                case .invalid(let message):
                    reject(.invalidBackend, field + ".backend", message)
                }
            }
            rules.append(ValidatedIngress.Rule(host: host, paths: paths))
        }

        var defaultBackend: BackendReference?
        if let backend = spec.defaultBackend {
            switch validateBackend(backend, namespace: ref.namespace, field: IngressField(.defaultBackend)) {
            case .service(let reference): defaultBackend = reference
            case .unsupported(let message):
                partial.append(
                    Rejection(object: ref, reason: .unsupportedBackend, effect: .partiallyIgnored, field: "spec.defaultBackend", message: message))
            case .invalid(let message): reject(.invalidBackend, "spec.defaultBackend", message)
            }
        }

        var tls: [ValidatedIngress.TLSEntry] = []
        for (index, entry) in (spec.tls ?? []).enumerated() {
            let field = "spec.tls[\(index)]"
            var hosts: [HostPattern] = []
            for (hostIndex, rawHost) in (entry.hosts ?? []).enumerated() {
                do {
                    let host = try HostPattern.parse(rawHost)
                    if host == .any {
                        reject(.invalidHost, "\(field).hosts[\(hostIndex)]", "must not be empty")
                    } else {
                        hosts.append(host)
                    }
                } catch {
                    reject(.invalidHost, "\(field).hosts[\(hostIndex)]", error.description)
                }
            }
            if hosts.isEmpty, errors.isEmpty {
                partial.append(
                    Rejection(
                        object: ref, reason: .tlsWithoutHosts, effect: .partiallyIgnored, field: field + ".hosts",
                        message: "a TLS entry without hosts is ignored; list the hosts the certificate is for"))
            }
            let secret = entry.secretName.flatMap { $0.isEmpty ? nil : $0 }
            tls.append(ValidatedIngress.TLSEntry(hosts: hosts, secretName: secret, field: field))
        }

        if (spec.rules ?? []).isEmpty, spec.defaultBackend == nil, errors.isEmpty {
            reject(.noRules, "spec", "has neither rules nor a defaultBackend, so it routes nothing")
        }

        var annotations = IngressAnnotations(ingress)
        defer { uses.append(contentsOf: annotations.uses) }
        var sslRedirect = true
        if let (key, value) = annotations.value("ssl-redirect") {
            switch value.lowercased() {
            case "true": sslRedirect = true
            case "false": sslRedirect = false
            default: annotations.invalid(key, "\"\(value)\" is not true or false; the redirect stays on")
            }
        }

        var options = RouteOptions()
        if let (key, value) = annotations.value("proxy-body-size") {
            if let bytes = Self.parseSize(value) {
                options.maxRequestBodyBytes = bytes == 0 ? nil : bytes
            } else {
                annotations.invalid(key, "\"\(value)\" is not a size such as 8m, 512k, 1g or 0; request bodies are not limited")
            }
        }

        var loadBalancing: LoadBalancingChoice?
        if let (key, value) = annotations.value("load-balance") {
            switch value.lowercased() {
            case "round-robin", "round_robin": loadBalancing = LoadBalancingChoice(policy: .roundRobin, key: key)
            case "least-request", "ewma": loadBalancing = LoadBalancingChoice(policy: .leastRequest, key: key)
            default: annotations.invalid(key, "\"\(value)\" is not round_robin, ewma, round-robin or least-request; round-robin applies")
            }
        }

        let paths = IngressAnnotations.PathSettings(&annotations, rules: rules, options: &options)
        options.upstream = IngressAnnotations.upstreamOptions(&annotations)
        (options.requestHeaders, options.responseHeaders) = annotations.headerEdits()
        let upstreamProtocol = UpstreamProtocolSettings(&annotations, namespace: ref.namespace)
        options.upstreamProtocol = upstreamProtocol.upstreamProtocol
        let errorPages = ErrorPageSettings(&annotations)

        var hsts: HSTSPolicy?
        if let (key, value) = annotations.value("hsts") {
            do {
                hsts = try Self.parseHSTS(value)
            } catch {
                annotations.invalid(key, "\(error.message); no HSTS is sent")
            }
        }

        for rejection in annotations.rejections {
            if rejection.effect == .ingressRejected { errors.append(rejection) } else { partial.append(rejection) }
        }
        guard errors.isEmpty else {
            rejections.append(contentsOf: errors)
            return nil
        }
        rejections.append(contentsOf: partial)
        return ValidatedIngress(
            ref: ref, source: RouteSource(namespace: ref.namespace, ingress: ref.name), rules: rules,
            defaultBackend: defaultBackend, tls: tls, sslRedirect: sslRedirect, options: options, loadBalancing: loadBalancing, hsts: hsts,
            usesRegex: paths.usesRegex, rewriteTarget: paths.rewriteTarget, forceSSLRedirect: paths.forceSSLRedirect, aliases: paths.aliases,
            fromToWWW: paths.fromToWWW, aliasKey: annotations.value("server-alias")?.key, upstreamProtocol: upstreamProtocol,
            errorPages: errorPages)
    }

    struct HSTSError: Error {
        let message: String
    }

    /// `true`, `false`, or the Strict-Transport-Security header value.
    static func parseHSTS(_ text: String) throws(HSTSError) -> HSTSPolicy? {
        switch Substring(text).trimmingWhitespace().lowercased() {
        case "false": return nil
        case "true": return HSTSPolicy(maxAgeSeconds: 31_536_000, includeSubdomains: true)
        default: break
        }
        var maxAge: Int?
        var policy = HSTSPolicy(maxAgeSeconds: 0)
        for directive in text.split(separator: ";") {
            let directive = directive.trimmingWhitespace().lowercased()
            if directive.isEmpty { continue }
            if directive.hasPrefix("max-age=") {
                guard let seconds = Int(directive.dropFirst(8).trimmingWhitespace()), seconds >= 0 else {
                    throw HSTSError(message: "\"\(text)\": max-age must be a number of seconds")
                }
                maxAge = seconds
            } else if directive == "includesubdomains" {
                policy.includeSubdomains = true
            } else if directive == "preload" {
                policy.preload = true
            } else {
                throw HSTSError(message: "\"\(text)\": unknown directive \"\(directive)\"")
            }
        }
        guard let maxAge else { throw HSTSError(message: "\"\(text)\" has no max-age") }
        policy.maxAgeSeconds = maxAge
        return policy
    }

    /// nginx's size syntax: digits with an optional k, m or g suffix (either case), powers of 1024.
    static func parseSize(_ text: String) -> Int64? {
        var digits = Substring(text).trimmingWhitespace()
        var multiplier: Int64 = 1
        switch digits.last {
        case "k", "K": multiplier = 1 << 10
        case "m", "M": multiplier = 1 << 20
        case "g", "G": multiplier = 1 << 30
        default: break
        }
        if multiplier != 1 { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(digits) else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    enum BackendCheck {
        case service(BackendReference)
        case unsupported(String)
        case invalid(String)
    }

    private func validateBackend(_ backend: IngressBackend, namespace: String, field: IngressField) -> BackendCheck {
        switch (backend.service, backend.resource) {
        case (nil, nil): return .invalid("must name a service")
        case (.some, .some): return .invalid("must name a service or a resource, not both")
        case (nil, .some(let resource)):
            return .unsupported("resource backends (\(resource.kind) \(resource.name)) are not supported; use a service")
        case (.some(let service), nil):
            guard !service.name.isEmpty else { return .invalid("service.name must not be empty") }
            guard let port = service.port else { return .invalid("service.port is required") }
            switch (port.number, port.name) {
            case (.some(let number), nil):
                guard (1...65535).contains(number) else { return .invalid("service.port.number \(number) is not in 1-65535") }
                return .service(
                    BackendReference(namespace: namespace, service: service.name, port: .number(Int(number)), field: field))
            case (nil, .some(let name)) where !name.isEmpty:
                return .service(BackendReference(namespace: namespace, service: service.name, port: .name(name), field: field))
            case (.some, .some): return .invalid("service.port must have a number or a name, not both")
            default: return .invalid("service.port must have a number or a name")
            }
        }
    }

    /// Validates an Ingress path and returns it in normalised form.
    ///
    /// `Exact` and `Prefix` paths follow the API server's rules (absolute, no `//`, no dot segments,
    /// no `%2F`). `ImplementationSpecific` paths may be anything absolute: they are normalised like
    /// request paths, so a path written `/a/../b` routes `/b`. A missing ImplementationSpecific path means `/`.
    static func validatePath(_ path: String?, kind: PathMatchKind) -> Result<String, PathValidationError> {
        guard let path, !path.isEmpty else {
            if kind == .implementationSpecific { return .success("/") }
            return .failure(PathValidationError("is required for pathType \(kind.rawValue)"))
        }
        guard path.hasPrefix("/") else { return .failure(PathValidationError("\"\(path)\" must begin with '/'")) }
        if let bad = firstForbidden(in: path, strict: kind != .implementationSpecific) {
            return .failure(PathValidationError(bad))
        }
        do {
            return .success(try RequestPath.normalize(path))
        } catch {
            return .failure(PathValidationError("\"\(path)\": \(error.description)"))
        }
    }
}

/// The first thing an Ingress path must not contain, as a message, or nil. One pass, no allocation:
/// this runs for every path of every Ingress on each compile.
///
/// Always forbidden: `?` and `#`. With `strict` (Exact and Prefix, as the API server checks):
/// `//`, `/./`, `/../`, `%2F` in either case, and a final `/.` or `/..`.
private func firstForbidden(in path: String, strict: Bool) -> String? {
    let bytes = path.utf8
    var index = bytes.startIndex
    var last3: (UInt8, UInt8, UInt8) = (0, 0, 0)  // the three bytes before the current one
    while index != bytes.endIndex {
        let byte = bytes[index]
        if byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#") {
            return "\"\(path)\" must not contain '?' or '#': a query never reaches route matching"
        }
        if strict {
            let slash = UInt8(ascii: "/")
            let dot = UInt8(ascii: ".")
            if byte == slash, last3.2 == slash { return "\"\(path)\" must not contain '//'" }
            if byte == slash, last3.2 == dot, last3.1 == slash { return "\"\(path)\" must not contain '/./'" }
            if byte == slash, last3.2 == dot, last3.1 == dot, last3.0 == slash { return "\"\(path)\" must not contain '/../'" }
            if byte | 0x20 == UInt8(ascii: "f"), last3.2 == UInt8(ascii: "2"), last3.1 == UInt8(ascii: "%") {
                return "\"\(path)\" must not contain '%2F'"
            }
        }
        last3 = (last3.1, last3.2, byte)
        index = bytes.index(after: index)
    }
    if strict, last3.2 == UInt8(ascii: "."), last3.1 == UInt8(ascii: "/") || (last3.1 == UInt8(ascii: ".") && last3.0 == UInt8(ascii: "/")) {
        return "\"\(path)\" must not end with '/..' or '/.'"
    }
    return nil
}

struct PathValidationError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
