#!/bin/bash
# tests/net/guard-frag-flood.sh: one subscriber cannot take the fragment
# table from the others (issue 12). Subscriber 1 floods 12,000 first
# fragments of one UDP flow (distinct identifications, never completed);
# cfrd tracks at most its share (fragments-per-subscriber, 64) and counts
# the rest as subscriber_frag_limit. Meanwhile subscriber 2's 3000-byte UDP
# datagrams (fragmented by its own stack) and 3000-byte pings, IPv4 and IPv6,
# all come back.
#
#  cfr-sub1 --(12,000 first fragments)--> cfr-gw [cfrd: 64 per subscriber] --> cfr-fd
#  cfr-sub2 --(fragmented UDP, pings)---> cfr-gw -----------------------------> cfr-fd
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

N_FLOOD=12000
"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
test_lab_up 2

nsx sub1 "$PY" - "$N_FLOOD" <<'PYEOF' || fail "flood failed"
import socket, sys
from scapy.all import IP, UDP, Raw
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(n):
    # A first fragment (MF, offset 0) of a datagram whose rest never comes.
    p = IP(src="100.64.1.2", dst="203.0.113.10", id=i & 0xffff, flags="MF") / \
        UDP(sport=42000, dport=7, len=1208) / Raw(b"F" * 592)
    s.sendto(bytes(p), ("203.0.113.10", 0))
PYEOF
ok "sub1 sent $N_FLOOD first fragments"
limited=$(cfrctl_json | json_get drops.subscriber_frag_limit)
[ "${limited:-0}" -ge $((N_FLOOD / 2)) ] \
	|| fail "drops.subscriber_frag_limit is ${limited:-none}, want most of $N_FLOOD"
tracked=$(cfrctl_json | json_get fragments_tracked)
[ "${tracked:-999}" -le 64 ] || fail "$tracked fragmented datagrams tracked, more than one share (64)"
ok "cfrd tracked $tracked of them and refused $limited (subscriber_frag_limit)"

udp_roundtrip sub2 "$SVC4" 3000 10 >/dev/null || fail "sub2: fragmented UDP over IPv4 failed"
udp_roundtrip sub2 "$SVC6" 3000 10 >/dev/null || fail "sub2: fragmented UDP over IPv6 failed"
ok "sub2: 10 + 10 fragmented 3000-byte UDP datagrams echoed (IPv4, IPv6)"
nsx sub2 ping -n -q -c 10 -i 0.2 -W 2 -s 3000 "$SVC4" >/dev/null || fail "sub2: large IPv4 pings lost"
nsx sub2 ping -6 -n -q -c 10 -i 0.2 -W 2 -s 3000 "$SVC6" >/dev/null || fail "sub2: large IPv6 pings lost"
ok "sub2: 10 + 10 pings of 3000 bytes answered (IPv4, IPv6)"
test_leak_check
echo "PASS $TEST_NAME"
