#!/usr/bin/env bash
# Kubernetes propagation benchmark: `portico run --kubeconfig` against the API server emulator with
# 1k and 10k Ingresses; time from a change through the API (an Ingress edited, created or deleted, a Pod
# added to an EndpointSlice, a TLS Secret created) to every
# worker having applied it (20 changes of each, per stage p50/p99), the time to the first table, and
# each process's RSS (now and peak) after them. Release build in .build-release.
# Extra arguments go to the benchmark (--ingresses 1000,10000 --changes N --workers N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-release.sh portico KubePropagationBenchmark
PORTICO_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  exec .build-release/release/KubePropagationBenchmark .build-release/release/portico "$@"
