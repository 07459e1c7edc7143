#!/bin/bash
# tests/net/config.sh: `cfrd --check-config` accepts the lab's configuration
# and rejects broken ones with a "FILE:LINE:" message and a non-zero exit.
# Needs no namespace and sends no traffic (so it has no front-door capture).
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

[ -x "$CFRD" ] || skip "build/cfrd missing: run make"
dir=$(mktemp -d /tmp/cfr-config-test.XXXXXX)
trap 'rm -rf "$dir"' EXIT

lab_config >"$dir/lab.conf"
out=$("$CFRD" --check-config "$dir/lab.conf" 2>&1) || fail "lab config rejected: $out"
ok "lab config accepted: $out"

# bad NAME SED-EXPR: derive a broken config; cfrd must name the changed line.
bad() {
	local name=$1 expr=$2 line out rc=0
	sed "$expr" "$dir/lab.conf" >"$dir/$name.conf"
	cmp -s "$dir/lab.conf" "$dir/$name.conf" && fail "$name: test bug, sed changed nothing"
	line=$(diff "$dir/lab.conf" "$dir/$name.conf" | sed -n 's/^\([0-9][0-9]*\)[ac,].*/\1/p' | head -n 1)
	case $expr in */a\\*) line=$((line + 1)) ;; esac
	out=$("$CFRD" --check-config "$dir/$name.conf" 2>&1) || rc=$?
	[ "$rc" -ne 0 ] || fail "$name: accepted (exit 0): $out"
	echo "$out" | grep -qF "$dir/$name.conf:$line:" \
		|| fail "$name: exit $rc but no '$name.conf:$line:' in: $out"
	ok "$name rejected (exit $rc): ${out#"$dir"/}"
}
bad bad-pool-prefix 's#^ipv4 = 192.0.2.0/26#ipv4 = 192.0.2.0/33#'
bad bad-ports 's#^ports = 1024-65535#ports = 1024-70000#'
bad host-bits 's#^prefix = 100.64.0.0/10#prefix = 100.64.0.1/10#'
bad syntax 's#^\[limits\]#this line is not ini#'
bad unknown-key '/^log-level/a\
no-such-key = 1'
bad zero-workers '/^log-level/a\
workers = 0'
bad too-many-workers '/^log-level/a\
workers = 65'

# [xdp] ports: interface names checked per line, both sides required.
printf '\n[xdp]\noutside = fd0\ninside = sub1\n' >>"$dir/lab.conf"
out=$("$CFRD" --check-config "$dir/lab.conf" 2>&1) || fail "[xdp] config rejected: $out"
ok "[xdp] config accepted: $out"
bad xdp-bad-name 's#^inside = sub1#inside = sub/1#'
bad xdp-twice '/^inside = sub1/a\
outside = sub1'
sed '/^outside = fd0/d' "$dir/lab.conf" >"$dir/xdp-one-side.conf"
out=$("$CFRD" --check-config "$dir/xdp-one-side.conf" 2>&1) && fail "[xdp] without outside accepted: $out"
echo "$out" | grep -q 'xdp-one-side.conf:[0-9]*: \[xdp\] needs at least one inside and one outside' \
	|| fail "[xdp] without outside: unclear error: $out"
ok "[xdp] without an outside port rejected: ${out#"$dir"/}"

out=$("$CFRD" --check-config "$dir/missing.conf" 2>&1) && fail "missing file accepted: $out"
ok "missing file rejected: ${out#"$dir"/}"

# The key table (cfrd --help-config) and cfrd.conf(5) list the same keys, as
# SECTION.KEY ([line NAME] as line): a key cannot go undocumented, nor a
# documented key be missing from the parser.
man_keys() {
	awk '{ gsub(/\\-/, "-") }
	/^\.SH / {
		sec = ""
		if (match($0, /^\.SH "SECTION \[[a-z]+/)) sec = substr($0, 15, RLENGTH - 14)
		next
	}
	sec != "" && /^\.BI [a-z]/ {
		rest = substr($0, 5); split(rest, w, " "); print sec "." w[1]
		while (match(rest, /\\fP[a-z0-9-]+ = /)) {
			print sec "." substr(rest, RSTART + 3, RLENGTH - 6); rest = substr(rest, RSTART + RLENGTH)
		}
	}' "$1"
}
table_keys() {
	"$CFRD" --help-config | awk '/^\[/ { sec = substr($1, 2); sub(/\]$/, "", sec) }
		/^[a-z][a-z0-9-]* = / { print sec "." $1 }'
}
man5="$(dirname "$0")/../../docs/man/cfrd.conf.5"
man_keys "$man5" | sort >"$dir/man-keys"
table_keys | sort >"$dir/table-keys"
[ "$(wc -l <"$dir/table-keys")" -gt 40 ] || fail "cfrd --help-config listed $(wc -l <"$dir/table-keys") keys"
diff -u "$dir/man-keys" "$dir/table-keys" >"$dir/keys.diff" \
	|| fail "cfrd.conf(5) (-) and cfrd --help-config (+) list different keys: $(cat "$dir/keys.diff")"
ok "cfrd --help-config and cfrd.conf(5) list the same $(wc -l <"$dir/table-keys") keys"

# And where cfrd.conf(5) gives one key's default ("Default:" then the value),
# it is the table's, which tests/unit/test_config.c checks against the parser.
man_defaults() {
	awk '{ gsub(/\\-/, "-") }
	/^\.SH / {
		sec = ""
		if (match($0, /^\.SH "SECTION \[[a-z]+/)) sec = substr($0, 15, RLENGTH - 14)
		next
	}
	/^\.TP/ { key = ""; next }
	sec != "" && /^\.BI [a-z]/ {
		rest = substr($0, 5); split(rest, w, " ")
		key = rest ~ /\\fP[a-z0-9-]+ = / ? "" : w[1]
		next
	}
	key != "" && /^Default:$/ { want = 1; next }
	want { v = $0; sub(/^\.[BI]R? /, "", v); sub(/ *\.$/, "", v); print sec "." key " " v; want = 0; key = "" }' "$1"
}
man_defaults "$man5" >"$dir/man-defaults"
"$CFRD" --help-config | awk '/^\[/ { sec = substr($1, 2); sub(/\]$/, "", sec) }
	/^[a-z][a-z0-9-]* = .*\]$/ { d = $NF; gsub(/[][]/, "", d); print sec "." $1 " " d }' >"$dir/table-defaults"
[ "$(wc -l <"$dir/man-defaults")" -gt 30 ] || fail "found $(wc -l <"$dir/man-defaults") defaults in cfrd.conf(5)"
while read -r key want; do
	grep -qxF "$key $want" "$dir/table-defaults" \
		|| fail "cfrd.conf(5) says $key defaults to $want, cfrd --help-config: $(grep "^$key " "$dir/table-defaults")"
done <"$dir/man-defaults"
ok "cfrd.conf(5) and cfrd --help-config agree on $(wc -l <"$dir/man-defaults") defaults"
echo "PASS $TEST_NAME"
