import KubeTypes
import RouteModel

/// ingress-nginx's `default-backend`, `custom-http-errors` and `disable-proxy-intercept-errors`,
/// read for one Ingress. The translator resolves the Service (its first port, as ingress-nginx
/// takes it) once it knows the Services, and falls back to the catch-all default backend
/// (`spec.defaultBackend` of an Ingress without rules) for custom-http-errors without default-backend.
struct ErrorPageSettings: Sendable {
    /// `default-backend`: a Service of the Ingress's namespace, and the key it was read from.
    var service: String?
    var serviceKey: String?
    /// `custom-http-errors`, sorted, and the key.
    var statuses: [Int] = []
    var statusesKey: String?
    /// `disable-proxy-intercept-errors: true`: only the worker's own 502/503/504 are replaced.
    var keepsPodAnswers = false

    var isEmpty: Bool { service == nil && statuses.isEmpty }

    init() {}

    init(_ annotations: inout IngressAnnotations) {
        if let (key, value) = annotations.value("default-backend") {
            let name = String(value[...].trimmingWhitespace())
            if Self.isServiceName(name) {
                service = name
                serviceKey = key
            } else {
                annotations.invalid(key, "\"\(value)\" is not a Service name (the Service must be in the Ingress's namespace)")
            }
        }
        if let (key, value) = annotations.value("custom-http-errors") {
            var codes = Set<Int>()
            var bad: [String] = []
            for part in value.split(separator: ",") {
                let text = part.trimmingWhitespace()
                if let code = Int(text), (400...599).contains(code) { codes.insert(code) } else { bad.append(String(text)) }
            }
            if !bad.isEmpty || codes.isEmpty {
                annotations.invalid(
                    key, "\"\(value)\" is not a comma-separated list of 4xx and 5xx statuses; the Pods' answers are relayed as they are")
            } else {
                statuses = codes.sorted()
                statusesKey = key
            }
        }
        if let (key, value) = annotations.value("disable-proxy-intercept-errors") {
            if let flag = IngressAnnotations.bool(value) { keepsPodAnswers = flag } else {
                annotations.invalid(key, "\"\(value)\" is not true or false; the Pods' answers are intercepted")
            }
        }
    }

    /// A DNS-1035 label: what a Service's name is.
    static func isServiceName(_ name: String) -> Bool {
        guard let first = name.utf8.first, let last = name.utf8.last, name.utf8.count <= 63 else { return false }
        let lower = { (byte: UInt8) in byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") }
        let digit = { (byte: UInt8) in byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        return lower(first) && (lower(last) || digit(last)) && name.utf8.allSatisfy { lower($0) || digit($0) || $0 == UInt8(ascii: "-") }
    }
}
