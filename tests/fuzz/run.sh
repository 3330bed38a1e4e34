#!/usr/bin/env bash
# Builds the fuzz targets with clang in build-fuzz and runs them for a bounded
# time: tests/fuzz/run.sh [seconds] (default 60, shared between the targets:
# a third for fuzz_codec, the rest for fuzz_frames, which has far more code to
# reach and runs slower, each input being a frame sent to a live node). Exits
# non-zero when a fuzzer finds a crash, a leak, a hang or a failed round trip;
# the input that did it is left in build-fuzz/fuzz-artifacts/ (fuzz_frames'
# inputs with the prefix frames-). Needs clang and libclang-rt-14-dev (Debian 12).
#
# The seeds in tests/fuzz/corpus_codec/ and corpus_frames/ are only read; what
# the fuzzers learn goes to build-fuzz/corpus_codec/ and corpus_frames/, which
# later runs start from.
set -euo pipefail

secs=${1:-60}
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: $0 [seconds]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build-fuzz

command -v clang >/dev/null || { echo "run.sh: clang is missing (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

codec_secs=$((secs / 3))
((codec_secs >= 1)) || codec_secs=1
frames_secs=$((secs - codec_secs))
((frames_secs >= 1)) || frames_secs=1

# EMBER_SANITIZE stays empty: EMBER_FUZZ brings AddressSanitizer and UBSan.
# Separate stacks keep the unit tests of this build usable under ASan.
CC=clang cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DEMBER_FUZZ=ON -DEMBER_SANITIZE= -DEMBER_SEPARATE_STACKS=ON >/dev/null
cmake --build "$build" --target fuzz_codec fuzz_frames -j"$(nproc)"

mkdir -p "$build/corpus_codec" "$build/corpus_frames" "$build/fuzz-artifacts"
status=0

# max_len: messages of interest are small, and a short cap keeps runs fast.
# rss_limit: a real leak or blow-up is reported long before the machine suffers.
echo "run.sh: fuzz_codec for ${codec_secs}s"
"$build/bin/fuzz_codec" \
    -max_total_time="$codec_secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/" \
    "$build/corpus_codec" "$here/corpus_codec" || status=1

# max_len: room for the seed that completes a fragmented message (fragments
# carry items above 16 KiB). timeout: the harness itself gives up on a node
# that stops reading after 10 s, with a message that says so. detect_leaks=0:
# libFuzzer's check after an input would scan a node in mid-flight, whose
# process table is mapped outside the heap and whose mailbox heads carry a
# count in their top bits, so LeakSanitizer would call live memory lost; the
# harness stops the node at exit instead, the runtime frees all it took, and
# LeakSanitizer's check at exit (still on) reports what is really lost.
echo "run.sh: fuzz_frames for ${frames_secs}s"
"$build/bin/fuzz_frames" \
    -max_total_time="$frames_secs" -max_len=20000 -timeout=30 -rss_limit_mb=2048 \
    -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/frames-" \
    "$build/corpus_frames" "$here/corpus_frames" || status=1

exit "$status"
