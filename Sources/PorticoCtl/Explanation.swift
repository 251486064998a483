import Foundation
import RouteModel

/// The answer to "where does this request go?", as `porticoctl explain` prints it.
public struct Explanation: Sendable, Equatable {
    public enum Result: String, Sendable {
        case route = "route"
        case defaultBackend = "default-backend"
        case noRoute = "no-route"
        case noEndpoints = "no-endpoints"
        case badRequest = "bad-request"
    }

    public var result: Result
    public var status: Int?
    public var namespace: String?
    public var ingress: String?
    public var service: String?
    public var servicePort: PortValue?
    public var pathType: String?
    public var path: String?
    public var endpoints: [String]?
    /// Extra context for people; absent when there is nothing to add.
    public var virtualHost: String?
    public var normalizedPath: String?
    public var httpsRedirect: Bool?
    public var error: String?

    /// Decides as a worker would: normalise the path, pick the virtual host and route.
    public init(table: RouteTable, host: String, path: String) {
        let normalised: String
        do {
            normalised = try RequestPath.normalize(path)
        } catch {
            self.init(result: .badRequest, status: 400, error: error.description)
            return
        }
        let backend: Backend
        let hostIndex: Int
        var match: PathMatch?
        switch table.resolve(host: host, path: normalised) {
        case .notFound:
            self.init(result: .noRoute, status: 404, normalizedPath: normalised == path ? nil : normalised)
            return
        case .route(let virtualHost, let route):
            hostIndex = virtualHost
            backend = table.virtualHosts[virtualHost].routes[route].backend
            match = table.virtualHosts[virtualHost].routes[route].match
        case .defaultBackend(let virtualHost):
            hostIndex = virtualHost
            backend = table.virtualHosts[virtualHost].defaultBackend!
        }
        let cluster = table.cluster(named: backend.cluster)
        let endpoints = cluster?.endpoints.map(\.description) ?? []
        self.init(
            result: endpoints.isEmpty ? .noEndpoints : (match == nil ? .defaultBackend : .route),
            status: endpoints.isEmpty ? 503 : nil,
            namespace: backend.source.namespace, ingress: backend.source.ingress, service: cluster?.service,
            servicePort: cluster.map { PortValue($0.servicePort) }, pathType: match?.kind.rawValue, path: match?.path,
            endpoints: endpoints, virtualHost: table.virtualHosts[hostIndex].hostname.text,
            normalizedPath: normalised == path ? nil : normalised, httpsRedirect: backend.httpsRedirect ? true : nil)
    }

    init(
        result: Result, status: Int? = nil, namespace: String? = nil, ingress: String? = nil, service: String? = nil,
        servicePort: PortValue? = nil, pathType: String? = nil, path: String? = nil, endpoints: [String]? = nil,
        virtualHost: String? = nil, normalizedPath: String? = nil, httpsRedirect: Bool? = nil, error: String? = nil
    ) {
        self.result = result
        self.status = status
        self.namespace = namespace
        self.ingress = ingress
        self.service = service
        self.servicePort = servicePort
        self.pathType = pathType
        self.path = path
        self.endpoints = endpoints
        self.virtualHost = virtualHost
        self.normalizedPath = normalizedPath
        self.httpsRedirect = httpsRedirect
        self.error = error
    }

    /// One line of JSON with the documented keys first, in a fixed order (JSONEncoder does not
    /// keep key order on every platform). Absent values are left out.
    public var json: String {
        var fields: [(String, any Encodable)] = [("result", result.rawValue)]
        func add(_ key: String, _ value: (any Encodable)?) {
            if let value { fields.append((key, value)) }
        }
        add("status", status)
        add("namespace", namespace)
        add("ingress", ingress)
        add("service", service)
        add("servicePort", servicePort)
        add("pathType", pathType)
        add("path", path)
        add("endpoints", endpoints)
        add("virtualHost", virtualHost)
        add("normalizedPath", normalizedPath)
        add("httpsRedirect", httpsRedirect)
        add("error", error)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let members = fields.map { key, value in
            "\"\(key)\":" + ((try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null")
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    /// Lines for people.
    public var text: String {
        var lines: [String] = []
        switch result {
        case .noRoute:
            lines.append("result: no route matches: 404")
        case .badRequest:
            lines.append("result: bad request: 400 (\(error ?? ""))")
        case .route, .defaultBackend, .noEndpoints:
            let what = pathType.map { "\($0) \(path ?? "")" } ?? "defaultBackend"
            lines.append("result:        \(result.rawValue)\(status.map { ": \($0)" } ?? "")")
            lines.append("virtual host:  \(virtualHost ?? "")")
            lines.append("matched:       \(what) of Ingress \(namespace ?? "")/\(ingress ?? "")")
            lines.append("backend:       Service \(namespace ?? "")/\(service ?? "") port \(servicePort?.description ?? "")")
            let list = endpoints ?? []
            lines.append("endpoints:     \(list.isEmpty ? "none ready: the request gets 503" : list.joined(separator: ", "))")
            if httpsRedirect == true { lines.append("plain HTTP:    redirected to https with 308") }
        }
        if let normalizedPath { lines.append("path matched as \(normalizedPath) after normalisation") }
        return lines.joined(separator: "\n")
    }
}
