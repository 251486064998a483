import KubeTypes

/// Where an object or an error came from: `quickstart/app.yaml: document 2 (line 14)`.
public struct ManifestLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var file: String
    /// 1-based, counting the non-empty documents of the file.
    public var document: Int
    /// 0-based index in a `kind: List`'s `items`.
    public var item: Int?
    /// 1-based line in the file, when known.
    public var line: Int?

    public init(file: String, document: Int, item: Int? = nil, line: Int? = nil) {
        self.file = file
        self.document = document
        self.item = item
        self.line = line
    }

    public var description: String {
        var text = "\(file): document \(document)"
        if let item { text += ", items[\(item)]" }
        if let line { text += " (line \(line))" }
        return text
    }

    public static func < (lhs: ManifestLocation, rhs: ManifestLocation) -> Bool {
        (lhs.file, lhs.document, lhs.item ?? -1, lhs.line ?? 0) < (rhs.file, rhs.document, rhs.item ?? -1, rhs.line ?? 0)
    }
}

/// A document or object that could not be loaded. The rest of the file still loads.
public struct ManifestError: Error, Sendable, Hashable, Comparable, CustomStringConvertible {
    public var location: ManifestLocation
    /// The object, when its kind and name could be read.
    public var object: ObjectRef?
    public var message: String

    public init(location: ManifestLocation, object: ObjectRef? = nil, message: String) {
        self.location = location
        self.object = object
        self.message = message
    }

    public var description: String {
        if let object { return "\(location): \(object): \(message)" }
        return "\(location): \(message)"
    }

    public static func < (lhs: ManifestError, rhs: ManifestError) -> Bool {
        (lhs.location, lhs.message) < (rhs.location, rhs.message)
    }
}
