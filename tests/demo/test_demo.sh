#!/usr/bin/env bash
# test_demo.sh SRC_DIR BUILD_DIR - the README's main command, run end to end.
#
# `sudo bash scripts/demo.sh` installs packages, builds, and then runs
# scripts/cluster-demo.sh on the build tree. This test checks that demo.sh
# still ends that way, runs scripts/cluster-demo.sh on BUILD_DIR (the tree
# ctest runs in, built already), and checks its exit status, the lines that
# show each thing the demo is there to show, and that nothing it started is
# left running: by the os pids it printed, not by program name.
#
# Every check prints "ok ..." or "FAIL ...", and the script exits 1 if any
# failed. EMBER_DEMO_MAX_SECONDS, when set, bounds the demo's wall time.
set -uo pipefail

src=$1
build=$2
failures=0
checks=0
work=$(mktemp -d "${TMPDIR:-/tmp}/ember-demo-test.XXXXXX")
leftover=()

ok() {
  checks=$((checks + 1))
  echo "ok   $*"
}

fail() {
  checks=$((checks + 1))
  failures=$((failures + 1))
  echo "FAIL $*"
}

# is_ours PID: PID runs ember-node or ember-epmd (a pid printed by the demo
# that an unrelated program got since would not count).
is_ours() {
  local exe
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  [[ $exe == */ember-node || $exe == */ember-epmd ]]
}

