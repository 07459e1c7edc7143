#!/bin/bash
# tests/net/guard-spoof-default.sh: in the default lab (one cfr0, no [line]
# sections), a subscriber can send only with its own addresses (issue 12,
# MISSION R8). cfrd's guard table binds each subscriber source to the
# interface its address routes to (chain source_check, source-check =
# kernel, the default) and lets nothing else into cfrd but subscribers and
# traffic to the pools. Subscriber 1 sends, with scapy:
#   - UDP with subscriber 2's IPv4 and IPv6 source,
#   - UDP with a source outside every prefix (10.9.9.9, 2001:db8:9::9),
#   - ICMP port unreachables "from the gateway" (198.51.100.1) and "from a
#     router" (198.51.100.77) quoting subscriber 2's live UDP flow, which
#     cfrd would otherwise translate into that flow's alias and so disturb it.
# None of it reaches the front door (its capture holds no "SPOOF" payload
# and no error about subscriber 2's flow), the guard counts every packet in
# spoofed_source, and subscriber 2's flow still works.
#
#  cfr-sub1 --sub1--> cfr-gw [forward: source_check] -x-   cfr0 -> cfrd -> fd0 --> cfr-fd
#  cfr-sub2 --sub2--> cfr-gw ------------------------------> cfr0 -> cfrd -> fd0 --> cfr-fd
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

N_SPOOF=20 # per kind and family
"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
test_lab_up 2

guard_counter() {
	nsx gw nft list counter inet cfr_guard spoofed_source | awk '/packets/ {print $2}'
}
before=$(guard_counter)

# Subscriber 2's live UDP flow: a socket that stays open on a known port.
nsx sub2 "$PY" - <<'PYEOF' &
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("100.64.2.2", 40777))
s.settimeout(1)
for i in range(8):
    s.sendto(b"hello %d" % i, ("203.0.113.10", 7))
    try:
        s.recv(100)
    except socket.timeout:
        pass
    time.sleep(0.5)
PYEOF
flow=$!
sleep 0.5

nsx sub1 "$PY" - "$N_SPOOF" <<'PYEOF' || fail "could not send spoofed packets"
import socket, sys
from scapy.all import IP, IPv6, UDP, ICMP, Raw
n = int(sys.argv[1])
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
quoted = IP(src="203.0.113.10", dst="100.64.2.2") / UDP(sport=7, dport=40777) / Raw(b"SPOOF-Q")
for i in range(n):
    for src in ("100.64.2.2", "10.9.9.9"):
        p = IP(src=src, dst="203.0.113.10") / UDP(sport=41000 + i, dport=7) / Raw(b"SPOOF")
        s4.sendto(bytes(p), ("203.0.113.10", 0))
    for src in ("2001:db8:100:2::2", "2001:db8:9::9"):
        p = IPv6(src=src, dst="2001:db8:f::10") / UDP(sport=41000 + i, dport=7) / Raw(b"SPOOF")
        s6.sendto(bytes(p), ("2001:db8:f::10", 0))
    # The gateway's own address (the kernel drops it as a martian) and a router's.
    for src in ("198.51.100.1", "198.51.100.77"):
        p = IP(src=src, dst="203.0.113.10") / ICMP(type=3, code=3) / bytes(quoted)
        s4.sendto(bytes(p), ("203.0.113.10", 0))
PYEOF
wait "$flow" || true
sleep 0.5
capture_stop "$TEST_NAME"

seen=$(grep -ac SPOOF "$LAB_RUN/$TEST_NAME.pcap" || true)
[ "$seen" = 0 ] || fail "$seen spoofed packets reached the front door"
ok "no spoofed packet reached the front door ($((6 * N_SPOOF)) sent)"
after=$(guard_counter)
dropped=$((after - before))
[ "$dropped" -ge $((5 * N_SPOOF)) ] \
	|| fail "guard counted $dropped spoofed packets, want at least $((5 * N_SPOOF))"
ok "guard table counted $dropped in spoofed_source"
# Subscriber 2's echoes came back through its flow all along.
pcap_tool flows "$LAB_RUN/$TEST_NAME.pcap" | awk '$2 == 17 && $6 == 7' | grep -q . \
	|| fail "subscriber 2's UDP flow never reached the front door"
ok "subscriber 2's own flow went through"
test_leak_check
echo "PASS $TEST_NAME"
