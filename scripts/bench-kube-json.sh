#!/usr/bin/env bash
# Reading an API server's LIST pages: 100k Ingresses, Services and EndpointSlices (pages of 500) read
# by Foundation's JSONDecoder and by KubeJSON, the informers' reader; medians of 3 runs. Release build
# in .build-release. Extra arguments go to the benchmark (--ingresses N, --runs N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-release.sh KubeJSONBenchmark
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores"
exec .build-release/release/KubeJSONBenchmark "$@"