cleanup() {
  local pid
  for pid in "${leftover[@]}"; do
    is_ours "$pid" && kill -KILL "$pid" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT

# expect PATTERN WHAT: a line of the demo's output matches PATTERN (grep -E).
expect() {
  if grep -qE -- "$1" "$work/out"; then ok "$2"; else fail "$2: no line matches /$1/"; fi
}

# block N HEADER: the lines printed under the Nth "$ HEADER" line of the
# output (the indented output of that command).
block() {
  awk -v want="$1" -v head="   \$ $2" '
    $0 == head { n++; inblock = (n == want); next }
    inblock && /^     / { print; next }
    { inblock = 0 }' "$work/out"
}

# ---------------------------------------------------------------- demo.sh

# What the README's command runs once it has built the tree.
if bash -n "$src/scripts/demo.sh" && bash -n "$src/scripts/cluster-demo.sh"; then
  ok "demo.sh and cluster-demo.sh parse"
else
  fail "demo.sh or cluster-demo.sh does not parse"
fi
# shellcheck disable=SC2016 # the line itself, $build unexpanded
if grep -qx 'exec bash scripts/cluster-demo.sh "$build"' "$src/scripts/demo.sh"; then
  ok "demo.sh runs scripts/cluster-demo.sh on the tree it built"
else
  fail "demo.sh no longer ends with: exec bash scripts/cluster-demo.sh \"\$build\""
fi

# ---------------------------------------------------------------- the run

start=${EPOCHREALTIME/[.,]/}
timeout 120 bash "$src/scripts/cluster-demo.sh" "$build" >"$work/out" 2>"$work/err"
rc=$?
elapsed_ms=$(((${EPOCHREALTIME/[.,]/} - start) / 1000))
echo "---- the demo's output (exit status $rc, $elapsed_ms ms):"
cat "$work/out"
if [ -s "$work/err" ]; then
  echo "---- on stderr:"
  cat "$work/err"
fi
echo "----"

if [ "$rc" -eq 0 ]; then ok "the demo exited 0"; else fail "the demo exited $rc"; fi
if [ -s "$work/err" ]; then fail "the demo wrote on stderr"; else ok "nothing on stderr"; fi
if [ -n "${EMBER_DEMO_MAX_SECONDS:-}" ]; then
  if [ "$elapsed_ms" -lt $((EMBER_DEMO_MAX_SECONDS * 1000)) ]; then
    ok "the demo took $elapsed_ms ms (at most ${EMBER_DEMO_MAX_SECONDS} s)"
  else
    fail "the demo took $elapsed_ms ms, more than ${EMBER_DEMO_MAX_SECONDS} s"
  fi
fi

# Each thing the demo is there to show.
P='<[0-9]+\.[0-9]+\.[0-9]+>'
expect "^   started ember-epmd on port [0-9]+ \(os pid [0-9]+\)" "a port mapper on a port of its own"
expect "^   a@127\.0\.0\.1 answers: pong a@127\.0\.0\.1" "ember-ctl ping answered"
expect "^   a: spawned demo:echo on b as $P" "a process spawned on a remote node"
expect "^   a: sent \[$P, hello\] to pid $P, got \[echo, hello\] back from b" \
  "a message to a remote pid, and its reply"
expect '^   a: sent "by name" to the name echo on b, got \[echo, "by name"\] back' \
  "a message to a remote registered name, and its reply"
expect "^   a: sent 2 more to the name counter on c: it counted 5" \
  "messages by pid and by name counted on c"
expect "^   a: DOWN from $P: killed$" "a remote worker killed with exit(kill)"
expect "^   a: demo_w1 answers again, as $P: the supervisor on b restarted it" \
  "the remote supervisor restarted its worker"
expect "^   c@127\.0\.0\.1 \(os pid [0-9]+\) is gone: killed by SIGKILL" "c killed with SIGKILL"
expect "^   a: DOWN from $P \(demo:counter on c\): noconnection" "the monitor on c fired: noconnection"
expect "^   a: EXIT from $P \(demo:worker on c\): noconnection" "the link to c fired: noconnection"
expect "^   a: nodedown 'c@127\.0\.0\.1'" "the node monitor fired: nodedown"
expect "^   a: demo finished" "cluster_demo:main finished"
expect "^   b@127\.0\.0\.1 \(os pid [0-9]+\) exited with status 0" "b stopped with status 0"
expect "^   a@127\.0\.0\.1 \(os pid [0-9]+\) exited with status 0" "a stopped with status 0"
expect "^   ember-epmd \(os pid [0-9]+\) exited with status 0" "the port mapper stopped with status 0"
expect "^done: every step worked" "the demo says every step worked"

# ember-ctl's listings: the cluster of three, then of two.
first=$(block 1 "ember-ctl --node a@127.0.0.1 nodes")
second=$(block 2 "ember-ctl --node a@127.0.0.1 nodes")
if [ "$(grep -cE ' visible$' <<<"$first")" -eq 2 ] && grep -qE '^ +b@127\.0\.0\.1 +visible$' <<<"$first" &&
   grep -qE '^ +c@127\.0\.0\.1 +visible$' <<<"$first"; then
  ok "ember-ctl nodes: a is connected to b and c"
else
  fail "ember-ctl nodes, first listing: not b and c: '$first'"
fi
if [ "$(grep -cE ' visible$' <<<"$second")" -eq 1 ] && grep -qE '^ +b@127\.0\.0\.1 +visible$' <<<"$second"; then
  ok "ember-ctl nodes after the kill: a is connected to b alone"
else
  fail "ember-ctl nodes, second listing: not b alone: '$second'"
fi
first=$(block 1 "ember-ctl epmd-names" | awk 'NR > 1 { print $1 }' | sort | tr '\n' ' ')
second=$(block 2 "ember-ctl epmd-names" | awk 'NR > 1 { print $1 }' | sort | tr '\n' ' ')
if [ "$first" = "a b c " ] && [ "$second" = "a b " ]; then
  ok "ember-ctl epmd-names: a, b and c registered, then a and b"
else
  fail "ember-ctl epmd-names: '$first' then '$second', expected 'a b c ' then 'a b '"
fi

# ps on b shows the restarted worker: the pid a printed, in b's numbering
# (<N.I.S> on a is <0.I.S> on b).
restarted=$(sed -nE 's/^   a: demo_w1 answers again, as <[0-9]+\.([0-9]+\.[0-9]+)>.*/\1/p' "$work/out")
if [ -n "$restarted" ] && block 1 "ember-ctl --node b@127.0.0.1 ps" |
   grep -qE "^ +<0\.${restarted//./\\.}> .* demo_w1$"; then
  ok "ember-ctl ps on b lists the restarted demo_w1 as <0.$restarted>"
else
  fail "ember-ctl ps on b does not list the restarted demo_w1 (<0.$restarted>)"
fi

# Nothing the demo started is left: every os pid it printed is gone.
mapfile -t pids < <(grep -oE '\(os pid [0-9]+\)' "$work/out" | grep -oE '[0-9]+' | sort -u)
if [ "${#pids[@]}" -ge 4 ]; then
  ok "the demo printed ${#pids[@]} os pids (the port mapper and three nodes)"
else
  fail "the demo printed ${#pids[@]} os pids, expected the port mapper's and three nodes'"
fi
for pid in "${pids[@]}"; do
  if is_ours "$pid"; then
    leftover+=("$pid")
    fail "os pid $pid ($(readlink "/proc/$pid/exe")) is still running"
  fi
done
[ "${#leftover[@]}" -eq 0 ] && ok "none of them is still running"

# Nor its scratch directory.
scratch=$(sed -nE 's/^\(programs from .*; scratch files in (.*), removed at the end\)$/\1/p' "$work/out")
if [ -n "$scratch" ] && [ ! -e "$scratch" ]; then
  ok "its scratch directory is gone"
else
  fail "its scratch directory ('$scratch') is still there"
fi

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
