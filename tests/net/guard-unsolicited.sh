#!/bin/bash
# tests/net/guard-unsolicited.sh: no endpoint-independent filtering. With a
# live UDP flow in place, the front door sends to random alias addresses
# and ports (UDP, TCP SYN and ACK, ICMP echo; IPv4 and IPv6), including the
# live flow's own alias and port from another of its addresses. Nothing is
# delivered to any subscriber (captures on every subscriber's veth), and
# cfrd counts the packets as drops.no_flow, or drops.filtered for those to
# the live mapping: UDP to port 7 has an endpoint-independent mapping with
# address-dependent filtering (issue 17), which lets another port of the
# flow's own remote answer (RFC 4787 REQ-8, tests/net/p2p.sh), not another
# address.
#
#  cfr-fd --random alias:port--> cfr-gw --> cfr0 --> cfrd [no flow / filtered: drop] -X-> cfr-subI
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

N=150 # packets per family
"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
test_lab_up 4

# A live flow, so that at least one alias and port is really in use.
udp_roundtrip sub1 "$SVC4" 64 1 >/dev/null || fail "UDP echo failed"
sleep 0.3
capture_stop "$TEST_NAME"
alias=$(pcap_tool flows "$LAB_RUN/$TEST_NAME.pcap" | awk '$1 == 4 && $2 == 17 && $6 == 7 {print $3, $4; exit}')
[ -n "$alias" ] || fail "no translated UDP datagram in the front-door capture"
say "live flow's alias: $alias"
capture_start "$TEST_NAME" || fail "cannot capture on cfr-fd"
for i in 1 2 3 4; do
	capture_start "sub$i" "sub$i" gw0 || fail "cannot capture on cfr-sub$i"
done

before=$(cfrctl_json)
# shellcheck disable=SC2086
nsx fd "$PY" - "$N" $alias <<'PYEOF' || fail "could not send from the front door"
import random, socket, sys
from scapy.all import ICMP, IP, IPv6, ICMPv6EchoRequest, TCP, UDP, Raw
n, live_addr, live_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
rnd = random.Random(4)
for i in range(n):
    a4 = live_addr if i % 5 == 0 else "192.0.2.%d" % rnd.randrange(0, 64)
    dport = live_port if i % 5 == 0 else rnd.randrange(1024, 65536)
    l4 = [UDP(sport=rnd.randrange(8, 65536), dport=dport) / Raw(b"UNSOLICITED"),
          TCP(sport=443, dport=dport, flags="S"),
          TCP(sport=443, dport=dport, flags="A"),
          ICMP(type=8, id=dport)][i % 4]
    p = IP(src="198.51.100.2" if i % 5 == 0 else "203.0.113.10", dst=a4) / l4
    s4.sendto(bytes(p), (a4, 0))
    a6 = "2001:db8:a1::%x:%x" % (rnd.randrange(65536), rnd.randrange(65536))
    l6 = [UDP(sport=7, dport=dport) / Raw(b"UNSOLICITED"),
          TCP(sport=443, dport=dport, flags="S"),
          ICMPv6EchoRequest(id=dport)][i % 3]
    s6.sendto(bytes(IPv6(src="2001:db8:f::10", dst=a6) / l6), (a6, 0))
PYEOF
sleep 0.5
after=$(cfrctl_json)
get() { echo "$1" | json_get "$2"; }
d=$(($(get "$after" drops.no_flow) - $(get "$before" drops.no_flow)))
df=$(($(get "$after" drops.filtered) - $(get "$before" drops.filtered)))
[ "$((d + df))" -ge $((2 * N)) ] || fail "drops.no_flow grew by $d and drops.filtered by $df after $((2 * N)) unsolicited packets"
ok "drops.no_flow +$d, drops.filtered +$df"

for i in 1 2 3 4; do
	capture_stop "sub$i"
	# Anything from the front door's addresses reaching a subscriber is a delivery.
	got=$(pcap_tool flows "$LAB_RUN/sub$i.pcap" |
		awk '$3 == "203.0.113.10" || $3 == "198.51.100.2" || $3 == "2001:db8:f::10"' | wc -l)
	[ "$got" -eq 0 ] || fail "subscriber $i received $got unsolicited packets"
done
ok "no subscriber received any of them"
kill -0 "$(cat "$LAB_RUN/cfrd.pid")" || fail "cfrd died"
udp_roundtrip sub1 "$SVC4" 64 1 >/dev/null || fail "UDP echo failed afterwards"
test_leak_check
