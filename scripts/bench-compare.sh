#!/usr/bin/env bash
# Runs ember-bench beside ../shared/anchors (Erlang/OTP, Go, raw ZeroMQ), ROUNDS
# times interleaved, and prints every line plus the median of each figure.
# Usage: scripts/bench-compare.sh [ROUNDS]   (default 3; needs a built build/)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
anchors=../shared/anchors
# The anchors skip BEAM without a word when erl is missing, which would leave a
# side-by-side run without its main peer: install Debian's Erlang/OTP first.
if ! command -v erl >/dev/null || ! command -v erlc >/dev/null; then
  echo "bench-compare: installing erlang-nox for the BEAM anchors" >&2
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends erlang-nox >/dev/null
fi
out=$(mktemp)
for r in $(seq "$rounds"); do
  echo "== round $r" >&2
  # A bound on the anchors: their distribution script waits for its server
  # node, which never stops when the client failed to reach it (sessions 14
  # and 15, once a run or more). Everything else they run takes about 3
  # minutes here, the distribution script itself under one: 8 minutes lose
  # nothing when it works. timeout signals its whole process group, the
  # Erlang nodes included.
  if [ -x "$anchors/run.sh" ]; then
    timeout --kill-after=10 480 "$anchors/run.sh" 2>&1 | tee -a "$out" >&2 ||
      echo "bench-compare: the anchors did not finish in 8 minutes; this round has what they printed" >&2
    # A line cut short (the hung script's "beam " prefix) must not swallow the
    # next figure: end it.
    [ -z "$(tail -c 1 "$out")" ] || echo >>"$out"
  fi
  build/bin/ember-bench all 2>&1 | sed 's/^/ember /' | tee -a "$out" >&2
  # Distribution: two node processes on loopback, as run_dist_erlang.sh does,
  # and the same exchange on bare ZeroMQ between two processes (zmq_limit's is
  # within one process).
  build/bin/ember-bench dist 100000 2>&1 | sed 's/^/ember /' | tee -a "$out" >&2
  build/bin/zmq-two-process 100000 2>&1 | sed 's/^/raw  /' | tee -a "$out" >&2
  # ...and in ember's shape (a ROUTER in, a DEALER out, waiting on ZMQ_FD).
  build/bin/zmq-two-process 100000 ember fd 2>&1 | sed 's/^/rawshape /' | tee -a "$out" >&2
  build/bin/ember-bench distbulk 200 2>&1 | sed 's/^/ember /' | tee -a "$out" >&2
done
echo "== medians over $rounds rounds"
# For each "system workload", take the median of each key=value figure.
awk '
  NF >= 2 && $1 ~ /^(beam|go|raw|rawshape|ember)$/ {
    key = $1 " " $2
    if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
    for (i = 3; i <= NF; i++) {
      split($i, kv, "=")
      if (kv[2] ~ /^[0-9.]+$/) {
        f = key SUBSEP kv[1]
        if (!(f in nf)) { fields[key] = fields[key] " " kv[1] }
        vals[f, ++nf[f]] = kv[2] + 0
      }
    }
  }
  END {
    for (k = 1; k <= nk; k++) {
      key = order[k]; line = key
      n = split(fields[key], names, " ")
      for (j = 1; j <= n; j++) {
        f = key SUBSEP names[j]; m = nf[f]
        for (a = 1; a <= m; a++) v[a] = vals[f, a]
        for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (v[b] < v[a]) { t = v[a]; v[a] = v[b]; v[b] = t }
        med = (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
        line = line " " names[j] "=" med
      }
      print line
    }
  }' "$out"
rm -f "$out"
