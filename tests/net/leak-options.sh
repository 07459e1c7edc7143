#!/bin/bash
# tests/net/leak-options.sh: IP options and IPv6 extension headers that carry
# addresses never cross cfrd (issue 11). Record Route, Timestamp and the
# source routes fill address slots on the way (a slot written on the access
# side names the subscriber or its line); an IPv6 routing header lists
# addresses, a Home Address option carries a second source.
#   - sub1 runs `ping -R` (Record Route) to the front door: no reply, no
#     packet with options at the front door, drops.ip_options counts them;
#   - the front door sends UDP with Record Route and with Timestamp
#     (addresses) to the alias of sub1's live flow: nothing with options
#     reaches sub1, drops.ip_options counts them;
#   - sub2 sends UDP with a routing header (types 0, 2 and 4, segments left
#     0, so the gateway's kernel only forwards them) and with a Home Address
#     option: drops.routing_hdr and drops.home_address count them, the front
#     door sees none; the front door's own routing header and Home Address
#     to sub2's alias are dropped too.
# Both subscribers' ordinary traffic still works afterwards.
#
#  cfr-sub1 --ping -R--> cfr-gw [cfrd: ip_options]  -x-  cfr-fd
#  cfr-sub1 <-----------  [cfrd: ip_options] <--RR/TS to the alias-- cfr-fd
#  cfr-sub2 --RH / HAO--> cfr-gw [cfrd: routing_hdr, home_address] -x- cfr-fd
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
test_lab_up 2
capture_start sub1 sub1 gw0 || fail "cannot capture on cfr-sub1"
capture_start sub2 sub2 gw0 || fail "cannot capture on cfr-sub2"
drops() { cfrctl_json | json_get "drops.$1"; }
before_opt=$(drops ip_options)
before_rh=$(drops routing_hdr)
before_hao=$(drops home_address)

# Live flows whose aliases the front door aims at.
udp_hold sub1 "$SVC4" opt1-4 8 &
hold1=$!
udp_hold sub2 "$SVC6" opt2-6 8 &
hold2=$!
a4=$(udp_alias opt1-4) || fail "sub1's flow never reached the echo"
a6=$(udp_alias opt2-6) || fail "sub2's flow never reached the echo"
ok "live flows: sub1 IPv4 at ${a4/ /:}, sub2 IPv6 at [${a6% *}]:${a6#* }"

# 1. Record Route from the subscriber.
out=$(nsx sub1 ping -R -n -c 3 -i 0.3 -W 1 "$SVC4" 2>&1) && fail "ping -R got an answer through cfrd: $out"
echo "$out" | grep -q '3 packets transmitted, 0 received' || fail "ping -R: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
ok "sub1: ping -R to $SVC4: 3 sent, none answered"

