#!/usr/bin/env bash
# Installs every Debian package that building, testing and running mke-audit-tap needs.
# Idempotent: packages already present are left alone. Must run as root (or via sudo).
#   --bench  also what tools/bench.sh needs (load generators, Google Benchmark, perf)
set -euo pipefail

BUILD_PKGS=(cmake make g++ clang llvm pkg-config bpftool libbpf-dev libelf-dev zlib1g-dev
  libssl-dev libboost-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libtomlplusplus-dev
  libcapstone-dev libnghttp2-dev libsystemd-dev libgtest-dev libgmock-dev clang-format)
TEST_PKGS=(nginx python3-pytest curl openssl python3 procps iproute2 jq golang-go docker.io
  python3-prometheus-client chromium python3-websocket python3-yaml nghttp2-client python3-hpack)
# The HTTP/2 end-to-end test runs the real kubectl. Any kubectl on PATH will do (e.g. from the
# Kubernetes or Google Cloud package repositories); without one, Debian's own (1.20) is installed.
command -v kubectl >/dev/null 2>&1 || TEST_PKGS+=(kubernetes-client)
if [ "${1:-}" = "--bench" ]; then
  TEST_PKGS+=(wrk libbenchmark-dev binutils linux-perf)
fi

want=()
for p in "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
done
if [ ${#want[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d keeps the nginx package from starting a system-wide server on port 80.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${want[@]}"
