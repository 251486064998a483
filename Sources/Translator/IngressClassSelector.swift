import KubeTypes

/// Decides which Ingresses are Portico's.
///
/// An Ingress names its class by `spec.ingressClassName`, or by the legacy annotation
/// `kubernetes.io/ingress.class`. The class is ours when an IngressClass of that name has our
/// `spec.controller`, or when it is the configured class name and no IngressClass of that name says
/// otherwise. An Ingress without a class is ours only when one of our IngressClasses is marked
/// `ingressclass.kubernetes.io/is-default-class: "true"`.
struct IngressClassSelector {
    private var ourClasses: Set<String> = []
    private var isDefault = false
    /// Our classes annotated `portico.io/ingress-nginx-paths: "true"` (and "" for the default class when it is).
    private var nginxPathClasses: Set<String> = []

    /// On an IngressClass of ours: its Ingresses' paths also behave as ingress-nginx's do where that
    /// departs from the Ingress API (today: a request for a path ending in `/`, without the `/`, is
    /// answered 301 to the path with it).
    static let nginxPathsAnnotation = "portico.io/ingress-nginx-paths"

    init(classes: [IngressClass], configuration: TranslatorConfiguration) {
        var foreign: Set<String> = []
        for ingressClass in classes {
            if ingressClass.spec?.controller == configuration.controllerName {
                ourClasses.insert(ingressClass.name)
                let nginxPaths = ingressClass.metadata.annotation(Self.nginxPathsAnnotation)?.lowercased() == "true"
                if nginxPaths { nginxPathClasses.insert(ingressClass.name) }
                if ingressClass.isDefaultClass {
                    isDefault = true
                    if nginxPaths { nginxPathClasses.insert("") }
                }
            } else {
                foreign.insert(ingressClass.name)
            }
        }
        if !foreign.contains(configuration.ingressClassName) { ourClasses.insert(configuration.ingressClassName) }
    }

    func isOurs(_ ingress: Ingress) -> Bool {
        guard let className = Self.className(of: ingress) else { return isDefault }
        return ourClasses.contains(className)
    }

    /// Whether an Ingress of ours takes ingress-nginx's path behaviour from its class.
    func usesIngressNginxPaths(_ ingress: Ingress) -> Bool {
        nginxPathClasses.contains(Self.className(of: ingress) ?? "")
    }

    static func className(of ingress: Ingress) -> String? {
        if let name = ingress.spec?.ingressClassName, !name.isEmpty { return name }
        if let name = ingress.metadata.annotation(Ingress.legacyClassAnnotation), !name.isEmpty { return name }
        return nil
    }
}
