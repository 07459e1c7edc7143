#!/bin/bash
# tests/net/leak-offline.sh: a subscriber goes offline while the front door
# keeps sending to its flows (issue 11). Before, the gateway's kernel
# answered with host / address unreachables quoting the subscriber's real
# address (and IPv6 ones even came from the subscriber's link address).
#   sub1: its line goes down (link down in its own namespace: no carrier on
#         the gateway's veth);
#   sub2: the line stays up but nobody answers ARP / neighbour solicitation
#         any more (its addresses removed, the gateway's neighbour entries
#         flushed), so the gateway's neighbour resolution fails.
# Each had a live UDP flow per family. The front door sends to the four
# aliases for 6 s (10 datagrams a second each). Nothing with a subscriber
# address may reach it; an unreachable, if one comes, is in alias form: sent
# by the alias (or the gateway's upstream address), quoting front door ->
# alias:port.
#
#  cfr-fd --UDP to alias--> cfr-gw [cfrd restores] --> sub1 (no carrier) / sub2 (no neighbour)
#     ^                        | unreachable about 100.64.I.2 (mark 0xcf) -> cfr0 -> cfrd
#     +---- alias form only <--+
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
test_lab_up 2
nsx gw sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0

# Live flows, then their aliases as the front door's echo saw them.
pids=""
for i in 1 2; do
	for f in 4 6; do
		addr=$SVC4
		[ "$f" = 4 ] || addr=$SVC6
		udp_hold "sub$i" "$addr" "off$i-$f" 3 &
		pids="$pids $!"
	done
done
: >"$LAB_RUN/targets"
for i in 1 2; do
	for f in 4 6; do
		a=$(udp_alias "off$i-$f") || fail "sub$i IPv$f: the flow never reached the echo"
		in_pool "${a% *}" || fail "sub$i IPv$f: flow from ${a% *}, not the pool"
		echo "$a" >>"$LAB_RUN/targets"
	done
done
for p in $pids; do wait "$p" || true; done
ok "four live UDP flows: $(tr '\n' ' ' <"$LAB_RUN/targets")"

# Offline: sub1 pulls its line, sub2 stops answering neighbour resolution.
nsx sub1 ip link set gw0 down
nsx sub2 ip addr flush dev gw0
nsx gw ip neigh flush dev sub2
nsx gw ip -6 neigh flush dev sub2
ok "sub1's line is down, sub2 answers no ARP / ND"

# The front door keeps sending: 6 s, 10 datagrams a second to each alias.
# shellcheck disable=SC2016
nsx fd "$PY" - "$LAB_RUN/targets" <<'PYEOF' || fail "front door could not send"
import socket, sys, time
from scapy.all import IP, IPv6, UDP, Raw
targets = [l.split() for l in open(sys.argv[1])]
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for n in range(60):
    for alias, port in targets:
        if ":" in alias:
            p = IPv6(src="2001:db8:f::10", dst=alias) / UDP(sport=7, dport=int(port)) / Raw(b"offline %d" % n)
            s6.sendto(bytes(p), (alias, 0))
        else:
            p = IP(src="203.0.113.10", dst=alias) / UDP(sport=7, dport=int(port)) / Raw(b"offline %d" % n)
            s4.sendto(bytes(p), (alias, 0))
    time.sleep(0.1)
PYEOF
sleep 1
ok "240 datagrams sent to the offline subscribers' aliases"
say "guard: $(nsx gw nft list counters table inet cfr_guard | awk '/counter/ {n = $2} /packets/ {printf "%s %s  ", n, $2}')"

capture_stop "$TEST_NAME"
pcap_tool errors "$LAB_RUN/$TEST_NAME.pcap" >"$LAB_RUN/errors"
# fam src dst type code mtu ttl qproto qsrc qsport qdst qdport qlen
# shellcheck disable=SC2016
"$PY" - "$LAB_RUN/targets" "$LAB_RUN/errors" "$POOL4" "$POOL6" <<'PYEOF' || fail "unreachables in the wrong form (above)"
import ipaddress, sys
pools = [ipaddress.ip_network(n) for n in sys.argv[3:5]]
targets = set(tuple(l.split()) for l in open(sys.argv[1]))
svc = {"4": "203.0.113.10", "6": "2001:db8:f::10"}
upstream = {"4": "198.51.100.1", "6": "2001:db8:ffff::1"}
bad, seen = 0, {}
for e in (l.split() for l in open(sys.argv[2])):
    if e[2] != svc[e[0]]:
        continue
    src = ipaddress.ip_address(e[1])
    if not (e[1] == upstream[e[0]] or any(src in n for n in pools)):
        print("error from %s (not the pool, not the gateway upstream): %s" % (e[1], " ".join(e)))
        bad += 1
    if (e[10], e[11]) not in targets or e[8] != svc[e[0]]:
        print("error quoting %s -> %s port %s (not front door -> an alias): %s" % (e[8], e[10], e[11], " ".join(e)))
        bad += 1
    if e[1] != upstream[e[0]] and e[1] != e[10]:
        print("error from alias %s about another alias %s: %s" % (e[1], e[10], " ".join(e)))
        bad += 1
    k = "IPv%s type %s code %s from %s" % (e[0], e[3], e[4], "the alias" if e[1] == e[10] else e[1])
    seen[k] = seen.get(k, 0) + 1
print("errors at the front door: %s" % (seen or "none"))
sys.exit(1 if bad else 0)
PYEOF
ok "every error the front door got is in alias form"
test_leak_check
echo "PASS $TEST_NAME"
