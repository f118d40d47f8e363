#!/usr/bin/env bash
# The sanitizer stage of CI (tools/test.sh runs it after ctest): builds build-asan with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer (MAT_SANITIZE=ON) and libFuzzer (MAT_FUZZ=ON),
# runs the unit tests of the userspace stages under the sanitizers, then every fuzzer for a
# fixed time from its committed corpus (tests/fuzz/corpus/NAME). Any sanitizer report, test
# failure or fuzzer finding fails the run; a fuzzer's crashing input is left in
# build-asan/fuzz-findings/NAME/.
#   MAT_FUZZ_SECONDS   seconds per fuzzer (default 10; a longer run: see tests/fuzz/CMakeLists.txt)
#   MAT_FUZZ_ONLY      run only these fuzzers (space-separated names)
#   MAT_FUZZ_NO_UNIT=1 skip the unit tests
# The unit tests here are those of the stages that read untrusted input without the kernel
# (HTTP, HPACK, connections, identity, audit lines, config, recordings, the TLS stage, replay):
# the tests that load BPF programs or run targets (tap, probes, calibration, admin, support
# dump) are left out: what they exercise is the kernel's and libbpf's side, which ASan does not
# see, and they would double the build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${MAT_FUZZ_SECONDS:-10}
fuzzers="http1_fuzz http2_fuzz hpack_fuzz replay_fuzz config_fuzz user_map_fuzz credentials_fuzz
  client_cert_fuzz"
fuzzers=${MAT_FUZZ_ONLY:-$fuzzers}
unit_tests="http1_test h1_parser_test hpack_test http2_test connection_tracker_test
  audit_policy_test mke_line_test k8s_request_info_test payload_test k8s_event_test config_test
  identity_test recorder_test replay_test tls_stage_test proc_net_test stitcher_test"

cmake -S . -B build-asan -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAT_SANITIZE=ON -DMAT_FUZZ=ON >/dev/null
targets="mat_fuzzers"
[ "${MAT_FUZZ_NO_UNIT:-0}" = 1 ] || targets="$targets $unit_tests"
# shellcheck disable=SC2086
cmake --build build-asan -j"$(nproc)" --target $targets

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

if [ "${MAT_FUZZ_NO_UNIT:-0}" != 1 ]; then
  for t in $unit_tests; do
    echo "== $t (ASan+UBSan)"
    "build-asan/tests/unit/$t" --gtest_brief=1
  done
fi

for f in $fuzzers; do
  name=${f%_fuzz}
  work=$(mktemp -d)
  findings=build-asan/fuzz-findings/$name
  mkdir -p "$findings" "tests/fuzz/corpus/$name"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$findings/")
  [ -f "tests/fuzz/$name.dict" ] && args+=(-dict="tests/fuzz/$name.dict")
  [ "$name" = http1 ] && args+=(-max_len=8192)
  echo "== $f for ${seconds}s"
  if ! "build-asan/tests/fuzz/$f" "${args[@]}" "$work" "tests/fuzz/corpus/$name" \
    >"$findings/log" 2>&1; then
    tail -n 60 "$findings/log"
    echo "FAIL: $f found a problem; the input is in $root/$findings/"
    rm -rf "$work"
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$findings/log" | tr '\n' ' ' || true
  echo
  rm -rf "$work"
done
echo "sanitizers and fuzzers: no findings"
