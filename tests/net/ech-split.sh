#!/bin/bash
# tests/net/ech-split.sh: the visibility split with real ECH (NSS peers,
# lab/ech/) through cfrd, IPv4 and IPv6, four subscribers. Each subscriber
# asks for its own inner name secret-site-I.example with ECH; then, as the
# control, the same connections go out with the name as plain SNI.
#
#  cfr-subI ech-client --veth-- cfr-gw [subI -> cfr0 -> cfrd -> fd0] --veth-- cfr-fd
#   100.64.I.2          ^capture acc-I    ^capture tun      ^capture up     ^capture fd
#   2001:db8:100:I::2   (and sub1's own side: capture sub1)                  ech-server :8443
#
# Checks, with ECH:
#  - every client reports ech=accepted for its inner name (HTTP 200);
#  - the front door's ECH log has one line per connection, in order: the
#    peer is an alias of the right family's pool, the outer name is the
#    public name, the inner name is that subscriber's;
#  - each logged alias:port is a SYN in the gateway's upstream capture;
#  - no inner name in the raw bytes of any capture (access side, sub side,
#    cfrd's TUN, upstream, front door), nor in cfrd's log, its sealed
#    records (after a forced epoch rotation), or cfrctl's output; each capture is non-empty and holds the public name
#    (so the ClientHello was in it), but for cfrd's TUN with the in-kernel
#    fast path on, where only the handshake passes;
# and, without ECH (control): the same captures on the gateway do hold each
# name, so the search above would have found it. The front door never sees a
# subscriber address (lib.sh's capture check).
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"
# shellcheck source=lab/ech.sh
. "$LAB_DIR/ech.sh"

N=4
ech_test_up "$N"

caps=(sub1 tun up fd)
for i in $(seq "$N"); do
	ech_capture_start "acc-$i" gw "sub$i" || fail "capture on cfr-gw sub$i"
	caps+=("acc-$i")
done
ech_capture_start sub1 sub1 gw0 || fail "capture on cfr-sub1"
ech_capture_start tun gw cfr0 || fail "capture on cfr-gw cfr0"
ech_capture_start up gw "$GW_UP_IF" || fail "capture on cfr-gw $GW_UP_IF"
ech_capture_start fd fd "$FD_IF" || fail "capture on cfr-fd $FD_IF"

# 1. ECH, one connection per subscriber and family, one after another.
for i in $(seq "$N"); do
	for fam in 4 6; do
		name=$(ech_inner "$i")
		out=$(ech_client "$i" "$fam" ech) || fail "sub$i IPv$fam ECH: ${out:-no output} (see $ECH_DIR/client.err)"
		has "$out" "ech=accepted inner_sni=$name outer_sni=$ECH_PUBLIC status=200 result=ok" ||
			fail "sub$i IPv$fam: client says: $out"
	done
done
ech_capture_stop "${caps[@]}"
ok "$((N * 2)) ECH connections accepted through cfrd (clients' view)"

# The front door's log, line k <-> client k.
[ "$(wc -l <"$ECH_LOG")" = $((N * 2)) ] || fail "front door logged $(wc -l <"$ECH_LOG") connections, expected $((N * 2))"
pcap_tool flows "$ECH_DIR/up.pcap" >"$ECH_DIR/up.flows"
k=0
for i in $(seq "$N"); do
	for fam in 4 6; do
		k=$((k + 1))
		line=$(sed -n "${k}p" "$ECH_LOG")
		peer=$(ech_field peer "$line")
		port=$(ech_field port "$line")
		pool=$POOL4
		[ "$fam" = 4 ] || pool=$POOL6
		in_net "$peer" "$pool" || fail "sub$i IPv$fam: front door saw $peer, not an alias of $pool: $line"
		has "$line" "outer_sni=$ECH_PUBLIC inner_sni=$(ech_inner "$i") ech=accepted result=ok" ||
			fail "sub$i IPv$fam: front door logged: $line"
		awk -v a="$peer" -v p="$port" '$3 == a && $4 == p && $7 ~ /S/ {f = 1} END {exit !f}' \
			"$ECH_DIR/up.flows" || fail "alias $peer port $port not in the upstream capture"
		say "sub$i IPv$fam -> front door saw $peer port $port, decrypted $(ech_inner "$i")"
	done
done
ok "front door's ECH log: only pool aliases, each with the right inner name, each seen upstream"

