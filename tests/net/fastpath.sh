#!/bin/bash
# tests/net/fastpath.sh: the TC fast path (on by default) carries
# established flows: a 2 MiB HTTPS download, a UDP conversation and a ping
# per family move the fast path's counters while cfrd's TUN devices see only a
# handful of packets (the handshake, a flow's first eight, the FIN), and a
# short exchange stays with cfrd; every counter of the front
# door's view stays in alias form (the leak check). UDP outside QUIC's port
# (the lab's echo on port 7) has an endpoint-independent mapping: its
# conversation with one remote is carried too. A UDP flow the fast path
# carries, per-flow or a mapping's, outlives its 4 s timeout while it talks,
# keeps one alias, and leaves the fast path's table once it goes quiet for
# longer than that.
# The scrubbers' results on fast-path packets (TTL, TCP timestamps, IPv4
# identification, flow label) are checked by the privacy-* tests, which run
# with the fast path on.
#
#  cfr-sub1 --veth-- cfr-gw [TC: flows cfrd installed | cfr0 <-> cfrd] --veth-- cfr-fd
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

[ "${CFR_LAB_FASTPATH:-yes}" = yes ] || skip "the fast path is off (CFR_LAB_FASTPATH=no)"
[ "${CFR_LAB_XDP:-0}" = 0 ] || skip "the AF_XDP path takes the packets first (CFR_LAB_XDP=1)"
CFR_LAB_UDP_TIMEOUT=4 test_lab_up 1
# QUIC's port: UDP there keeps per-flow aliases (other UDP, as to the lab's
# echo on port 7, has endpoint-independent mappings).
ip netns exec "$LAB_NS-fd" "$PY" "$LAB_DIR/udp-echo" 443 "$SVC4" "$SVC6" >"$LAB_RUN/udp443.log" 2>&1 9<&- &
echo $! >"$LAB_RUN/udp443.pid"
for _ in $(seq 50); do
	grep -q listening "$LAB_RUN/udp443.log" && break
	sleep 0.1
done
grep -q 'fast path on' "$LAB_RUN/cfrd.log" || fail "cfrd did not turn the fast path on: $(grep -i 'fast path' "$LAB_RUN/cfrd.log")"
ok "cfrd: $(grep -o 'fast path on.*' "$LAB_RUN/cfrd.log")"

# counter KEY: one of cfrd's counters, now.
counter() { cfrctl_json | json_get "$1"; }

# tun_reads: packets cfrd's workers read from its TUN devices so far.
tun_reads() { cfrctl_json | "$PY" -c 'import json, sys; print(sum(json.load(sys.stdin)["io"]["packets_by_worker"]))'; }

for fam in 4 6; do
	host=$SVC4
	[ "$fam" = 4 ] || host="[$SVC6]"
	tun0=$(tun_reads)
	out0=$(counter io.fastpath.packets.out)
	in0=$(counter io.fastpath.packets.in)
	size=$(nsx sub1 curl -sS -k --max-time 20 -o /dev/null -w '%{size_download}' "https://$host/big.bin") ||
		fail "IPv$fam download failed"
	[ "$size" = 2097153 ] || fail "IPv$fam download: $size bytes, want 2097153"
	tun=$(($(tun_reads) - tun0))
	out=$(($(counter io.fastpath.packets.out) - out0))
	in=$(($(counter io.fastpath.packets.in) - in0))
	# At least one packet in, one out per 64 KiB of GSO super-packet; TUN: the handshake and the close.
	[ "$in" -ge 32 ] && [ "$out" -ge 16 ] || fail "IPv$fam download: the fast path carried $out out, $in in"
	[ "$tun" -le 20 ] || fail "IPv$fam download: cfrd read $tun packets from TUN, want the handshake and close only"
	ok "IPv$fam HTTPS, 2 MiB: fast path $out out and $in in, TUN $tun"

	tun0=$(tun_reads)
	out0=$(counter io.fastpath.packets.out)
	out=$(udp_convo sub1 "${host//[\[\]]/}" "fp$fam" 4 0 443) || fail "IPv$fam UDP conversation: $out"
	tun=$(($(tun_reads) - tun0))
	carried=$(($(counter io.fastpath.packets.out) - out0))
	# cfrd hands a flow to the kernel after its eighth packet (fastpath.c, CARRY_AFTER).
	[ "$carried" -ge 10 ] && [ "$tun" -le 9 ] || fail "IPv$fam UDP: fast path carried $carried, TUN read $tun"
	ok "IPv$fam UDP conversation ($out): fast path $carried out, TUN $tun"

	# The same to port 7: a mapping's peer for this remote, carried alike.
	tun0=$(tun_reads)
	out0=$(counter io.fastpath.packets.out)
	out=$(udp_convo sub1 "${host//[\[\]]/}" "map$fam" 4 0) || fail "IPv$fam UDP conversation to port 7: $out"
	tun=$(($(tun_reads) - tun0))
	carried=$(($(counter io.fastpath.packets.out) - out0))
	[ "$carried" -ge 10 ] && [ "$tun" -le 9 ] ||
		fail "IPv$fam UDP to port 7 (a mapping's peer): fast path carried $carried, TUN read $tun"
	ok "IPv$fam UDP conversation to port 7, endpoint-independent mapping ($out): fast path $carried out, TUN $tun"

	tun0=$(tun_reads)
	out0=$(counter io.fastpath.packets.out)
	nsx sub1 ping "-$fam" -n -q -c 30 -i 0.05 -W 1 "${host//[\[\]]/}" >/dev/null || fail "IPv$fam ping failed"
	tun=$(($(tun_reads) - tun0))
	carried=$(($(counter io.fastpath.packets.out) - out0))
	[ "$carried" -ge 20 ] && [ "$tun" -le 9 ] || fail "IPv$fam ping: fast path carried $carried, TUN read $tun"
	ok "IPv$fam ping, 30 echoes: fast path $carried out, TUN $tun"

	# A short exchange stays with cfrd: four datagrams on a fresh flow.
	out0=$(counter io.fastpath.packets.out)
	out=$(udp_convo sub1 "${host//[\[\]]/}" "short$fam" 0.7 0 443) || fail "IPv$fam short UDP exchange: $out"
	[ "$(counter io.fastpath.packets.out)" = "$out0" ] ||
		fail "IPv$fam: a four-datagram exchange went into the fast path"
	ok "IPv$fam: a short exchange ($out) stays with cfrd"
