#!/bin/bash
# tests/net/ping.sh: ICMP and ICMPv6 echo through cfrd from every subscriber;
# every request must be answered.
#
#  cfr-sub1..3 --veth-- cfr-gw [cfr0 <-> cfrd] --veth-- cfr-fd (kernel echo on
#                                                      203.0.113.10, 2001:db8:f::10)
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

N=3
test_lab_up "$N"

for i in $(seq "$N"); do
	for fam in 4 6; do
		dst=$SVC4
		[ "$fam" = 4 ] || dst=$SVC6
		out=$(nsx "sub$i" ping "-$fam" -n -c 5 -i 0.2 -W 2 "$dst" 2>&1) || true
		echo "$out" | grep -q '^5 packets transmitted, 5 received' \
			|| fail "sub$i ping -$fam $dst: $(echo "$out" | tail -n 2 | head -n 1)"
		ok "sub$i: ping -$fam $dst 5/5"
	done
done

# Echo requests reached the front door from pool addresses only.
pcap=$LAB_RUN/$TEST_NAME.pcap
capture_stop "$TEST_NAME"
req4=$(pcap_tool flows "$pcap" | awk '$1 == 4 && $2 == 1 && $4 == "type8"' | wc -l)
req6=$(pcap_tool flows "$pcap" | awk '$1 == 6 && $2 == 58 && $4 == "type128"' | wc -l)
[ "$req4" -ge $((N * 5)) ] || fail "front door saw $req4 ICMP echo requests, want >= $((N * 5))"
[ "$req6" -ge $((N * 5)) ] || fail "front door saw $req6 ICMPv6 echo requests, want >= $((N * 5))"
ok "front door saw $req4 ICMP and $req6 ICMPv6 echo requests"
test_leak_check
echo "PASS $TEST_NAME"
