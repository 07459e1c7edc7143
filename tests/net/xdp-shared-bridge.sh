#!/bin/bash
# tests/net/xdp-shared-bridge.sh: the AF_XDP fast path with two subscribers
# behind one shared L2 segment on one inside port (issue 12: the layout
# cfrd.conf(5) shows with "inside = eth1" and a switch behind it).
#
#  cfr-sub1 gw0 --s1-+
#                    cfr-br: br0 --up0---- sub1 [XDP inside] cfr-gw [cfrd] fd0 [XDP outside] ---- cfr-fd
#  cfr-sub2 gw0 --s2-+
#
#  sub1 100.64.1.2/24, 2001:db8:100:1::2/64; sub2 100.64.1.3/24, 2001:db8:100:2::2/64;
#  the gateway's sub1 100.64.1.1/24, 2001:db8:100:1::1/64 and 2001:db8:100:2::1/64.
#
# The lab comes up with one subscriber and the fast path; then sub1's end of
# its veth becomes the uplink of a bridge in cfr-br, and sub1 and sub2 each
# get a veth into that bridge. Both share the gateway's port sub1, and so
# the IPv4 subnet; each keeps a /64 of its own (the lab counts a /64 as one
# subscriber), both routed on that port.
#   1. Both subscribers' traffic works (HTTPS, UDP echo, ping, both
#      families) and takes the fast path (io.xdp counters), guard_drops 0.
#   2. While sub1 holds a UDP echo conversation and two rate-limited
#      downloads (IPv4, IPv6), sub2 sends 200 frames in 2 s with sub1's
#      source address on sub1's own flows (UDP and TCP, both families) from
#      its own MAC. On a shared segment nothing stops those from leaving
#      (cfrd(8): only an L2 binding does), but they must not move sub1's
#      replies: every echo and every byte reaches sub1, the replies to the
#      spoofed datagrams included, and a capture in cfr-sub2 holds no
#      packet addressed to sub1. The replies took the fast path, so the MAC
#      cfrd sent them to is the one that counts.
#   3. A foreign forward-hook rule (table ip foreign) stops a cfrd with
#      [xdp] at start (exit 1, one error line naming the chain) before it
#      attaches anything; with ignore-forward-rules = yes it starts, warns
#      and forwards.
# The bridge namespace is the test's own: it goes on exit, after the lab.
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

N_SPOOF=50   # rounds of 4 spoofed frames (UDP and TCP, IPv4 and IPv6), one every 10 ms
TALK_SECS=7  # sub1's UDP conversation, a datagram per family every 25 ms
RATE=300k    # per download: the 2 MiB object takes about 7 s, the spoofing overlaps it
SUB1_4=100.64.1.2
SUB1_6=2001:db8:100:1::2
SUB2_4=100.64.1.3
SUB2_6=2001:db8:100:2::2
GW2_6=2001:db8:100:2::1
BR_NS=$LAB_NS-br

