#!/usr/bin/env bash
# test_ctl_keyring.sh - ember-ctl in keyring mode (--keyring DIR): with a key
# the node lists, it works and takes its own name from DIR/peers; with a key
# the node does not list, or without the node's key, it is refused (exit 4).
source "$(dirname "$0")/ctl_lib.sh"

k=$work/keys
mkdir -p "$k"
keygen() {   # keygen DIR NODE: a key pair; prints the peers line
    "$KEYGEN" "$k/$1" "$2"
}
node_line=$(keygen node kr@127.0.0.1)
ctl_line=$(keygen ctl ops@127.0.0.1)
stranger_line=$(keygen stranger stranger@127.0.0.1)
if [ -z "$node_line" ] || [ -z "$ctl_line" ] || [ -z "$stranger_line" ]; then
    echo "FAIL ember-keygen did not make the keys"
    exit 1
fi
printf '%s\n%s\n' "$node_line" "$ctl_line" >"$k/node/peers"
printf '# this tool, and the node it talks to\n%s\n%s\n' "$ctl_line" "$node_line" >"$k/ctl/peers"
printf '%s\n%s\n' "$stranger_line" "$node_line" >"$k/stranger/peers"
mkdir -p "$k/blind" && cp "$k/ctl/key" "$k/ctl/key.pub" "$k/blind/" && printf '%s\n' "$ctl_line" >"$k/blind/peers"

N=kr@127.0.0.1
start_target "$N" "keyring:$k/node"

ctl --node "$N:$TPORT" --keyring "$k/ctl" ping
expect_rc 0 "keyring: ping with a key the node lists"
ctl --node "$N:$TPORT" --keyring "$k/ctl" nodes
expect_out "^ops@127\.0\.0\.1 +hidden \(this ember-ctl\)$" "keyring: our name is the one DIR/peers gives our key"
ctl --node "$N:$TPORT" --keyring "$k/ctl" --name ops@127.0.0.1 info counter --json
expect_json "j['name'] == 'counter'" "keyring: --name, and a command"

ctl --node "$N:$TPORT" --keyring "$k/stranger" ping
expect_rc 4 "keyring: a key the node does not list"
expect_err "the keys do not match" "keyring: refused, says so"
ctl --node "$N:$TPORT" --keyring "$k/blind" ping
expect_rc 4 "keyring: no key for the node in our peers file"
expect_err "lists no key for it" "keyring: no key for the node, says so"
ctl --node "$N:$TPORT" --keyring "$k/missing" ping
expect_rc 2 "keyring: a directory without keys"
rm "$k/stranger/key.pub"
ctl --node "$N:$TPORT" --keyring "$k/stranger" ping
expect_rc 2 "keyring: no key.pub and no --name"
expect_err "needs --name" "keyring: asks for --name"

finish
