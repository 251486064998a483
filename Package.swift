// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Portico",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "portico", targets: ["portico"]),
        .executable(name: "porticoctl", targets: ["porticoctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    ],
    targets: [
        // Compiled route table and its lookup structures. Standard library only.
        .target(name: "RouteModel"),
        // Codable Kubernetes objects: only the fields Portico reads.
        .target(name: "KubeTypes"),
        // YAML/JSON manifest files → Kubernetes objects, with per-document errors.
        .target(name: "Manifests", dependencies: [
            "KubeTypes",
            .product(name: "Yams", package: "Yams"),
        ]),
        // Kubernetes objects → RouteTable + rejections. Pure: no I/O, no clock.
        .target(name: "Translator", dependencies: [
            "RouteModel", "KubeTypes",
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
        ]),
        // porticoctl's commands and renderers, kept out of the executable so tests can call them.
        .target(name: "PorticoCtl", dependencies: [
            "RouteModel", "KubeTypes", "Manifests", "Translator",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "portico", dependencies: [
            "PorticoCtl",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "porticoctl", dependencies: ["PorticoCtl"]),
        .executableTarget(
            name: "RouteTableBenchmark",
            dependencies: ["RouteModel", "KubeTypes", "Translator", "TestSupport"],
            path: "Benchmarks/RouteTableBenchmark"
        ),
        .target(
            name: "TestSupport",
            dependencies: [
                "KubeTypes",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "RouteModelTests", dependencies: ["RouteModel"]),
        .testTarget(name: "KubeTypesTests", dependencies: ["KubeTypes"]),
        .testTarget(name: "ManifestsTests", dependencies: ["Manifests"]),
        .testTarget(name: "TranslatorTests", dependencies: ["Translator", "TestSupport"]),
        .testTarget(name: "PorticoCtlTests", dependencies: ["PorticoCtl", .product(name: "Yams", package: "Yams")]),
    ]
)
