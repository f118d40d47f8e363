#!/usr/bin/env bash
# Sets up, builds and runs every test: format check, unit, replay and end-to-end (real BPF,
# real nginx/Python servers, real curl). The end-to-end tests need root; under CI=true a test
# that cannot run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
bash tools/check-format.sh
cd build
ctest --output-on-failure --timeout 900 "$@"
