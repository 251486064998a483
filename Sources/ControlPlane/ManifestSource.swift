import Foundation
import KubeTypes
import Logging
import Manifests
import RouteModel
import SnapshotProtocol
import Synchronization
import Translator

/// The control plane's file source: loads a manifest file or directory and watches it by polling file
/// stamps (cheap next to a rebuild, and portable). Changes feed a `RebuildLoop`, which waits for a
/// burst of edits to end (an editor may write a file in pieces: no rebuild at the first change) and
/// publishes a new version only when the compiled table's hash changes.
///
/// A file that stops parsing keeps its last good objects (objects of that file the new text no longer
/// yields are carried over) and its errors are reported; nothing else is lost.
public final class ManifestSource: Sendable {
    public struct Options: Sendable {
        public var pollInterval: Duration = .milliseconds(100)
        /// A change is applied once the files were quiet this long…
        public var holdOff: Duration = .milliseconds(100)
        /// …or this long after the first change of a burst, whichever comes first.
        public var maxHoldOff: Duration = .milliseconds(500)
        public init() {}
    }

    /// What the last load produced.
    public struct Status: Sendable, RebuildLoopStatusReporting {
        /// From the rebuild loop: the version published, its hash, rebuilds and their time.
        public var loop = RebuildLoop.Status()
        public var errors: [ManifestError] = []
        public var rejections: [Rejection] = []
    }

    public let path: String
    public let configuration: TranslatorConfiguration
    public let loop: RebuildLoop
    public var latest: LatestSnapshot { loop.latest }
    public let diagnostics: DiagnosticsBoard
    private let options: Options
    private let logger: Logger
    private let state = Mutex(State())

    private struct FileStamp: Equatable {
        var modified: timespec
        var size: Int64
        var inode: UInt64

        static func == (lhs: FileStamp, rhs: FileStamp) -> Bool {
            lhs.modified.tv_sec == rhs.modified.tv_sec && lhs.modified.tv_nsec == rhs.modified.tv_nsec && lhs.size == rhs.size
                && lhs.inode == rhs.inode
        }
    }

    private struct FileState {
        var stamp: FileStamp?
        var result: ManifestParser.Result
        /// Objects of the last parse without errors.
        var lastGood: [(object: AnyKubeObject, location: ManifestLocation)]
    }

    private struct State {
        var files: [String: FileState] = [:]
        var status = Status()
    }

    public init(
        path: String, configuration: TranslatorConfiguration = .init(), latest: LatestSnapshot, diagnostics: DiagnosticsBoard = DiagnosticsBoard(),
        options: Options = .init(), logger: Logger = Logger(label: "portico.manifests")
    ) {
        self.path = path
        self.configuration = configuration
        var loopOptions = RebuildLoop.Options()
        loopOptions.holdOff = options.holdOff
        loopOptions.maxHoldOff = options.maxHoldOff
        loopOptions.leadingEdge = false
        loop = RebuildLoop(latest: latest, options: loopOptions)
        self.diagnostics = diagnostics
        self.options = options
        self.logger = logger
    }

    public var status: Status {
        var status = state.withLock { $0.status }
        status.loop = loop.status
        return status
    }

    /// Loads once and publishes. Throws only when the path itself cannot be read.
    @discardableResult
    public func reload() throws(ManifestLoadError) -> Status {
        try loop.rebuilding { () throws(ManifestLoadError) in try load() }
        return status
    }

    private func load() throws(ManifestLoadError) {
        let files = try ManifestLoader.manifestFiles(at: path)
        var set = ManifestSet()
        var newErrors: [ManifestError] = []
        state.withLock { state in
            var kept: [String: FileState] = [:]
            for file in files {
                let stamp = Self.stamp(file)
                var entry = state.files[file]
                if entry == nil || entry?.stamp != stamp || stamp == nil {
                    entry = Self.load(file, stamp: stamp, previous: entry)
                }
                kept[file] = entry
                set.add(Self.effective(entry!), file: file)
            }
            state.files = kept
        }
        set.errors.sort()
        let translation = Translator.translate(set.objects, configuration: configuration)
        diagnostics.update(translation: translation, errors: set.errors, locations: set.locations)
        state.withLock { state in
            let previousErrors = Set(state.status.errors)
            newErrors = set.errors.filter { !previousErrors.contains($0) }
            state.status.errors = set.errors
            state.status.rejections = translation.rejections
        }
        let status = loop.publish(translation.table)
        loop.report(translation)
        for error in newErrors { logger.error("manifest error", metadata: ["error": "\(error)"]) }
        logger.info(
            "manifests loaded",
            metadata: [
                "version": "\(status.version)", "hash": "\(translation.table.contentHashHex)", "files": "\(files.count)",
                "errors": "\(set.errors.count)", "rejections": "\(translation.rejections.count)",
            ])
    }

    /// Polls for changes until cancelled, reloading each burst through the rebuild loop.
    public func watch() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.poll() }
            group.addTask {
                await self.loop.run {
                    do {
                        try self.load()
                    } catch {
                        self.logger.error("cannot read manifests", metadata: ["error": "\(error)"])
                    }
                }
            }
            await group.waitForAll()
        }
    }

    private func poll() async {
        var stamps = fingerprint()
        while !Task.isCancelled {
            do { try await Task.sleep(for: options.pollInterval) } catch { return }
            let current = fingerprint()
            if current != stamps {
                stamps = current
                loop.changed()
            }
        }
    }

    /// File paths and their stamps; a change in any of them (or the set of files) is a change.
    private func fingerprint() -> [String: FileStamp?] {
        guard let files = try? ManifestLoader.manifestFiles(at: path) else { return [:] }
        return Dictionary(uniqueKeysWithValues: files.map { ($0, Self.stamp($0)) })
    }

    private static func stamp(_ file: String) -> FileStamp? {
        var info = stat()
        guard stat(file, &info) == 0 else { return nil }
        return FileStamp(modified: info.st_mtim, size: Int64(info.st_size), inode: UInt64(info.st_ino))
    }

    private static func load(_ file: String, stamp: FileStamp?, previous: FileState?) -> FileState {
        var result = ManifestParser.Result()
        if let data = FileManager.default.contents(atPath: file) {
            if let text = String(data: data, encoding: .utf8) {
                result = ManifestParser.parse(text: text, file: file)
            } else {
                result.errors.append(ManifestError(location: ManifestLocation(file: file, document: 0), message: "is not UTF-8 text"))
            }
        } else {
            result.errors.append(ManifestError(location: ManifestLocation(file: file, document: 0), message: "cannot be read"))
        }
        let lastGood = result.errors.isEmpty ? result.objects : (previous?.lastGood ?? [])
        return FileState(stamp: stamp, result: result, lastGood: lastGood)
    }

    /// The objects a file contributes: what parses now, plus, while it has errors, the last good
    /// objects it no longer yields.
    private static func effective(_ file: FileState) -> ManifestParser.Result {
        guard !file.result.errors.isEmpty else { return file.result }
        var result = file.result
        let present = Set(result.objects.map(\.object.ref))
        for entry in file.lastGood where !present.contains(entry.object.ref) { result.objects.append(entry) }
        return result
    }
}
