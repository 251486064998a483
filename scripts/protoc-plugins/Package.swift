// swift-tools-version: 6.1
// Builds the two protoc plugins used by scripts/generate-protos.sh. Kept out of the main package so
// normal builds and CI never compile them.
import PackageDescription

let package = Package(
    name: "PorticoProtocPlugins",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
    ],
    targets: []
)
