#!/bin/bash
# tests/net/leak-ttl.sh: inbound TTL / hop-limit probes never name a
# subscriber (issue 11). The front door sends crafted packets with TTL 1..5
# to the alias and port of live flows: a TCP download (curl, rate-limited so
# it stays open) and a UDP flow, IPv4 and IPv6. TTL 1 expires in the
# gateway's forwarding before cfrd (an ordinary router's Time Exceeded from
# the gateway's upstream address); TTL 2 expires on the hop after cfrd, where
# the gateway's kernel speaks about the restored packet. That error must
# reach the front door only in alias form: sent by the alias, quoting
# front door -> alias:port, quote cut to header + 8 bytes. Every Time
# Exceeded the front door gets comes from the pool or 198.51.100.1 /
# 2001:db8:ffff::1 and quotes the alias and its port.
#
#  cfr-fd --TTL 1..5--> fd0 [fwd -1] cfr0 -> cfrd -> cfr0 [fwd -1] sub1/sub2 --> cfr-subI
#     ^                  |TTL 1: TE from 198.51.100.1   |TTL 2: TE (mark 0xcf) -> cfr0 -> cfrd
#     +------------------+---------------------------------- TE from the alias, quoting the alias
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
test_lab_up 2
# The kernel answers each expired probe, not one per second (NOTES.md).
nsx gw sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0

# PROBE_PY ALIAS PORT PROTO SVC-PORT: TTL / hop limit 1..5, 0.3 s apart.
# TCP probes are bare ACKs far outside the window (the subscriber answers
# with a challenge ACK at most; the download goes on).
# shellcheck disable=SC2016
PROBE_PY='
import socket, sys, time
from scapy.all import IP, IPv6, TCP, UDP, Raw
alias, port, proto, sport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
v6 = ":" in alias
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for ttl in range(1, 6):
    ip = IPv6(src="2001:db8:f::10", dst=alias, hlim=ttl) if v6 else IP(src="203.0.113.10", dst=alias, ttl=ttl)
    if proto == "tcp":
        l4 = TCP(sport=sport, dport=port, flags="A", seq=0x10000000 * ttl, ack=0x7000) / Raw(b"ttl-probe-%d" % ttl)
    else:
        l4 = UDP(sport=sport, dport=port) / Raw(b"ttl-probe-%d" % ttl)
    s.sendto(bytes(ip / l4), (alias, 0))
    time.sleep(0.3)
'

# Live flows: IPv4 from sub1, IPv6 from sub2, each a download and a UDP flow.
for f in 4 6; do
	i=$((f == 4 ? 1 : 2))
	host=$SVC4
	[ "$f" = 4 ] || host="[$SVC6]"
	# Its result is kept, so a download that ends early says how (twice in some fifty runs).
	(
		nsx "sub$i" curl -sS -w '%{http_code} %{size_download} bytes in %{time_total} s\n' \
			--max-time 40 --limit-rate 64k --cacert "$LAB_RUN/fd.crt" \
			-o /dev/null "https://$host/big.bin" 9<&-
		echo "curl exit $?"
	) >"$LAB_RUN/curl$f.out" 2>&1 &
	echo $! >"$LAB_RUN/curl$f.pid"
	udp_hold "sub$i" "${host//[\[\]]/}" "ttl-udp$f" 40 &
	echo $! >"$LAB_RUN/udp$f.pid"
done

