#!/usr/bin/env bash
# check_examples.sh SRC_DIR BUILD_DIR - every C example in README.md and docs/*.md
# that has a main() must build with the command the guide gives and run to a
# zero exit status, so the documentation cannot drift from the code.
set -uo pipefail
src=$1
build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
bad=0
for md in "$src"/README.md "$src"/docs/*.md; do
  # Split the file's ```c blocks into numbered files.
  awk -v dir="$work" -v base="$(basename "$md" .md)" '
    /^```c[[:space:]]*$/ { inblock = 1; k++; file = sprintf("%s/%s_%02d.c", dir, base, k); next }
    /^```/ && inblock { inblock = 0; close(file); next }
    inblock { print > file }' "$md"
done
for f in "$work"/*.c; do
  [ -e "$f" ] || continue
  grep -q 'int main' "$f" || continue
  n=$((n + 1))
  name=$(basename "$f" .c)
  if ! cc -std=c11 -Wall -Wextra -Werror -I"$src/include" "$f" -L"$build/lib" -lember \
      -Wl,-rpath,"$build/lib" -lm -o "$work/$name" 2>"$work/$name.err"; then
    echo "FAIL $name: does not build"
    sed 's/^/    /' "$work/$name.err" | head -20
    bad=$((bad + 1))
    continue
  fi
  if ! timeout 30 "$work/$name" >"$work/$name.out" 2>&1; then
    echo "FAIL $name: exited with status $? ; output:"
    sed 's/^/    /' "$work/$name.out" | head -20
    bad=$((bad + 1))
    continue
  fi
  echo "ok   $name"
done
echo "$n examples, $bad failed"
[ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
