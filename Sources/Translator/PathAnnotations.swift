import KubeTypes
import RouteModel

extension IngressAnnotations {
    /// ingress-nginx's path, rewrite, redirect and host annotations of one Ingress, checked. A
    /// malformed value is reported and its default applies, except what would change which requests
    /// reach which backend: a path that is not a valid regular expression, or a rewrite target that
    /// cannot be expanded, rejects the Ingress.
    struct PathSettings {
        var usesRegex = false
        var rewriteTarget: String?
        var forceSSLRedirect = false
        var aliases: [HostPattern] = []
        var fromToWWW = false

        init(_ annotations: inout IngressAnnotations, rules: [ValidatedIngress.Rule], options: inout RouteOptions) {
            if let (key, value) = annotations.value("use-regex") {
                if let flag = IngressAnnotations.bool(value) { usesRegex = flag } else { annotations.notBool(key, value, default: "false") }
            }
            if let (key, value) = annotations.value("rewrite-target") {
                var problem: String?
                do {
                    _ = try PathTemplate(parsing: value)
                    if !(value.hasPrefix("/") || value.hasPrefix("$") || value.hasPrefix("http://") || value.hasPrefix("https://")) {
                        problem = "\"\(value)\" must be a path (or an http:// or https:// URL)"
                    }
                } catch {
                    problem = error.description
                }
                if let problem {
                    annotations.reject(.invalidAnnotation, key: key, "\(problem); the Ingress is not served rather than sent to the wrong paths")
                } else {
                    rewriteTarget = value
                    // ingress-nginx rewrites (and so switches the host to regular expressions) only
                    // where the target differs from the path.
                    if rules.contains(where: { $0.paths.contains { $0.rawPath != value } }) { usesRegex = true }
                }
            }
            if usesRegex {
                for rule in rules {
                    for path in rule.paths {
                        do {
                            _ = try PathRegex.compile(path.rawPath, caseInsensitive: true)
                        } catch {
                            annotations.reject(
                                .invalidPath, field: path.field.description + ".path",
                                "\"\(path.rawPath)\" is not a regular expression Portico can match (RE2 syntax: no backreferences or lookaround): \(error.description)")
                        }
                    }
                }
            }
            if let (key, value) = annotations.value("x-forwarded-prefix") {
                if IngressAnnotations.isVisibleASCII(value) { options.forwardedPrefix = value } else {
                    annotations.invalid(key, "\"\(value)\" must be visible ASCII without spaces; no X-Forwarded-Prefix is sent")
                }
            }
            if let (key, value) = annotations.value("upstream-vhost") {
                if IngressAnnotations.isHostValue(value) { options.upstreamHost = value } else {
                    annotations.invalid(key, "\"\(value)\" is not a host name with an optional :port; the client's Host is sent")
                }
            }
            if let (key, value) = annotations.value("app-root") {
                if value.hasPrefix("/"), IngressAnnotations.isVisibleASCII(value), !value.contains("$") { options.appRoot = value } else {
                    annotations.invalid(key, "\"\(value)\" must be a path starting with '/'; / is not redirected")
                }
            }
            options.redirect = Self.redirect(&annotations)
            if let (key, value) = annotations.value("force-ssl-redirect") {
                if let flag = IngressAnnotations.bool(value) { forceSSLRedirect = flag } else { annotations.notBool(key, value, default: "false") }
            }
            if let (key, value) = annotations.value("from-to-www-redirect") {
                if let flag = IngressAnnotations.bool(value) { fromToWWW = flag } else { annotations.notBool(key, value, default: "false") }
            }
            if let (key, value) = annotations.value("server-alias") {
                for alias in value.split(separator: ",") {
                    let text = alias.trimmingWhitespace()
                    if text.isEmpty { continue }
                    do {
                        aliases.append(try HostPattern.parse(String(text)))
                    } catch {
                        annotations.invalid(key, "alias \"\(text)\": \(error.description); this alias is not served")
                    }
                }
            }
        }

        /// `temporal-redirect` (checked first, as ingress-nginx does) or `permanent-redirect`, with
        /// their codes: out-of-range codes fall back to 302 and 301.
        private static func redirect(_ annotations: inout IngressAnnotations) -> RedirectRule? {
            for (name, codeName, fallback, range) in [
                ("temporal-redirect", "temporal-redirect-code", 302, 300...307), ("permanent-redirect", "permanent-redirect-code", 301, 300...308),
            ] {
                guard let (key, value) = annotations.value(name), !value.isEmpty else { continue }
                var problem: String?
                do {
                    _ = try PathTemplate(parsing: value)
                    if !(value.lowercased().hasPrefix("http://") || value.lowercased().hasPrefix("https://")) {
                        problem = "\"\(value)\" is not an http:// or https:// URL"
                    }
                } catch {
                    problem = error.description
                }
                if let problem {
                    annotations.invalid(key, "\(problem); requests are proxied instead")
                    continue
                }
                var status = fallback
                if let (codeKey, codeValue) = annotations.value(codeName) {
                    if let code = Int(codeValue), range.contains(code) { status = code } else {
                        annotations.invalid(codeKey, "\"\(codeValue)\" is not a redirect code in \(range.lowerBound)-\(range.upperBound); \(fallback) applies")
                    }
                }
                return RedirectRule(status: status, location: value)
            }
            return nil
        }
    }

    /// Go's strconv.ParseBool, which ingress-nginx uses.
    static func bool(_ value: String) -> Bool? {
        switch value {
        case "1", "t", "T", "TRUE", "true", "True": true
        case "0", "f", "F", "FALSE", "false", "False": false
        default: nil
        }
    }

    static func isVisibleASCII(_ value: String) -> Bool { !value.isEmpty && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F } }

    static func isHostValue(_ value: String) -> Bool {
        !value.isEmpty
            && value.utf8.allSatisfy { byte in
                (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "[")
                    || byte == UInt8(ascii: "]") || byte == UInt8(ascii: "_")
            }
    }

    mutating func notBool(_ key: String, _ value: String, default fallback: String) {
        invalid(key, "\"\(value)\" is not true or false; \(fallback) applies")
    }

    /// A problem that rejects the Ingress: it cannot be served as its author meant.
    mutating func reject(_ reason: Rejection.Reason, key: String, _ message: String) {
        reject(reason, field: Self.field(key), message)
        if let index = uses.firstIndex(where: { $0.key == key }) {
            uses[index].status = .invalid
            uses[index].message = message
        }
    }

    mutating func reject(_ reason: Rejection.Reason, field: String, _ message: String) {
        appendRejection(Rejection(object: ref, reason: reason, effect: .ingressRejected, field: field, message: message))
    }
}
