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
        report(key, .invalid, reason: reason, effect: .ingressRejected, message)
    }

    mutating func reject(_ reason: Rejection.Reason, field: String, _ message: String) {
        appendRejection(Rejection(object: ref, reason: reason, effect: .ingressRejected, field: field, message: message))
    }
}

extension IngressAnnotations {
    /// ingress-nginx's proxy-* timeouts, retries and request buffering for the Ingress's routes; nil
    /// when none is set.
    static func upstreamOptions(_ annotations: inout IngressAnnotations) -> UpstreamOptions? {
        var options = UpstreamOptions()
        var set = false
        for (name, keyPath) in [
            ("proxy-connect-timeout", \UpstreamOptions.connectTimeoutMilliseconds), ("proxy-read-timeout", \.readTimeoutMilliseconds),
            ("proxy-send-timeout", \.sendTimeoutMilliseconds),
        ] {
            guard let (key, value) = annotations.value(name) else { continue }
            if let milliseconds = Self.nginxTime(value), milliseconds > 0 {
                options[keyPath: keyPath] = milliseconds
                set = true
            } else {
                annotations.invalid(key, "\"\(value)\" is not a time such as 10, 10s, 500ms or 1m; the default applies")
            }
        }
        if let (key, value) = annotations.value("proxy-next-upstream") {
            let tokens = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            let known: Set = [
                "error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504", "http_403", "http_404", "http_429",
                "non_idempotent", "off",
            ]
            if tokens.isEmpty || tokens.contains(where: { !known.contains($0) }) {
                annotations.invalid(key, "\"\(value)\" is not a list of error, timeout, invalid_header, http_5xx…, non_idempotent or off; error timeout applies")
            } else {
                let off = tokens.contains("off")
                // invalid_header (an unreadable answer) is an error of the connection here.
                options.retryOnConnectError = (tokens.contains("error") || tokens.contains("invalid_header")) && !off
                options.retryOnConnectTimeout = tokens.contains("timeout") && !off
                options.retryAfterSending = !off
                options.retryStatuses = off ? [] : tokens.compactMap { $0.hasPrefix("http_") ? Int($0.dropFirst(5)) : nil }.sorted()
                options.retryNonIdempotent = tokens.contains("non_idempotent") && !off
                set = true
            }
        }
        if let (key, value) = annotations.value("proxy-next-upstream-tries") {
            if let tries = Int(value), tries >= 0 {
                options.maxAttempts = tries
                set = true
            } else {
                annotations.invalid(key, "\"\(value)\" is not a number of tries (0 for every endpoint); 3 applies")
            }
        }
        if let (key, value) = annotations.value("proxy-request-buffering") {
            switch value.lowercased() {
            case "on":
                var bound = 1 << 20
                if let (sizeKey, size) = annotations.value("client-body-buffer-size") {
                    if let bytes = IngressValidator.parseSize(size), bytes > 0, bytes <= 64 << 20 { bound = Int(bytes) } else {
                        annotations.invalid(sizeKey, "\"\(size)\" is not a size from 1 to 64m; 1m applies")
                    }
                }
                options.requestBufferBytes = bound
                set = true
            case "off": break
            default: annotations.invalid(key, "\"\(value)\" is not on or off; bodies stream (off)")
            }
        }
        return set ? options : nil
    }

    /// nginx's time syntax in milliseconds: a number of seconds, or with ms, s, m or h; nil if malformed.
    static func nginxTime(_ text: String) -> Int? {
        let value = Substring(text).trimmingWhitespace()
        let units: [(String, Int)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (unit, factor) in units where value.hasSuffix(unit) {
            guard let number = Int(value.dropLast(unit.count)), number >= 0 else { return nil }
            let (product, overflow) = number.multipliedReportingOverflow(by: factor)
            return overflow || product > Int(UInt32.max) ? nil : product
        }
        guard let seconds = Int(value), seconds >= 0, seconds <= Int(UInt32.max) / 1000 else { return nil }
        return seconds * 1000
    }
}
