#!/bin/bash
# tests/net/guard-malformed.sh: hostile packets from both sides. The corpus
# of tests/net/malformed_packets.py (bad IPv4/IPv6 lengths and header
# lengths, bad checksums, truncated TCP/UDP/ICMP headers, truncated and
# nested ICMP errors, IPv6 extension header chains longer than the bound and
# self-referencing ones, a routing header, overlapping, tiny and
# out-of-range fragments) goes out as raw Ethernet frames from subscriber 1
# and, readdressed to an alias, from the front door. The gateway's kernel
# drops what its own IP layer rejects (bad IPv4 headers); everything else
# reaches cfrd. cfrd must survive, count every packet it saw as a drop
# (overlapping fragments and a misplaced hop-by-hop header excepted: the
# receiver discards those, see FORWARDABLE), and normal traffic continues.
#
#  cfr-sub1 --raw frames--> cfr-gw [kernel] --> cfr0 --> cfrd [drop + count]
#  cfr-fd   --raw frames--> cfr-gw [kernel] --> cfr0 --> cfrd [drop + count]
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

COPIES=3 # of each packet, per side: about 200 packets in all
PKTS=$(dirname "$0")/malformed_packets.py
"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
test_lab_up 2

get() { echo "$1" | json_get "$2"; }
nsx sub1 curl -sk --max-time 5 -o /dev/null "https://$SVC4/" || fail "HTTPS failed before the test"
before=$(cfrctl_json)
sub_mac=$(nsx gw cat /sys/class/net/sub1/address)
up_mac=$(nsx gw cat /sys/class/net/fd0/address)
nsx sub1 "$PY" "$PKTS" send out "$COPIES" gw0 "$sub_mac" || fail "sending from sub1 failed"
nsx fd "$PY" "$PKTS" send in "$COPIES" "$FD_IF" "$up_mac" || fail "sending from the front door failed"
sleep 0.5
after=$(cfrctl_json)
kill -0 "$(cat "$LAB_RUN/cfrd.pid")" 2>/dev/null || fail "cfrd died"
ok "cfrd survived"

rx=$(($(get "$after" packets.rx.out) + $(get "$after" packets.rx.in) -
	$(get "$before" packets.rx.out) - $(get "$before" packets.rx.in)))
tx=$(($(get "$after" packets.tx.out) + $(get "$after" packets.tx.in) -
	$(get "$before" packets.tx.out) - $(get "$before" packets.tx.in)))
drops=$(($(get "$after" drops.total) - $(get "$before" drops.total)))
say "cfrd saw $rx packets: $drops dropped, $tx forwarded"
"$PY" - "$before" "$after" <<'PYEOF'
import json, sys
b, a = json.loads(sys.argv[1])["drops"], json.loads(sys.argv[2])["drops"]
print("  " + ", ".join("%s +%d" % (k, a[k] - b[k]) for k in a if k != "total" and a[k] != b[k]))
PYEOF
[ "$rx" -ge 100 ] || fail "only $rx packets reached cfrd: the corpus did not get through the gateway"
# Only the kinds malformed_packets.FORWARDABLE lists may pass (the receiver
# discards them), at most once per copy and side.
fwd_max=$((COPIES * $("$PY" -c "import sys; sys.path.insert(0, '$(dirname "$PKTS")'); import malformed_packets as m; print(len(m.FORWARDABLE))")))
[ "$tx" -le "$fwd_max" ] || fail "$tx malformed packets forwarded, at most $fwd_max may be"
[ $((drops + tx)) -eq "$rx" ] || fail "$rx packets seen, $drops dropped + $tx forwarded"
for r in ext_hdr_limit bad_l4_header routing_hdr; do
	[ $(($(get "$after" "drops.$r") - $(get "$before" "drops.$r"))) -gt 0 ] || fail "drops.$r did not move"
done
ok "every malformed packet cfrd saw was dropped and counted ($tx of the receiver-discarded kinds passed)"

nsx sub1 curl -sk --max-time 5 -o /dev/null "https://$SVC4/" || fail "HTTPS over IPv4 failed afterwards"
nsx sub2 curl -sk --max-time 5 -o /dev/null "https://[$SVC6]/" || fail "HTTPS over IPv6 failed afterwards"
udp_roundtrip sub1 "$SVC4" 100 2 fresh >/dev/null || fail "UDP echo failed afterwards"
ok "normal traffic continues"
test_leak_check
