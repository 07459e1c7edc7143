#!/bin/bash
# tests/net/restart.sh: cfrd is replaced in place (lab/cfr-lab restart, which
# runs cfrd --takeover) twice without dropping a flow (issue 13). A slow HTTPS
# download (curl) and a UDP conversation, IPv4 and IPv6, run through both
# restarts: the downloads complete byte for byte from the alias they began
# on, every conversation keeps one alias with at most one datagram lost per
# restart. The second restart brings a new configuration (IPv4 pool A
# replaced by B, as an upgrade might): the running cfrd rereads it before
# it hands over, so the long flows drain on A and new ones leave from B.
# The epoch carried over the first restart and ended once at the second,
# and cfr-lookup, given the front door's view of flows from before the
# restarts (pool A) and of one from after (pool B), names the right
# subscriber for each, so the records journal and the epoch's seeds went
# along. A takeover
# with no cfrd running starts clean and says so.
#
#  cfr-sub1 (curl, 64 KB/s) --+                                  +-- nginx :443
#  cfr-sub2 (UDP, 5/s)     ---+-- cfr-gw [cfr0 <-> cfrd] -- fd0 -+-- udp-echo :7
#                                  ^ cfr-lab restart, twice          (cfr-fd)
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

SECS=24
RESTARTS=2
LOOKUP=$LAB_ROOT/build/cfr-lookup
[ -x "$LOOKUP" ] || skip "build/cfr-lookup missing: run make"
test_lab_up 2
grep -q '^\[accounting\]' "$LAB_RUN/cfrd.conf" || skip "lab config has no [accounting] (build/cfr-keygen missing?)"

ctl() { nsx gw "$CFRCTL" -s "$LAB_CTL" "$@"; }
stat_of() { ctl --json stats | json_get "$1"; }

# lookup TIME ALIAS PORT REMOTE PROTO: the subscribers cfr-lookup names.
lookup() {
	"$LOOKUP" -k "$LAB_RUN/acct.key" -d "$LAB_RUN/records" --time "$1" --alias "$2" \
		--port "$3" --remote "$4" --tolerance 2 --proto "$5" --json |
		"$PY" -c 'import json,sys; print(" ".join(sorted({m["subscriber"] for m in json.load(sys.stdin)["matches"]})))'
}

# --- long flows ------------------------------------------------------------------
for f in 4 6; do
	host=$SVC4
	[ "$f" = 4 ] || host="[$SVC6]"
	nsx sub1 curl -sS --max-time $((SECS + 30)) --limit-rate 64k --cacert "$LAB_RUN/fd.crt" \
		-o "$LAB_RUN/big$f.bin" "https://$host/big.bin" 9<&- &
	echo $! >"$LAB_RUN/curl$f.pid"
	udp_convo sub2 "${host//[\[\]]/}" "restart-udp$f" "$SECS" "$RESTARTS" >"$LAB_RUN/convo$f.out" &
	echo $! >"$LAB_RUN/convo$f.pid"
done
declare -A TCP UDP
for f in 4 6; do
	TCP[$f]=$(tcp_alias "$f" 443) || fail "no IPv$f download seen at the front door"
	UDP[$f]=$(udp_alias "restart-udp$f") || fail "no IPv$f datagram seen at the front door"
done
BEFORE=$(date +%s.%N)
epoch=$(stat_of privacy.epoch)
ok "downloads from ${TCP[4]} and ${TCP[6]}, conversations from ${UDP[4]} and ${UDP[6]}, epoch $epoch"

