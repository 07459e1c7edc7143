#!/bin/bash
# tests/net/leak-pmtu-access.sh: path MTU discovery toward a subscriber whose
# access line is smaller than the front door's path (issue 11: PPPoE and
# DS-Lite lines run below 1500). The gateway's veth to sub2 drops to 1280;
# sub2 itself and every other link stay at 1500. Downloads from the front
# door to sub2 only complete if the gateway's Fragmentation Needed / Packet
# Too Big, raised by its kernel on the hop after cfrd and so about the
# restored packet, reaches the front door in alias form: sent by the alias,
# quoting front door -> alias, MTU 1280. Both families:
#   - TCP: an 8 MiB HTTPS download (nginx, DF set), byte for byte;
#   - UDP: 6 MB downloads of 1400-byte datagrams (a small Python server and
#     client; lost datagrams are asked for again), twice: by a server that
#     sets DF and shrinks its datagrams to the MTU the kernel learned, and by
#     an ordinary server whose kernel fragments them once it knows the path
#     MTU (DF is the kernel's default on IPv4; IPv6 routers never fragment).
#     Either way the data arrives only through a usable Frag Needed / Packet
#     Too Big; the front door's route cache must show mtu 1280 for an alias.
#     (iperf3 -u cannot do this: its connected socket takes the ICMP error
#     as a hard EMSGSIZE and the transfer aborts, with or without cfr.)
# And on the line itself (captured in cfr-sub2) no frame is larger than
# 1280: a path that sent past the line's MTU would only seem to work in the
# lab, whose veth takes any frame; a real line loses it, and the remote
# never hears why.
#
#  cfr-fd ==1500==> fd0 cfr-gw [fwd] cfr0 -> cfrd -> cfr0 [fwd] sub2 (mtu 1280) --> cfr-sub2 (1500)
#     ^                                                   | too big: ICMP (mark 0xcf)
#     +---- Frag Needed / PTB mtu 1280, from the alias <-- cfr0 <- cfrd <---+
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

test_requires cmp ethtool
test_lab_up 2

nsx gw ip link set sub2 mtu 1280
# With the AF_XDP fast path, cfrd reads its ports' MTUs twice a second
# (cfrd(8)): give it that long to see the line's new one.
sleep 1
# What really crossed sub2's line (the gateway's own ports do not show
# frames a fast path redirects): nothing above the line's MTU. Segmentation
# offload off on the gateway's end, so the capture sees frames as a wire
# would carry them, not the stack's 64 KB super-packets.
nsx gw ethtool -K sub2 tso off gso off >/dev/null 2>&1 || true
capture_start line sub2 gw0 || fail "cannot capture on cfr-sub2"

# UDPDL_PY serve-frag|serve-df ADDR PORT | fetch ADDR PORT: a UDP download
# with real PMTUD. The server sends CHUNKS datagrams of up to 1400 bytes
# ("seq total" and a deterministic payload); the client checks each and asks
# again for what is missing, up to 30 rounds. Datagrams sent before the
# front door learned the 1280-byte path are lost; without a usable Frag
# Needed / Packet Too Big, every round loses everything.
#   serve-frag: an ordinary UDP server (unconnected socket, the kernel's
#     defaults: DF on IPv4; once the path MTU is learned the front door's
#     kernel fragments each datagram itself).
#   serve-df: DF always (IP_PMTUDISC_DO / IPV6_PMTUDISC_DO) on a socket
#     connected to the client; on EMSGSIZE it reads IP_MTU / IPV6_MTU and
#     sends smaller datagrams, as QUIC-style applications do: nothing is
#     fragmented anywhere.
# shellcheck disable=SC2016
UDPDL_PY='
import errno, random, socket, struct, sys, time
mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
CHUNKS, SIZE = 4500, 1400
v6 = ":" in addr
fam = socket.AF_INET6 if v6 else socket.AF_INET
block = random.Random(11).randbytes(SIZE * 64)
def payload(seq, size):
    o = (seq % 63) * SIZE
    return struct.pack(">II", seq, CHUNKS) + block[o:o + size - 8]
