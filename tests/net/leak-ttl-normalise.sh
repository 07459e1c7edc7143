#!/bin/bash
# tests/net/leak-ttl-normalise.sh: one TTL and one hop limit at the front
# door, whatever the subscriber's operating system and however far it sits
# behind the gateway (issue 11), with the default configuration (no ttl-cap
# in the config). Three subscribers start at 64 (Linux, macOS), 128 (Windows)
# and 255 (network gear); each is put 0, 1, 2 and 3 hops behind the gateway
# by lowering its initial TTL / hop limit by the hop count (what a home
# router in between would do), and sends HTTPS, UDP echo and ping in both
# families at each distance, then gets its port unreachable sent for a
# closed flow. Every packet from the pool at the front door must carry the
# same TTL (IPv4) and the same hop limit (IPv6).
#
# Traceroute from a subscriber keeps working (a TTL is never raised): TTL /
# hop limit 1, 2 and 3 toward the front door get Time Exceeded from the
# gateway's access address, then from the gateway's upstream side (the hop
# after cfrd, translated back to the subscriber), then the front door's port
# unreachable; with scapy (each answer matched to its probe by the quote),
# and with traceroute / tracepath when installed.
#
#  cfr-subI (64/128/255 - hops) --> cfr-gw: fwd -1, cfrd caps (ttl-cap 56), fwd -1 --> cfr-fd: one value
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
test_lab_up 3

# set_ttl NS VALUE: the namespace's initial TTL and hop limit.
set_ttl() {
	nsx "$1" sysctl -qw "net.ipv4.ip_default_ttl=$2" "net.ipv6.conf.all.hop_limit=$2" \
		"net.ipv6.conf.default.hop_limit=$2" "net.ipv6.conf.gw0.hop_limit=$2"
}

# traffic NS TAG: HTTPS, UDP echo and ping from cfr-NS, both families.
traffic() {
	local ns=$1 code host
	for host in "$SVC4" "[$SVC6]"; do
		code=$(nsx "$ns" curl -sS --max-time 10 --cacert "$LAB_RUN/fd.crt" -o /dev/null \
			-w '%{http_code}' "https://$host/?test=$TEST_NAME&tag=$2" 2>&1) || fail "$ns ($2): curl $host: $code"
		[ "$code" = 200 ] || fail "$ns ($2): curl $host: HTTP $code"
	done
	udp_roundtrip "$ns" "$SVC4" 64 2 >/dev/null || fail "$ns ($2): UDP echo (IPv4) failed"
	udp_roundtrip "$ns" "$SVC6" 64 2 >/dev/null || fail "$ns ($2): UDP echo (IPv6) failed"
	nsx "$ns" ping -n -q -c 2 -i 0.2 -W 2 "$SVC4" >/dev/null || fail "$ns ($2): ping $SVC4 failed"
	nsx "$ns" ping -6 -n -q -c 2 -i 0.2 -W 2 "$SVC6" >/dev/null || fail "$ns ($2): ping $SVC6 failed"
}

i=0
for os in 64 128 255; do
	i=$((i + 1))
	for hops in 0 1 2 3; do
		set_ttl "sub$i" $((os - hops))
		traffic "sub$i" "os$os-hops$hops"
	done
	# A closed flow: the subscriber's kernel sends the port unreachable.
	nsx "sub$i" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
	for f in 4 6; do
		addr=$SVC4
		[ "$f" = 4 ] || addr=$SVC6
		udp_hold "sub$i" "$addr" "norm$i-$f" 0.5
		a=$(udp_alias "norm$i-$f") || fail "sub$i IPv$f: the flow never reached the echo"
		echo "$a" >>"$LAB_RUN/closed"
	done
	ok "sub$i: initial TTL $os, 0..3 hops: HTTPS, UDP, ping in both families"
done
# shellcheck disable=SC2016
nsx fd "$PY" - "$LAB_RUN/closed" <<'PYEOF' || fail "front door could not send"
import socket, sys, time
from scapy.all import IP, IPv6, UDP, Raw
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
for alias, port in (l.split() for l in open(sys.argv[1])):
    if ":" in alias:
        s6.sendto(bytes(IPv6(src="2001:db8:f::10", dst=alias) / UDP(sport=7, dport=int(port)) / Raw(b"closed")), (alias, 0))
    else:
        s4.sendto(bytes(IP(src="203.0.113.10", dst=alias) / UDP(sport=7, dport=int(port)) / Raw(b"closed")), (alias, 0))
PYEOF
sleep 0.5

