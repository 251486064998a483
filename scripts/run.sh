#!/usr/bin/env bash
# README's "Run": the whole system on this machine on the embedded quickstart manifests (control
# plane, node agent, workers, demo backends). Extra arguments go to `portico run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-packages.sh
exec swift run portico run --manifests examples/quickstart --demo-backends "$@"