[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
test_requires curl ethtool nft
"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"

# Skip, not fail, where the kernel cannot run cfrd's XDP program on a veth:
# attach the program cfrd embeds to a veth in a scratch namespace of our own.
xdp_probe() {
	local ns=cfr-xdpprobe$$ obj why rc=0
	obj=$(dirname "$CFRD")/src/xdp/cfr_xdp.bpf.o
	[ -f "$obj" ] || obj=$LAB_ROOT/build/src/xdp/cfr_xdp.bpf.o
	[ -f "$obj" ] || return 0 # nothing to probe with: cfrd says it at lab up
	ip netns add "$ns" || skip "cannot create a network namespace"
	ip -n "$ns" link add cfrp0 type veth peer name cfrp1 &&
		ip -n "$ns" link set cfrp0 up && ip -n "$ns" link set cfrp1 up &&
		ip -n "$ns" link set dev cfrp0 xdpdrv obj "$obj" sec xdp >"/tmp/cfr-xdpprobe.$$.log" 2>&1 || rc=$?
	ip netns del "$ns"
	if [ "$rc" != 0 ]; then
		why=$(grep -v '^$' "/tmp/cfr-xdpprobe.$$.log" | tail -n 1)
		rm -f "/tmp/cfr-xdpprobe.$$.log"
		skip "XDP cannot attach to a veth here: ${why:-ip link exit $rc}"
	fi
	rm -f "/tmp/cfr-xdpprobe.$$.log"
}
xdp_probe

test_lab_up 1 --xdp

# The lab's cleanup (cfrd.log on failure, lab down: cfr-sub2 too, a lab
# name), then the bridge namespace, whose uplink goes with cfr-gw.
# _test_cleanup takes the status from $? and exits: it runs in a subshell.
cleanup() {
	local rc=$?
	set +e
	(exit "$rc")
	(_test_cleanup)
	ip netns del "$BR_NS" 2>/dev/null
	exit "$rc"
}
trap cleanup EXIT
ip netns del "$BR_NS" 2>/dev/null || true # left by a run that was killed

nsx gw ip -d link show sub1 | grep -q 'prog/xdp' || fail "no XDP program on the gateway's sub1"
nsx gw ip -d link show "$GW_UP_IF" | grep -q 'prog/xdp' || fail "no XDP program on $GW_UP_IF"

# --- the shared segment -----------------------------------------------------
ip netns add "$BR_NS"
nsx br ip link set lo up
# A switch: no addresses, no IPv6 of its own (no ND or MLD from it), and
# no multicast snooping (no querier here: it would starve ND of its groups).
nsx br sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
nsx br ip link add br0 type bridge mcast_snooping 0
nsx br ip link set br0 up
nsx sub1 ip link set gw0 down
nsx sub1 ip link set gw0 name up0
nsx sub1 ip link set up0 netns "$BR_NS"
nsx br ip link set up0 master br0
nsx br ip link set up0 up
# cfr-sub2 as cfr-lab's ns_new makes a namespace: lo up, no DAD, no RA.
ip netns add "$LAB_NS-sub2"
nsx sub2 ip link set lo up
nsx sub2 sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
	net.ipv6.conf.default.accept_ra=0
for i in 1 2; do
	ip -n "$BR_NS" link add "s$i" type veth peer name gw0 netns "$LAB_NS-sub$i"
	nsx br ip link set "s$i" master br0
	nsx br ip link set "s$i" up
	# Complete checksums, as cfr-lab up --xdp sets: AF_XDP frames carry no
	# mark that one is partial (cfrd(8)).
	nsx "sub$i" ethtool -K gw0 tx off >/dev/null
done
nsx sub1 ip addr add "$SUB1_4/24" dev gw0
nsx sub1 ip addr add "$SUB1_6/64" dev gw0 nodad
nsx sub2 ip addr add "$SUB2_4/24" dev gw0
nsx sub2 ip addr add "$SUB2_6/64" dev gw0 nodad
nsx gw ip addr add "$GW2_6/64" dev sub1 nodad
for i in 1 2; do
	nsx "sub$i" ip link set gw0 up
	nsx "sub$i" ip route add default via 100.64.1.1
done
nsx sub1 ip -6 route add default via 2001:db8:100:1::1 dev gw0
nsx sub2 ip -6 route add default via "$GW2_6" dev gw0
# sub1 has a new MAC now: the gateway forgets the old one (up0's).
nsx gw ip -4 neigh flush dev sub1
nsx gw ip -6 neigh flush dev sub1
for i in 1 2; do
	for t in $(seq 20); do
		nsx "sub$i" ping -n -q -c 1 -W 1 "$SVC4" >/dev/null 2>&1 &&
			nsx "sub$i" ping -6 -n -q -c 1 -W 1 "$SVC6" >/dev/null 2>&1 && break
		[ "$t" -lt 20 ] || fail "sub$i cannot ping the front door through the bridge"
	done
done
ok "sub1 ($SUB1_4) and sub2 ($SUB2_4) share one segment on the gateway's XDP port sub1"

# --- 1. baseline --------------------------------------------------------------
xdp_get() { echo "$1" | json_get "io.xdp.$2"; }
for i in 1 2; do
	before=$(cfrctl_json)
	for addr in "$SVC4" "[$SVC6]"; do
		code=$(nsx "sub$i" curl -sk --max-time 5 -o /dev/null -w '%{http_code}' "https://$addr/") || true
		[ "$code" = 200 ] || fail "sub$i: HTTPS to $addr: $code"
	done
	udp_roundtrip "sub$i" "$SVC4" 1200 20 >/dev/null || fail "sub$i: UDP echo over IPv4"
	udp_roundtrip "sub$i" "$SVC6" 1200 20 >/dev/null || fail "sub$i: UDP echo over IPv6"
	nsx "sub$i" ping -n -q -c 5 -i 0.05 -W 2 "$SVC4" >/dev/null || fail "sub$i: ping $SVC4"
	nsx "sub$i" ping -6 -n -q -c 5 -i 0.05 -W 2 "$SVC6" >/dev/null || fail "sub$i: ping $SVC6"
	after=$(cfrctl_json)
	rx=$(($(xdp_get "$after" rx) - $(xdp_get "$before" rx)))
	tx=$(($(xdp_get "$after" tx) - $(xdp_get "$before" tx)))
	# 40 datagrams and 10 pings out, as many back, and two TLS handshakes.
	[ "$rx" -ge 80 ] || fail "sub$i: only $rx frames took the fast path"
	ok "sub$i: HTTPS, 20 UDP echoes, 5 pings per family; AF_XDP took $rx frames, sent $tx"
done
stats=$(cfrctl_json)
guard=$(xdp_get "$stats" guard_drops) ||
	fail "no io.xdp.guard_drops in cfrctl --json stats: $(echo "$stats" | "$PY" -c \
		'import json, sys; print(json.load(sys.stdin)["io"]["xdp"])')"
[ "$guard" = 0 ] || fail "io.xdp.guard_drops = $guard before any spoofing"
ok "io.xdp: rx $(xdp_get "$stats" rx), tx $(xdp_get "$stats" tx), via tun $(xdp_get "$stats" to_tun), guard_drops 0"

# --- 2. sub2 sends as sub1 ------------------------------------------------------
# shellcheck disable=SC2016
TALK_PY='
import select, socket, sys, time
me4, me6, svc4, svc6, secs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
socks = {}
for fam, af, me, svc, port in ((4, socket.AF_INET, me4, svc4, 40100), (6, socket.AF_INET6, me6, svc6, 40101)):
    s = socket.socket(af, socket.SOCK_DGRAM)
    s.bind((me, port))
    s.connect((svc, 7))
    s.setblocking(False)
    socks[s] = fam
sent = {4: 0, 6: 0}
own = {4: set(), 6: set()}
spoof = {4: 0, 6: 0}
start = time.monotonic()
end, nxt = start + secs, start
while time.monotonic() < end + 1.5:
    now = time.monotonic()
    if now < end and now >= nxt:
        for s, fam in socks.items():
            s.send(b"S1v%d-%d" % (fam, sent[fam]))
            sent[fam] += 1
        nxt += 0.025
    ready, _, _ = select.select(list(socks), [], [], 0.005)
    for s in ready:
        fam = socks[s]
        try:
            while True:
                data = s.recv(2048)
                if data.startswith(b"S1v%d-" % fam):
                    own[fam].add(int(data.split(b"-")[1]))
                elif data.startswith(b"SPOOF%d-" % fam):
                    spoof[fam] += 1
        except BlockingIOError:
            pass
print(sent[4], len(own[4]), spoof[4], sent[6], len(own[6]), spoof[6])
'
# shellcheck disable=SC2016
SPOOF_PY='
import random, sys
from scapy.all import Ether, IP, IPv6, UDP, TCP, Raw, sendp, conf
conf.verb = 0
gw_mac, my_mac, s4, s6, svc4, svc6, n = sys.argv[1:8]
e = Ether(src=my_mac, dst=gw_mac)
pkts = []
for i in range(int(n)):
    pkts += [e / IP(src=s4, dst=svc4) / UDP(sport=40100, dport=7) / Raw(b"SPOOF4-%d" % i),
             e / IPv6(src=s6, dst=svc6) / UDP(sport=40101, dport=7) / Raw(b"SPOOF6-%d" % i),
             # Bare ACKs out of window on the downloads: the server answers
             # sub1 with an ACK, the connection goes on.
             e / IP(src=s4, dst=svc4) / TCP(sport=40200, dport=443, flags="A",
                                            seq=random.getrandbits(32), ack=random.getrandbits(32)),
             e / IPv6(src=s6, dst=svc6) / TCP(sport=40201, dport=443, flags="A",
                                              seq=random.getrandbits(32), ack=random.getrandbits(32))]
sendp(pkts, iface="gw0", inter=0.01)
print(len(pkts))
'
capture_start "$TEST_NAME-sub1" sub1 gw0 || fail "cannot capture in cfr-sub1"
capture_start "$TEST_NAME-sub2" sub2 gw0 || fail "cannot capture in cfr-sub2"
before=$(cfrctl_json)
# download FAM ADDR PORT: sub1 fetches the 2 MiB object from local port PORT.
download() {
	nsx sub1 timeout 40 curl -sk --max-time 30 --limit-rate "$RATE" --local-port "$3" -o /dev/null \
		-w '%{http_code} %{size_download}' "https://$2/big.bin" >"$LAB_RUN/dl$1.out" 2>&1 9<&-
}
download 4 "$SVC4" 40200 &
dl4=$!
download 6 "[$SVC6]" 40201 &
dl6=$!
ip netns exec "$LAB_NS-sub1" timeout 20 "$PY" -c "$TALK_PY" "$SUB1_4" "$SUB1_6" "$SVC4" "$SVC6" "$TALK_SECS" \
	>"$LAB_RUN/talk.out" 2>&1 9<&- &
talk=$!
sleep 1
gw_mac=$(nsx gw cat /sys/class/net/sub1/address)
sub2_mac=$(nsx sub2 cat /sys/class/net/gw0/address)
sent=$(nsx sub2 timeout 20 "$PY" -c "$SPOOF_PY" "$gw_mac" "$sub2_mac" "$SUB1_4" "$SUB1_6" "$SVC4" "$SVC6" "$N_SPOOF") ||
	fail "sub2 could not send its spoofed frames"
wait "$dl4" || fail "sub1's IPv4 download: $(cat "$LAB_RUN/dl4.out")"
wait "$dl6" || fail "sub1's IPv6 download: $(cat "$LAB_RUN/dl6.out")"
wait "$talk" || fail "sub1's UDP conversation: $(cat "$LAB_RUN/talk.out")"
after=$(cfrctl_json)
capture_stop "$TEST_NAME-sub1"
capture_stop "$TEST_NAME-sub2"

# First the direct evidence: a packet to sub1 that the bridge took to sub2
# (sent to sub2's MAC, or flooded), then whether sub1 got everything.
to_sub1() { pcap_tool flows "$1" | awk -v a="$SUB1_4" -v b="$SUB1_6" '$5 == a || $5 == b'; }
at_sub1=$(to_sub1 "$LAB_RUN/$TEST_NAME-sub1.pcap" | wc -l)
at_sub2=$(to_sub1 "$LAB_RUN/$TEST_NAME-sub2.pcap" | wc -l)
spoofed=$(pcap_tool flows "$LAB_RUN/$TEST_NAME-sub2.pcap" | awk -v a="$SUB1_4" -v b="$SUB1_6" '$3 == a || $3 == b' | wc -l)
[ "$spoofed" -ge "$sent" ] || fail "$LAB_NS-sub2's capture holds $spoofed of the $sent frames it sent as sub1"
if [ "$at_sub2" != 0 ]; then
	say "packets to sub1 captured in cfr-sub2 (fam proto src sport dst dport), by flow:"
	to_sub1 "$LAB_RUN/$TEST_NAME-sub2.pcap" | awk '{print $1, $2, $3, $4, $5, $6}' | sort | uniq -c | sort -rn | head -n 5
	fail "$at_sub2 packets addressed to sub1 arrived at sub2 (sub1 got $at_sub1)"
fi
ok "captures: $at_sub1 packets to sub1 arrived at sub1, 0 at sub2 (which sent $spoofed as sub1)"

for fam in 4 6; do
	[ "$(cat "$LAB_RUN/dl$fam.out")" = "200 2097153" ] ||
		fail "sub1's IPv$fam download did not complete: $(cat "$LAB_RUN/dl$fam.out")"
done
ok "sub1's downloads (2 MiB each, IPv4 and IPv6) completed while sub2 sent $sent frames as sub1"

read -r sent4 own4 spoof4 sent6 own6 spoof6 <"$LAB_RUN/talk.out"
[ "$own4" = "$sent4" ] || fail "sub1 got $own4 of its $sent4 IPv4 echoes"
[ "$own6" = "$sent6" ] || fail "sub1 got $own6 of its $sent6 IPv6 echoes"
ok "sub1's UDP conversation: $own4/$sent4 IPv4 and $own6/$sent6 IPv6 echoes"

# The front door's echo log: what it answered, and to which alias. The
# spoofed datagrams joined sub1's own flow (the same alias): the engine took
# them as sub1's, the case where a frame could have moved sub1's replies.
echo_log() { awk -v tag="$1" '$1 == "from" && index($5, tag) == 1 {print $2, $3}' "$LAB_RUN/udp-echo.log"; }
for fam in 4 6; do
	echoed=$(echo_log "SPOOF$fam-" | wc -l)
	got=$spoof4
	[ "$fam" = 4 ] || got=$spoof6
	[ "$echoed" -gt 0 ] || fail "none of sub2's IPv$fam datagrams as sub1 reached the front door: nothing was tested"
	spoof_alias=$(echo_log "SPOOF$fam-" | sort -u)
	own_alias=$(echo_log "S1v$fam-" | sort -u)
	[ "$spoof_alias" = "$own_alias" ] ||
		fail "IPv$fam: the spoofed datagrams left from '$spoof_alias', sub1's flow from '$own_alias'"
	[ "$got" = "$echoed" ] || fail "the front door echoed $echoed spoofed IPv$fam datagrams to sub1's alias, sub1 got $got"
	ok "IPv$fam: $echoed spoofed datagrams went out on sub1's flow; all $got echoes reached sub1"
done

rx=$(($(xdp_get "$after" rx) - $(xdp_get "$before" rx)))
tx=$(($(xdp_get "$after" tx) - $(xdp_get "$before" tx)))
tun=$(($(xdp_get "$after" to_tun) - $(xdp_get "$before" to_tun)))
# sub1's replies went out by AF_XDP, to a MAC cfrd chose: the path the spoofing aimed at.
[ "$rx" -ge 4000 ] || fail "only $rx frames took the fast path during the downloads"
[ "$tun" -lt $((rx / 20)) ] || fail "$tun of $rx fast-path frames went via TUN (no learned MAC?)"
guard=$(xdp_get "$after" guard_drops)
[ "$guard" = 0 ] || fail "io.xdp.guard_drops = $guard"
ok "meanwhile AF_XDP took $rx frames and sent $tx, $tun via TUN, guard_drops 0"

# --- 3. forward rules the fast path would skip --------------------------------
stop_pid TERM "$(cat "$LAB_RUN/cfrd.pid")" 50
grep -q 'info: stopped$' "$LAB_RUN/cfrd.log" || fail "the lab's cfrd did not stop cleanly"
nsx gw nft -f - <<'EOF'
table ip foreign {
	chain forward {
		type filter hook forward priority 0; policy accept;
		counter
	}
}
EOF
rc=0
nsx gw timeout 20 "$CFRD" -c "$LAB_RUN/cfrd.conf" >"$LAB_RUN/xdp-refused.log" 2>&1 9<&- || rc=$?
[ "$rc" = 1 ] || fail "cfrd with [xdp] and a foreign forward rule: exit $rc, want 1: $(cat "$LAB_RUN/xdp-refused.log")"
errors=$(grep -c 'error:' "$LAB_RUN/xdp-refused.log" || true)
line=$(grep 'error:' "$LAB_RUN/xdp-refused.log" || true)
[ "$errors" = 1 ] || fail "$errors error lines, want 1: $(cat "$LAB_RUN/xdp-refused.log")"
case $line in *"table ip foreign chain forward"*) ;; *) fail "the error does not name the chain: $line" ;; esac
! nsx gw ip -d link show sub1 | grep -q 'prog/xdp' || fail "the refused cfrd left an XDP program on sub1"
ok "refused: exit 1, ${line#*error: }"

