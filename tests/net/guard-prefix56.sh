#!/bin/bash
# tests/net/guard-prefix56.sh: an IPv6 customer is its delegated prefix, not
# a /64 of it (issue 12). cfrd runs with subscriber-prefix6 = 56 and
# udp-per-subscriber = 4; subscriber 1's line is also delegated the /56
# 2001:db8:100:100::/56, and it sends UDP to the front door's echo from
# eight different /64s of it. Only four flows may pass: one customer, one
# set of limits, whichever /64 it uses. Another customer (subscriber 2)
# still gets its flows.
#
#  cfr-sub1 2001:db8:100:1NN::2 (NN = 00..07) --> cfr-gw [cfrd /56: 4 UDP] --> cfr-fd echo
#  cfr-sub2 2001:db8:100:2::2 -------------------> cfr-gw --------------------> cfr-fd echo
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

conf=$(mktemp /tmp/cfr-prefix56.XXXXXX)
{
	lab_config | sed 's/^subscriber-prefix6 = 64$/subscriber-prefix6 = 56/'
	printf '[limits]\nudp-per-subscriber = 4\n'
} >"$conf"
grep -q '^subscriber-prefix6 = 56$' "$conf" || fail "lab config has no subscriber-prefix6 to change"
test_lab_up 2 --config "$conf"
rm -f "$conf"

# The delegated /56 behind subscriber 1's line.
nsx gw ip -6 route add 2001:db8:100:100::/56 via 2001:db8:100:1::2 dev sub1
for nn in 00 01 02 03 04 05 06 07; do
	nsx sub1 ip -6 addr add "2001:db8:100:1$nn::2/128" dev gw0 nodad
done

# udp_from NS SRC...: one datagram to the echo from each source; prints how many came back.
# shellcheck disable=SC2016
ECHO_PY='
import socket, sys
ok = 0
for src in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(1.5)
    s.sendto(b"prefix56", ("2001:db8:f::10", 7))
    try:
        ok += s.recv(100) == b"prefix56"
    except socket.timeout:
        pass
print(ok)
'
got=$(nsx sub1 "$PY" -c "$ECHO_PY" 2001:db8:100:100::2 2001:db8:100:101::2 2001:db8:100:102::2 \
	2001:db8:100:103::2 2001:db8:100:104::2 2001:db8:100:105::2 2001:db8:100:106::2 \
	2001:db8:100:107::2)
[ "$got" = 4 ] || fail "$got of 8 flows from eight /64s of one /56 got through, want 4"
ok "8 flows from eight /64s of one /56: 4 through, as for one subscriber"
limited=$(cfrctl_json | json_get drops.subscriber_flow_limit)
[ "${limited:-0}" -ge 4 ] || fail "drops.subscriber_flow_limit is ${limited:-none}, want >= 4"
ok "cfrd counted $limited subscriber_flow_limit drops"
got=$(nsx sub2 "$PY" -c "$ECHO_PY" 2001:db8:100:2::2)
[ "$got" = 1 ] || fail "another customer's flow was refused too"
ok "another customer still gets its flow"
test_leak_check
echo "PASS $TEST_NAME"
