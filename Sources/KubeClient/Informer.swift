import Foundation
import KubeTypes
import Logging
import Synchronization

/// A local cache of one kind, kept current with LIST then WATCH, as client-go's reflector does.
///
/// - The watch resumes from the last resourceVersion seen (an event's or a bookmark's), so a
///   dropped stream loses nothing.
/// - 410 Gone (the version is too old for the server) means relist: the cache is replaced with
///   the list, so objects deleted while away disappear.
/// - Errors back off exponentially (200 ms doubling to 30 s, with jitter); an attempt that
///   listed or received events resets the delay.
/// Every change calls `onChange`; consumers read `objects` when they rebuild. With `keep`, only the
/// objects it accepts are cached (one that stops being accepted is dropped, as if deleted).
public final class Informer<Object: KubeObject>: Sendable {
    public typealias Statistics = InformerStatistics

    private struct State {
        var objects: [String: Object] = [:]
        /// Keys changed since the last `takeChanges()`; nil after a list replaced the cache.
        var changed: Set<String>? = []
        var synced = false
        var statistics = Statistics()
    }

    private let client: KubeClient
    private let namespace: String?
    private let fieldSelector: String?
    private let keep: (@Sendable (Object) -> Bool)?
    private let watchTimeoutSeconds: Int
    private let logger: Logger
    private let state = Mutex(State())

    public init(
        client: KubeClient, namespace: String? = nil, fieldSelector: String? = nil, keep: (@Sendable (Object) -> Bool)? = nil,
        watchTimeoutSeconds: Int = 300, logger: Logger = Logger(label: "portico.kube")
    ) {
        self.client = client
        self.namespace = namespace
        self.fieldSelector = fieldSelector
        self.keep = keep
        self.watchTimeoutSeconds = watchTimeoutSeconds
        var logger = logger
        logger[metadataKey: "resource"] = "\(Object.resource)"
        self.logger = logger
    }

    /// The cached objects, in no particular order (the translator's output does not depend on it;
    /// sorting 10k objects here took 100 ms of every rebuild).
    public var objects: [Object] {
        state.withLock { Array($0.objects.values) }
    }

    /// How many objects the cache holds.
    public var count: Int { state.withLock { $0.objects.count } }

    /// The keys (`namespace/name`, the namespace empty for cluster-scoped objects) of the objects
    /// added, modified or deleted since the previous call, each with its cached value now (nil:
    /// deleted); nil when a LIST replaced the whole cache meanwhile.
    public func takeChanges() -> [String: Object?]? {
        state.withLock { state in
            defer { state.changed = [] }
            guard let changed = state.changed else { return nil }
            var changes: [String: Object?] = [:]
            for key in changed { changes[key] = .some(state.objects[key]) }
            return changes
        }
    }

    /// Whether the first LIST completed.
    public var hasSynced: Bool { state.withLock { $0.synced } }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    private static func key(_ object: Object) -> String { "\(object.metadata.namespace ?? "")/\(object.metadata.name)" }

    /// Runs until the calling task is cancelled.
    public func run(onChange: @escaping @Sendable () -> Void) async {
        var resourceVersion: String?
        var delay = Duration.milliseconds(200)
        while !Task.isCancelled {
            // An attempt that listed or received anything resets the backoff when it fails later:
            // a watch cut after a while is not a failing server.
            var progressed = false
            do {
                if resourceVersion == nil {
                    // Page by page into the new cache, sized from the server's count: at 100k objects
                    // a list of them all, its copy keyed, and the dictionary's regrowth were hundreds
                    // of megabytes of memory fresh from the kernel.
                    var fresh: [String: Object] = [:]
                    let listed = try await client.listPages(Object.self, namespace: namespace, fieldSelector: fieldSelector) { items, remaining in
                        // A filter keeps few (Secrets): no room for all.
                        if keep == nil, fresh.isEmpty, let remaining { fresh.reserveCapacity(items.count + remaining) }
                        for item in items where keep?(item) ?? true { fresh[Self.key(item)] = item }
                    }
                    state.withLock {
                        $0.objects = fresh
                        $0.changed = nil
                        $0.synced = true
                        $0.statistics.lists += 1
                    }
                    resourceVersion = listed ?? "0"
                    progressed = true
                    logger.debug("listed", metadata: ["count": "\(fresh.count)", "resourceVersion": "\(resourceVersion!)"])
                    onChange()
                }
                // client-go picks a random timeout between 5 and 10 minutes so that watches do not all
                // restart together; the same here, scaled to the configured one.
                let timeout = Int.random(in: watchTimeoutSeconds...(2 * watchTimeoutSeconds))
                state.withLock { $0.statistics.watches += 1 }
                var expired = false
                for try await event in client.watch(
                    Object.self, namespace: namespace, fieldSelector: fieldSelector, resourceVersion: resourceVersion!, timeoutSeconds: timeout)
                {
                    progressed = true
                    switch event {
                    case .added(let object), .modified(let object):
                        let kept = keep?(object) ?? true
                        let changed = state.withLock {
                            let key = Self.key(object)
                            $0.statistics.events += 1
                            // Not kept: dropped if it was cached, else nothing changed.
                            guard kept || $0.objects[key] != nil else { return false }
                            $0.objects[key] = kept ? object : nil
                            $0.changed?.insert(key)
                            return true
                        }
                        resourceVersion = object.metadata.resourceVersion ?? resourceVersion
                        if changed { onChange() }
                    case .deleted(let object):
                        let changed = state.withLock {
                            let key = Self.key(object)
                            $0.statistics.events += 1
                            guard $0.objects[key] != nil else { return false }
                            $0.objects[key] = nil
                            $0.changed?.insert(key)
                            return true
                        }
                        resourceVersion = object.metadata.resourceVersion ?? resourceVersion
                        if changed { onChange() }
                    case .bookmark(let version):
                        state.withLock { $0.statistics.bookmarks += 1 }
                        if !version.isEmpty { resourceVersion = version }
                    case .error(let status) where status.code == 410:
                        expired = true
                    case .error(let status):
                        throw status
                    }
                    if expired { break }
                }
                if expired {
                    logger.info("watch expired (410 Gone); relisting", metadata: ["resourceVersion": "\(resourceVersion ?? "")"])
                    state.withLock { $0.statistics.expired += 1 }
                    resourceVersion = nil
                }
                delay = .milliseconds(200)
            } catch where Task.isCancelled {
                return
            } catch {
                if let apiError = error as? KubeAPIError, apiError.status == 410 {
                    state.withLock { $0.statistics.expired += 1 }
                    resourceVersion = nil
                    continue
                }
                state.withLock {
                    $0.statistics.errors += 1
                    $0.statistics.lastError = "\(error)"
                }
                if progressed { delay = .milliseconds(200) }
                let jittered = delay * Double.random(in: 0.8...1.2)
                logger.warning("list/watch failed; retrying", metadata: ["error": "\(error)", "delay": "\(jittered)"])
                do { try await Task.sleep(for: jittered) } catch { return }
                delay = min(delay * 2, .seconds(30))
            }
        }
    }
}

/// What an informer has done, for metrics and tests.
public struct InformerStatistics: Sendable, Equatable {
    public var lists = 0
    public var watches = 0
    public var events = 0
    public var bookmarks = 0
    /// Relists forced by 410 Gone.
    public var expired = 0
    public var errors = 0
    public var lastError: String?
}