conf=$LAB_RUN/cfrd-ignore.conf
{
	cat "$LAB_RUN/cfrd.conf"
	printf '\n[xdp]\nignore-forward-rules = yes\n'
} >"$conf"
mv "$LAB_RUN/cfrd.log" "$LAB_RUN/cfrd-lab.log"
ip netns exec "$LAB_NS-gw" "$CFRD" -c "$conf" >"$LAB_RUN/cfrd.log" 2>&1 9<&- &
echo $! >"$LAB_RUN/cfrd.pid"
for t in $(seq 100); do
	alive "$(cat "$LAB_RUN/cfrd.pid")" || fail "cfrd with ignore-forward-rules = yes exited: $(cat "$LAB_RUN/cfrd.log")"
	nsx gw "$CFRCTL" -s "$LAB_CTL" stats >/dev/null 2>&1 && break
	[ "$t" -lt 100 ] || fail "cfrd with ignore-forward-rules = yes: no control socket after 10 s"
	sleep 0.1
done
warn=$(grep 'warn: .*table ip foreign chain forward' "$LAB_RUN/cfrd.log") ||
	fail "no warning naming the chain: $(cat "$LAB_RUN/cfrd.log")"
nsx gw ip -d link show sub1 | grep -q 'prog/xdp' || fail "ignore-forward-rules = yes: no XDP program on sub1"
for i in 1 2; do
	for t in $(seq 10); do
		nsx "sub$i" ping -n -q -c 1 -W 1 "$SVC4" >/dev/null 2>&1 && break
		[ "$t" -lt 10 ] || fail "sub$i: no ping through the restarted cfrd"
	done
	udp_roundtrip "sub$i" "$SVC4" 500 10 >/dev/null || fail "sub$i: UDP echo through the restarted cfrd"
	udp_roundtrip "sub$i" "$SVC6" 500 10 >/dev/null || fail "sub$i: UDP6 echo through the restarted cfrd"
done
stats=$(cfrctl_json)
counted=$(nsx gw nft list chain ip foreign forward | awk '/counter packets/ {print $3}')
ok "ignore-forward-rules = yes: starts, ${warn#*warn: }"
say "the foreign chain counted $counted packets; AF_XDP took $(xdp_get "$stats" rx) frames past it"
stop_pid TERM "$(cat "$LAB_RUN/cfrd.pid")" 50
grep -q 'info: stopped$' "$LAB_RUN/cfrd.log" || fail "cfrd did not stop cleanly: $(tail -n 3 "$LAB_RUN/cfrd.log")"
! grep -q 'Sanitizer' "$LAB_RUN/cfrd.log" || fail "cfrd: $(grep -m 1 Sanitizer "$LAB_RUN/cfrd.log")"

test_leak_check
echo "PASS $TEST_NAME"
