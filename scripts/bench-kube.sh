#!/usr/bin/env bash
# Kubernetes propagation benchmark: `portico run --kubeconfig` against the API server emulator with
# 1k and 10k Ingresses; time from an Ingress or EndpointSlice change through the API to every
# worker having applied it (20 changes of each), and each process's RSS (now and peak) after them. Release build in .build-release.
# Extra arguments go to the benchmark (--ingresses 1000,10000 --changes N --workers N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-release.sh portico KubePropagationBenchmark
PORTICO_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  exec .build-release/release/KubePropagationBenchmark .build-release/release/portico "$@"
