extension DumpDocument {
    /// `kubectl get`-style text: a header line, then routes, certificates, rejections and manifest errors.
    public var table: String {
        var out: [String] = []
        let version = self.version.map { "version \($0), " } ?? ""
        out.append("\(source)  \(version)hash \(contentHash)")
        out.append(
            "\(summary.virtualHosts) virtual hosts, \(summary.routes) routes, \(summary.clusters) clusters, "
                + "\(summary.endpoints) endpoints, \(summary.certificates) certificates; Ingresses: \(summary.acceptedIngresses) accepted, "
                + "\(summary.rejectedIngresses) rejected, \(summary.ignoredIngresses) of other classes")

        var routeRows: [[String]] = []
        for host in virtualHosts {
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
        out.append("")
        out.append(TextTable.render(header: ["HOST", "MATCH", "PATH", "INGRESS", "BACKEND", "ENDPOINTS", "TLS"], rows: routeRows))

        if !certificates.isEmpty {
            out.append("")
            out.append(
                TextTable.render(
                    header: ["CERTIFICATE", "SUBJECT", "DNS NAMES", "NOT AFTER", "HOSTS"],
                    rows: certificates.map {
                        [$0.name, $0.subject, $0.dnsNames.joined(separator: ","), $0.notAfter, $0.hosts.joined(separator: ",")]
                    }))
        }
        if !rejections.isEmpty {
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
        if let subscribers {
            out.append("")
            if subscribers.isEmpty {
                out.append("SUBSCRIBERS: none connected")
            } else {
                out.append(
                    TextTable.render(
                        header: ["SUBSCRIBER", "NODE", "WORKER", "KIND", "ACKED", "LAG", "CONNECTED SINCE", "LAST NACK"],
                        rows: subscribers.map { subscriber in
                            [
                                subscriber.id, subscriber.node.isEmpty ? "-" : subscriber.node, subscriber.worker.isEmpty ? "-" : subscriber.worker,
                                subscriber.kind, subscriber.ackedVersion == 0 ? "-" : String(subscriber.ackedVersion), String(subscriber.lag),
                                subscriber.connectedSince,
                                subscriber.lastNack.map { "version \($0.version) at \($0.at): \($0.error)" } ?? "-",
                            ]
                        }))
            }
        }
        if !manifestErrors.isEmpty {
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
