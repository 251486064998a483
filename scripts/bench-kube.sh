#!/usr/bin/env bash
# Kubernetes propagation benchmark: `portico run --kubeconfig` against the API server emulator with
# 1k, 10k and 100k Ingresses; time from a change through the API (an Ingress edited, created or deleted, a Pod
# added to an EndpointSlice, a TLS Secret created) to every
# worker having applied it (20 changes of each kind at every size; per stage p50/p99), the
# time to the first table, and each process's RSS (now, peak, own) after them. Release build in
# .build-release. The 100k round loads 300k objects into the emulator first (about 3 minutes, 5 GB).
# Arguments replace the default rounds and go to the benchmark (--ingresses 1000,10000 --changes N
# --workers N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-release.sh portico KubePropagationBenchmark
export PORTICO_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$#" -gt 0 ]; then
  exec .build-release/release/KubePropagationBenchmark .build-release/release/portico "$@"
fi
.build-release/release/KubePropagationBenchmark .build-release/release/portico --ingresses 1000,10000 --changes 20
.build-release/release/KubePropagationBenchmark .build-release/release/portico --ingresses 100000 --changes 20
