#!/bin/bash
# tests/net/leak-access-router.sh: ICMP errors from the access side leave in
# alias form, whoever sends them (issue 11).
#   1. A router between the gateway and the subscriber (sub1's CPE, played
#      by scapy in cfr-sub1 from a second address 100.64.1.3 /
#      2001:db8:100:1::3) sends errors about the inbound packet of a live
#      UDP flow: unreachable (host, administratively prohibited), Time
#      Exceeded, Fragmentation Needed / Packet Too Big with MTU 1400. Each
#      must reach the front door from the flow's alias, quoting front door
#      -> alias:port, cut to header + 8 bytes, the MTU kept.
#   2. The subscriber's own port unreachable: the flows' sockets close, the
#      front door sends on. sub1 runs with initial TTL / hop limit 128,
#      sub2 with 64; their errors must arrive with a quote in alias form and
#      one TTL / hop limit whatever the subscriber's: every packet from the
#      pool in the capture (flows and errors) carries one TTL per family.
#
#  cfr-sub1: 100.64.1.3 (CPE) --ICMP about 100.64.1.2's flow--> cfr-gw [cfrd] --> cfr-fd: from the alias
#  cfr-sub1/2: socket closed, port unreachable ----------------> cfr-gw [cfrd] --> cfr-fd: from the alias
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
test_lab_up 2
nsx sub1 sysctl -qw net.ipv4.ip_default_ttl=128 net.ipv6.conf.all.hop_limit=128 \
	net.ipv6.conf.default.hop_limit=128 net.ipv6.conf.gw0.hop_limit=128
for i in 1 2; do
	# Every datagram of the front door gets its port unreachable.
	nsx "sub$i" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
done

# Live UDP flows on known local ports, for 3 s; then their sockets close.
pids=""
for i in 1 2; do
	for f in 4 6; do
		addr=$SVC4
		[ "$f" = 4 ] || addr=$SVC6
		udp_hold "sub$i" "$addr" "ar$i-$f" 3 0 "4000$i" &
		pids="$pids $!"
	done
done
: >"$LAB_RUN/flows"
for i in 1 2; do
	for f in 4 6; do
		a=$(udp_alias "ar$i-$f") || fail "sub$i IPv$f: the flow never reached the echo"
		in_pool "${a% *}" || fail "sub$i IPv$f: flow from ${a% *}, not the pool"
		echo "$i $f $a 4000$i" >>"$LAB_RUN/flows"
	done
done
ok "live UDP flows: $(awk '{printf "sub%s IPv%s %s:%s  ", $1, $2, $3, $4}' "$LAB_RUN/flows")"

# 1. sub1's CPE speaks about the front door's packets to sub1 (flows still
# open). Its addresses come after the flows, deprecated on IPv6, so that
# sub1's own sockets never pick them as their source.
nsx sub1 ip addr add 100.64.1.3/24 dev gw0
nsx sub1 ip addr add 2001:db8:100:1::3/64 dev gw0 nodad preferred_lft 0
# shellcheck disable=SC2016
nsx sub1 "$PY" - <<'PYEOF' || fail "the CPE could not send"
import socket, time
from scapy.all import IP, IPv6, UDP, ICMP, ICMPv6DestUnreach, ICMPv6TimeExceeded, ICMPv6PacketTooBig, Raw
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
q4 = IP(src="203.0.113.10", dst="100.64.1.2", ttl=50) / UDP(sport=7, dport=40001) / Raw(b"front door data " * 4)
q6 = IPv6(src="2001:db8:f::10", dst="2001:db8:100:1::2", hlim=50) / UDP(sport=7, dport=40001) / Raw(b"front door data " * 4)
for icmp in (ICMP(type=3, code=1), ICMP(type=3, code=13), ICMP(type=11, code=0), ICMP(type=3, code=4, nexthopmtu=1400)):
    s4.sendto(bytes(IP(src="100.64.1.3", dst="203.0.113.10") / icmp / q4), ("203.0.113.10", 0))
    time.sleep(0.2)
for icmp in (ICMPv6DestUnreach(code=3), ICMPv6DestUnreach(code=1), ICMPv6TimeExceeded(code=0), ICMPv6PacketTooBig(mtu=1400)):
    s6.sendto(bytes(IPv6(src="2001:db8:100:1::3", dst="2001:db8:f::10") / icmp / q6), ("2001:db8:f::10", 0))
    time.sleep(0.2)
PYEOF
for p in $pids; do wait "$p" || true; done
ok "sub1's CPE sent 4 IPv4 and 4 IPv6 errors about sub1's flows"

