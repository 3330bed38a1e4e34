# ctl_lib.sh - what ember-ctl's test scripts share (sourced, not run).
#
# The scripts run the built ember-ctl against nodes they start themselves
# (ctl_target, a small program linked with libember) and against an
# ember-epmd on a free port. ctest passes the programs' paths in the
# environment: CTL, TARGET, EPMD, KEYGEN, and DOC (docs/ember-ctl.md).
#
# Every check prints "ok ..." or "FAIL ...", and the script exits 1 if any
# failed. Whatever a script started (nodes, a port mapper, a temporary
# directory) is cleaned up on exit, failed or not.

set -u

: "${CTL:?CTL must name the ember-ctl binary}"
failures=0
checks=0
children=()
epmds=()
work=$(mktemp -d "${TMPDIR:-/tmp}/ember-ctl-test.XXXXXX")

# The test machine may be loaded: generous waits, but never an endless one.
CTL_WAIT=${CTL_WAIT:-30}

# ThreadSanitizer builds: libzmq and libsodium are not instrumented (the
# suite's tests/tsan.supp says why); harmless elsewhere.
export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}suppressions=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tsan.supp"

cleanup() {
    local pid port
    for pid in "${children[@]}"; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for port in "${epmds[@]}"; do
        "$EPMD" -port "$port" -kill >/dev/null 2>&1
    done
    rm -rf "$work"
}
trap cleanup EXIT

ok() {
    checks=$((checks + 1))
    echo "ok   $*"
}

fail() {
    checks=$((checks + 1))
    failures=$((failures + 1))
    echo "FAIL $*"
    [ -n "${OUT+x}" ] && sed 's/^/     stdout: /' <<<"$OUT" | head -20
    [ -n "${ERR+x}" ] && sed 's/^/     stderr: /' <<<"$ERR" | head -20
    return 0
}

finish() {
    # In sanitizer builds, the nodes' reports land in their stderr files.
    local f
    for f in "$work"/*.err; do
        [ -e "$f" ] || continue
        if grep -q "Sanitizer" "$f"; then
            fail "a sanitizer reported in $(basename "$f"):"
            sed 's/^/     /' "$f" | head -40
        fi
    done
    echo "$checks checks, $failures failed"
    [ "$failures" -eq 0 ]
    exit $?
}

# A TCP port nothing listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_target NAME SECRET [EPMD_PORT]: starts a node, waits for it to be
# ready, and sets TPID (its pid), TPORT (its port), TLOG (its output file).
start_target() {
    local name=$1 secret=$2 epmd=${3:-0}
    TLOG="$work/$name.out"
    "$TARGET" "$name" "$secret" "$epmd" >"$TLOG" 2>"$work/$name.err" &
    TPID=$!
    children+=("$TPID")
    local i
    for ((i = 0; i < CTL_WAIT * 10; i++)); do
        grep -q '^ready$' "$TLOG" 2>/dev/null && break
        if ! kill -0 "$TPID" 2>/dev/null; then
            echo "FAIL the target node $name did not start:"
            sed 's/^/     /' "$work/$name.err"
            exit 1
        fi
        sleep 0.1
    done
    if ! grep -q '^ready$' "$TLOG"; then
        echo "FAIL the target node $name was not ready after ${CTL_WAIT}s"
        exit 1
    fi
    TPORT=$(awk '$1 == "port" { print $2 }' "$TLOG")
}

# target_pid NAME PROCESS: the pid the node printed for a process of its own.
target_pid() {
    awk -v p="$2" '$1 == p { print $2 }' "$work/$1.out"
}

# wait_log NAME PATTERN: waits until the node NAME printed a line matching
# PATTERN (a grep -E expression); true if it did.
wait_log() {
    local i
    for ((i = 0; i < CTL_WAIT * 10; i++)); do
        grep -qE "$2" "$work/$1.out" && return 0
        sleep 0.1
    done
    return 1
}

# wait_exit PID: waits for a child to end; its status in WSTATUS, true if it
# ended in time.
wait_exit() {
    local i
    for ((i = 0; i < CTL_WAIT * 10; i++)); do
        if ! kill -0 "$1" 2>/dev/null; then
            wait "$1"
            WSTATUS=$?
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# start_epmd: an ember-epmd on a free port, in EPMD_PORT. Relaxed, so that
# -kill stops it at the end even with names still registered.
start_epmd() {
    local i
    for i in 1 2 3; do
        EPMD_PORT=$(free_port)
        if "$EPMD" -port "$EPMD_PORT" -relaxed_command_check -daemon 2>"$work/epmd.err"; then
            epmds+=("$EPMD_PORT")
            return 0
        fi
    done
    echo "FAIL cannot start ember-epmd:"
    cat "$work/epmd.err"
    exit 1
}

# ctl ARGS...: runs ember-ctl; stdout in OUT, stderr in ERR, exit status in RC.
ctl() {
    OUT=$(timeout "$CTL_WAIT" "$CTL" "$@" 2>"$work/ctl.err")
    RC=$?
    ERR=$(cat "$work/ctl.err")
}

# expect_rc N WHAT: the last ctl ended with status N.
expect_rc() {
    if [ "$RC" -eq "$1" ]; then ok "$2 (exit $RC)"; else fail "$2: exit $RC, expected $1"; fi
}

# expect_out PATTERN WHAT / expect_err PATTERN WHAT: grep -E on the last output.
expect_out() {
    if grep -qE -- "$1" <<<"$OUT"; then ok "$2"; else fail "$2: stdout does not match /$1/"; fi
}

expect_err() {
    if grep -qE -- "$1" <<<"$ERR"; then ok "$2"; else fail "$2: stderr does not match /$1/"; fi
}

# expect_json PYTHON_EXPR WHAT: the last stdout parses as JSON (python3 -m
# json.tool), and the expression is true of it (as `j`).
expect_json() {
    if ! python3 -m json.tool <<<"$OUT" >/dev/null 2>&1; then
        fail "$2: stdout is not JSON"
        return
    fi
    if python3 -c "import json, sys; j = json.loads(sys.stdin.read()); sys.exit(0 if ($1) else 1)" <<<"$OUT"; then
        ok "$2"
    else
        fail "$2: JSON does not satisfy: $1"
    fi
}
