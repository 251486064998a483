#!/usr/bin/env bash
# Regenerates Sources/SnapshotProtocol/Generated from proto/. Installs protoc (Debian's
# protobuf-compiler) when missing and builds the Swift plugins in their own scratch path, so that
# normal builds and CI never build them. Commit the regenerated files.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null; then
  apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null
fi
scratch=.build-protoc-plugins
for product in protoc-gen-swift protoc-gen-grpc-swift-2; do
  swift build -c release --package-path scripts/protoc-plugins --scratch-path "$scratch" --product "$product"
done
bin="$scratch/release"
out=Sources/SnapshotProtocol/Generated
rm -rf "$out" && mkdir -p "$out"
protoc --proto_path=proto \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
  --swift_out="$out" --swift_opt=Visibility=Public \
  --grpc-swift_out="$out" --grpc-swift_opt=Visibility=Public,Server=true,Client=true \
  proto/portico/v1/*.proto
echo "generated: $(ls "$out"/portico/v1 | tr '\n' ' ')"
