#!/usr/bin/env bash
# Fails when a tracked C/C++ source is not clang-formatted.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
while IFS= read -r f; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f (run clang-format -i $f)"
    bad=1
  fi
done < <(git ls-files '*.c' '*.h' '*.cpp' '*.hpp' 2>/dev/null || find bpf include userspace tests -name '*.[ch]' -o -name '*.cpp')
exit $bad
