#!/usr/bin/env bash
# Route-table benchmark: compile time for 10k Ingresses/Services/EndpointSlices and time per resolve.
# Builds in release mode in its own scratch path (.build-release) so debug builds are not disturbed.
# Extra arguments go to the benchmark (--ingresses N, --runs N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-release.sh RouteTableBenchmark
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores"
exec .build-release/release/RouteTableBenchmark "$@"