# --- restarts under the flows -----------------------------------------------------
# The second restart comes with an upgrade's new configuration: IPv4 pool A
# replaced by B. The new cfrd has the running one reread the file first, so
# the ended epoch's records stay under pool A's configuration; A drains.
# With the AF_XDP fast path a pool change takes a clean restart (cfrd(8),
# RELOADING: its prefix maps are filled at start): both restarts keep it.
POOL4_B=192.0.2.64/26
CFG=$LAB_RUN/cfrd.conf
NEW_POOL=2
[ "${CFR_LAB_XDP:-0}" = 0 ] || NEW_POOL=none
nsx fd ip route add "$POOL4_B" via 198.51.100.1
nsx gw ip route add "$POOL4_B" dev cfr0 src 198.51.100.1
chgrp cfrd "$CFG" && chmod 640 "$CFG"
for i in $(seq "$RESTARTS"); do
	sleep 4
	if [ "$i" = "$NEW_POOL" ]; then
		sed -i "s|^ipv4 = $POOL4\$|ipv4 = $POOL4_B|" "$CFG"
		out=$(nsx gw "$CFRD" --install-guard -c "$CFG" 2>&1) || fail "cfrd --install-guard failed: $out"
	fi
	old=$(cat "$LAB_RUN/cfrd.pid")
	out=$("$LAB_DIR/cfr-lab" restart 2>&1 9<&-) || fail "restart $i failed: $out"
	new=$(cat "$LAB_RUN/cfrd.pid")
	[ "$new" != "$old" ] && ! alive "$old" || fail "restart $i: cfrd $old still runs, or was not replaced"
	flows=$(stat_of flows.active) || fail "restart $i: the new cfrd does not answer"
	[ "$flows" -ge 4 ] || fail "restart $i: the new cfrd has $flows flows, expected the 4 long ones"
	ok "restart $i: cfrd $old -> $new, $flows flows carried ($(echo "$out" | grep -o 'took the engine.*' || true))"
	# The in-kernel fast path's table went along: the downloads stay in it
	# (the conversations too, a mapping's peers whose remote port is the
	# entries' own), every entry one the new engine knows.
	if [ "${CFR_LAB_FASTPATH:-yes}" = yes ] && [ "${CFR_LAB_XDP:-0}" = 0 ]; then
		took=$(grep 'took over the running table' "$LAB_RUN/cfrd.log" | tail -n 1)
		n=$(echo "$took" | sed -n 's/.*running table: \([0-9]*\) flows.*/\1/p')
		[ "${n:-0}" -ge 2 ] || fail "restart $i: the fast path's table did not go along: ${took:-no such line}"
		case $took in *removed*) fail "restart $i: the new cfrd found entries it does not know: $took" ;; esac
		ok "restart $i: ${took#*: }"
	fi
	# The first keeps the epoch; the second's pool change ends it once, in the old cfrd's reload.
	[ "$i" = "$NEW_POOL" ] && epoch=$((epoch + 1))
	[ "$(stat_of privacy.epoch)" = "$epoch" ] || fail "after restart $i the epoch is $(stat_of privacy.epoch), expected $epoch"
	if [ "$i" = "$NEW_POOL" ]; then
		echo "$out" | grep -q 'reread its configuration first: {"reloaded"' ||
			fail "the pool change did not go through the running cfrd's reload: $out"
	fi
done

# --- the long flows lived through it all ------------------------------------------
for f in 4 6; do
	long_flows_check "$f" "restart-udp$f" "${TCP[$f]}" "${UDP[$f]}"
done

# --- new flows, and who was behind them -----------------------------------------
AFTER=$(date +%s.%N)
nsx sub2 curl -sS --max-time 5 --cacert "$LAB_RUN/fd.crt" -o /dev/null "https://$SVC4/" ||
	fail "a new IPv4 connection after the restarts failed"
after=$(awk '$4 == "/" {print $1, $2}' "$LAB_RUN/nginx-access.log" | tail -n 1)
[ -n "$after" ] || fail "the front door did not log the new connection"
if [ "$NEW_POOL" != none ]; then
	in_net "${after% *}" "$POOL4_B" || fail "a new connection after the pool change left from ${after% *}, not pool B"
fi
ctl epoch rotate >/dev/null || fail "cfrctl epoch rotate failed"
check() {
	local t=$1 alias=$2 port=$3 remote=$4 proto=$5 want=$6 who
	for _ in $(seq 20); do
		who=$(lookup "$t" "$alias" "$port" "$remote" "$proto" 2>/dev/null) && [ -n "$who" ] && break
		sleep 0.2
	done
	[ "$who" = "$want" ] || fail "complaint $alias:$port ($proto) at $t: expected $want, cfr-lookup said '$who'"
	ok "complaint $alias:$port ($proto) -> $who"
}
# shellcheck disable=SC2086 # "ADDR PORT" on purpose
{
	check "$BEFORE" ${TCP[4]} "$SVC4" tcp "$(sub_addr4 1)"
	check "$BEFORE" ${TCP[6]} "$SVC6" tcp "2001:db8:100:1::/64"
	check "$BEFORE" ${UDP[4]} "$SVC4" udp "$(sub_addr4 2)"
	check "$AFTER" $after "$SVC4" tcp "$(sub_addr4 2)"
}

# --- no cfrd to take over from: a clean start that says so -----------------------
ctl stats >/dev/null
kill_cfrd() { stop_pid TERM "$(cat "$LAB_RUN/cfrd.pid")" 30; }
kill_cfrd
if out=$("$LAB_DIR/cfr-lab" restart 2>&1 9<&-); then
	fail "restart with no cfrd running succeeded: $out"
fi
ip netns exec "$LAB_NS-gw" "$CFRD" -c "$LAB_RUN/cfrd.conf" --takeover >"$LAB_RUN/clean.log" 2>&1 9<&- &
echo $! >"$LAB_RUN/cfrd.pid"
for _ in $(seq 50); do
	grep -q 'running:' "$LAB_RUN/clean.log" && break
	sleep 0.1
done
grep -q 'takeover: no running cfrd at .*starting clean' "$LAB_RUN/clean.log" ||
	fail "a takeover with nothing to take does not say it starts clean: $(head -n 3 "$LAB_RUN/clean.log")"
udp_roundtrip sub1 "$SVC4" 32 2 fresh >/dev/null || fail "the clean cfrd does not forward"
ok "takeover with no cfrd running: started clean, and said so"

# Built with sanitizers (tests/run's ASan pass), each cfrd that stopped after
# handing over, or took over, would have reported here.
if grep -E 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$LAB_RUN/cfrd.log" "$LAB_RUN/clean.log"; then
	fail "a sanitizer report in cfrd's log"
fi

test_leak_check
echo "PASS $TEST_NAME"
