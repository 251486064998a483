import KubeTypes

/// A large, clean, deterministic cluster for benchmarks: N Ingresses, N Services, N EndpointSlices.
public enum GeneratedCluster {
    /// One Ingress per app: a host (every tenth a wildcard), a Prefix `/`, a Prefix `/api/vK` and, on
    /// every fourth, an Exact `/healthz`; each app's Service has one port and a slice of three Pods.
    public static func objects(count: Int) -> KubeObjects {
        var objects = KubeObjects()
        objects.ingresses.reserveCapacity(count)
        objects.services.reserveCapacity(count)
        objects.endpointSlices.reserveCapacity(count)
        for index in 0..<count {
            let namespace = "team-\(index % 50)"
            let service = "app-\(index)"
            let host = index % 10 == 9 ? "*.tenant-\(index).example.com" : "app-\(index).example.com"
            let backend = IngressBackend(service: IngressServiceBackend(name: service, port: ServiceBackendPort(number: 80)))
            var paths = [
                HTTPIngressPath(path: "/", pathType: "Prefix", backend: backend),
                HTTPIngressPath(path: "/api/v\(index % 3 + 1)", pathType: "Prefix", backend: backend),
            ]
            if index % 4 == 0 { paths.append(HTTPIngressPath(path: "/healthz", pathType: "Exact", backend: backend)) }
            objects.ingresses.append(
                Ingress(
                    metadata: ObjectMeta(name: service, namespace: namespace, creationTimestamp: KubeTime(secondsSinceEpoch: 1_700_000_000 + Int64(index))),
                    spec: IngressSpec(ingressClassName: "portico", rules: [IngressRule(host: host, http: HTTPIngressRuleValue(paths: paths))])))
            objects.services.append(
                Service(
                    metadata: ObjectMeta(name: service, namespace: namespace),
                    spec: ServiceSpec(ports: [ServicePort(name: "http", port: 80, targetPort: .int(8080))])))
            let base = index * 3
            objects.endpointSlices.append(
                EndpointSlice(
                    metadata: ObjectMeta(name: "\(service)-abcde", namespace: namespace, labels: [EndpointSlice.serviceNameLabel: service]),
                    addressType: "IPv4",
                    endpoints: (0..<3).map { pod in
                        let address = base + pod
                        return EndpointSliceEndpoint(
                            addresses: ["10.\(address >> 16 & 255).\(address >> 8 & 255).\(address & 255)"],
                            conditions: EndpointConditions(ready: true))
                    },
                    ports: [EndpointSlicePort(name: "http", port: 8080, protocol: "TCP")]))
        }
        return objects
    }
}
