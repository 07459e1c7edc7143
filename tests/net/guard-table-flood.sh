#!/bin/bash
# tests/net/guard-table-flood.sh: a flood of subscribers that come and go
# does not lock a genuine one out until the epoch ends (issue 12). cfrd runs
# with max-subscribers = 64, a 3 s UDP timeout and the default 600 s epoch.
# Subscriber 1 sends one UDP datagram from each of 200 addresses of its own
# /24 (each address an IPv4 subscriber): 64 fill the table, the rest are
# refused. Subscriber 2 is refused too while those flows live; once they
# expired (a few seconds, not the epoch) it is served again, and the
# subscribers it displaced are sealed early (their records are written, so
# their flows stay attributable).
#
#  cfr-sub1 100.64.1.10-209 --(200 "subscribers")--> cfr-gw [cfrd: 64 slots] --> cfr-fd
#  cfr-sub2 100.64.2.2 ------(one genuine flow)-----> cfr-gw ------------------> cfr-fd
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
conf=$(mktemp /tmp/cfr-table-flood.XXXXXX)
{
	lab_config | sed 's/^udp = 300$/udp = 3/'
	printf '[limits]\nmax-subscribers = 64\n'
} >"$conf"
grep -q '^udp = 3$' "$conf" || fail "lab config has no udp timeout to change"
test_lab_up 2 --config "$conf"
rm -f "$conf"

nsx sub1 "$PY" - <<'PYEOF' || fail "flood failed"
import socket
from scapy.all import IP, UDP, Raw
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(10, 210):
    p = IP(src="100.64.1.%d" % i, dst="203.0.113.10") / UDP(sport=43000, dport=7) / Raw(b"FLOOD")
    s.sendto(bytes(p), ("203.0.113.10", 0))
PYEOF
full=$(cfrctl_json | json_get drops.subscriber_table_full)
[ "${full:-0}" -ge 100 ] || fail "drops.subscriber_table_full is ${full:-none}, want >= 100 of 200"
ok "200 sources from sub1's /24: $full refused with the table full"

if udp_roundtrip sub2 "$SVC4" 32 1 >/dev/null 2>&1; then
	fail "sub2 was served while the table was full of live flows"
fi
ok "sub2 refused while 64 flows live (subscriber_table_full)"

start=$(date +%s)
until udp_roundtrip sub2 "$SVC4" 32 1 >/dev/null 2>&1; do
	[ $(($(date +%s) - start)) -lt 15 ] || fail "sub2 still refused 15 s later (the epoch is 600 s)"
done
waited=$(($(date +%s) - start))
ok "sub2 served again after ${waited} s, in the same epoch"
json=$(cfrctl_json)
[ "$(echo "$json" | json_get privacy.epoch)" = 1 ] || fail "the epoch changed: the test proves nothing"
early=$(echo "$json" | json_get subscribers_sealed_early)
[ "${early:-0}" -ge 1 ] || fail "subscribers_sealed_early is ${early:-none}"
ok "$early displaced subscribers sealed early (records kept)"
test_leak_check
echo "PASS $TEST_NAME"
