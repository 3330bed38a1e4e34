#!/usr/bin/env bash
# test_getting_started.sh SRC_DIR BUILD_DIR - the module example of
# docs/getting-started.md ("A module of your own") works as written.
#
# It takes hello.c (the page's one ```c block), the cc line and the
# ember-node and ember-ctl commands from the page, and runs them word for
# word in a scratch directory where include/, node/ and build/ lead to the
# source and build trees, with its own HOME (so the cookie the first node
# creates is a fresh one), its own port mapper on a free port, and /tmp/ in
# the commands moved into the scratch directory. Nothing is left running.
set -uo pipefail

src=$1
build=$2
doc=$src/docs/getting-started.md
failures=0
checks=0
work=$(mktemp -d "${TMPDIR:-/tmp}/ember-gs-test.XXXXXX")
epmd_pid=
node_pids=()

ok() {
  checks=$((checks + 1))
  echo "ok   $*"
}

fail() {
  checks=$((checks + 1))
  failures=$((failures + 1))
  echo "FAIL $*"
}

cleanup() {
  local pid
  for pid in "${node_pids[@]}"; do
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */ember-node ]] && kill -KILL "$pid"
  done
  if [ -n "$epmd_pid" ]; then
    "$build/bin/ember-epmd" -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || kill -KILL "$epmd_pid"
    wait "$epmd_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# doc_command PREFIX: the page's indented command line that starts with
# PREFIX (after the indent and an optional "$ "), with /tmp/ moved into the
# scratch directory.
doc_command() {
  sed -nE 's/^    (\$ )?//p' "$doc" | awk -v p="$1" 'index($0, p) == 1 { print; exit }' |
    sed "s|/tmp/|$work/|g"
}

# run_doc WHAT COMMAND: runs COMMAND with bash in the scratch directory;
# output in OUT, status in RC.
run_doc() {
  if [ -z "$2" ]; then
    fail "$1: the page has no such command"
    return 1
  fi
  echo "     \$ $2"
  OUT=$(cd "$work" && timeout 60 bash -c "$2" 2>"$work/last.err")
  RC=$?
  sed 's/^/     /' <<<"$OUT"
  if [ "$RC" -ne 0 ]; then
    fail "$1: exit status $RC"
    sed 's/^/     stderr: /' "$work/last.err" | head -20
    return 1
  fi
  ok "$1"
}

ln -s "$src/include" "$work/include"
ln -s "$src/node" "$work/node"
ln -s "$build" "$work/build"
mkdir -m 0700 "$work/home"
export HOME=$work/home
unset EMBER_COOKIE

# hello.c, as the page shows it.
awk '/^```c[[:space:]]*$/ { inblock = 1; next } /^```/ && inblock { exit } inblock { print }' \
  "$doc" >"$work/hello.c"
if grep -q 'ember_module_exports' "$work/hello.c"; then
  ok "the page's module example extracted"
else
  fail "no module example (a \`\`\`c block with ember_module_exports) in $doc"
  exit 1
fi
cc_line=$(doc_command "cc ")
run_doc "hello.c builds with the page's command" "$cc_line -Werror" || exit 1

# A port mapper of our own on a free port.
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 30000))
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
  "$build/bin/ember-epmd" -port "$port" >"$work/epmd.log" 2>&1 &
  pid=$!
  up=0
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    if "$build/bin/ember-epmd" -port "$port" -names >/dev/null 2>&1 && kill -0 "$pid" 2>/dev/null; then
      up=1
      break
    fi
    sleep 0.05
  done
  if [ "$up" -eq 1 ]; then
    epmd_pid=$pid
    export ERL_EPMD_PORT=$port
    break
  fi
  wait "$pid" 2>/dev/null
done
if [ -z "$epmd_pid" ]; then
  fail "cannot start ember-epmd on a free port"
  exit 1
fi

# The greeter's node, detached; it prints its os pid.
if run_doc "the greeter's node starts" "$(doc_command "build/bin/ember-node --name g@")"; then
  pid=$(sed -nE 's/.* is up on port [0-9]+ \(pid ([0-9]+)\)$/\1/p' <<<"$OUT")
  [ -n "$pid" ] && node_pids+=("$pid")
else
  exit 1
fi

# The visiting node, in the foreground until visit ends.
if run_doc "the visiting node runs hello:visit and stops with status 0" \
    "$(doc_command "build/bin/ember-node --name v@")"; then
  if grep -qx "v@127.0.0.1 was welcomed by g@127.0.0.1" <<<"$OUT"; then
    ok "v was welcomed by g"
  else
    fail "v did not print: v@127.0.0.1 was welcomed by g@127.0.0.1"
  fi
fi

# hello:visit spawned on g with ember-ctl; g's output is in its log file.
if run_doc "ember-ctl spawns hello:visit on g" "$(doc_command "build/bin/ember-ctl spawn g@")"; then
  for ((i = 0; i < 100; i++)); do
    grep -q "g@127.0.0.1 was welcomed by g@127.0.0.1" "$work/g.log" && break
    sleep 0.05
  done
  if grep -q "g@127.0.0.1 was welcomed by g@127.0.0.1" "$work/g.log"; then
    ok "g's log says g was welcomed by g"
  else
    fail "g's log does not say: g@127.0.0.1 was welcomed by g@127.0.0.1"
  fi
fi

# Stopping, as the page says.
if run_doc "ember-ctl stops g" "$(doc_command "build/bin/ember-ctl --node g@127.0.0.1 stop")"; then
  for ((i = 0; i < 100; i++)); do
    [[ $(readlink "/proc/${node_pids[0]}/exe" 2>/dev/null) == */ember-node ]] || break
    sleep 0.05
  done
  if [[ $(readlink "/proc/${node_pids[0]}/exe" 2>/dev/null) == */ember-node ]]; then
    fail "g (os pid ${node_pids[0]}) is still running"
  else
    ok "g is gone"
  fi
fi

echo "$checks checks, $failures failed"
[ "$failures" -eq 0 ]
