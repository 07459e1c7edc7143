#!/bin/bash
# tests/net/udp.sh: UDP echo round trips through cfrd, IPv4 and IPv6, from two
# subscribers; every echoed payload is compared byte for byte.
#
#  cfr-sub1,2 --veth-- cfr-gw [cfr0 <-> cfrd] --veth-- cfr-fd: udp-echo on
#                                                      203.0.113.10:7, [2001:db8:f::10]:7
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

test_lab_up 2

for i in 1 2; do
	for addr in "$SVC4" "$SVC6"; do
		for size in 1 100 1400; do
			out=$(udp_roundtrip "sub$i" "$addr" "$size" 5 2>&1) || fail "sub$i -> $addr, $size bytes: $out"
		done
		# One socket per datagram: five different flows.
		out=$(udp_roundtrip "sub$i" "$addr" 64 5 fresh 2>&1) || fail "sub$i -> $addr, fresh sockets: $out"
		ok "sub$i <-> $addr:7: 20 datagrams of 1..1400 bytes echoed intact"
	done
done

# The echo server's own log: who it answered.
n=0
while read -r _ addr port _; do
	in_pool "$addr" || fail "UDP echo answered $addr:$port, not a pool address"
	n=$((n + 1))
done < <(grep '^from ' "$LAB_RUN/udp-echo.log")
[ "$n" -ge 80 ] || fail "UDP echo logged $n datagrams, want >= 80"
ok "UDP echo's log: $n datagrams, all from pool addresses"

test_leak_check
echo "PASS $TEST_NAME"