capture_stop "$TEST_NAME"
pcap_tool ttls "$LAB_RUN/$TEST_NAME.pcap" >"$LAB_RUN/ttls"
pcap_tool errors "$LAB_RUN/$TEST_NAME.pcap" >"$LAB_RUN/errors"
unreach=$(awk -v a="$SVC4" -v b="$SVC6" '$3 == a && $4 == 3 && $5 == 3 || $3 == b && $4 == 1 && $5 == 4' "$LAB_RUN/errors" | wc -l)
[ "$unreach" -ge 6 ] || fail "the front door got $unreach port unreachables for the 6 closed flows"
# shellcheck disable=SC2016
"$PY" - "$LAB_RUN/ttls" "$POOL4" "$POOL6" <<'PYEOF' || fail "the front door can tell the subscribers apart by TTL / hop limit (above)"
import ipaddress, sys
pools = [ipaddress.ip_network(n) for n in sys.argv[2:4]]
bad = 0
for fam in ("4", "6"):
    seen = {}
    for f, proto, src, dst, ttl in (l.split() for l in open(sys.argv[1])):
        if f == fam and any(ipaddress.ip_address(src) in n for n in pools):
            seen.setdefault(ttl, {}).setdefault(proto, 0)
            seen[ttl][proto] += 1
    print("IPv%s from the pool: TTL/hop limit -> {protocol: packets}: %s" % (fam, seen))
    n = sum(sum(v.values()) for v in seen.values())
    if len(seen) != 1 or n < 100:
        print("IPv%s: want one value over at least 100 packets, got %d values over %d" % (fam, len(seen), n))
        bad += 1
sys.exit(1 if bad else 0)
PYEOF
ok "initial TTL 64, 128, 255 at 0..3 hops, $unreach port unreachables included: one TTL and one hop limit at the front door"
pcap_tool leaks "$LAB_RUN/$TEST_NAME.pcap" || fail "front-door capture check failed"
ok "front door saw no subscriber address"

# Traceroute from sub1 (back at the Linux default), through a fresh capture.
set_ttl sub1 64
capture_start trace || fail "cannot capture on cfr-fd"
# shellcheck disable=SC2016
nsx sub1 "$PY" - <<'PYEOF' || fail "traceroute with scapy: answers missing or wrong (above)"
import sys
from scapy.all import IP, IPv6, UDP, ICMP, sr, conf
conf.verb = 0
bad = 0
for fam, svc in (("4", "203.0.113.10"), ("6", "2001:db8:f::10")):
    # One source port per hop, so every answer names its probe (the quote):
    # with one port for all, scapy may pair an answer with the wrong probe.
    probes = [(IP(dst=svc, ttl=t) if fam == "4" else IPv6(dst=svc, hlim=t)) /
              UDP(sport=40120 + t, dport=33434) for t in (1, 2, 3)]
    ans, unans = sr(probes, timeout=3, retry=1)
    hops = {}
    for snd, rcv in ans:
        ttl = snd.ttl if fam == "4" else snd.hlim
        l4 = rcv.payload
        hops[ttl] = (rcv.src, l4.type, l4.code)
    print("IPv%s traceroute from sub1: %s" % (fam, " | ".join("%d: %s type %d code %d" % ((t,) + hops[t]) for t in sorted(hops))))
    te = 11 if fam == "4" else 3
    unreach = (3, 3) if fam == "4" else (1, 4)
    gw = "100.64.1.1" if fam == "4" else "2001:db8:100:1::1"
    if hops.get(1, (None, None))[:2] != (gw, te):
        print("  hop 1: want Time Exceeded from %s" % gw); bad += 1
    if 2 not in hops or hops[2][1] != te:
        print("  hop 2: want Time Exceeded (the hop after cfrd)"); bad += 1
    if hops.get(3) != (svc,) + unreach:
        print("  hop 3: want the port unreachable from %s" % svc); bad += 1
sys.exit(1 if bad else 0)
PYEOF
ok "scapy traceroute from sub1, both families: Time Exceeded at hops 1 and 2, the front door at hop 3"
if command -v traceroute >/dev/null 2>&1; then
	for f in 4 6; do
		dst=$SVC4
		[ "$f" = 4 ] || dst=$SVC6
		out=$(nsx sub1 timeout 30 traceroute "-$f" -n -q 1 -w 2 -m 5 "$dst" 2>&1) || fail "traceroute -$f: $out"
		hops=$(echo "$out" | awk 'NR > 1 && $2 != "*" {n++} END {print n + 0}')
		last=$(echo "$out" | awk 'NR > 1 {h = $1; a = $2} END {print h, a}')
		if [ "$hops" != 3 ] || [ "$last" != "3 $dst" ]; then
			fail "traceroute -$f: want 3 answering hops ending at $dst: $(echo "$out" | tr '\n' ';')"
		fi
		ok "traceroute -$f: $(echo "$out" | awk 'NR > 1 {printf "%s %s; ", $1, $2}')"
	done
else
	say "traceroute not installed: scapy probes only"
fi
if command -v tracepath >/dev/null 2>&1; then
	for f in 4 6; do
		dst=$SVC4
		[ "$f" = 4 ] || dst=$SVC6
		out=$(nsx sub1 timeout 30 tracepath "-$f" -n -m 5 "$dst" 2>&1) || fail "tracepath -$f: $out"
		echo "$out" | grep -q "Resume: pmtu [0-9]* hops 3 back" || fail "tracepath -$f: want 3 hops: $(echo "$out" | tr '\n' ';')"
		ok "tracepath -$f: $(echo "$out" | grep Resume)"
	done
fi
capture_stop trace
pcap_tool leaks "$LAB_RUN/trace.pcap" || fail "front-door capture (traceroute) check failed"
ok "front door saw no subscriber address during the traceroutes"
echo "PASS $TEST_NAME"
