#!/usr/bin/env bash
# cluster-demo.sh [BUILD_DIR] - a cluster of three ember nodes on this machine,
# and what it can do, step by step; then everything is shut down.
#
# scripts/demo.sh runs it once it has built the tree; BUILD_DIR (default
# $EMBER_BUILD_DIR, else build) is the build tree whose bin/ and lib/ it uses.
# Nothing to configure: the cookie is generated for this run, the port mapper
# listens on a free port (never on 4369, where a real one may run), and
# everything lives in a temporary directory that is removed at the end.
#
# Every process it starts prints "(os pid N)" beside its name. Exit status 0
# only if every step worked; on a failure it says what failed, shows the end
# of the logs, and stops whatever it started.
set -euo pipefail
set -o errtrace

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${EMBER_BUILD_DIR:-build}}
case $build in /*) ;; *) build=$root/$build ;; esac
bin=$build/bin
lib=$build/lib
for f in "$bin/ember-epmd" "$bin/ember-node" "$bin/ember-ctl"; do
  if [ ! -x "$f" ]; then
    echo "cluster-demo: $f is missing: build the tree first (bash scripts/demo.sh does)" >&2
    exit 1
  fi
done
for f in "$lib/libdemo.so" "$lib/libcluster_demo.so"; do
  if [ ! -e "$f" ]; then
    echo "cluster-demo: $f is missing: build the tree first (bash scripts/demo.sh does)" >&2
    exit 1
  fi
done

WAIT=${EMBER_DEMO_WAIT:-15}   # seconds any one step may take before it counts as failed
HOST=127.0.0.1
started_us=${EPOCHREALTIME/[.,]/}
dir=$(mktemp -d "${TMPDIR:-/tmp}/ember-demo.XXXXXX")
cookie=$dir/cookie
epmd_pid=
epmd_port=
declare -A pid_of=()          # node short name -> os pid, while it runs
step="starting"
finished=0

# ---------------------------------------------------------------- output

section() {
  step=$1
  printf '\n== %s\n' "$1"
}

say() { printf '   %s\n' "$*"; }

# run_shown WHAT CMD...: prints "$ WHAT", runs CMD, prints its output
# indented; the output stays in OUT. Fails the demo if CMD fails.
run_shown() {
  local what=$1
  shift
  printf '   $ %s\n' "$what"
  if ! OUT=$("$@" 2>&1); then
    sed 's/^/     /' <<<"$OUT"
    die "$what failed"
  fi
  sed 's/^/     /' <<<"$OUT"
}

# ------------------------------------------------------------- failures

die() {
  printf '\nFAILED: %s (during: %s)\n' "$1" "$step" >&2
  exit 1
}

on_err() {
  printf '\nFAILED: line %s: %s exited with status %s (during: %s)\n' "$1" "$2" "$3" "$step" >&2
}
trap 'on_err "$LINENO" "$BASH_COMMAND" "$?"' ERR
trap 'printf "\ninterrupted (SIGINT)\n" >&2; exit 130' INT
trap 'printf "\ninterrupted (SIGTERM)\n" >&2; exit 143' TERM

# wait_gone PID SECONDS: true once PID (a child of ours) has exited; its
# status in STATUS.
wait_gone() {
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    if ! kill -0 "$1" 2>/dev/null; then
      STATUS=0
      wait "$1" 2>/dev/null || STATUS=$?
      return 0
    fi
    sleep 0.05
  done
  return 1
}

cleanup() {
  local rc=$? name f
  set +e
  trap - ERR
  if [ "$finished" -eq 0 ]; then
    if [ "$rc" -ne 0 ]; then
      for f in "$dir"/*.log "$dir"/a.out; do
        [ -s "$f" ] || continue
        printf '\n--- the last lines of %s:\n' "$(basename "$f")" >&2
        tail -n 15 "$f" | sed 's/^/    /' >&2
      done
    fi
    printf '\n== cleaning up\n' >&2
    # SIGTERM to every node at once (their orderly stop), then a wait for each.
    for name in "${!pid_of[@]}"; do
      kill -TERM "${pid_of[$name]}" 2>/dev/null
    done
    for name in "${!pid_of[@]}"; do
      if ! wait_gone "${pid_of[$name]}" 5; then
        exec 3>&2 2>/dev/null
        kill -KILL "${pid_of[$name]}"
        wait_gone "${pid_of[$name]}" 5
        exec 2>&3 3>&-
      fi
      printf '   stopped %s (os pid %s)\n' "$name" "${pid_of[$name]}" >&2
    done
    if [ -n "$epmd_pid" ]; then
      "$bin/ember-epmd" -port "$epmd_port" -kill >/dev/null 2>&1 || kill -TERM "$epmd_pid" 2>/dev/null
      if ! wait_gone "$epmd_pid" 5; then
        exec 3>&2 2>/dev/null
        kill -KILL "$epmd_pid"
        wait_gone "$epmd_pid" 5
        exec 2>&3 3>&-
      fi
      printf '   stopped ember-epmd (os pid %s)\n' "$epmd_pid" >&2
    fi
  fi
  rm -rf "$dir"
  exit "$rc"
}
trap cleanup EXIT

# ------------------------------------------------------------- the nodes

node_name() { echo "$1@$HOST"; }

ctl() { "$bin/ember-ctl" --cookie-file "$cookie" "$@"; }

# start_node NAME ARGS...: starts ember-node in the background, its standard
# output in $dir/NAME.out and its log in $dir/NAME.log.
start_node() {
  local name=$1
  shift
  local args=(--name "$(node_name "$name")" --cookie-file "$cookie" "$@")
  "$bin/ember-node" "${args[@]}" >"$dir/$name.out" 2>"$dir/$name.log" &
  pid_of[$name]=$!
  say "started $(node_name "$name") (os pid ${pid_of[$name]}): ember-node ${args[*]}"
}

# wait_up NAME: waits until the node answers ember-ctl ping.
wait_up() {
  local name=$1 i out
  for ((i = 0; i < WAIT * 20; i++)); do
    if out=$(ctl --node "$(node_name "$name")" ping 2>&1); then
      say "$(node_name "$name") answers: $out"
      return 0
    fi
    kill -0 "${pid_of[$name]}" 2>/dev/null || die "$(node_name "$name") exited before it was up"
    sleep 0.05
  done
  die "$(node_name "$name") did not answer ember-ctl ping within ${WAIT}s"
}

# wait_sees NAME OTHER...: waits until node NAME is connected to every OTHER.
wait_sees() {
  local name=$1 i out other missing
  shift
  for ((i = 0; i < WAIT * 20; i++)); do
    missing=
    out=$(ctl --node "$(node_name "$name")" nodes 2>&1) || out=
    for other in "$@"; do
      grep -qE "^$(node_name "$other") +visible" <<<"$out" || missing+=" $other"
    done
    [ -z "$missing" ] && return 0
    sleep 0.05
  done
  die "$(node_name "$name") is not connected to:$missing"
}

# follow_a PATTERN: prints node a's new lines of output (cluster_demo:main's
# report) until one matches PATTERN (an extended regular expression).
shown=0
follow_a() {
  local pattern=$1 i line lines=()
  for ((i = 0; i < WAIT * 20; i++)); do
    # Only whole lines: the last one may still be being written.
    mapfile -t lines <"$dir/a.out"
    if ((${#lines[@]})) && [ -n "$(tail -c 1 "$dir/a.out")" ]; then
      unset 'lines[-1]'
    fi
    while ((shown < ${#lines[@]})); do
      line=${lines[shown]}
      shown=$((shown + 1))
      say "$line"
      [[ $line == *": FAILED"* ]] && die "cluster_demo:main on a failed"
      [[ $line =~ $pattern ]] && return 0
    done
    kill -0 "${pid_of[a]}" 2>/dev/null || die "$(node_name a) exited"
    sleep 0.05
  done
  die "node a did not print a line matching /$pattern/ within ${WAIT}s"
}

# ------------------------------------------------------------- the demo

echo "ember cluster demo: a port mapper and three nodes on this machine, what"
echo "distribution does between them, and an orderly shutdown."
echo "(programs from $build; scratch files in $dir, removed at the end)"

section "1. a fresh cookie and a port mapper"
# The nodes and ember-ctl prove to each other that they hold the same secret;
# it lives in a file only we can read, never on a command line.
(umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$cookie")
chmod 0400 "$cookie"
say "a fresh cookie: 48 random hex digits in $cookie (mode $(stat -c %04a "$cookie"))"
say "every program below reads it with --cookie-file: no command line holds the secret"
# A free port: check that nothing answers there, then let ember-epmd bind it
# (it exits at once if it cannot); a few tries in case of a race. It is up
# once `ember-epmd -names` gets an answer while it still runs.
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 30000))
  if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
    continue   # something answers there
  fi
  # In the foreground (as under systemd), as our child: we know its pid and
  # its exit status, and its log stays in $dir.
  "$bin/ember-epmd" -port "$port" >"$dir/epmd.log" 2>&1 &
  pid=$!
  up=0
  for ((i = 0; i < WAIT * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    if "$bin/ember-epmd" -port "$port" -names >/dev/null 2>&1 && kill -0 "$pid" 2>/dev/null; then
      up=1
      break
    fi
    sleep 0.05
  done
  if [ "$up" -eq 1 ]; then
    epmd_pid=$pid
    epmd_port=$port
    break
  fi
  wait "$pid" 2>/dev/null || true
done
[ -n "$epmd_pid" ] || die "ember-epmd could not listen on a free port (see epmd.log)"
export ERL_EPMD_PORT=$epmd_port
say "started ember-epmd on port $epmd_port (os pid $epmd_pid): ember-epmd -port $epmd_port"
say "ERL_EPMD_PORT=$epmd_port from here on: the nodes and ember-ctl find the port mapper there"

section "2. three nodes: a, b and c"
start_node a --load demo --load cluster_demo
wait_up a
start_node b --load demo --connect "$(node_name a)"
wait_up b
wait_sees b a
start_node c --load demo --connect "$(node_name a)"
wait_up c
wait_sees a b c
wait_sees b a c
wait_sees c a b
say "the mesh is complete: b and c joined through a, and each node is connected to the other two"
run_shown "ember-ctl --node $(node_name a) nodes" ctl --node "$(node_name a)" nodes
run_shown "ember-ctl epmd-names" ctl epmd-names

section "3. node a runs cluster_demo:main, which works on b and c"
# Its argument, a term in ember's text form: the two other nodes, and the file
# in which step 5 writes when it killed c (for a's report of how fast it knew).
demo_arg="['$(node_name b)', '$(node_name c)', \"$dir/c.killed\"]"
run_shown "ember-ctl spawn $(node_name a) cluster_demo:main \"${demo_arg//\"/\\\"}\"" \
  ctl spawn "$(node_name a)" cluster_demo:main "$demo_arg"
follow_a "waiting for c to go down"

section "4. what b runs now"
run_shown "ember-ctl --node $(node_name b) ps" ctl --node "$(node_name b)" ps
for name in echo demo_w1 demo_w2; do
  grep -qE " $name *\$" <<<"$OUT" || die "ps on b does not list $name"
done
run_shown "ember-ctl --node $(node_name b) info demo_w1" ctl --node "$(node_name b)" info demo_w1

section "5. killing c with SIGKILL"
say "kill -KILL ${pid_of[c]} (c's os pid): no goodbye to anyone; its peers see the connection drop"
echo "${EPOCHREALTIME/[.,]/}" >"$dir/c.killed"   # microseconds since the epoch
# (bash reports a child killed by a signal on its stderr, "line N: PID Killed",
# when it reaps it: not news here.)
exec 3>&2 2>/dev/null
kill -KILL "${pid_of[c]}"
gone=0
wait_gone "${pid_of[c]}" "$WAIT" && gone=1
exec 2>&3 3>&-
[ "$gone" -eq 1 ] || die "c (os pid ${pid_of[c]}) survived SIGKILL"
[ "$STATUS" -eq 137 ] || die "c exited with status $STATUS, not 137 (killed by SIGKILL)"
say "$(node_name c) (os pid ${pid_of[c]}) is gone: killed by SIGKILL"
unset 'pid_of[c]'
follow_a "demo finished"
# a's own log says the same, in the library's words.
grep -E "node $(node_name c) is down" "$dir/a.log" | sed 's/^/   a'"'"'s log: /' || true
run_shown "ember-ctl --node $(node_name a) nodes" ctl --node "$(node_name a)" nodes
grep -q "$(node_name c)" <<<"$OUT" && die "a still lists c"
# The port mapper forgets c when c's registration connection closes, which
# the kernel did when c died; it may read that close a moment after now.
for ((i = 0; i < WAIT * 20; i++)); do
  out=$(ctl epmd-names 2>&1) || die "ember-ctl epmd-names failed: $out"
  grep -qE '^c ' <<<"$out" || break
  sleep 0.05
done
run_shown "ember-ctl epmd-names" ctl epmd-names
grep -qE '^c ' <<<"$OUT" && die "the port mapper still has c registered"

section "6. shutting down"
for name in b a; do
  run_shown "ember-ctl --node $(node_name "$name") stop" ctl --node "$(node_name "$name")" stop
  wait_gone "${pid_of[$name]}" "$WAIT" || die "$(node_name "$name") is still running after stop"
  [ "$STATUS" -eq 0 ] || die "$(node_name "$name") exited with status $STATUS"
  say "$(node_name "$name") (os pid ${pid_of[$name]}) exited with status 0"
  unset "pid_of[$name]"
done
run_shown "ember-epmd -port $epmd_port -kill" "$bin/ember-epmd" -port "$epmd_port" -kill
wait_gone "$epmd_pid" "$WAIT" || die "ember-epmd is still running after -kill"
[ "$STATUS" -eq 0 ] || die "ember-epmd exited with status $STATUS"
say "ember-epmd (os pid $epmd_pid) exited with status 0"
epmd_pid=
finished=1
rm -rf "$dir"
say "removed $dir"

elapsed_ms=$(((${EPOCHREALTIME/[.,]/} - started_us) / 1000))
printf '\ndone: every step worked, in %d.%01d s\n' $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))
