#!/usr/bin/env bash
# Node agent benchmark on a real `portico run`: propagation time from a manifest edit to every worker
# having applied it (20 edits), and worker restart time after kill -9 (10 kills, 11 s apart so that
# the crash-loop backoff does not apply). Release build in .build-release.
# Extra arguments go to the benchmark (--workers N, --edits N, --kills N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-release.sh portico FleetBenchmark
PORTICO_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  exec .build-release/release/FleetBenchmark .build-release/release/portico "$@"
