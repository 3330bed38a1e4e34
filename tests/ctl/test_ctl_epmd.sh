#!/usr/bin/env bash
# test_ctl_epmd.sh - ember-ctl with a port mapper: epmd-names lists what an
# ember-epmd (on a free port) has registered; --node NAME@HOST without a port
# finds the node through it (--epmd-port or $ERL_EPMD_PORT); and each way of
# failing gets its exit code: no such name (3), no port mapper (3), the
# cookie does not match (4).
source "$(dirname "$0")/ctl_lib.sh"

start_epmd
N=mapped@127.0.0.1
start_target "$N" map-cookie "$EPMD_PORT"

# ---- epmd-names: the node's short name and port
ctl epmd-names 127.0.0.1 --epmd-port "$EPMD_PORT"
expect_rc 0 "epmd-names"
expect_out "^NAME +PORT$" "epmd-names: header"
expect_out "^mapped +$TPORT$" "epmd-names: the node's name and port"
ctl epmd-names --epmd-port "$EPMD_PORT" --json
expect_rc 0 "epmd-names --json (host defaults to 127.0.0.1)"
expect_json "j['epmd_port'] == $EPMD_PORT and {'name': 'mapped', 'port': $TPORT} in j['names']" \
    "epmd-names --json: the node's name and port"
OUT=$(ERL_EPMD_PORT=$EPMD_PORT timeout "$CTL_WAIT" "$CTL" epmd-names 2>"$work/ctl.err"); RC=$?
expect_rc 0 "epmd-names with \$ERL_EPMD_PORT"
expect_out "^mapped +$TPORT$" "epmd-names with \$ERL_EPMD_PORT: lists the node"

# ---- the node by name alone, through the port mapper
ctl --node "$N" --epmd-port "$EPMD_PORT" --cookie map-cookie ping
expect_rc 0 "ping NAME@HOST through the port mapper"
expect_out "^pong $N " "ping through the port mapper: pong"
OUT=$(ERL_EPMD_PORT=$EPMD_PORT timeout "$CTL_WAIT" "$CTL" --node "$N" --cookie map-cookie ps 2>"$work/ctl.err"); RC=$?
expect_rc 0 "ps through the port mapper found with \$ERL_EPMD_PORT"
expect_out " counter$" "ps through the port mapper: counter"
ctl --cookie map-cookie --epmd-port "$EPMD_PORT" spawn "$N" demo:echo hi
expect_rc 0 "spawn NODE found through the port mapper"
ctl epmd-names --epmd-port "$EPMD_PORT"
if grep -q "^ctl-" <<<"$OUT"; then fail "ember-ctl registered itself with the port mapper"; else ok "ember-ctl does not register itself"; fi

# ---- failures
ctl --node "$N" --epmd-port "$EPMD_PORT" --cookie other-cookie ping
expect_rc 4 "wrong cookie through the port mapper"
expect_err "the cookie does not match" "wrong cookie through the port mapper: says so"
ctl --node nobody@127.0.0.1 --epmd-port "$EPMD_PORT" --cookie map-cookie ping
expect_rc 3 "a name the port mapper does not know"
expect_err "no node named nobody is registered with the port mapper at 127.0.0.1:$EPMD_PORT" \
    "unknown name: says so"
dead=$(free_port)
ctl --node "$N" --epmd-port "$dead" --cookie map-cookie ping
expect_rc 3 "no port mapper"
expect_err "no port mapper answers at 127.0.0.1:$dead" "no port mapper: says so"
ctl epmd-names 127.0.0.1 --epmd-port "$dead"
expect_rc 3 "epmd-names without a port mapper"
ctl epmd-names 127.0.0.1 --epmd-port "$dead" --json
expect_json "j['exit'] == 3" "epmd-names without a port mapper --json"

# ---- stop by name: the node goes, and so does its registration
ctl --node "$N" --epmd-port "$EPMD_PORT" --cookie map-cookie stop
expect_rc 0 "stop through the port mapper"
wait_exit "$TPID" || fail "the node did not exit after stop"
gone=no
for ((i = 0; i < 50; i++)); do
    ctl epmd-names --epmd-port "$EPMD_PORT"
    grep -q "^mapped " <<<"$OUT" || { gone=yes; break; }
    sleep 0.1
done
if [ "$gone" = yes ]; then ok "stop: the name left the port mapper"; else fail "stop: the name is still registered"; fi
ctl --node "$N" --epmd-port "$EPMD_PORT" --cookie map-cookie ping
expect_rc 3 "ping after stop: no such name"

finish