# 2. The sockets are closed: the front door sends on, the subscribers answer
# with port unreachables.
# shellcheck disable=SC2016
nsx fd "$PY" - "$LAB_RUN/flows" <<'PYEOF' || fail "front door could not send"
import socket, sys, time
from scapy.all import IP, IPv6, UDP, Raw
flows = [l.split() for l in open(sys.argv[1])]
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for n in range(3):
    for sub, fam, alias, port, _ in flows:
        if fam == "6":
            s6.sendto(bytes(IPv6(src="2001:db8:f::10", dst=alias) / UDP(sport=7, dport=int(port)) / Raw(b"late %d" % n)), (alias, 0))
        else:
            s4.sendto(bytes(IP(src="203.0.113.10", dst=alias) / UDP(sport=7, dport=int(port)) / Raw(b"late %d" % n)), (alias, 0))
    time.sleep(0.3)
PYEOF
sleep 0.5
ok "the front door sent 3 datagrams to each closed flow"

capture_stop "$TEST_NAME"
pcap_tool errors "$LAB_RUN/$TEST_NAME.pcap" >"$LAB_RUN/errors"
pcap_tool ttls "$LAB_RUN/$TEST_NAME.pcap" >"$LAB_RUN/ttls"
# fam src dst type code mtu ttl qproto qsrc qsport qdst qdport qlen
# shellcheck disable=SC2016
"$PY" - "$LAB_RUN/flows" "$LAB_RUN/errors" "$LAB_RUN/ttls" "$POOL4" "$POOL6" <<'PYEOF' || fail "errors from the access side in the wrong form (above)"
import ipaddress, sys
flows = {(l.split()[0], l.split()[1]): l.split()[2:4] for l in open(sys.argv[1])}
errs = [l.split() for l in open(sys.argv[2])]
pools = [ipaddress.ip_network(n) for n in sys.argv[4:6]]
svc = {"4": "203.0.113.10", "6": "2001:db8:f::10"}
bad = 0
def about(sub, fam):
    alias, port = flows[(sub, fam)]
    return [e for e in errs if e[0] == fam and e[2] == svc[fam] and e[10] == alias and e[11] == port]
def check(sub, fam, kinds, what):
    global bad
    alias, port = flows[(sub, fam)]
    mine = about(sub, fam)
    hdr = 20 if fam == "4" else 40
    for t, c, mtu in kinds:
        got = [e for e in mine if e[3] == t and e[4] == c]
        if not got:
            print("sub%s IPv%s: no %s type %s code %s reached the front door" % (sub, fam, what, t, c))
            bad += 1
        for e in got:
            if e[1] != alias or e[8] != svc[fam] or e[9] != "7" or int(e[12]) != hdr + 8 or (mtu and e[5] != mtu):
                print("sub%s IPv%s: %s not in alias form (want from %s, quoting %s:7 -> %s:%s, %d bytes%s): %s"
                      % (sub, fam, what, alias, svc[fam], alias, port, hdr + 8, ", mtu " + mtu if mtu else "", " ".join(e)))
                bad += 1
        print("sub%s IPv%s: %d x %s type %s code %s from %s, quoting %s:%s" % (sub, fam, len(got), what, t, c, alias, alias, port))
cpe4 = [("3", "1", ""), ("3", "13", ""), ("11", "0", ""), ("3", "4", "1400")]
cpe6 = [("1", "3", ""), ("1", "1", ""), ("3", "0", ""), ("2", "0", "1400")]
check("1", "4", cpe4, "CPE error")
check("1", "6", cpe6, "CPE error")
for sub in ("1", "2"):
    check(sub, "4", [("3", "3", "")], "port unreachable")
    check(sub, "6", [("1", "4", "")], "port unreachable")
# One TTL / hop limit per family for everything from the pool: the flows of
# the TTL-128 and the TTL-64 subscriber, the CPE's errors and their own.
for fam in ("4", "6"):
    ttls = {}
    for fam_, proto, src, dst, ttl in (l.split() for l in open(sys.argv[3])):
        if fam_ == fam and any(ipaddress.ip_address(src) in n for n in pools):
            ttls.setdefault(ttl, set()).add(proto)
    print("IPv%s from the pool: TTL/hop limit -> protocols %s" % (fam, ttls))
    if len(ttls) != 1:
        print("IPv%s: %d different TTL/hop limit values from the pool (subscribers with 64 and 128 must look alike)" % (fam, len(ttls)))
        bad += 1
sys.exit(1 if bad else 0)
PYEOF
ok "CPE errors and the subscribers' port unreachables arrive from the alias, quoting the alias, one TTL per family"
test_leak_check
echo "PASS $TEST_NAME"
