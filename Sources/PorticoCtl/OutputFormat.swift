import ArgumentParser
import Foundation
import Yams

public enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json, yaml
}

enum Render {
    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func yaml(_ value: some Encodable) throws -> String {
        let encoder = YAMLEncoder()
        encoder.options.sortKeys = true
        return try encoder.encode(value)
    }
}

extension DumpDocument.Section: ExpressibleByArgument {}
