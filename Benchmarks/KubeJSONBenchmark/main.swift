// Reading LIST pages as the informers do: the pages of a generated cluster of N Ingresses (with
// their Services and EndpointSlices), 500 objects a page, read by Foundation's JSONDecoder and by
// KubeJSON, one after the other in each run. Prints each run and the medians.
// Then the heap the decoded objects of each kind hold, and their inline sizes.
// Usage: KubeJSONBenchmark [--ingresses 100000] [--runs 3]

import CPorticoSystem
import Foundation
import KubeTypes
import TestSupport

func option(_ name: String, _ fallback: String) -> String {
    let arguments = Array(CommandLine.arguments.dropFirst())
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return fallback }
    return arguments[index + 1]
}

let count = Int(option("--ingresses", "100000")) ?? 100_000
let runs = Int(option("--runs", "3")) ?? 3
/// Room made for each page's items before reading them (the informers pass their page size, 500); 0: grown as read.
let pageCapacity = Int(option("--page-capacity", "500")) ?? 500
let objects = GeneratedCluster.objects(count: count)
let encoder = JSONEncoder()

func pages<Object: KubeObject>(_ items: [Object]) throws -> [Data] {
    try stride(from: 0, to: items.count, by: 500).map { start in
        try encoder.encode(KubeList(metadata: ListMeta(resourceVersion: "1"), items: Array(items[start..<min(start + 500, items.count)])))
    }
}

let ingressPages = try pages(objects.ingresses)
let servicePages = try pages(objects.services)
let slicePages = try pages(objects.endpointSlices)
let megabytes = Double((ingressPages + servicePages + slicePages).reduce(0) { $0 + $1.count }) / 1e6
print("\(count) Ingresses, Services and EndpointSlices: \(ingressPages.count + servicePages.count + slicePages.count) pages, \(String(format: "%.1f", megabytes)) MB of JSON")

func seconds(_ body: () throws -> Int) rethrows -> (Double, Int) {
    let start = ContinuousClock.now
    let read = try body()
    let elapsed = ContinuousClock.now - start
    return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, read)
}

func jsonDecoder<Object: KubeObject>(_ pages: [Data], _: Object.Type) throws -> Int {
    try pages.reduce(0) { $0 + (try JSONDecoder().decode(KubeList<Object>.self, from: $1)).items.count }
}

func kubeJSON<Object: KubeObject>(_ pages: [Data], _: Object.Type) throws -> Int {
    try pages.reduce(0) { total, page in
        total + (try page.withUnsafeBytes { bytes throws(KubeJSONError) in try KubeJSON.list(Object.self, from: bytes, capacity: pageCapacity) }).items.count
    }
}

var decoderTimes: [Double] = []
var readerTimes: [Double] = []
for run in 1...runs {
    let (decoder, decoded) = try seconds {
        try jsonDecoder(ingressPages, Ingress.self) + jsonDecoder(servicePages, Service.self) + jsonDecoder(slicePages, EndpointSlice.self)
    }
    let (reader, read) = try seconds {
        try kubeJSON(ingressPages, Ingress.self) + kubeJSON(servicePages, Service.self) + kubeJSON(slicePages, EndpointSlice.self)
    }
    precondition(decoded == read && read == 3 * count)
    decoderTimes.append(decoder)
    readerTimes.append(reader)
    print(String(format: "run %d: JSONDecoder %.0f ms, KubeJSON %.0f ms", run, decoder * 1000, reader * 1000))
}
let decoderMedian = decoderTimes.sorted()[runs / 2]
let readerMedian = readerTimes.sorted()[runs / 2]
print(String(format: "median: JSONDecoder %.0f ms, KubeJSON %.0f ms (%.1fx)", decoderMedian * 1000, readerMedian * 1000, decoderMedian / readerMedian))

// What an informer's cache holds: the heap the decoded objects of each kind keep once their pages
// are read (malloc's bytes in use before and after, the pages' own bytes freed by then).
func heldBytes<Object: KubeObject>(_ pages: [Data], _: Object.Type) throws -> (items: [Object], bytes: Double) {
    let before = cportico_malloc_in_use()
    var items: [Object] = []
    for page in pages {
        items += try page.withUnsafeBytes { bytes throws(KubeJSONError) in try KubeJSON.list(Object.self, from: bytes) }.items
    }
    return (items, Double(cportico_malloc_in_use() &- before))
}
let heldIngresses = try heldBytes(ingressPages, Ingress.self)
let heldServices = try heldBytes(servicePages, Service.self)
let heldSlices = try heldBytes(slicePages, EndpointSlice.self)
print(
    String(
        format: "decoded objects hold, bytes each: Ingress %.0f, Service %.0f, EndpointSlice %.0f",
        heldIngresses.bytes / Double(count), heldServices.bytes / Double(count), heldSlices.bytes / Double(count)))
precondition(heldIngresses.items.count + heldServices.items.count + heldSlices.items.count == 3 * count)
// An informer's dictionary holds each object inline in a bucket, at about 2.6 buckets per object
// at 100k (the next power of two over 4/3 of the count): its storage is these strides times that.
print("inline bytes: Ingress \(MemoryLayout<Ingress>.stride), Service \(MemoryLayout<Service>.stride), EndpointSlice \(MemoryLayout<EndpointSlice>.stride), Secret \(MemoryLayout<Secret>.stride)")
