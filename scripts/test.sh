#!/usr/bin/env bash
# The test command: builds everything (sources, tests, benchmarks) and runs every test.
# Needs Swift; the few other things tests use are installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# The TLS session-resumption test drives `openssl s_client` (swift-nio-ssl's client keeps no sessions).
if ! command -v openssl >/dev/null; then
  apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi
swift build --build-tests
swift test --skip-build
# Tests that measure latency run alone, after the rest: beside other suites they measure those.
PORTICO_TEST_ALONE=1 swift test --skip-build --filter 'HTTP2AbuseTests/aFloodDoesNotDelayOtherClients'