# 2. Record Route and Timestamp from the front door, and 3. routing headers
# and Home Address both ways.
# shellcheck disable=SC2016
# shellcheck disable=SC2086 # "alias port" twice: four arguments
nsx fd "$PY" - $a4 $a6 <<'PYEOF' || fail "the front door could not send"
import socket, sys, time
from scapy.all import IP, IPv6, UDP, Raw, IPOption_RR, IPOption_Timestamp, IPv6ExtHdrRouting, IPv6ExtHdrSegmentRouting, IPv6ExtHdrDestOpt, HAO
a4, p4, a6, p6 = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for n in range(3):
    for opt in (IPOption_RR(routers=["0.0.0.0"] * 4), IPOption_Timestamp(flg=1, pointer=5)):
        p = IP(src="203.0.113.10", dst=a4, options=[opt]) / UDP(sport=7, dport=p4) / Raw(b"OPTPROBE-IN")
        s4.sendto(bytes(p), (a4, 0))
    for ext in (IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8:f::99"]),
                IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8:f::99")])):
        p = IPv6(src="2001:db8:f::10", dst=a6) / ext / UDP(sport=7, dport=p6) / Raw(b"OPTPROBE-IN")
        s6.sendto(bytes(p), (a6, 0))
    time.sleep(0.2)
PYEOF
# shellcheck disable=SC2016
nsx sub2 "$PY" - <<'PYEOF' || fail "sub2 could not send"
import socket, time
from scapy.all import IPv6, UDP, Raw, IPv6ExtHdrRouting, IPv6ExtHdrSegmentRouting, IPv6ExtHdrDestOpt, HAO
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
exts = [IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8:100:2::2"]),
        IPv6ExtHdrRouting(type=2, segleft=0, addresses=["2001:db8:100:2::2"]),
        IPv6ExtHdrSegmentRouting(segleft=0, lastentry=0, addresses=["2001:db8:f::10"]),
        IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8:100:2::2")])]
for n in range(3):
    for ext in exts:
        p = IPv6(src="2001:db8:100:2::2", dst="2001:db8:f::10") / ext / UDP(sport=40999, dport=7) / Raw(b"OPTPROBE-OUT")
        s6.sendto(bytes(p), ("2001:db8:f::10", 0))
    time.sleep(0.2)
PYEOF
sleep 0.5
ok "sent: 6 IPv4 with Record Route / Timestamp, 6 IPv6 with a routing header / Home Address (inbound), 12 IPv6 with routing headers / Home Address (outbound)"

d_opt=$(($(drops ip_options) - before_opt))
d_rh=$(($(drops routing_hdr) - before_rh))
d_hao=$(($(drops home_address) - before_hao))
# ping -R: 3 requests; the front door: 3 x (RR + TS).
[ "$d_opt" -ge 9 ] || fail "drops.ip_options grew by $d_opt, want >= 9 (3 ping -R, 6 from the front door)"
# Routing headers: 3 inbound + 9 outbound (types 0, 2, 4); Home Address: 3 + 3.
[ "$d_rh" -ge 12 ] || fail "drops.routing_hdr grew by $d_rh, want >= 12"
[ "$d_hao" -ge 6 ] || fail "drops.home_address grew by $d_hao, want >= 6"
ok "cfrctl: drops.ip_options +$d_opt, drops.routing_hdr +$d_rh, drops.home_address +$d_hao"

# Ordinary traffic still flows.
nsx sub1 ping -n -c 2 -i 0.2 -W 2 "$SVC4" >/dev/null || fail "sub1: plain ping failed afterwards"
nsx sub2 ping -6 -n -c 2 -i 0.2 -W 2 "$SVC6" >/dev/null || fail "sub2: plain ping -6 failed afterwards"
ok "plain ping still works from both"
wait "$hold1" "$hold2" || true

for c in "$TEST_NAME" sub1 sub2; do
	capture_stop "$c"
	pcap_tool options "$LAB_RUN/$c.pcap" >"$LAB_RUN/$c.options"
done
# Nothing cfrd sent (a source in the pools) carries options; the front
# door's own probes and the link's MLD reports (hop-by-hop) are not its.
out_opts=$(awk '$2 ~ /^192\.0\.2\./ || $2 ~ /^2001:db8:a1:/' "$LAB_RUN/$TEST_NAME.options")
[ -z "$out_opts" ] || fail "packets with options / extension headers reached the front door: $(echo "$out_opts" | head -n 5 | tr '\n' ';')"
ok "nothing from the pools reached the front door with IPv4 options or IPv6 extension headers"
# The subscribers see their own outgoing probes and the link's MLD reports
# (link-local, hop-by-hop); nothing may arrive from outside.
in_opts=$(awk '$2 !~ /^(100\.64\.|2001:db8:100:|fe80:)/' "$LAB_RUN/sub1.options" "$LAB_RUN/sub2.options")
[ -z "$in_opts" ] || fail "packets with options reached a subscriber: $(echo "$in_opts" | head -n 5 | tr '\n' ';')"
grep -qa OPTPROBE-OUT "$LAB_RUN/$TEST_NAME.pcap" && fail "sub2's routing-header / Home Address probes reached the front door"
grep -qa OPTPROBE-IN "$LAB_RUN/sub1.pcap" "$LAB_RUN/sub2.pcap" && fail "the front door's option probes reached a subscriber"
ok "the subscribers received nothing with options (their own probes aside)"
test_leak_check
echo "PASS $TEST_NAME"
