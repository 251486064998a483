#!/usr/bin/env bash
# Snapshot protocol benchmark: encode/decode time and size of a 10k-Ingress snapshot, and the time to
# fan a new version out to 100 subscribers over a Unix socket. Release build in .build-release.
# Extra arguments go to the benchmark (--ingresses N, --subscribers N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-release.sh SnapshotBenchmark
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores"
exec .build-release/release/SnapshotBenchmark "$@"
