#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the
# cluster demo (scripts/cluster-demo.sh): a port mapper and three nodes on this
# machine, remote spawns, messages, monitors, a supervisor, a node killed, and
# an orderly shutdown.
#
# EMBER_BUILD_DIR  the build tree to configure and use (default build)
# EMBER_SKIP_DEPS  set to 1 to skip scripts/deps.sh (no package installation)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${EMBER_BUILD_DIR:-build}
if [ "${EMBER_SKIP_DEPS:-0}" != 1 ]; then
  bash scripts/deps.sh
fi
echo "ember: building in $build/ (a minute or two the first time)"
# Quiet when it works; the end of the output when it does not.
if ! out=$(cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo 2>&1) ||
   ! out=$(cmake --build "$build" -j"$(nproc)" 2>&1); then
  tail -n 40 <<<"$out" >&2
  echo "ember: the build failed (above)" >&2
  exit 1
fi
exec bash scripts/cluster-demo.sh "$build"
