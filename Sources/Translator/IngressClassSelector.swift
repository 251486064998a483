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

    init(classes: [IngressClass], configuration: TranslatorConfiguration) {
        var foreign: Set<String> = []
        for ingressClass in classes {
            if ingressClass.spec?.controller == configuration.controllerName {
                ourClasses.insert(ingressClass.name)
                if ingressClass.isDefaultClass { isDefault = true }
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

    static func className(of ingress: Ingress) -> String? {
        if let name = ingress.spec?.ingressClassName, !name.isEmpty { return name }
        if let name = ingress.metadata.annotation(Ingress.legacyClassAnnotation), !name.isEmpty { return name }
        return nil
    }
}
