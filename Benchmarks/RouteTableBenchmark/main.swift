// Measures the full compile (Kubernetes objects → RouteTable) and the per-request lookup on a
// generated cluster: N Ingresses, N Services and N EndpointSlices (N = 10,000 by default).
//
// Run through scripts/bench-compile.sh, which builds in release mode. Options:
//   --ingresses N   objects of each kind (default 10000)
//   --runs N        timed compile runs (default 21)
//   --shuffled      each kind in a seeded random order, as a control plane's informer caches give
//                   them (generated, they come sorted)

#if canImport(Glibc)
import Glibc
#endif
import CPorticoSystem
import Dispatch
import Foundation
import KubeTypes
import RouteModel
import Synchronization
import TestSupport
import Translator

struct Options {
    var ingresses = 10_000
    var runs = 21
    var shuffled = false

    init(arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--ingresses": ingresses = iterator.next().flatMap(Int.init) ?? ingresses
            case "--runs": runs = iterator.next().flatMap(Int.init) ?? runs
            case "--shuffled": shuffled = true
            default:
                print("unknown argument \(argument); use --ingresses N --runs N --shuffled")
                exit(64)
            }
        }
    }
}

let options = Options(arguments: CommandLine.arguments)
let clock = ContinuousClock()
var objects = GeneratedCluster.objects(count: options.ingresses)
if options.shuffled {
    var generator = SplitMix64(seed: 1)
    objects.ingresses.shuffle(using: &generator)
    objects.services.shuffle(using: &generator)
    objects.endpointSlices.shuffle(using: &generator)
}
print(
    "input: \(objects.ingresses.count) Ingresses, \(objects.services.count) Services, \(objects.endpointSlices.count) EndpointSlices\(options.shuffled ? ", shuffled" : "")")

// Compile.
var compileTimes: [Double] = []
// The first one on its own: its memory is fresh from the kernel, as a control plane's first table is.
let firstStart = clock.now
var translation = Translator.translate(objects)
let firstCompile = Measure.seconds(clock.now - firstStart) * 1000
for run in 0..<(options.runs + 2) {
    let start = clock.now
    let result = Translator.translate(objects)
    let elapsed = Measure.seconds(clock.now - start)
    translation = result  // the previous table is freed here, outside the timed region
    if run >= 2 { compileTimes.append(elapsed * 1000) }  // two warm-up runs
}
let table = translation.table
precondition(translation.rejections.isEmpty, "the generated input must be clean: \(translation.rejections.prefix(3))")
print(
    "table: \(table.virtualHosts.count) virtual hosts, \(table.routeCount) routes, \(table.clusters.count) clusters, hash \(table.contentHashHex)")
print(
    "compile (translate + build lookup index), ms: median \(Measure.format(Measure.median(compileTimes), 1))  min \(Measure.format(compileTimes.min()!, 1))  max \(Measure.format(compileTimes.max()!, 1))  (\(options.runs) runs)")

// The control plane's first table: the incremental translator's index is built on a thread of its
// own beside the translation, at normal priority or at nice 19.
func besideTranslation(_ objects: KubeObjects, nice: Int32?) -> (translate: Double, index: Double) {
    let done = DispatchSemaphore(value: 0)
    let indexElapsed = Mutex(0.0)
    let start = clock.now
    Thread {
        if let nice { _ = cportico_set_thread_nice(nice) }
        let index = IncrementalTranslator.Index(objects: objects)
        indexElapsed.withLock { $0 = Measure.seconds(clock.now - start) * 1000 }
        withExtendedLifetime(index) {}
        done.signal()
    }.start()
    let result = Translator.translate(objects)
    let elapsed = Measure.seconds(clock.now - start) * 1000
    done.wait()
    withExtendedLifetime(result) {}
    return (elapsed, indexElapsed.withLock { $0 })
}
var indexAlone: [Double] = []
var beside: [(translate: Double, index: Double)] = []
var besideNice: [(translate: Double, index: Double)] = []
for _ in 0..<options.runs {
    let start = clock.now
    let index = IncrementalTranslator.Index(objects: objects)
    indexAlone.append(Measure.seconds(clock.now - start) * 1000)
    withExtendedLifetime(index) {}
    beside.append(besideTranslation(objects, nice: nil))
    besideNice.append(besideTranslation(objects, nice: 19))
}
print("  the incremental translator's index alone, ms: median \(Measure.format(Measure.median(indexAlone), 1))")
print(
    "  translation with the index beside, ms: median \(Measure.format(Measure.median(beside.map(\.translate)), 1)) (index done at \(Measure.format(Measure.median(beside.map(\.index)), 1))); "
        + "with the index at nice 19: \(Measure.format(Measure.median(besideNice.map(\.translate)), 1)) (index done at \(Measure.format(Measure.median(besideNice.map(\.index)), 1)))")

// The RouteTable part alone (sort check, lookup index, content hash), from already-translated values.
var tableTimes: [Double] = []
for run in 0..<(options.runs + 2) {
    let start = clock.now
    let rebuilt = RouteTable(virtualHosts: table.virtualHosts, clusters: table.clusters, certificates: table.certificates)
    let elapsed = Measure.seconds(clock.now - start)
    precondition(rebuilt.contentHash == table.contentHash)
    if run >= 2 { tableTimes.append(elapsed * 1000) }
}
print("  of which RouteTable (index + hash), ms: median \(Measure.format(Measure.median(tableTimes), 1))")
print("  the first compile, on memory fresh from the kernel, ms: \(Measure.format(firstCompile, 1))")

