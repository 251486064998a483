import ArgumentParser
import Foundation
import Translator

/// `porticoctl annotations`: which ingress-nginx annotations Portico honours, from the one table the
/// translator reads (`AnnotationCatalog`). `--markdown` is the README's compatibility table.
public struct AnnotationsCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "annotations",
        abstract: "List every nginx.ingress.kubernetes.io/ and portico.io/ annotation and whether Portico supports it.")

    @Flag(help: "Print the Markdown table that README.md carries.")
    public var markdown = false
    @Option(name: .long, help: "Show only this status: supported, supported-with-difference or unsupported.")
    public var status: AnnotationCatalog.Support?

    public init() {}

    public func execute() -> CommandResult {
        let entries = AnnotationCatalog.entries.filter { status == nil || $0.support == status }
        let text = markdown ? Self.markdown(entries) : Self.table(entries)
        return CommandResult(stdout: text, stderr: "", exitCode: 0)
    }

    public func run() async throws {
        let result = execute()
        print(result.stdout, terminator: "")
    }

    static func keys(_ entry: AnnotationCatalog.Entry) -> String {
        entry.inIngressNginx ? AnnotationCatalog.nginxPrefix + entry.name : AnnotationCatalog.porticoPrefix + entry.name
    }

    static func table(_ entries: [AnnotationCatalog.Entry]) -> String {
        TextTable.render(
            header: ["ANNOTATION", "STATUS", "NOTE"],
            rows: entries.map { [keys($0), $0.support.rawValue + ($0.rejectsIngress ? " (rejects the Ingress)" : ""), $0.note.isEmpty ? "-" : $0.note] })
            + "\n"
    }

    /// One row per annotation; the `portico.io/` key of each works too.
    public static func markdown(_ entries: [AnnotationCatalog.Entry] = AnnotationCatalog.entries) -> String {
        var lines = ["| annotation | status | notes |", "| --- | --- | --- |"]
        for entry in entries {
            let status: String
            switch entry.support {
            case .supported: status = "supported"
            case .differs: status = "supported, differs"
            case .unsupported: status = entry.rejectsIngress ? "unsupported: rejects the Ingress" : "unsupported: warning"
            }
            let name = entry.inIngressNginx ? "`\(entry.name)`" : "`portico.io/\(entry.name)` (Portico's own)"
            lines.append("| \(name) | \(status) | \(entry.note.replacingOccurrences(of: "|", with: "\\|")) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension AnnotationCatalog.Support: ExpressibleByArgument {}
