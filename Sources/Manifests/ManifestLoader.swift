import Foundation
import KubeTypes

/// Everything loaded from a manifest path.
public struct ManifestSet: Sendable {
    public var objects = KubeObjects()
    /// Where each loaded object was defined.
    public var locations: [ObjectRef: ManifestLocation] = [:]
    /// Documents, items and duplicates that were not loaded, sorted by location.
    public var errors: [ManifestError] = []
    /// Objects of kinds Portico does not read.
    public var skipped = 0
    /// The files read, sorted.
    public var files: [String] = []

    public init() {}

    /// Adds one parsed file. An object defined twice keeps its first definition; the second is an error.
    public mutating func add(_ parsed: ManifestParser.Result, file: String) {
        files.append(file)
        skipped += parsed.skipped
        errors.append(contentsOf: parsed.errors)
        for (object, location) in parsed.objects {
            let ref = object.ref
            if let first = locations[ref] {
                errors.append(
                    ManifestError(
                        location: location, object: ref,
                        message: "defined again; the first definition at \(first) is used"))
                continue
            }
            locations[ref] = location
            objects.append(object)
        }
    }
}

/// Reads a manifest file, or every `.yaml`, `.yml` and `.json` file under a directory.
public enum ManifestLoader {
    public static let extensions: Set<String> = ["yaml", "yml", "json"]

    /// Fails only when the path itself cannot be read; problems inside files are in `errors`.
    public static func load(path: String) throws(ManifestLoadError) -> ManifestSet {
        var set = ManifestSet()
        for file in try manifestFiles(at: path) {
            guard let data = FileManager.default.contents(atPath: file) else {
                set.errors.append(ManifestError(location: ManifestLocation(file: file, document: 0), message: "cannot be read"))
                continue
            }
            guard let text = String(data: data, encoding: .utf8) else {
                set.errors.append(ManifestError(location: ManifestLocation(file: file, document: 0), message: "is not UTF-8 text"))
                continue
            }
            set.add(ManifestParser.parse(text: text, file: file), file: file)
        }
        set.errors.sort()
        return set
    }

    /// The manifest files at a path, sorted. Hidden files and directories (such as the `..data`
    /// links of a mounted ConfigMap) are skipped; symbolic links are followed.
    public static func manifestFiles(at path: String) throws(ManifestLoadError) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ManifestLoadError(path: path, reason: "no such file or directory")
        }
        guard isDirectory.boolValue else { return [path] }
        guard let enumerator = FileManager.default.enumerator(
            at: URL(fileURLWithPath: path), includingPropertiesForKeys: [.isRegularFileKey],
            options: [.skipsHiddenFiles])
        else {
            throw ManifestLoadError(path: path, reason: "the directory cannot be read")
        }
        var files: [String] = []
        let base = path.hasSuffix("/") ? String(path.dropLast()) : path
        let root = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        for case let url as URL in enumerator where extensions.contains(url.pathExtension.lowercased()) {
            let resolved = url.resolvingSymlinksInPath().path
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDir), !isDir.boolValue else { continue }
            // Report paths relative to what the user typed.
            let full = url.path
            let relative = full.hasPrefix(root) ? String(full.dropFirst(root.count)) : "/" + url.lastPathComponent
            files.append(base + relative)
        }
        return files.sorted()
    }
}

public struct ManifestLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String { "\(path): \(reason)" }
}
