#!/usr/bin/env bash
# test_ctl_help.sh - ember-ctl --help against docs/ember-ctl.md: every line of
# the help is in the manual, every flag and command it names is documented
# there (and accepted by the program), and every exit code it lists is in the
# manual's table.
source "$(dirname "$0")/ctl_lib.sh"
: "${DOC:?DOC must name docs/ember-ctl.md}"

ctl --help
expect_rc 0 "--help"
help=$OUT
[ -n "$help" ] && ok "--help prints something" || fail "--help printed nothing"
ctl -h
if [ "$OUT" = "$help" ]; then ok "-h prints the same help"; else fail "-h differs from --help"; fi

# Every line of the help, verbatim (it is quoted in the manual).
missing=0
while IFS= read -r line; do
    [ -z "$line" ] && continue
    if ! grep -qxF -- "$line" "$DOC"; then
        fail "help line not in $DOC: $line"
        missing=$((missing + 1))
    fi
done <<<"$help"
[ "$missing" -eq 0 ] && ok "every line of --help is in the manual"

# Every flag: a row of its own in the manual's flags table (its first cell
# names it, in backquotes), and accepted by the program.
flags=$(grep -oE -- '(^|[ [,|])(--[a-z][a-z-]*|-[hv])\b' <<<"$help" | grep -oE -- '--?[a-z][a-z-]*' | sort -u)
[ "$(wc -l <<<"$flags")" -ge 10 ] && ok "found $(wc -l <<<"$flags") flags in --help" || fail "too few flags found in --help: $flags"
for f in $flags; do
    if awk -F'|' -v f="\`$f" '/^\| `-/ && index($2, f " ") + index($2, f "`") > 0 { found = 1 } END { exit !found }' "$DOC"; then
        ok "flag $f is documented"
    else
        fail "flag $f has no row in $DOC's flags table"
    fi
    ctl "$f" 2>/dev/null
    if grep -q "unknown flag" <<<"$ERR"; then fail "flag $f is in --help but ember-ctl rejects it"; else ok "flag $f is accepted"; fi
done

# Every command: a section of its own (### `command ...`), and accepted.
commands=$(sed -n '/^Commands:/,/^$/p' <<<"$help" | grep -oE '^  [a-z][a-z-]*' | tr -d ' ')
[ "$(wc -l <<<"$commands")" -ge 10 ] && ok "found $(wc -l <<<"$commands") commands in --help" || fail "too few commands: $commands"
for c in $commands; do
    if grep -qE -- "^### \`$c( |\`)" "$DOC"; then ok "command $c is documented"; else fail "command $c has no section in $DOC"; fi
    ctl "$c"
    if grep -q "unknown command" <<<"$ERR"; then fail "command $c is in --help but ember-ctl rejects it"; else ok "command $c is accepted"; fi
done

# Every exit code: in the manual's table.
codes=$(sed -n '/^Exit status:/,$p' <<<"$help" | grep -oE '^  [0-9]+ ' | tr -d ' ')
[ "$(wc -l <<<"$codes")" -ge 5 ] && ok "found $(wc -l <<<"$codes") exit codes in --help" || fail "too few exit codes: $codes"
for code in $codes; do
    if grep -qE "^\| $code \|" "$DOC"; then ok "exit code $code is documented"; else fail "exit code $code is not in $DOC's table"; fi
done

finish
