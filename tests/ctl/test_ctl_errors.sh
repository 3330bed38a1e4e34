#!/usr/bin/env bash
# test_ctl_errors.sh - ember-ctl's exit codes when things go wrong, and where
# the cookie comes from: a wrong cookie (4), nothing listening (3), a node that
# does not answer (3), bad command lines (2), no cookie at all (2); and
# --cookie-file, $EMBER_COOKIE and ~/.ember/cookie each reaching the node.
source "$(dirname "$0")/ctl_lib.sh"

N=errs@127.0.0.1
start_target "$N" right-cookie
addr="$N:$TPORT"

# ---- the cookie does not match: refused, exit 4, quickly
start=$(date +%s%N)
ctl --node "$addr" --cookie wrong-cookie ping
ms=$((($(date +%s%N) - start) / 1000000))
expect_rc 4 "wrong cookie"
expect_err "cannot connect to $N: the cookie does not match" "wrong cookie: says so"
if [ "$ms" -lt 3000 ]; then ok "wrong cookie: told in ${ms} ms, not after the timeout"; else fail "wrong cookie took ${ms} ms"; fi
ctl --node "$addr" --cookie wrong-cookie ping --json
expect_rc 4 "wrong cookie --json"
expect_json "j['error'] == 'refused' and j['exit'] == 4" "wrong cookie --json: the error as JSON"

# ---- the cookie from elsewhere: file, environment, ~/.ember/cookie
printf 'right-cookie\n' >"$work/cookie"
ctl --node "$addr" --cookie-file "$work/cookie" ping
expect_rc 0 "--cookie-file"
OUT=$(EMBER_COOKIE=right-cookie timeout "$CTL_WAIT" "$CTL" --node "$addr" ping 2>"$work/ctl.err"); RC=$?
expect_rc 0 "\$EMBER_COOKIE"
mkdir -p "$work/home/.ember" && printf 'right-cookie' >"$work/home/.ember/cookie"
OUT=$(HOME="$work/home" EMBER_COOKIE='' timeout "$CTL_WAIT" "$CTL" --node "$addr" ping 2>"$work/ctl.err"); RC=$?
expect_rc 0 "~/.ember/cookie"
OUT=$(HOME="$work/nohome" EMBER_COOKIE='' timeout "$CTL_WAIT" "$CTL" --node "$addr" ping 2>"$work/ctl.err"); RC=$?
ERR=$(cat "$work/ctl.err")
expect_rc 2 "no cookie anywhere"
expect_err "no cookie" "no cookie: says so"
if [ ! -e "$work/nohome/.ember/cookie" ]; then ok "no cookie: none was created"; else fail "a cookie file was created"; fi
ctl --node "$addr" --cookie-file "$work/missing" ping
expect_rc 2 "--cookie-file that does not exist"
expect_err "cannot read the cookie file" "missing cookie file: says so"

# ---- nothing listens: unreachable, exit 3, well before the timeout
dead=$(free_port)
start=$(date +%s%N)
ctl --node "errs@127.0.0.1:$dead" --cookie right-cookie --timeout 8000 ping
ms=$((($(date +%s%N) - start) / 1000000))
expect_rc 3 "nothing listens"
expect_err "cannot reach errs@127.0.0.1: nothing listens at 127.0.0.1:$dead \(connection refused\)" \
    "nothing listens: says so"
if [ "$ms" -lt 6000 ]; then ok "nothing listens: told in ${ms} ms"; else fail "nothing listens took ${ms} ms"; fi
ctl --node "errs@127.0.0.1:$dead" --cookie right-cookie --timeout 3000 ping --json
expect_json "j['error'] == 'unreachable' and j['exit'] == 3" "unreachable --json"

# ---- a node that does not answer (stopped with SIGSTOP): exit 3 at the timeout
kill -STOP "$TPID"
start=$(date +%s%N)
ctl --node "$addr" --cookie right-cookie --timeout 1500 ping
ms=$((($(date +%s%N) - start) / 1000000))
kill -CONT "$TPID"
expect_rc 3 "a node that does not answer"
expect_err "did not finish the handshake within 1500 ms" "a node that does not answer: says so"
if [ "$ms" -ge 1400 ] && [ "$ms" -lt 10000 ]; then ok "no answer: gave up after ${ms} ms (--timeout 1500)"; else fail "no answer: gave up after ${ms} ms"; fi
ctl --node "$addr" --cookie right-cookie ping
expect_rc 0 "the node answers again after SIGCONT"

# ---- bad command lines: exit 2 with a reason
bad() {
    local what=$1
    shift
    ctl "$@"
    expect_rc 2 "usage: $what"
    expect_err "." "usage: $what: a reason on stderr"
}
bad "no command"
bad "unknown flag" --node "$addr" --bogus ping
bad "unknown command" --node "$addr" --cookie x frobnicate
bad "no --node" --cookie x ping
bad "malformed --node" --node nohost --cookie x ping
bad "port 0" --node "errs@127.0.0.1:0" --cookie x ping
bad "flag without its value" --node "$addr" --cookie
bad "missing argument" --node "$addr" --cookie x info
bad "extra argument" --node "$addr" --cookie x ping extra
bad "bad --timeout" --node "$addr" --cookie x --timeout soon ping
bad "bad --epmd-port" --node "$addr" --cookie x --epmd-port 70000 ping
bad "--sort on another command" --node "$addr" --cookie x --sort memory info counter
bad "unknown --sort key" --node "$addr" --cookie x --sort colour ps
bad "--cookie with --cookie-file" --node "$addr" --cookie x --cookie-file y ping
bad "--keyring with --cookie" --node "$addr" --cookie x --keyring y ping
bad "malformed pid" --node "$addr" --cookie right-cookie info '<0.x.1>'
ctl --json --node "$addr" --bogus ping
expect_json "j['error'] == 'usage' and j['exit'] == 2" "usage error under --json is JSON"

finish
