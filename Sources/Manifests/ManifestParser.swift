import KubeTypes
import Yams

/// Parses the text of one manifest file: YAML with any number of `---`-separated documents, or JSON,
/// each document an object or a `kind: List`.
///
/// Each document is parsed on its own, so a syntax error in one never hides the others, and each
/// `List` item is decoded on its own for the same reason. Kinds Portico does not read (Deployments,
/// ConfigMaps, …) are skipped silently: users point Portico at their whole manifest directory.
public enum ManifestParser {
    public struct Result: Sendable {
        public var objects: [(object: AnyKubeObject, location: ManifestLocation)] = []
        public var errors: [ManifestError] = []
        /// Objects of kinds Portico does not read.
        public var skipped: Int = 0

        public init() {}
    }

    public static func parse(text: String, file: String) -> Result {
        var result = Result()
        for (index, document) in splitDocuments(text).enumerated() {
            let documentNumber = index + 1
            let node: Node?
            do {
                node = try Yams.compose(yaml: document.text)
            } catch {
                let (line, message) = describe(yamlError: error, firstLine: document.firstLine)
                result.errors.append(
                    ManifestError(location: ManifestLocation(file: file, document: documentNumber, line: line), message: message))
                continue
            }
            guard let node else { continue }
            let location = ManifestLocation(file: file, document: documentNumber, line: document.firstLine)
            decodeDocument(node, location: location, firstLine: document.firstLine, into: &result)
        }
        return result
    }

    private static func decodeDocument(_ node: Node, location: ManifestLocation, firstLine: Int, into result: inout Result) {
        guard node.mapping != nil else {
            result.errors.append(ManifestError(location: location, message: "expected a Kubernetes object (a mapping), found \(describe(node))"))
            return
        }
        if node["kind"]?.string == "List" || node["kind"]?.string?.hasSuffix("List") == true && node["items"] != nil {
            guard let items = node["items"] else { return }
            guard let sequence = items.sequence else {
                result.errors.append(ManifestError(location: location, message: "items: expected a list"))
                return
            }
            for (itemIndex, item) in sequence.enumerated() {
                var itemLocation = location
                itemLocation.item = itemIndex
                itemLocation.line = item.mark.map { $0.line + firstLine - 1 } ?? location.line
                decodeObject(item, location: itemLocation, firstLine: firstLine, into: &result)
            }
            return
        }
        decodeObject(node, location: location, firstLine: firstLine, into: &result)
    }

    private static func decodeObject(_ node: Node, location: ManifestLocation, firstLine: Int, into result: inout Result) {
        guard node.mapping != nil else {
            result.errors.append(ManifestError(location: location, message: "expected a Kubernetes object (a mapping), found \(describe(node))"))
            return
        }
        guard let apiVersion = node["apiVersion"]?.string, !apiVersion.isEmpty else {
            result.errors.append(ManifestError(location: location, message: "apiVersion: required field is missing"))
            return
        }
        guard let kind = node["kind"]?.string, !kind.isEmpty else {
            result.errors.append(ManifestError(location: location, message: "kind: required field is missing"))
            return
        }
        guard let type = AnyKubeObject.kinds[kind] else {
            result.skipped += 1
            return
        }
        let name = node["metadata"]?["name"]?.string
        let namespace = kind == IngressClass.kind ? "" : (node["metadata"]?["namespace"]?.string ?? "default")
        let ref = name.map { ObjectRef(kind: kind, namespace: namespace, name: $0) }
        guard apiVersion == type.apiVersion else {
            result.errors.append(
                ManifestError(
                    location: location, object: ref,
                    message: "apiVersion \(apiVersion) is not supported for \(kind); use \(type.apiVersion)"))
            return
        }
        do {
            let object = try decode(type, from: node)
            guard let any = AnyKubeObject(object) else { return }
            result.objects.append((any, location))
        } catch let error as DecodingError {
            var errorLocation = location
            var message = error.kubernetesDescription
            if let found = self.node(at: error, in: node) {
                if let line = found.mark?.line { errorLocation.line = line + firstLine - 1 }
                if case .typeMismatch = error { message += ", found \(describe(found))" }
            }
            result.errors.append(ManifestError(location: errorLocation, object: ref, message: message))
        } catch {
            result.errors.append(ManifestError(location: location, object: ref, message: String(describing: error)))
        }
    }

    private static func decode<T: KubeObject>(_ type: T.Type, from node: Node) throws -> any KubeObject {
        try YAMLDecoder().decode(type, from: node)
    }

    /// Follows a decoding error's coding path through the node tree to the node it points at.
    private static func node(at error: DecodingError, in root: Node) -> Node? {
        let path: [any CodingKey]
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            path = context.codingPath
        case .keyNotFound(_, let context):
            path = context.codingPath
        @unknown default:
            return nil
        }
        var node = root
        for key in path {
            let next: Node?
            if let index = key.intValue, let sequence = node.sequence {
                next = index < sequence.count ? sequence[index] : nil
            } else {
                next = node[key.stringValue]
            }
            guard let next else { break }
            node = next
        }
        return node
    }

    private static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): "\"\(scalar.string.prefix(40))\""
        case .sequence: "a list"
        case .mapping: "a mapping"
        case .alias: "an alias"
        }
    }

    private static func describe(yamlError error: any Error, firstLine: Int) -> (Int?, String) {
        guard let error = error as? YamlError else { return (firstLine, "invalid YAML: \(error)") }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let where_ = context.map { "\($0.text) " } ?? ""
            return (mark.line + firstLine - 1, "invalid YAML: \(where_)\(problem) at column \(mark.column)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return (context.mark.line + firstLine - 1, "invalid YAML: duplicate keys \(duplicates.joined(separator: ", "))")
        default:
            return (firstLine, "invalid YAML: \(error)")
        }
    }

    struct Document {
        var text: String
        /// 1-based line of the document's first line in the file.
        var firstLine: Int
    }

    /// Splits on `---` and `...` marker lines. Documents with nothing but blank lines and comments are dropped.
    static func splitDocuments(_ text: String) -> [Document] {
        var documents: [Document] = []
        var current: [Substring] = []
        var firstLine = 1
        var lineNumber = 0
        func flush(nextFirstLine: Int) {
            let hasContent = current.contains { line in
                let trimmed = line.drop { $0 == " " || $0 == "\t" }
                return !trimmed.isEmpty && !trimmed.hasPrefix("#")
            }
            if hasContent {
                // Blank lines keep each line's number equal to its number in the document.
                documents.append(Document(text: current.joined(separator: "\n"), firstLine: firstLine))
            }
            current = []
            firstLine = nextFirstLine
        }
        // "\r\n" is one Character in Swift, so it must be named to be split on.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            if isMarker(line, "---") {
                flush(nextFirstLine: lineNumber + 1)
                let rest = line.dropFirst(3).drop { $0 == " " || $0 == "\t" }
                // `--- {inline: document}` starts a document on the marker line itself.
                if !rest.isEmpty, !rest.hasPrefix("#") {
                    firstLine = lineNumber
                    current.append(rest)
                }
            } else if isMarker(line, "...") {
                flush(nextFirstLine: lineNumber + 1)
            } else {
                current.append(line)
            }
        }
        flush(nextFirstLine: lineNumber + 1)
        return documents
    }

    private static func isMarker(_ line: Substring, _ marker: String) -> Bool {
        guard line.hasPrefix(marker) else { return false }
        let rest = line.dropFirst(marker.count)
        return rest.isEmpty || rest.first == " " || rest.first == "\t"
    }
}
