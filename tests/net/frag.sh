#!/bin/bash
# tests/net/frag.sh: fragmented UDP through cfrd. Datagrams of 3000 and 8000
# bytes leave the subscriber as IPv4/IPv6 fragments; cfrd must translate every
# fragment; the front door reassembles, echoes, and its fragmented reply must
# come back intact. The capture must show that fragments really crossed.
#
#  cfr-sub1 --(fragments, src 100.64.1.2)--> cfr-gw [cfrd] --(fragments, src alias)--> cfr-fd
#           <--(fragments, dst restored)---               <--(fragmented echo)-------  udp-echo :7
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

test_lab_up 1

for addr in "$SVC4" "$SVC6"; do
	for size in 3000 8000; do
		out=$(udp_roundtrip sub1 "$addr" "$size" 5 2>&1) || fail "sub1 -> $addr:7, $size-byte datagrams: $out"
		ok "5 x $size-byte datagrams to $addr:7 echoed intact"
	done
done

capture_stop "$TEST_NAME"
read -r _ f4 _ f6 <<<"$(pcap_tool frags "$LAB_RUN/$TEST_NAME.pcap")"
# 5 x 3000 (3 fragments) + 5 x 8000 (6 fragments), each way.
[ "$f4" -ge 40 ] || fail "front door saw only $f4 IPv4 fragments"
[ "$f6" -ge 40 ] || fail "front door saw only $f6 IPv6 fragments"
ok "front door saw $f4 IPv4 and $f6 IPv6 fragments"

test_leak_check
echo "PASS $TEST_NAME"
