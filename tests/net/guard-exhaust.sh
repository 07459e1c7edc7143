#!/bin/bash
# tests/net/guard-exhaust.sh: alias pool exhaustion and recovery. The IPv4
# pool is one address (192.0.2.1/32) with eight ports, UDP flows expire
# after 3 s. Subscriber 1 opens 12 UDP flows to the echo service: 8 get an
# alias and an echo, the other 4 are refused and counted as
# drops.pool_exhausted (a bounded search, no crash, no busy loop). Once the
# flows time out, new flows get through again. UDP is per-flow here.
#
#  cfr-sub1 --12 UDP flows--> cfr-gw [cfrd: 192.0.2.1 ports 2000-2007] --> cfr-fd echo :7
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

PORTS=8
TRY=12
UDP_TIMEOUT=3

conf=$(mktemp /tmp/cfr-guard-exhaust.XXXXXX)
cat >"$conf" <<EOF
[cfrd]
tun = cfr0
control = $LAB_CTL
[pool]
ipv4 = 192.0.2.1/32
ipv6 = $POOL6
ports = 2000-$((2000 + PORTS - 1))
[subscribers]
prefix = $SUBNET4
prefix = $SUBNET6
[timeouts]
udp = $UDP_TIMEOUT
icmp = 2
[privacy]
# Per-flow aliases for all UDP: a port for every flow, as the count below
# assumes. The built-in endpoint-independent class keeps a mapping's port
# parity, so 12 random source ports may find only 7 of the 8 ports usable.
class = udp 0-65535 per-flow
EOF
test_lab_up 2 --config "$conf"
rm -f "$conf"
# The lab's start-up pings hold ICMP flows (their own outside tuples); let
# them expire so the counts below are about UDP only.
sleep 3

# open_flows N: N UDP sockets (fresh source ports) each send one datagram and
# wait up to 1 s for its echo; prints how many came back.
open_flows() {
	nsx sub1 "$PY" - "$1" <<'PYEOF'
import socket, sys
socks, ok = [], 0
for i in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    s.connect(("203.0.113.10", 7))
    s.send(b"exhaust %d" % i)
    socks.append(s)
for s in socks:
    try:
        s.recv(100)
        ok += 1
    except socket.timeout:
        pass
print(ok)
PYEOF
}

before=$(cfrctl_json)
got=$(open_flows "$TRY")
after=$(cfrctl_json)
get() { echo "$1" | json_get "$2"; }
ex=$(($(get "$after" drops.pool_exhausted) - $(get "$before" drops.pool_exhausted)))
[ "$got" -eq "$PORTS" ] || fail "$got of $TRY flows got an echo; the pool has exactly $PORTS ports"
ok "pool full: $got of $TRY flows translated"
[ "$ex" -ge $((TRY - PORTS)) ] || fail "drops.pool_exhausted grew by $ex, expected >= $((TRY - PORTS))"
ok "refused flows counted: drops.pool_exhausted +$ex"
kill -0 "$(cat "$LAB_RUN/cfrd.pid")" || fail "cfrd died"

# Recovery: after the UDP timeout (plus the expiry tick) the ports are free.
sleep $((UDP_TIMEOUT + 2))
got=$(open_flows 4)
[ "$got" -eq 4 ] || fail "after the timeout only $got of 4 new flows got an echo"
ok "after ${UDP_TIMEOUT}s the pool recovered: 4 of 4 new flows translated"
test_leak_check
