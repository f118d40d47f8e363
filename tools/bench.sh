#!/usr/bin/env bash
# The benchmark, one command: installs what it needs (Debian packages), builds, then runs
# tools/bench/bench.py, which writes bench/REPORT.md and bench/report.json (about 10 minutes on
# 2 cores; needs root for BPF).
#
#   tools/bench.sh [--quick] [--only SECTION[,SECTION...]] [--out DIR]
#
# --quick: a ~2 minute smoke run; --only: some sections (calibration, tax, h1, h2, go, memory,
# loss, replay, gbench). Both write to bench/quick/ unless --out says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || exec sudo "$0" "$@"
bash tools/setup.sh --bench
bash tools/build.sh
exec python3 tools/bench/bench.py "$@"
