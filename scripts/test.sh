#!/usr/bin/env bash
# The test command: builds everything (sources, tests, benchmarks) and runs every test.
# Needs only Swift; later parts of the project install their own test dependencies here.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift test --skip-build