// One Ingress edited: the control plane's incremental translation, the delta between the two
// tables, and a subscriber applying it.
var incrementalTimes: [Double] = []
var deltaTimes: [Double] = []
var applyTimes: [Double] = []
var incremental = IncrementalTranslator(objects: objects, translation: translation)
var current = table
var edited = objects.ingresses
for run in 0..<(options.runs + 2) {
    let index = run * 37 % edited.count
    edited[index].spec?.rules?[0].http?.paths[1].path = "/edited-\(run)"
    let start = clock.now
    let next = incremental.apply([IncrementalTranslator.key(edited[index]): .some(edited[index])])!
    let translated = clock.now
    let delta = current.delta(to: next)
    let diffed = clock.now
    let applied = try! current.applying(delta)
    let done = clock.now
    precondition(applied.contentHash == next.contentHash && delta.upsertedHosts.count == 1)
    if run >= 2 {
        incrementalTimes.append(Measure.seconds(translated - start) * 1000)
        deltaTimes.append(Measure.seconds(diffed - translated) * 1000)
        applyTimes.append(Measure.seconds(done - diffed) * 1000)
    }
    current = next
}
print(
    "one Ingress edited, ms (median): incremental translation \(Measure.format(Measure.median(incrementalTimes), 1)), "
        + "delta \(Measure.format(Measure.median(deltaTimes), 1)), applying the delta \(Measure.format(Measure.median(applyTimes), 1))")

// One EndpointSlice gaining a Pod: the control plane's incremental translation of it.
var sliceTimes: [Double] = []
var slices = objects.endpointSlices
for run in 0..<(options.runs + 2) {
    let index = run * 37 % slices.count
    slices[index].endpoints = (slices[index].endpoints ?? []) + [
        EndpointSliceEndpoint(addresses: ["10.250.\(run / 250).\(run % 250)"], conditions: EndpointConditions(ready: true))
    ]
    let start = clock.now
    let next = incremental.apply(endpointSlices: [IncrementalTranslator.key(slices[index]): .some(slices[index])])
    let elapsed = Measure.seconds(clock.now - start)
    precondition(next.contentHash != current.contentHash)
    current = next
    if run >= 2 { sliceTimes.append(elapsed * 1000) }
}
print("one EndpointSlice gaining a Pod, ms (median): incremental translation \(Measure.format(Measure.median(sliceTimes), 2))")

// Resolve: a fixed mix of requests — exact-host hits on each kind of route, wildcard hits, and misses.
var generator = SplitMix64(seed: 7)
var requests: [(host: String, path: String)] = []
for _ in 0..<100_000 {
    let index = Int(generator.next() % UInt64(options.ingresses))
    let host = index % 10 == 9 ? "shop.tenant-\(index).example.com" : "app-\(index).example.com"
    switch generator.next() % 5 {
    case 0: requests.append((host, "/"))
    case 1: requests.append((host, "/api/v\(index % 3 + 1)/orders/12345"))
    case 2: requests.append((host, index % 4 == 0 ? "/healthz" : "/static/app.js"))
    case 3: requests.append((host, "/api/v9/users?page=2"))
    default: requests.append(("unknown-\(index).example.org", "/"))
    }
}

/// Nanoseconds per call of `body` over batches of 10,000 requests; the first ten batches warm up.
func perCall(_ requests: [(host: String, path: String)], _ body: ((host: String, path: String)) -> Int) -> (times: [Double], checksum: Int) {
    let batch = 10_000
    var checksum = 0
    var results: [Double] = []
    for round in 0..<60 {
        let start = (round * batch) % requests.count
        let begin = ContinuousClock().now
        for index in start..<start + batch { checksum &+= body(requests[index]) }
        let elapsed = Measure.seconds(ContinuousClock().now - begin)
        if round >= 10 { results.append(elapsed / Double(batch) * 1e9) }
    }
    return (results, checksum)
}

func code(_ resolution: Resolution) -> Int {
    switch resolution {
    case .route(let host, let route): host &+ route
    case .defaultBackend(let host): host
    case .notFound: 1
    }
}

let resolve = perCall(requests) { code(table.resolve(host: $0.host, path: $0.path)) }
let normaliseAndResolve = perCall(requests) { request in
    guard let path = try? RequestPath.normalize(request.path) else { return 0 }
    return code(table.resolve(host: request.host, path: path))
}
print(
    "resolve, ns per request: median \(Measure.format(Measure.median(resolve.times), 1))  min \(Measure.format(resolve.times.min()!, 1))  max \(Measure.format(resolve.times.max()!, 1))  (50 batches of 10000)")
print(
    "normalise + resolve, ns per request: median \(Measure.format(Measure.median(normaliseAndResolve.times), 1))  min \(Measure.format(normaliseAndResolve.times.min()!, 1))  max \(Measure.format(normaliseAndResolve.times.max()!, 1))")
print("checksum \(resolve.checksum &+ normaliseAndResolve.checksum)")
