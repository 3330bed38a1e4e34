#!/usr/bin/env bash
# The README's second command: install what is missing, then build and run the
# whole test suite three times: a plain build (stress tests at full size), and
# AddressSanitizer and ThreadSanitizer builds (sizes divided by 200, since those
# builds give every process a mapped stack of its own).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)
passed=0
failed=0
run_suite() {
  local dir=$1; shift
  echo "== $dir: configure and build"
  if ! cmake -S . -B "$dir" "$@" >/dev/null || ! cmake --build "$dir" -j"$jobs" >/dev/null; then
    echo "== $dir: BUILD FAILED"
    cmake --build "$dir" -j1 2>&1 | tail -40
    failed=$((failed + 1))
    return
  fi
  echo "== $dir: ctest"
  local out
  out=$(cd "$dir" && ctest --output-on-failure 2>&1)
  echo "$out"
  local p f
  p=$(grep -Eo '[0-9]+ tests passed|[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' <<<"$out" | tail -1)
  f=$(sed -nE 's/.*tests passed, ([0-9]+) tests failed out of ([0-9]+).*/\1 \2/p' <<<"$out" | tail -1)
  if [ -n "$f" ]; then
    set -- $f
    failed=$((failed + $1))
    passed=$((passed + $2 - $1))
  else
    failed=$((failed + 1))
  fi
}
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DEMBER_SANITIZE=address -DEMBER_STRESS_SCALE=200
run_suite build-tsan -DCMAKE_BUILD_TYPE=Debug -DEMBER_SANITIZE=thread -DEMBER_STRESS_SCALE=200
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
