/// Everything the translator reads, as one value.
public struct KubeObjects: Sendable, Hashable {
    public var ingresses: [Ingress]
    public var ingressClasses: [IngressClass]
    public var services: [Service]
    public var endpointSlices: [EndpointSlice]
    public var secrets: [Secret]

    public init(
        ingresses: [Ingress] = [], ingressClasses: [IngressClass] = [], services: [Service] = [],
        endpointSlices: [EndpointSlice] = [], secrets: [Secret] = []
    ) {
        self.ingresses = ingresses
        self.ingressClasses = ingressClasses
        self.services = services
        self.endpointSlices = endpointSlices
        self.secrets = secrets
    }

    public var count: Int {
        ingresses.count + ingressClasses.count + services.count + endpointSlices.count + secrets.count
    }
}

/// Any object kind Portico reads, for loaders that do not know the kind in advance.
public enum AnyKubeObject: Sendable, Hashable {
    case ingress(Ingress)
    case ingressClass(IngressClass)
    case service(Service)
    case endpointSlice(EndpointSlice)
    case secret(Secret)

    /// The types Portico reads, by kind.
    public static let kinds: [String: any KubeObject.Type] = [
        Ingress.kind: Ingress.self, IngressClass.kind: IngressClass.self, Service.kind: Service.self,
        EndpointSlice.kind: EndpointSlice.self, Secret.kind: Secret.self,
    ]

    public init?(_ object: any KubeObject) {
        switch object {
        case let object as Ingress: self = .ingress(object)
        case let object as IngressClass: self = .ingressClass(object)
        case let object as Service: self = .service(object)
        case let object as EndpointSlice: self = .endpointSlice(object)
        case let object as Secret: self = .secret(object)
        default: return nil
        }
    }

    public var ref: ObjectRef {
        switch self {
        case .ingress(let object): object.ref
        case .ingressClass(let object): object.ref
        case .service(let object): object.ref
        case .endpointSlice(let object): object.ref
        case .secret(let object): object.ref
        }
    }
}

extension KubeObjects {
    public mutating func append(_ object: AnyKubeObject) {
        switch object {
        case .ingress(let object): ingresses.append(object)
        case .ingressClass(let object): ingressClasses.append(object)
        case .service(let object): services.append(object)
        case .endpointSlice(let object): endpointSlices.append(object)
        case .secret(let object): secrets.append(object)
        }
    }
}
