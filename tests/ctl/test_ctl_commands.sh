#!/usr/bin/env bash
# test_ctl_commands.sh - every ember-ctl command against a node started here:
# ping, nodes, ps (with --sort), info (by name and by pid), send, spawn, kill,
# system and stop, as tables and as JSON; and that --cookie does not stay in
# the command line that ps shows.
source "$(dirname "$0")/ctl_lib.sh"

N=cmds@127.0.0.1
start_target "$N" cmd-cookie
node=(--node "$N:$TPORT" --cookie cmd-cookie)
counter=$(target_pid "$N" counter)
sink=$(target_pid "$N" sink)

# ---- ping
ctl "${node[@]}" ping
expect_rc 0 "ping"
expect_out "^pong $N " "ping names the node"
ctl "${node[@]}" ping --json
expect_rc 0 "ping --json"
expect_json "j['node'] == '$N' and j['pong'] is True" "ping --json: node and pong"

# ---- nodes: we are a hidden node of it
ctl "${node[@]}" nodes
expect_rc 0 "nodes"
expect_out "^NODE +TYPE$" "nodes: header"
expect_out "^ctl-[0-9]+@127\.0\.0\.1 +hidden \(this ember-ctl\)$" "nodes: ember-ctl is listed as hidden"
ctl "${node[@]}" nodes --json
expect_json "j['visible'] == [] and len(j['hidden']) == 1 and j['hidden'][0].startswith('ctl-')" \
    "nodes --json: visible and hidden lists"

# ---- ps
ctl "${node[@]}" ps
expect_rc 0 "ps"
expect_out "^PID +STATUS +MAILBOX +MEMORY +REDUCTIONS +NAME/ENTRY$" "ps: header"
expect_out "^$counter +[a-z]+ +[0-9]+ +[0-9]+ +[0-9]+ +counter$" "ps: the counter process, with its pid and name"
expect_out "^<0\.[0-9]+\.[0-9]+> +[a-z]+ +[0-9]+ +[0-9]+ +[0-9]+ +ember_ctl$" "ps: the ember_ctl service"
ctl "${node[@]}" ps --json
expect_rc 0 "ps --json"
expect_json "any(p['name'] == 'counter' and p['pid'] == '$counter' and p['status'] in ('waiting', 'running', 'runnable') for p in j) and all(set(p) >= {'pid', 'status', 'mailbox', 'memory', 'reductions', 'entry', 'name'} for p in j)" \
    "ps --json: every field, and counter with the pid the node printed"
for key in memory reductions mailbox; do
    ctl "${node[@]}" ps --json --sort "$key"
    expect_json "[p['$key'] for p in j] == sorted([p['$key'] for p in j], reverse=True) and len(j) >= 4" \
        "ps --sort $key: largest first"
done
ctl "${node[@]}" ps --sort memory
mem=$(awk 'NR > 1 { print $4 }' <<<"$OUT")
if [ "$mem" = "$(sort -rn <<<"$mem")" ]; then ok "ps --sort memory: the table is sorted"; else fail "ps --sort memory: table not sorted"; fi

# ---- info, by name and by pid (<0.I.S> and <I.S>)
ctl "${node[@]}" info counter
expect_rc 0 "info counter"
for field in pid name status entry mailbox memory reductions links monitored_by trap_exit scheduler; do
    expect_out "^$field +[^ ]" "info counter: field $field"
