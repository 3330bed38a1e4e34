#!/usr/bin/env bash
# fuzz_run.sh - builds the port mapper's fuzz target with clang (libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer) in build-fuzz-epmd and runs
# it for N seconds (default 60): bash tests/epmd/fuzz_run.sh [seconds].
# Crashes land in build-fuzz-epmd/crashes; the corpus grows in
# build-fuzz-epmd/corpus, seeded with one request of each kind.
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-fuzz-epmd
CC=clang cmake -S "$root" -B "$build" -DEMBER_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" --target fuzz_epmd -j"$(nproc)"
mkdir -p "$build/corpus" "$build/crashes"
# Seeds: script steps of (connection|local, length, bytes) for each request.
seed() { printf "$2" > "$build/corpus/seed-$1"; }
seed alive2 '\x00\x08\x1c\x00\x1a\x78\x15\xb3\x48\x00\x00\x06\x00\x06\x00\x03abc\x00\x0aember1 tcp'
seed port_please '\x00\x08\x1c\x00\x1a\x78\x15\xb3\x48\x00\x00\x06\x00\x06\x00\x03abc\x00\x0aember1 tcp\x09\x06\x00\x04zabc'
seed names '\x00\x08\x03\x00\x01\x6e'
seed dump '\x00\x08\x03\x00\x01\x64'
seed kill '\x01\x08\x03\x00\x01\x6b'
seed stop '\x01\x08\x10\x00\x0e\x78\x00\x01\x48\x00\x00\x06\x00\x06\x00\x01a\x00\x00\x09\x04\x00\x02\x73\x61'
"$build/bin/fuzz_epmd" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$build/crashes/" "$build/corpus"
