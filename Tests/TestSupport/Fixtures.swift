import KubeTypes

/// Small constructors for Kubernetes objects, so table-driven tests read like the manifests they stand for.
public enum Fixture {
    public static func meta(
        _ name: String, namespace: String = "default", created: Int64? = nil, annotations: [String: String]? = nil,
        labels: [String: String]? = nil
    ) -> ObjectMeta {
        ObjectMeta(
            name: name, namespace: namespace, creationTimestamp: created.map(KubeTime.init(secondsSinceEpoch:)),
            labels: labels, annotations: annotations)
    }

    public static func backend(_ service: String, _ port: Int32) -> IngressBackend {
        IngressBackend(service: IngressServiceBackend(name: service, port: ServiceBackendPort(number: port)))
    }

    public static func backend(_ service: String, portName: String) -> IngressBackend {
        IngressBackend(service: IngressServiceBackend(name: service, port: ServiceBackendPort(name: portName)))
    }

    public static func path(_ path: String?, _ type: String? = "Prefix", _ backend: IngressBackend) -> HTTPIngressPath {
        HTTPIngressPath(path: path, pathType: type, backend: backend)
    }

    public static func rule(_ host: String?, _ paths: HTTPIngressPath...) -> IngressRule {
        IngressRule(host: host, http: HTTPIngressRuleValue(paths: paths))
    }

    public static func ingress(
        _ name: String, namespace: String = "default", className: String? = "portico", created: Int64? = nil,
        annotations: [String: String]? = nil, defaultBackend: IngressBackend? = nil, tls: [IngressTLS]? = nil,
        rules: [IngressRule] = []
    ) -> Ingress {
        Ingress(
            metadata: meta(name, namespace: namespace, created: created, annotations: annotations),
            spec: IngressSpec(
                ingressClassName: className, defaultBackend: defaultBackend, tls: tls, rules: rules.isEmpty ? nil : rules))
    }

    public static func ingressClass(_ name: String, controller: String = "portico.io/ingress-controller", isDefault: Bool = false)
        -> IngressClass
    {
        IngressClass(
            metadata: ObjectMeta(name: name, annotations: isDefault ? [IngressClass.isDefaultClassAnnotation: "true"] : nil),
            spec: IngressClassSpec(controller: controller))
    }

    public static func service(
        _ name: String, namespace: String = "default", ports: [ServicePort] = [ServicePort(name: "http", port: 80, targetPort: .int(8080))],
        type: String? = nil, externalName: String? = nil
    ) -> Service {
        Service(metadata: meta(name, namespace: namespace), spec: ServiceSpec(type: type, externalName: externalName, ports: ports))
    }

    /// A slice for `service` with one port and the given endpoints (address, ready).
    public static func slice(
        _ name: String, service: String, namespace: String = "default", addressType: String = "IPv4",
        portName: String? = "http", port: Int32 = 8080, endpoints: [(String, Bool?)]
    ) -> EndpointSlice {
        EndpointSlice(
            metadata: meta(name, namespace: namespace, labels: [EndpointSlice.serviceNameLabel: service]),
            addressType: addressType,
            endpoints: endpoints.map { address, ready in
                EndpointSliceEndpoint(addresses: [address], conditions: EndpointConditions(ready: ready))
            },
            ports: [EndpointSlicePort(name: portName, port: port, protocol: "TCP")])
    }

    public static func tlsSecret(_ name: String, namespace: String = "default", certificatePEM: String, keyPEM: String) -> Secret {
        Secret(
            metadata: meta(name, namespace: namespace), type: Secret.tlsType,
            data: [Secret.certificateKey: Base64Data(Array(certificatePEM.utf8)), Secret.privateKeyKey: Base64Data(Array(keyPEM.utf8))])
    }
}