# No inner name anywhere on the gateway's two sides or the front door's wire.
for c in "${caps[@]}"; do
	obs=$(ech_observe "$ECH_DIR/$c.pcap")
	case $obs in packets=0\ *) fail "capture $c is empty" ;; esac
	# With the in-kernel fast path (the default) cfrd's TUN sees a
	# connection's handshake only; the ClientHello passes in the kernel.
	if [ "$c" != tun ] || [ "${CFR_LAB_FASTPATH:-yes}" = no ] || [ "${CFR_LAB_XDP:-0}" != 0 ]; then
		[ "$(ech_count "$ECH_PUBLIC" "$ECH_DIR/$c.pcap")" -ge 1 ] ||
			fail "capture $c lacks the public name $ECH_PUBLIC: it did not hold the ClientHello"
	fi
	for i in $(seq "$N"); do
		cnt=$(ech_count "$(ech_inner "$i")" "$ECH_DIR/$c.pcap")
		[ "$cnt" = 0 ] || fail "capture $c holds $(ech_inner "$i") ${cnt}x"
	done
	say "capture $c: $obs, no inner name"
done
for c in acc-1 sub1; do
	case $(ech_observe "$ECH_DIR/$c.pcap") in
	*"subscriber=yes frontdoor=yes"*) ;;
	*) fail "access capture $c does not show subscriber and front door addresses" ;;
	esac
done
case $(ech_observe "$ECH_DIR/up.pcap") in
*"subscriber=no frontdoor=yes alias=yes") ;;
*) fail "upstream capture: $(ech_observe "$ECH_DIR/up.pcap")" ;;
esac
ok "no inner name in $((${#caps[@]})) captures (access: subscriber + front door seen; upstream: aliases only)"

# Nothing cfrd writes or says names a site. A forced epoch rotation seals
# the records of the epoch that held the ECH flows, so they are searched too.
nsx gw "$CFRCTL" -s "$LAB_CTL" epoch rotate >/dev/null || fail "cfrctl epoch rotate failed"
if [ -d "$LAB_RUN/records" ]; then
	for _ in $(seq 30); do
		[ -z "$(find "$LAB_RUN/records" -type f -print -quit)" ] || break
		sleep 0.1
	done
fi
{
	nsx gw "$CFRCTL" -s "$LAB_CTL" stats
	nsx gw "$CFRCTL" -s "$LAB_CTL" --json stats
} >"$ECH_DIR/cfrctl.txt" 2>&1 || fail "cfrctl stats failed"
files=("$LAB_RUN/cfrd.log" "$ECH_DIR/cfrctl.txt")
if [ -d "$LAB_RUN/records" ]; then
	while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$LAB_RUN/records" -type f -print0)
fi
for i in $(seq "$N"); do
	cnt=$(ech_count "$(ech_inner "$i")" "${files[@]}")
	[ "$cnt" = 0 ] || fail "cfrd's output holds $(ech_inner "$i") ${cnt}x"
done
ok "no inner name in cfrd.log, cfrctl output or $((${#files[@]} - 2)) record files"

# 2. Control: the same capture points, the names as plain SNI.
ctl=(ctl-up)
for i in $(seq "$N"); do
	ech_capture_start "ctl-acc-$i" gw "sub$i" || fail "capture on cfr-gw sub$i"
	ctl+=("ctl-acc-$i")
done
ech_capture_start ctl-up gw "$GW_UP_IF" || fail "capture on cfr-gw $GW_UP_IF"
for i in $(seq "$N"); do
	for fam in 4 6; do
		out=$(ech_client "$i" "$fam" plain) || fail "sub$i IPv$fam plain: ${out:-no output}"
		has "$out" "ech=none inner_sni=- outer_sni=$(ech_inner "$i") status=200 result=ok" ||
			fail "sub$i IPv$fam plain: client says: $out"
	done
done
ech_capture_stop "${ctl[@]}"
for i in $(seq "$N"); do
	name=$(ech_inner "$i")
	case $(ech_observe "$ECH_DIR/ctl-acc-$i.pcap") in packets=0\ *) fail "capture ctl-acc-$i is empty" ;; esac
	cnt=$(grep -ac -- "$name" "$ECH_DIR/ctl-acc-$i.pcap" || true)
	[ "$cnt" -ge 1 ] || fail "control: $name NOT found in the access capture of sub$i: the search is blind"
	cnt=$(grep -ac -- "$name" "$ECH_DIR/ctl-up.pcap" || true)
	[ "$cnt" -ge 1 ] || fail "control: $name NOT found in the upstream capture"
done
n_plain=$(grep -c "ech=none result=ok" "$ECH_LOG" || true)
[ "$n_plain" = $((N * 2)) ] || fail "front door logged $n_plain plain connections, expected $((N * 2))"
ok "control: with plain SNI every name shows up in the same gateway captures"

while read -r line; do
	in_pool "$(ech_field peer "$line")" || fail "front door's ECH log has a non-pool peer: $line"
done <"$ECH_LOG"
ech_down
test_leak_check
echo "PASS $TEST_NAME"