done
expect_out "^pid +$counter$" "info counter: the pid the node printed"
ctl "${node[@]}" info "$counter"
expect_rc 0 "info $counter"
expect_out "^name +counter$" "info by pid <0.I.S> finds counter"
short=${counter#<0.}
ctl "${node[@]}" info "<$short"
expect_out "^name +counter$" "info by pid <I.S> finds counter"
ctl "${node[@]}" info counter --json
expect_json "j['name'] == 'counter' and j['pid'] == '$counter' and isinstance(j['mailbox'], int) and j['trap_exit'] is False" \
    "info --json: types (string, int, boolean)"
ctl "${node[@]}" info '<0.99999.0>'
expect_rc 1 "info of a pid that does not exist"
expect_err "no process <0\.99999\.0> on $N" "info: says no such process"
ctl "${node[@]}" info nobody --json
expect_rc 1 "info of a name nobody holds"
expect_json "j['error'] == 'notfound' and j['exit'] == 1" "info --json: the node's error as JSON"
ctl "${node[@]}" info '<3.4.5>'
expect_rc 2 "info of a pid of another node is a usage error"

# ---- send
ctl "${node[@]}" send counter '[hello, 1]'
expect_rc 0 "send counter [hello, 1]"
expect_out "^sent to counter$" "send: says where"
if wait_log "$N" '^counter got \[hello, 1\]$'; then ok "send: counter received [hello, 1]"; else fail "send: counter never got [hello, 1]"; fi
ctl "${node[@]}" send counter "[ping, $sink, #{k => \"v\"}]"
expect_rc 0 "send with a pid inside the term"
if wait_log "$N" "^counter got \[ping, $sink, #\{k => \"v\"\}\]$"; then
    ok "send: a pid <0.I.S> in TERM arrives as the node's own pid"
else
    fail "send: counter did not get [ping, $sink, ...]"
fi
ctl "${node[@]}" send sink 'x'
expect_rc 0 "send sink x"
ctl "${node[@]}" info sink --json
expect_json "j['mailbox'] == 1" "send: the message waits in sink's mailbox"
ctl "${node[@]}" send "$counter" '{tuple, "as", array}' --json
expect_rc 0 "send to a pid"
expect_json "j == {'sent': True, 'to': '$counter'}" "send --json"
ctl "${node[@]}" send nobody x
expect_rc 1 "send to a name nobody holds"
ctl "${node[@]}" send counter '[unclosed'
expect_rc 2 "send of a malformed term"
expect_err "not a term" "send: says the term is malformed"

# ---- spawn and kill
ctl --cookie cmd-cookie spawn "$N:$TPORT" demo:echo '[x]'
expect_rc 0 "spawn demo:echo [x]"
expect_out '^<0\.[0-9]+\.[0-9]+>$' "spawn prints the new pid as <0.I.S>"
echo_pid=$OUT
if wait_log "$N" '^echo started with \[x\]$'; then ok "spawn: demo:echo runs with [x]"; else fail "spawn: demo:echo did not start"; fi
ctl "${node[@]}" info "$echo_pid" --json
expect_json "j['entry'] == 'demo:echo' and j['pid'] == '$echo_pid'" "spawn: the pid is the demo:echo process"
ctl "${node[@]}" spawn "$N" demo:echo --json
expect_rc 0 "spawn --json (NODE's port from --node)"
expect_json "j['node'] == '$N' and j['pid'].startswith('<0.')" "spawn --json: pid and node"
ctl "${node[@]}" spawn "$N" demo:nope
expect_rc 1 "spawn of a function nobody registered"
expect_err "no function is registered as demo:nope" "spawn: says which function is missing"
ctl "${node[@]}" kill "$echo_pid"
expect_rc 0 "kill $echo_pid"
expect_out "^killed $echo_pid$" "kill: says which"
ctl "${node[@]}" info "$echo_pid"
expect_rc 1 "kill: the process is gone"
ctl "${node[@]}" kill "$echo_pid"
expect_rc 1 "kill of a process that is gone"
ctl "${node[@]}" kill sink --json
expect_rc 0 "kill by name"
expect_json "j == {'killed': '$sink'}" "kill --json"
ctl "${node[@]}" kill ember_ctl
expect_rc 1 "kill ember_ctl is refused"

# ---- system
ctl "${node[@]}" system
expect_rc 0 "system"
expect_out "^node +$N$" "system: node name"
expect_out "^processes +[0-9]+$" "system: process count"
ctl "${node[@]}" system --json
expect_json "j['node'] == '$N' and j['processes'] >= 3 and 'uptime_ms' in j" "system --json"

# ---- --cookie is wiped from the command line: look while ember-ctl is still
# running. It must not end before we have looked, whatever the machine's load,
# so it dials a port of our own that accepts connections (the kernel completes
# them from the listen backlog) but never answers ZeroMQ's greeting: ember-ctl
# then keeps waiting until the handshake is given up (10.5 s in a run here)
# instead of ending at its probe a second in, as it does on a port where
# nothing listens. The listener binds port 0 itself and holds it, so no other
# process can take the port meanwhile.
mute_file="$work/mute.port"
python3 -c '
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
time.sleep(600)
' >"$mute_file" 2>"$work/mute.err" &
mute_pid=$!
children+=("$mute_pid")
mute=
for ((i = 0; i < CTL_WAIT * 10; i++)); do
    # Only a whole line (its newline written) is a whole port number.
    if [ "$(wc -l <"$mute_file" 2>/dev/null)" -ge 1 ] 2>/dev/null; then
        mute=$(head -n1 "$mute_file")
        break
    fi
    kill -0 "$mute_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$mute" ]; then
    fail "--cookie check: the silent listener did not report its port: $(cat "$work/mute.err")"
else
    "$CTL" --node "cmds@127.0.0.1:$mute" --cookie very-secret-value --timeout 60000 ping >/dev/null 2>&1 &
    cpid=$!
    children+=("$cpid")
    # ember-ctl wipes the value as it parses its arguments, just after it
    # starts; poll for that (for at least 10 s) instead of looking once after a
    # fixed sleep, which a slow start could outlast. A process that has ended
    # stays a zombie until waited for, with an empty command line: /proc's
    # state letter tells it apart from one still running.
    seen="(not read yet)"
    verdict=late
    end=$((SECONDS + 11))
    while [ "$SECONDS" -lt "$end" ]; do
        state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$cpid/stat" 2>/dev/null)
        if [ -z "$state" ] || [ "$state" = Z ] || [ "$state" = X ]; then
            verdict=ended
            break
        fi
        seen=$({ tr '\0' ' ' <"/proc/$cpid/cmdline"; } 2>/dev/null)
        if grep -q -- --cookie <<<"$seen" && ! grep -q very-secret-value <<<"$seen"; then
            verdict=wiped
            break
        fi
        sleep 0.1
    done
    case $verdict in
    wiped) ok "--cookie's value is wiped from /proc/PID/cmdline" ;;
    ended) fail "ember-ctl ended before its command line showed --cookie without its value; last seen: $seen" ;;
    *) fail "after 10 s, /proc/PID/cmdline of ember-ctl: expected --cookie without its value, saw: $seen" ;;
    esac
    { kill -KILL "$cpid"; wait "$cpid"; } 2>/dev/null
fi
# Braces: bash reports a killed job on the shell's own stderr.
{ kill -KILL "$mute_pid"; wait "$mute_pid"; } 2>/dev/null

# ---- stop: the node ends (status 0), and is unreachable afterwards
ctl "${node[@]}" stop
expect_rc 0 "stop"
expect_out "^$N stopped$" "stop: says so"
if wait_exit "$TPID"; then
    if [ "$WSTATUS" -eq 0 ]; then ok "stop: the node's program exited with 0"; else fail "stop: the node exited with $WSTATUS"; fi
else
    fail "stop: the node is still running"
fi
ctl "${node[@]}" ping --timeout 1500
expect_rc 3 "ping after stop: unreachable"

finish
