#!/usr/bin/env bash
# The test command: builds everything (sources, tests, benchmarks) and runs every test.
# Needs Swift; the few Debian packages the build and tests use are installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages the build and tests need (RE2 for regex paths, openssl for a TLS test).
bash scripts/ensure-packages.sh
swift build --build-tests
swift test --skip-build
# Tests that measure latency run alone, after the rest: beside other suites they measure those.
PORTICO_TEST_ALONE=1 swift test --skip-build --filter 'HTTP2AbuseTests/aFloodDoesNotDelayOtherClients'