done

# Expiry: 8 s of talk on one flow with a 4 s UDP timeout, then silence; a
# mapping's peer (port 7) at the same time. The mapping must outlive its
# carried peer: its alias:port stays the conversation's.
flows0=$(counter io.fastpath.flows)
[ "$flows0" -ge 1 ] || fail "the fast path holds no flow after the conversations"
udp_convo sub1 "$SVC4" longmap 8 0 >"$LAB_RUN/longmap.out" 2>&1 &
mapped=$!
out=$(udp_convo sub1 "$SVC4" long 8 0 443) || fail "the long UDP conversation lost echoes: $out"
wait "$mapped" || fail "the long conversation to port 7 lost echoes: $(cat "$LAB_RUN/longmap.out")"
n=$(awk '$1 == "from" && index($5, "long.") == 1 {print $2, $3}' "$LAB_RUN/udp443.log" | sort -u | wc -l)
[ "$n" = 1 ] || fail "a UDP flow the fast path carried for twice its timeout left from $n aliases"
n=$(awk '$1 == "from" && index($5, "longmap.") == 1 {print $2, $3}' "$LAB_RUN/udp-echo.log" | sort -u | wc -l)
[ "$n" = 1 ] || fail "a mapping's peer carried for twice its timeout left from $n aliases"
ok "UDP flow and mapping peer carried for 8 s (timeout 4 s): $out and $(cat "$LAB_RUN/longmap.out"), one alias each"
# The engine expires the quiet UDP flows on time, and the fast path's table
# follows: what stays there are echo flows, whose timeout (60 s) is longer
# than the test.
live() { cfrctl_json | "$PY" -c 'import json, sys; f = json.load(sys.stdin)["flows"]; print(sum(f[a][sys.argv[1]] for a in ("ipv4", "ipv6")))' "$1"; }
for _ in $(seq 100); do
	[ "$(live udp)" = 0 ] && break
	sleep 0.1
done
[ "$(live udp)" = 0 ] || fail "UDP flows still live 10 s after they went quiet (timeout 4 s)"
left=$(counter io.fastpath.flows)
[ "$left" -le "$(live icmp)" ] || fail "the fast path holds $left flows, the engine only $(live icmp) echo flows"
ok "quiet UDP flows left the fast path: $flows0 -> $left (the echo flows)"

# A reload's new TTL cap reaches the program: packets it carries leave with
# the new cap less the second hop, as on the TUN path.
chgrp cfrd "$LAB_RUN/cfrd.conf" && chmod 640 "$LAB_RUN/cfrd.conf"
printf '\n[scrub]\nttl-cap = 40\n' >>"$LAB_RUN/cfrd.conf"
out=$(nsx gw "$CFRCTL" -s "$LAB_CTL" reload) || fail "reload with ttl-cap = 40 failed: $out"
capture_start ttl40 || fail "cannot capture on cfr-fd"
out0=$(counter io.fastpath.packets.out)
out=$(udp_convo sub1 "$SVC4" ttl 4 0 443) || fail "UDP conversation after the reload: $out"
capture_stop ttl40
carried=$(($(counter io.fastpath.packets.out) - out0))
ttls=$(pcap_tool ttls "$LAB_RUN/ttl40.pcap" | awk '$2 == 17 && $4 == "'"$SVC4"'" {print $5}' | sort | uniq -c | tr -s ' ')
[ "$carried" -ge 10 ] && [ "$(echo "$ttls" | wc -l)" = 1 ] && [ "${ttls##* }" = 39 ] ||
	fail "after ttl-cap = 40 the fast path carried $carried, TTLs at the front door: $ttls"
ok "reload to ttl-cap = 40: $carried carried, every datagram at the front door with TTL 39 ($ttls)"

stop_pid TERM "$(cat "$LAB_RUN/udp443.pid")" 20
test_leak_check
echo "PASS $TEST_NAME"