probes=0
for f in 4 6; do
	if [ "$f" = 4 ]; then svc=$SVC4 gw_up=198.51.100.1; else svc=$SVC6 gw_up=2001:db8:ffff::1; fi
	t=$(tcp_alias "$f" 443) || fail "IPv$f: no live TCP connection at the front door"
	u=$(udp_alias "ttl-udp$f") || fail "IPv$f: the UDP flow never reached the echo"
	read -r ta tp <<<"$t"
	read -r ua up <<<"$u"
	{ in_pool "$ta" && in_pool "$ua"; } || fail "IPv$f: flows come from $ta and $ua, not the pool"
	say "IPv$f: TCP flow at $ta port $tp, UDP flow at $ua port $up"
	nsx fd "$PY" -c "$PROBE_PY" "$ta" "$tp" tcp 443 || fail "IPv$f: TCP probes failed"
	nsx fd "$PY" -c "$PROBE_PY" "$ua" "$up" udp 7 || fail "IPv$f: UDP probes failed"
	probes=$((probes + 10))
	echo "$f $svc $gw_up $ta $tp 6 $ua $up 17" >>"$LAB_RUN/probed"
done
sleep 0.5
for f in 4 6; do
	alive "$(cat "$LAB_RUN/curl$f.pid")" ||
		fail "IPv$f: the download ended during the probes (it must stay open): $(tr '\n' ' ' <"$LAB_RUN/curl$f.out")"
	stop_pid TERM "$(cat "$LAB_RUN/curl$f.pid")" 20
	stop_pid TERM "$(cat "$LAB_RUN/udp$f.pid")" 20
done
ok "$probes probes sent while both flows of each family stayed open"

capture_stop "$TEST_NAME"
pcap_tool errors "$LAB_RUN/$TEST_NAME.pcap" >"$LAB_RUN/errors"
# shellcheck disable=SC2016
"$PY" - "$LAB_RUN/probed" "$LAB_RUN/errors" "$POOL4" "$POOL6" <<'PYEOF' || fail "Time Exceeded in the wrong form (above)"
import ipaddress, sys
pools = [ipaddress.ip_network(n) for n in sys.argv[3:5]]
bad = 0
for line in open(sys.argv[1]):
    f, svc, gw_up, ta, tp, _, ua, up, _ = line.split()
    targets = {(ta, tp, "6"), (ua, up, "17")}
    te = [e.split() for e in open(sys.argv[2])]
    # fam src dst type code mtu ttl qproto qsrc qsport qdst qdport qlen
    te = [e for e in te if e[0] == f and e[2] == svc and e[3] == ("11" if f == "4" else "3")]
    hdr = 20 if f == "4" else 40
    for alias, port, proto in sorted(targets):
        mine = [e for e in te if e[10] == alias and e[11] == port and e[7] == proto]
        from_alias = [e for e in mine if e[1] == alias]
        from_gw = [e for e in mine if e[1] == gw_up]
        print("IPv%s proto %s: %d Time Exceeded about %s port %s (%d from the alias, %d from %s)"
              % (f, proto, len(mine), alias, port, len(from_alias), len(from_gw), gw_up))
        if not from_alias:
            print("  no Time Exceeded from the alias: the hop after cfrd (TTL 2) went unanswered or was dropped")
            bad += 1
        if not from_gw:
            print("  no Time Exceeded from %s for TTL 1" % gw_up)
            bad += 1
        for e in from_alias:
            if int(e[12]) != hdr + 8 or e[8] != svc:
                print("  alias-form error quotes %s bytes from %s (want %d from %s): %s" % (e[12], e[8], hdr + 8, svc, " ".join(e)))
                bad += 1
    for e in te:
        src = ipaddress.ip_address(e[1])
        if not (e[1] == gw_up or any(src in n for n in pools)):
            print("  Time Exceeded from %s (not the pool, not %s): %s" % (e[1], gw_up, " ".join(e)))
            bad += 1
        if (e[10], e[11], e[7]) not in targets:
            print("  Time Exceeded quoting %s port %s proto %s (not a probed alias): %s" % (e[10], e[11], e[7], " ".join(e)))
            bad += 1
sys.exit(1 if bad else 0)
PYEOF
ok "every Time Exceeded at the front door comes from the alias or the gateway's upstream address and quotes the alias and port"
test_leak_check
echo "PASS $TEST_NAME"
