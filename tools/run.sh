#!/usr/bin/env bash
# Sets up, builds and runs the auditor: tools/run.sh --level metadata --comm nginx --license-key KEY
# Without targets (no --comm, --pid, --config or --replay) it runs the demo (tools/demo.sh): a
# TLS nginx and a dockerd on loopback, a few curl and docker calls, and their audit lines.
# Subcommands pass through: tools/run.sh doctor --comm nginx
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh >&2
demo=1
case "${1:-}" in doctor | support-dump) demo=0 ;; esac
for arg in "$@"; do
  case "$arg" in
    --comm | --comm=* | --pid | --pid=* | --config | --config=* | --replay | --replay=* | \
      --help | -h | --version) demo=0 ;;
  esac
done
[ $demo -eq 0 ] || exec bash tools/demo.sh "$@"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
exec $SUDO ./build/mke-audit-tap "$@"
