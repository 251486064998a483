#!/usr/bin/env bash
# The release build of the given products, as benchmarks and the image use it: its own scratch path
# (.build-release), and Swift's dynamic exclusivity checks off. Those checks cost the proxy 15-19%
# of its throughput (most of them in SwiftNIO's code); debug builds, which every test runs, keep
# them, so an access conflict still fails a test.
# Usage: bash scripts/build-release.sh PRODUCT...   (prints nothing but errors with QUIET=1)
set -euo pipefail
cd "$(dirname "$0")/.."
for product in "$@"; do
  if [ -n "${QUIET:-}" ]; then
    if ! output=$(swift build -c release --scratch-path .build-release -Xswiftc -enforce-exclusivity=unchecked --product "$product" 2>&1); then
      printf '%s\n' "$output" | grep -E "error:" >&2 || printf '%s\n' "$output" >&2
      exit 1
    fi
  else
    swift build -c release --scratch-path .build-release -Xswiftc -enforce-exclusivity=unchecked --product "$product"
  fi
done
