#!/bin/bash
# tests/net/stats.sh: cfrctl's JSON counters are valid and move with traffic;
# packets from an unauthorised source (spoofed with scapy from a subscriber,
# IPv4 10.9.9.9 and IPv6 2001:db8:9::9) are counted as
# drops.unauthorised_source and never reach the front door.
#
#  cfr-sub1 --(src 10.9.9.9 / 2001:db8:9::9, spoofed)--> cfr-gw [cfrd: drop] -X-> cfr-fd
#  cfr-sub1 --(ping, UDP)-------------------------------> cfr-gw [cfrd] -------> cfr-fd
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
# source-check = external: the guard table's source check would drop the
# spoofed packets in the kernel before cfrd counts them (that path has its
# own test, guard-spoof-default.sh); here cfrd's own counter is the point.
test_lab_config_up 1 "$(printf '[cfrd]\nsource-check = external')"
capture_start "$TEST_NAME" || fail "cannot capture on cfr-fd"

before=$(cfrctl_json) || fail "cfrctl --json stats failed"
echo "$before" | "$PY" -c 'import json, sys; json.load(sys.stdin)' || fail "cfrctl JSON does not parse"
for key in packets.rx.out packets.rx.in packets.tx.out packets.tx.in drops.total \
	drops.unauthorised_source flows.active flows.created; do
	v=$(echo "$before" | json_get "$key") || fail "cfrctl JSON has no $key"
	case $v in '' | *[!0-9]*) fail "$key is not a count: $v" ;; esac
done
ok "cfrctl --json stats parses, counters present"

nsx sub1 ping -n -c 3 -i 0.2 -W 2 "$SVC4" >/dev/null || fail "ping $SVC4 failed"
nsx sub1 ping -6 -n -c 3 -i 0.2 -W 2 "$SVC6" >/dev/null || fail "ping $SVC6 failed"
udp_roundtrip sub1 "$SVC4" 100 3 fresh >/dev/null || fail "UDP echo failed"
udp_roundtrip sub1 "$SVC6" 100 3 fresh >/dev/null || fail "UDP echo failed"

# 5 spoofed UDP datagrams per family, built by scapy, sent on a raw socket
# (header included) so the kernel routes them to the gateway untouched.
nsx sub1 "$PY" - <<'PYEOF' || fail "could not send spoofed packets"
import socket
from scapy.all import IP, IPv6, UDP, Raw
for i in range(5):
    p4 = IP(src="10.9.9.9", dst="203.0.113.10") / UDP(sport=40000 + i, dport=7) / Raw(b"spoofed v4")
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(bytes(p4), ("203.0.113.10", 0))
    p6 = IPv6(src="2001:db8:9::9", dst="2001:db8:f::10") / UDP(sport=40000 + i, dport=7) / Raw(b"spoofed v6")
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s6.sendto(bytes(p6), ("2001:db8:f::10", 0))
PYEOF
sleep 0.5

after=$(cfrctl_json) || fail "cfrctl --json stats failed"
get() { echo "$1" | json_get "$2"; }
created=$(get "$after" flows.created)
[ "$created" -gt 0 ] || fail "flows.created is $created after traffic"
ok "flows.created $created, flows.active $(get "$after" flows.active)"
for key in packets.rx.out packets.tx.out packets.rx.in packets.tx.in; do
	[ "$(get "$after" "$key")" -gt "$(get "$before" "$key")" ] || fail "$key did not grow with traffic"
done
ok "packet counters grew"
for key in bytes.rx.out bytes.tx.out bytes.rx.in bytes.tx.in; do
	[ "$(get "$after" "$key")" -gt "$(get "$before" "$key")" ] || fail "$key did not grow with traffic"
done
ok "byte counters grew"
# The figures built after the engine lock is released (issue 13) agree with
# each other and with the lab's configuration (pool 192.0.2.0/26).
echo "$after" | "$PY" -c '
import json, sys
s = json.load(sys.stdin)
def need(cond, what):
    if not cond:
        sys.exit("stats inconsistent: " + what)
for d in ("out", "in"):
    need(s["bytes"]["tx"][d] >= 20 * s["packets"]["tx"][d], "fewer than 20 bytes per packet sent " + d)
    need(s["bytes"]["rx"][d] >= s["bytes"]["tx"][d] - 40 * s["packets"]["tx"][d], "bytes " + d)
for fam in ("ipv4", "ipv6"):
    a = s["anonymity"][fam]
    need(sum(a["histogram"]) == a["aliases_in_use"], fam + " histogram does not sum to aliases_in_use")
    if a["aliases_in_use"]:
        need(1 <= a["min"] <= a["p5"] <= a["median"] <= a["max"], fam + " quantiles out of order")
need(s["anonymity"]["ipv4"]["aliases_in_use"] >= 1, "no IPv4 alias in use after UDP traffic")
p4 = s["pools"]["ipv4"]
need(p4["prefixes"] == 1 and p4["prefixes_draining"] == 0 and p4["addresses"] == 64, "pools.ipv4 %r" % p4)
need(p4["ports"] % 64 == 0 and p4["ports"] > 0, "pools.ipv4.ports %r" % p4["ports"])
need(s["anonymity"]["ipv4"]["aliases_in_use"] <= p4["addresses"], "more aliases in use than addresses")
need(s["pools"]["ipv6"]["prefixes"] == 1, "pools.ipv6 %r" % s["pools"]["ipv6"])
pr = s["privacy"]
need(0 < pr["epoch_length_s"] and pr["epoch_age_s"] <= pr["epoch_length_s"], "epoch age %r" % pr)
need(pr["epoch_age_s"] <= s["uptime_s"], "epoch older than cfrd")
' || fail "stats figures disagree"
ok "bytes, anonymity figures, pools and epoch age consistent"
d0=$(get "$before" drops.unauthorised_source)
d1=$(get "$after" drops.unauthorised_source)
[ $((d1 - d0)) -ge 10 ] || fail "drops.unauthorised_source went $d0 -> $d1 after 10 spoofed packets"
t0=$(get "$before" drops.total)
t1=$(get "$after" drops.total)
[ $((t1 - t0)) -ge $((d1 - d0)) ] || fail "drops.total ($t0 -> $t1) does not include unauthorised drops"
ok "drops.unauthorised_source $d0 -> $d1, drops.total $t0 -> $t1"

capture_stop "$TEST_NAME"
spoofed=$(pcap_tool flows "$LAB_RUN/$TEST_NAME.pcap" | awk '$3 == "10.9.9.9" || $3 == "2001:db8:9::9"' | wc -l)
[ "$spoofed" = 0 ] || fail "front door received $spoofed spoofed packets"
ok "no spoofed packet reached the front door"
test_leak_check
echo "PASS $TEST_NAME"
