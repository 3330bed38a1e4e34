#!/usr/bin/env bash
# Installs what ember needs to build and test on Debian 12, when it is missing.
# Run by demo.sh and test.sh; runs apt-get as root (through sudo if needed).
set -euo pipefail
# clang and its runtime build the fuzz targets (libFuzzer) that the test suite runs;
# python3 runs the ember-ctl tests' helpers (JSON checks, free ports, a silent listener).
EMBER_PKGS=(build-essential cmake pkg-config libzmq3-dev libmsgpack-dev libsodium-dev libcmocka-dev valgrind
            clang libclang-rt-14-dev python3)
missing=()
for p in "${EMBER_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "ember: installing ${missing[*]}"
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
