#!/usr/bin/env bash
# The README's second command: install what is missing, then build and run the
# whole test suite three times: a plain build (stress tests at full size), and
# AddressSanitizer and ThreadSanitizer builds (sizes divided by 200, since those
# builds give every process a mapped stack of its own), then the fuzz targets
# of the decoders that read other machines' input, for a bounded time each.
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
# The decoders that read input from other machines, fuzzed for a bounded time:
# distribution's term codec and ember-epmd's request parser.
fuzz() {
  local name=$1; shift
  echo "== fuzz: $name"
  if "$@" >"/tmp/ember-fuzz-$name.log" 2>&1; then
    grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "/tmp/ember-fuzz-$name.log" | tail -1
    passed=$((passed + 1))
  else
    echo "== fuzz: $name FAILED"
    tail -40 "/tmp/ember-fuzz-$name.log"
    failed=$((failed + 1))
  fi
}
fuzz codec bash tests/fuzz/run.sh "${EMBER_FUZZ_SECONDS:-60}"
fuzz epmd bash tests/epmd/fuzz_run.sh "${EMBER_FUZZ_SECONDS:-60}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
