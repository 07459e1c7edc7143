#!/bin/bash
# tests/net/guard-spoof.sh: anti-spoofing (MISSION R8). Each subscriber sits
# on an access line with a TUN device of its own ([line subI] in cfrd.conf,
# strict-ingress = yes), so cfrd knows which line a packet came in on.
# Subscriber 1 then sends UDP with subscriber 2's source (IPv4 and IPv6)
# and with a source outside every prefix: none of it reaches the front door,
# the first is counted as drops.ingress_mismatch, the second as
# drops.unauthorised_source, and everyone's own traffic still works.
#
#  cfr-sub1 --sub1--> [iif sub1: table 101] --> cfr-l1 --> cfrd (ingress 1)
#  cfr-sub2 --sub2--> [iif sub2: table 102] --> cfr-l2 --> cfrd (ingress 2)
#  cfr-sub3 --sub3--> [iif sub3: table 103] --> cfr-l3 --> cfrd (ingress 3)
#  cfr-fd   --fd0---> [pools: main table]   --> cfr0   --> cfrd (ingress 0)
#
# The default lab stops sub1 from using sub2's address before cfrd sees it
# (the guard table's source check, tests/net/guard-spoof-default.sh); here
# source-check = external turns that off, so the engine's own binding of
# each line is what is tested.
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

N_SPOOF=20 # datagrams per kind and family: 80 spoofed packets in all
"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
conf=$(mktemp /tmp/cfr-guard-spoof.XXXXXX)
{
	printf '[cfrd]\ntun = cfr0\ncontrol = %s\nsource-check = external\n' "$LAB_CTL"
	printf '[pool]\nipv4 = %s\nipv6 = %s\n' "$POOL4" "$POOL6"
	printf '[subscribers]\nstrict-ingress = yes\n'
	for i in 1 2 3; do
		printf '[line sub%d]\ntun = cfr-l%d\nprefix = 100.64.%d.0/24\nprefix = 2001:db8:100:%d::/64\n' \
			"$i" "$i" "$i" "$i"
	done
} >"$conf"
test_lab_up 3 --config "$conf"
rm -f "$conf"

# Normal traffic first, on every line: the binding lets the rightful owner through.
for i in 1 2 3; do
	nsx "sub$i" curl -sk --max-time 5 -o /dev/null "https://$SVC4/" || fail "sub$i: HTTPS over IPv4 failed"
	nsx "sub$i" curl -sk --max-time 5 -o /dev/null "https://[$SVC6]/" || fail "sub$i: HTTPS over IPv6 failed"
done
ok "every line's own subscriber gets through (IPv4 and IPv6 HTTPS)"
before=$(cfrctl_json)

# Spoofed UDP to the echo port: another line's source, and a source in no prefix.
nsx sub1 "$PY" - "$N_SPOOF" <<'PYEOF' || fail "could not send spoofed packets"
import socket, sys
from scapy.all import IP, IPv6, UDP, Raw
n = int(sys.argv[1])
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(n):
    for src in ("100.64.2.2", "10.9.9.9"):
        p = IP(src=src, dst="203.0.113.10") / UDP(sport=41000 + i, dport=7) / Raw(b"SPOOF")
        s4.sendto(bytes(p), ("203.0.113.10", 0))
    for src in ("2001:db8:100:2::2", "2001:db8:9::9"):
        p = IPv6(src=src, dst="2001:db8:f::10") / UDP(sport=41000 + i, dport=7) / Raw(b"SPOOF")
        s6.sendto(bytes(p), ("2001:db8:f::10", 0))
PYEOF
sleep 0.5
after=$(cfrctl_json)
get() { echo "$1" | json_get "$2"; }

m=$(($(get "$after" drops.ingress_mismatch) - $(get "$before" drops.ingress_mismatch)))
u=$(($(get "$after" drops.unauthorised_source) - $(get "$before" drops.unauthorised_source)))
[ "$m" -ge $((2 * N_SPOOF)) ] || fail "drops.ingress_mismatch grew by $m, expected >= $((2 * N_SPOOF))"
ok "another line's source: drops.ingress_mismatch +$m"
[ "$u" -ge $((2 * N_SPOOF)) ] || fail "drops.unauthorised_source grew by $u, expected >= $((2 * N_SPOOF))"
ok "source in no prefix: drops.unauthorised_source +$u"

# Still working for the rightful owner of the spoofed address, and for sub1.
nsx sub2 curl -sk --max-time 5 -o /dev/null "https://$SVC4/" || fail "sub2 broken after spoofing"
udp_roundtrip sub1 "$SVC4" 64 2 fresh >/dev/null || fail "sub1 UDP echo failed after spoofing"
ok "sub1 and sub2 still work"

capture_stop "$TEST_NAME"
udp7=$(pcap_tool flows "$LAB_RUN/$TEST_NAME.pcap" | awk '$2 == 17 && $6 == 7' | wc -l)
# sub1's two legitimate echo datagrams are the only UDP to port 7 allowed.
[ "$udp7" -le 2 ] || fail "front door saw $udp7 UDP datagrams to port 7 (spoofed ones got through)"
ok "front door saw no spoofed datagram ($udp7 UDP to port 7, all sub1's own)"
pcap_tool leaks "$LAB_RUN/$TEST_NAME.pcap" || fail "front-door capture check failed"
ok "front door saw no subscriber address"
