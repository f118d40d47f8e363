#!/usr/bin/env bash
# Sets up, builds and runs the auditor: tools/run.sh --level metadata --comm nginx --license-key KEY
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
exec $SUDO ./build/mke-audit-tap "$@"
