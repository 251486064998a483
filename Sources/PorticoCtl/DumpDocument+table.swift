extension DumpDocument {
    /// One part of the dump, for `--section`.
    public enum Section: String, CaseIterable, Sendable {
        case routes, clusters, certs, rejections, annotations, subscribers
    }

    /// `kubectl get`-style text: a header line, then routes, certificates, rejections, annotations and manifest errors.
    public var table: String { table(sections: Set(Section.allCases).subtracting([.clusters])) }

    /// Only the given sections (the header line always).
    public func table(sections: Set<Section>) -> String {
        var out: [String] = []
        let version = self.version.map { "version \($0), " } ?? ""
        out.append("\(source)  \(version)hash \(contentHash)")
        out.append(
            "\(summary.virtualHosts) virtual hosts, \(summary.routes) routes, \(summary.clusters) clusters, "
                + "\(summary.endpoints) endpoints, \(summary.certificates) certificates; Ingresses: \(summary.acceptedIngresses) accepted, "
                + "\(summary.rejectedIngresses) rejected, \(summary.ignoredIngresses) of other classes")

        var routeRows: [[String]] = []
        for host in virtualHosts where sections.contains(.routes) {
            let tls = host.certificate ?? "-"
            for route in host.routes {
                routeRows.append(row(host: host.host, match: route.pathType, path: route.path, backend: route.backend, tls: tls))
            }
            if let fallback = host.defaultBackend {
                routeRows.append(row(host: host.host, match: "default", path: "*", backend: fallback, tls: tls))
            }
            if host.routes.isEmpty, host.defaultBackend == nil {
                routeRows.append([host.host, "-", "-", "-", "(no routes: 404)", "-", tls])
            }
        }
        if sections.contains(.routes) {
            out.append("")
            out.append(TextTable.render(header: ["HOST", "MATCH", "PATH", "INGRESS", "BACKEND", "ENDPOINTS", "TLS"], rows: routeRows))
        }
        if sections.contains(.clusters) {
            var clusters: [String: BackendEntry] = [:]
            for host in virtualHosts {
                for backend in host.routes.map(\.backend) + [host.defaultBackend].compactMap({ $0 }) {
                    clusters["\(backend.namespace)/\(backend.service):\(backend.servicePort)"] = backend
                }
            }
            out.append("")
            out.append(
                TextTable.render(
                    header: ["CLUSTER", "ENDPOINTS", "COUNT"],
                    rows: clusters.sorted { $0.key < $1.key }.map { key, backend in
                        [key, backend.endpoints.isEmpty ? "none (503)" : backend.endpoints.joined(separator: ","), String(backend.endpoints.count)]
                    }))
        }
        if sections.contains(.certs), !certificates.isEmpty {
            out.append("")
            out.append(
                TextTable.render(
                    header: ["CERTIFICATE", "SUBJECT", "DNS NAMES", "NOT AFTER", "HOSTS"],
                    rows: certificates.map {
                        [$0.name, $0.subject, $0.dnsNames.joined(separator: ","), $0.notAfter, $0.hosts.joined(separator: ",")]
                    }))
        }
        if sections.contains(.rejections), !rejections.isEmpty {
            out.append("")
            out.append(
                TextTable.render(
                    header: ["OBJECT", "REASON", "EFFECT", "MESSAGE"],
                    rows: rejections.map { rejection in
                        let field = rejection.field.map { "\($0): " } ?? ""
                        let location = rejection.location.map { " [\($0)]" } ?? ""
                        return [rejection.object, rejection.reason, rejection.effect, field + rejection.message + location]
                    }))
        }
        if sections.contains(.annotations), !annotations.isEmpty {
            out.append("")
            out.append(
                TextTable.render(
                    header: ["OBJECT", "ANNOTATION", "STATUS", "NOTE"],
                    rows: annotations.map { [$0.object, $0.key, $0.status, $0.message.isEmpty ? "-" : $0.message] }))
        }
        if sections.contains(.subscribers), let subscribers {
            out.append("")
            if subscribers.isEmpty {
                out.append("SUBSCRIBERS: none connected")
            } else {
                out.append(
                    TextTable.render(
                        header: ["SUBSCRIBER", "NODE", "WORKER", "KIND", "PID", "RESTARTS", "ACKED", "LAG", "DELTAS", "CONNECTED SINCE", "LAST NACK"],
                        rows: subscribers.map { subscriber in
                            [
                                subscriber.id, subscriber.node.isEmpty ? "-" : subscriber.node, subscriber.worker.isEmpty ? "-" : subscriber.worker,
                                subscriber.kind, subscriber.pid.map(String.init) ?? "-", subscriber.restarts.map(String.init) ?? "-",
                                subscriber.ackedVersion == 0 ? "-" : String(subscriber.ackedVersion), String(subscriber.lag),
                                String(subscriber.deltasSent), subscriber.connectedSince,
                                subscriber.lastNack.map { "version \($0.version) at \($0.at): \($0.error)" } ?? "-",
                            ]
                        }))
            }
        }
        if sections.contains(.rejections), !manifestErrors.isEmpty {
            out.append("")
            out.append("MANIFEST ERRORS")
            out.append(contentsOf: manifestErrors)
        }
        return out.joined(separator: "\n")
    }

    private func row(host: String, match: String, path: String, backend: BackendEntry, tls: String) -> [String] {
        let endpoints: String
        switch backend.endpoints.count {
        case 0: endpoints = "none (503)"
        case 1...3: endpoints = backend.endpoints.joined(separator: ",")
        default: endpoints = backend.endpoints.prefix(2).joined(separator: ",") + ",+\(backend.endpoints.count - 2) more"
        }
        let tlsColumn = backend.httpsRedirect ? "\(tls) (redirect)" : tls
        return [
            host, match, path, "\(backend.namespace)/\(backend.ingress)", "\(backend.service):\(backend.servicePort)", endpoints,
            tlsColumn,
        ]
    }
}

/// Left-aligned columns separated by three spaces, as `kubectl get` prints them.
enum TextTable {
    static func render(header: [String], rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var text = ""
            for (index, cell) in cells.enumerated() {
                if index == cells.count - 1 {
                    text += cell
                } else {
                    text += cell + String(repeating: " ", count: widths[index] - cell.count + 3)
                }
            }
            return text
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}

extension DumpDocument {
    /// The document with only `sections` filled (for `--section` with json or yaml).
    func only(_ sections: Set<Section>) -> DumpDocument {
        var copy = self
        if !sections.contains(.routes), !sections.contains(.clusters) { copy.virtualHosts = [] }
        if !sections.contains(.certs) { copy.certificates = [] }
        if !sections.contains(.rejections) {
            copy.rejections = []
            copy.manifestErrors = []
        }
        if !sections.contains(.annotations) { copy.annotations = [] }
        if !sections.contains(.subscribers) { copy.subscribers = nil }
        return copy
    }
}
