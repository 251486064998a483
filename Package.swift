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
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Compiled route table and its lookup structures. Standard library only.
        // RE2 (Debian's libre2-dev) for ingress-nginx's regex paths: linear-time matching, bounded memory.
        .target(name: "CPorticoRE2", linkerSettings: [.linkedLibrary("re2")]),
        .target(name: "RouteModel", dependencies: ["CPorticoRE2"]),
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
            .product(name: "Yams", package: "Yams"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
        ]),
        // The snapshot protocol: generated protobuf/gRPC code (scripts/generate-protos.sh), RouteTable ⇄ proto,
        // addresses, and the subscriber client shared by node agents, workers and porticoctl.
        .target(name: "SnapshotProtocol", dependencies: [
            "RouteModel", "AdminHTTP", "CPorticoSystem",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Kubernetes API access: kubeconfig and in-cluster configuration, LIST/WATCH, informers.
        .target(name: "KubeClient", dependencies: [
            "KubeTypes",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The control plane: manifest source with file watching, debounced rebuilds, the snapshot service.
        .target(name: "ControlPlane", dependencies: [
            "RouteModel", "KubeTypes", "Manifests", "Translator", "SnapshotProtocol", "KubeClient", "CPorticoSystem", "AdminHTTP",
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The worker: snapshot subscriber, table store, HTTP reverse proxy, upstream pools.
        // Never imports Translator, KubeClient or ControlPlane.
        // epoll, eventfd and accept4 for the native engine (not in Glibc's Swift module).
        .target(name: "CPorticoNative"),
        .target(name: "DataPlane", dependencies: [
            "RouteModel", "SnapshotProtocol", "AdminHTTP", "CPorticoNative",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            .product(name: "NIOHPACK", package: "swift-nio-http2"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // A small HTTP server for /healthz, /readyz and /metrics, and the error every listener reports.
        .target(name: "AdminHTTP", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        // The node agent: upstream subscription, last-good snapshot on disk, worker supervision,
        // the snapshot relay on a Unix socket, the admin port. Never imports Translator or ControlPlane.
        .target(name: "NodeAgent", dependencies: [
            "RouteModel", "SnapshotProtocol", "AdminHTTP", "CPorticoSystem",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The quickstart's stand-in for Pods: answers with the Service's name and what it received.
        .target(name: "DemoBackend", dependencies: [
            "AdminHTTP", "RouteModel",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // The few C library calls Swift's Glibc module does not expose (mallopt).
        .target(name: "CPorticoSystem"),
        // porticoctl's commands and renderers, kept out of the executable so tests can call them.
        .target(name: "PorticoCtl", dependencies: [
            "RouteModel", "KubeTypes", "Manifests", "Translator", "SnapshotProtocol",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "portico", dependencies: [
            "PorticoCtl", "RouteModel", "ControlPlane", "DataPlane", "NodeAgent", "DemoBackend", "SnapshotProtocol", "Translator",
            "Manifests", "KubeTypes", "CPorticoSystem", "KubeClient", "AdminHTTP",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "porticoctl", dependencies: [
            "PorticoCtl", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(
            name: "RouteTableBenchmark",
            dependencies: ["RouteModel", "KubeTypes", "Translator", "TestSupport", "CPorticoSystem"],
            path: "Benchmarks/RouteTableBenchmark"
        ),
        .executableTarget(
            name: "SnapshotBenchmark",
            dependencies: [
                "RouteModel", "KubeTypes", "Translator", "SnapshotProtocol", "ControlPlane", "TestSupport", "CPorticoSystem",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ],
            path: "Benchmarks/SnapshotBenchmark"
        ),
        .executableTarget(
            name: "FleetBenchmark",
            dependencies: ["PorticoCtl", "SnapshotProtocol", "TestSupport"],
            path: "Benchmarks/FleetBenchmark"
        ),
        .executableTarget(
            name: "KubeJSONBenchmark",
            dependencies: ["KubeTypes", "TestSupport", "CPorticoSystem"],
            path: "Benchmarks/KubeJSONBenchmark"
        ),
        .executableTarget(
            name: "KubePropagationBenchmark",
            dependencies: [
                "PorticoCtl", "SnapshotProtocol", "KubeAPIEmulator", "KubeTypes", "TestSupport",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Benchmarks/KubePropagationBenchmark"
        ),
        .target(
            name: "TestSupport",
            dependencies: [
                "KubeTypes", "RouteModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
            ],
            path: "Tests/TestSupport"
        ),
        // A kube-apiserver stand-in for tests (list, watch, bookmarks, 410, status PATCH, auth).
        .target(
            name: "KubeAPIEmulator",
            dependencies: [
                "KubeTypes",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            path: "Tests/KubeAPIEmulator"
        ),
        .testTarget(name: "KubeClientTests", dependencies: [
            "KubeClient", "KubeTypes", "KubeAPIEmulator", "TestSupport",
        ]),
        .testTarget(name: "RouteModelTests", dependencies: ["RouteModel"]),
        .testTarget(name: "KubeTypesTests", dependencies: ["KubeTypes"]),
        .testTarget(name: "ManifestsTests", dependencies: ["Manifests"]),
        .testTarget(name: "TranslatorTests", dependencies: ["Translator", "TestSupport"]),
        .testTarget(name: "SnapshotProtocolTests", dependencies: [
            "SnapshotProtocol", "TestSupport", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        .testTarget(name: "ControlPlaneTests", dependencies: [
            "ControlPlane", "SnapshotProtocol", "TestSupport", "PorticoCtl", "KubeAPIEmulator", "KubeClient", "KubeTypes",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "DataPlaneTests", dependencies: [
            "DataPlane", "RouteModel", "TestSupport", "ControlPlane", "SnapshotProtocol", "Translator", "KubeTypes",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            .product(name: "NIOHPACK", package: "swift-nio-http2"),
            // A real gRPC server and client on both sides of the proxy.
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        ]),
        // Starts the built executables as real processes.
        .testTarget(name: "EndToEndTests", dependencies: [
            "PorticoCtl", "TestSupport", "SnapshotProtocol", "KubeAPIEmulator", "KubeClient", "KubeTypes",
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "Yams", package: "Yams"),
        ]),
        .testTarget(name: "NodeAgentTests", dependencies: [
            "NodeAgent", "RouteModel", "SnapshotProtocol", "TestSupport",
        ]),
        .testTarget(name: "PorticoCtlTests", dependencies: ["PorticoCtl", "TestSupport", .product(name: "Yams", package: "Yams")]),
    ]
)

// The project's own modules (Sources/) build without warnings: a new one fails the build. Only
// these targets get the flag; dependencies build as their authors set them.
for target in package.targets where target.type == .regular || target.type == .executable {
    guard target.path == nil, target.name != "CPorticoSystem" else { continue }
    target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-warnings-as-errors"])]
}