s = socket.socket(fam, socket.SOCK_DGRAM)
if mode.startswith("serve"):
    s.bind((addr, port))
    end, size, peer = time.monotonic() + 60, SIZE, None
    while time.monotonic() < end:
        req, frm = s.recvfrom(65535)
        if mode == "serve-df" and peer is None:
            peer = frm
            if v6:
                s.setsockopt(socket.IPPROTO_IPV6, 23, 2)  # IPV6_MTU_DISCOVER = DO
            else:
                s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = DO
            s.connect(peer)
        for part in req.decode().split(","):
            a, b = (int(x) for x in part.split("-"))
            for seq in range(a, b + 1):
                for attempt in range(3):
                    try:
                        if peer:
                            s.send(payload(seq, size))
                        else:
                            s.sendto(payload(seq, size), frm)
                        break
                    except OSError as e:
                        if e.errno != errno.EMSGSIZE or not peer:
                            raise
                        mtu = s.getsockopt(socket.IPPROTO_IPV6, 24) if v6 else s.getsockopt(socket.IPPROTO_IP, 14)
                        size = min(SIZE, mtu - (48 if v6 else 28))
                if seq % 64 == 63:
                    time.sleep(0.002)
    sys.exit(0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.connect((addr, port))
s.settimeout(0.5)
got, nbytes, sizes, rounds, t0 = set(), 0, set(), 0, time.monotonic()
while len(got) < CHUNKS and rounds < 30:
    missing, a = [], None
    for seq in range(CHUNKS + 1):
        if seq < CHUNKS and seq not in got:
            a = seq if a is None else a
        elif a is not None:
            missing.append("%d-%d" % (a, seq - 1))
            a = None
    req = ",".join(missing)
    while len(req) > 1000:
        req = req[:req.rindex(",")]
    s.send(req.encode())
    rounds += 1
    try:
        while True:
            d = s.recv(65535)
            seq = struct.unpack(">I", d[:4])[0]
            if d != payload(seq, len(d)):
                sys.exit("datagram %d corrupted (%d bytes)" % (seq, len(d)))
            if seq not in got:
                got.add(seq)
                nbytes += len(d)
                sizes.add(len(d))
            if len(got) == CHUNKS:
                break
    except socket.timeout:
        pass
if len(got) < CHUNKS:
    sys.exit("%d of %d datagrams after %d requests" % (len(got), CHUNKS, rounds))
print("%d bytes in %d datagrams of %s bytes, %d requests, %.1f s" % (nbytes, CHUNKS,
      "/".join(str(x) for x in sorted(sizes)), rounds, time.monotonic() - t0))
'
head -c $((8 << 20)) /dev/urandom >"$LAB_RUN/www/big8.bin"
size=$(stat -c %s "$LAB_RUN/www/big8.bin")
late_fail=""

for f in 4 6; do
	if [ "$f" = 4 ]; then svc=$SVC4 url="https://$SVC4/big8.bin"; else svc=$SVC6 url="https://[$SVC6]/big8.bin"; fi
	# TCP: several MB, byte for byte.
	out=$(nsx sub2 curl -sS --max-time 60 --cacert "$LAB_RUN/fd.crt" -o "$LAB_RUN/dl$f.bin" \
		-w '%{http_code} %{size_download}' "$url" 2>&1) || fail "IPv$f: download to sub2 through a 1280 access line failed: $out"
	[ "$out" = "200 $size" ] || fail "IPv$f: download: got '$out', want '200 $size'"
	cmp -s "$LAB_RUN/dl$f.bin" "$LAB_RUN/www/big8.bin" || fail "IPv$f: downloaded file differs from the original"
	rm -f "$LAB_RUN/dl$f.bin"
	ok "IPv$f TCP: $size bytes to sub2 through the 1280-byte access line, intact"

	# UDP: a download of up to 1400-byte datagrams, lost ones asked for again,
	# by an application that shrinks its datagrams, then by one that leaves
	# fragmenting to its kernel.
	for kind in df frag; do
		port=$((9000 + f))
		ip netns exec "$LAB_NS-fd" "$PY" -c "$UDPDL_PY" "serve-$kind" "$svc" "$port" 9<&- &
		echo $! >"$LAB_RUN/udpdl-server.pid"
		sleep 0.5
		out=$(nsx sub2 timeout -k 5 40 "$PY" -c "$UDPDL_PY" fetch "$svc" "$port" 2>&1 9<&-) && res=ok || res=fail
		stop_pid TERM "$(cat "$LAB_RUN/udpdl-server.pid")" 20
		if [ "$res" = ok ]; then
			ok "IPv$f UDP ($kind): $out"
		elif [ "$kind" = df ]; then
			fail "IPv$f UDP ($kind): download to sub2 through a 1280 access line failed: $out"
		else
			# Failed at the end, after the other checks.
			say "IPv$f UDP ($kind): FAILED: $out"
			late_fail="$late_fail IPv$f-UDP-$kind"
		fi
	done

	alias=$(nsx fd ip -o "-$f" route show cache | awk '/mtu 1280/ {print $1; exit}')
	if [ -z "$alias" ] || ! in_pool "$alias"; then
		say "IPv$f: FAILED: the front door learned no 1280-byte path MTU for an alias: $(nsx fd ip -o "-$f" route show cache)"
		late_fail="$late_fail IPv$f-no-PMTU-learned"
	else
		ok "IPv$f: the front door's route cache holds mtu 1280 for alias $alias"
	fi
done

capture_stop line
big=$(nsx sub2 tcpdump -r "$LAB_RUN/line.pcap" -n 'greater 1295 and not src net 100.64.0.0/10 and not src net 2001:db8:100::/48' 2>/dev/null | wc -l)
[ "$big" = 0 ] || fail "$big frames larger than the 1280-byte access MTU crossed sub2's line: $(nsx sub2 tcpdump -r "$LAB_RUN/line.pcap" -n -c 1 'greater 1295 and not src net 100.64.0.0/10 and not src net 2001:db8:100::/48' 2>/dev/null)"
ok "no frame above 1280 bytes crossed sub2's line"

capture_stop "$TEST_NAME"
pcap_tool errors "$LAB_RUN/$TEST_NAME.pcap" >"$LAB_RUN/errors"
# fam src dst type code mtu ttl qproto qsrc qsport qdst qdport qlen
# shellcheck disable=SC2016
"$PY" - "$LAB_RUN/errors" "$POOL4" "$POOL6" <<'PYEOF' || fail "too-big errors in the wrong form (above)"
import ipaddress, sys
pools = [ipaddress.ip_network(n) for n in sys.argv[2:4]]
svc = {"4": "203.0.113.10", "6": "2001:db8:f::10"}
bad = 0
big = {}
for e in (l.split() for l in open(sys.argv[1])):
    f, src, dst = e[0], e[1], e[2]
    if dst != svc[f]:
        continue
    toobig = (f == "4" and e[3:5] == ["3", "4"]) or (f == "6" and e[3] == "2")
    if not toobig:
        continue
    ok = (any(ipaddress.ip_address(src) in n for n in pools) and e[10] == src
          and e[8] == svc[f] and e[5] == "1280")
    if not ok:
        print("too-big error not in alias form (want: from the alias, quoting front door -> alias, mtu 1280): " + " ".join(e))
        bad += 1
    big.setdefault((f, e[7]), 0)
    big[(f, e[7])] += 1
print("too-big errors at the front door by (family, quoted protocol): %s" % big)
for want in (("4", "6"), ("4", "17"), ("6", "6"), ("6", "17")):
    if not big.get(want):
        print("IPv%s: no Frag Needed / Packet Too Big about protocol %s reached the front door" % want)
        bad += 1
sys.exit(1 if bad else 0)
PYEOF
ok "every Fragmentation Needed / Packet Too Big came from the alias, quoting the alias, mtu 1280 (TCP and UDP, both families)"
test_leak_check
[ -z "$late_fail" ] || fail "failed:$late_fail (see above)"
echo "PASS $TEST_NAME"
