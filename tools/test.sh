#!/usr/bin/env bash
# Sets up, builds and runs every test: format check, unit, replay and end-to-end (real BPF,
# real nginx/Python servers, real curl), then (with no arguments) tools/fuzz.sh: the unit tests
# under ASan/UBSan and every fuzzer for a fixed time. The end-to-end tests need root; under CI=true a test
# that cannot run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
bash tools/check-format.sh
(cd build && ctest --output-on-failure --timeout 900 "$@")
# The sanitizer build, its unit tests and the fuzzers (a fixed time each): the whole run only.
if [ $# -eq 0 ]; then
  bash tools/fuzz.sh
fi
