#!/usr/bin/env bash
# Builds the codec's fuzz target with clang in build-fuzz and runs it for a bounded
# time: tests/fuzz/run.sh [seconds] (default 60). Exits non-zero when the fuzzer
# finds a crash, a leak or a failed round trip; the input that did it is left in
# build-fuzz/fuzz-artifacts/. Needs clang and libclang-rt-14-dev (Debian 12).
#
# The seeds in tests/fuzz/corpus_codec/ are only read; what the fuzzer learns goes
# to build-fuzz/corpus_codec/, which later runs start from.
set -euo pipefail

secs=${1:-60}
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: $0 [seconds]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build-fuzz

command -v clang >/dev/null || { echo "run.sh: clang is missing (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

# EMBER_SANITIZE stays empty: EMBER_FUZZ brings AddressSanitizer and UBSan.
# Separate stacks keep the unit tests of this build usable under ASan.
CC=clang cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DEMBER_FUZZ=ON -DEMBER_SANITIZE= -DEMBER_SEPARATE_STACKS=ON >/dev/null
cmake --build "$build" --target fuzz_codec -j"$(nproc)"

mkdir -p "$build/corpus_codec" "$build/fuzz-artifacts"
# max_len: messages of interest are small, and a short cap keeps runs fast.
# rss_limit: a real leak or blow-up is reported long before the machine suffers.
"$build/bin/fuzz_codec" \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/" \
    "$build/corpus_codec" "$here/corpus_codec"
