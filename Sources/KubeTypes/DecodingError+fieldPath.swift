import Foundation

extension DecodingError {
    /// The coding path as a Kubernetes field path: `spec.rules[0].http.paths[1].pathType`.
    public var fieldPath: String {
        let path: [any CodingKey]
        switch self {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            path = context.codingPath
        case .keyNotFound(let key, let context):
            path = context.codingPath + [key]
        @unknown default:
            path = []
        }
        return DecodingError.fieldPath(path)
    }

    public static func fieldPath(_ path: [any CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text
    }

    /// What was wrong, without the path: for messages such as `spec.rules: expected a list`.
    public var problem: String {
        switch self {
        case .typeMismatch(let type, let context):
            // Decoders phrase this as "Expected to decode Int32 but found a string instead."; keep what was found.
            var found = ""
            if let range = context.debugDescription.range(of: " but found ") {
                let rest = context.debugDescription[range.upperBound...]
                let what = rest.hasSuffix(" instead.") ? rest.dropLast(9) : rest
                if what.first?.isLowercase == true { found = ", found \(what)" }
            } else if !context.debugDescription.hasPrefix("Expected to decode"), !context.debugDescription.isEmpty {
                found = " (\(context.debugDescription))"
            }
            return "expected \(DecodingError.describe(type))\(found)"
        case .valueNotFound(let type, _):
            return "expected \(DecodingError.describe(type)), found null"
        case .keyNotFound:
            return "required field is missing"
        case .dataCorrupted(let context):
            return context.debugDescription
        @unknown default:
            return String(describing: self)
        }
    }

    /// `spec.rules[0].host: expected a string (...)`.
    public var kubernetesDescription: String {
        let path = fieldPath
        return path.isEmpty ? problem : "\(path): \(problem)"
    }

    private static func describe(_ type: Any.Type) -> String {
        let name = String(describing: type)
        switch name {
        case "String": return "a string"
        case "Int", "Int32", "Int64", "UInt16": return "an integer"
        case "Bool": return "a boolean (true or false)"
        case "Double": return "a number"
        default:
            if name.hasPrefix("Array") || name.hasSuffix("Sequence") { return "a list" }
            if name.hasPrefix("Dictionary") || name.hasSuffix("Mapping") { return "a map" }
            return "an object (\(name))"
        }
    }
}
