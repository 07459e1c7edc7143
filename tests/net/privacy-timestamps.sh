#!/bin/bash
# tests/net/privacy-timestamps.sh: TCP timestamp modulation with a real Linux
# stack. sub1 runs net.ipv4.tcp_timestamps=2 (a raw millisecond clock, no
# per-connection offset: the TSvals of its connections are related, the
# fingerprint issue 3 is about). Five HTTPS connections per family, 0.3 s
# apart, to the front door:
#   scrubbing on  (lab default)        : at the front door the SYN TSvals of
#                                         consecutive connections are unrelated
#                                         (TSval - elapsed ms differs by > 1e5)
#   scrubbing off ([scrub] tcp-timestamps = no, control): they are related
#                                         (TSval - elapsed ms equal within 100)
# In both runs, within one connection TSval advances with elapsed time at the
# front door (a per-flow constant offset keeps PAWS and RTT working), and
# every TSecr sub1 receives equals a TSval sub1 sent on that connection
# (exact restoration inbound; capture on sub1's side).
#
#  cfr-sub1 (tcp_timestamps=2) --veth-- cfr-gw [cfrd: TSval += per-flow offset,
#  capture: original TSvals,            TSecr -= offset] --veth-- cfr-fd (capture:
#  echoed TSecr)                                                  modulated TSvals)
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

# shellcheck disable=SC2016
TS_PY='
import ipaddress, struct, sys

def packets(path):
    with open(path, "rb") as f:
        hdr = f.read(24)
        e = "<" if struct.unpack("<I", hdr[:4])[0] in (0xa1b2c3d4, 0xa1b23c4d) else ">"
        nano = struct.unpack(e + "I", hdr[:4])[0] in (0xa1b23c4d, 0x4d3cb2a1)
        link = struct.unpack(e + "I", hdr[20:24])[0]
        assert link == 1, "expected an Ethernet capture"
        while True:
            ph = f.read(16)
            if len(ph) < 16:
                return
            sec, frac, incl, _ = struct.unpack(e + "IIII", ph)
            data = f.read(incl)
            yield sec + frac / (1e9 if nano else 1e6), data

def tcp_ts(data):
    """(src, dst, sport, dport, flags, tsval, tsecr) of a TCP packet with timestamps."""
    et = struct.unpack(">H", data[12:14])[0]
    p = data[14:]
    if et == 0x0800 and len(p) >= 20 and p[9] == 6:
        src, dst, l4 = p[12:16], p[16:20], p[(p[0] & 15) * 4:]
    elif et == 0x86dd and len(p) >= 40 and p[6] == 6:
        src, dst, l4 = p[8:24], p[24:40], p[40:]
    else:
        return None
    if len(l4) < 20:
        return None
    hl = (l4[12] >> 4) * 4
    off = 20
    while off < min(hl, len(l4)):
        kind = l4[off]
        if kind == 0:
            break
        if kind == 1:
            off += 1
            continue
        if off + 1 >= len(l4) or l4[off + 1] < 2:
            break
        if kind == 8 and l4[off + 1] == 10 and off + 10 <= len(l4):
            tsval, tsecr = struct.unpack(">II", l4[off + 2:off + 10])
            sport, dport = struct.unpack(">HH", l4[:4])
            return (ipaddress.ip_address(src), ipaddress.ip_address(dst), sport, dport, l4[13], tsval, tsecr)
        off += l4[off + 1]
    return None

def s32(v):
    v &= 0xffffffff
    return v - (1 << 32) if v >= 1 << 31 else v

def frontdoor(path, fam, want):
    """SYN TSvals of connections to port 443 of family fam, as the front door saw them."""
    conns = {}
    for t, data in packets(path):
        r = tcp_ts(data)
        if not r or r[1].version != fam or r[3] != 443:
            continue
        key = (r[0], r[2])
        if r[4] & 0x12 == 0x02 and key not in conns:
            conns[key] = []
        if key in conns:
            conns[key].append((t, r[5]))
    conns = sorted(conns.values(), key=lambda c: c[0][0])
    if len(conns) < 5:
        sys.exit("IPv%d: front door saw %d connections with timestamps, want 5" % (fam, len(conns)))
    bad = 0
    for c in conns:
        t0, v0 = c[0]
        for t, v in c[1:]:
            d = s32(v - v0) - (t - t0) * 1000
            if abs(d) > 100:
                bad += 1
                print("IPv%d: within one connection TSval moved %d ms, time %.0f ms" % (fam, s32(v - v0), (t - t0) * 1000))
    if bad:
        sys.exit("IPv%d: %d packets break the per-flow constant offset" % (fam, bad))
    related = unrelated = 0
    for a, b in zip(conns, conns[1:]):
        d = s32(b[0][1] - a[0][1]) - (b[0][0] - a[0][0]) * 1000
        print("IPv%d: consecutive SYNs %.0f ms apart, TSval - elapsed differs by %d ms" % (fam, (b[0][0] - a[0][0]) * 1000, d))
        if abs(d) <= 100:
            related += 1
        elif abs(d) > 100000:
            unrelated += 1
    pairs = len(conns) - 1
    if want == "related" and related != pairs:
        sys.exit("IPv%d: scrubbing off, but only %d of %d connection pairs have related TSvals" % (fam, related, pairs))
    # A random 32-bit offset lands within 1e5 of the clock with p < 5e-5 per
    # pair; allow one such pair, never a majority.
    if want == "unrelated" and unrelated < pairs - 1:
        sys.exit("IPv%d: scrubbing on, but only %d of %d connection pairs have unrelated TSvals" % (fam, unrelated, pairs))
    print("IPv%d: %d connections, %d pairs related, %d unrelated (want %s)" % (fam, len(conns), related, unrelated, want))

def subscriber(path):
    """Every TSecr sub1 receives must be a TSval it sent on that connection."""
    sent, checked, bad = {}, 0, 0
    for t, data in packets(path):
        r = tcp_ts(data)
        if not r:
            continue
        src, dst, sport, dport, flags, tsval, tsecr = r
        if dport == 443:
            sent.setdefault((src, sport), set()).add(tsval)
        elif sport == 443 and flags & 0x10:
            checked += 1
            if tsecr not in sent.get((dst, dport), ()):
                bad += 1
                if bad <= 5:
                    print("sub1 got TSecr %d on port %d: never sent as TSval" % (tsecr, dport))
    if checked < 20 or bad:
        sys.exit("subscriber side: %d of %d echoed TSecr wrong" % (bad, checked))
    print("subscriber side: all %d echoed TSecr equal a TSval sub1 sent" % checked)

if sys.argv[1] == "frontdoor":
    frontdoor(sys.argv[2], int(sys.argv[3]), sys.argv[4])
else:
    subscriber(sys.argv[2])
'

# run_phase NAME WANT EXTRA: lab up with EXTRA config lines, 5 connections per
# family from sub1, then the checks on both captures.
run_phase() {
	local name=$1 want=$2 fam host n code
	test_lab_config_up 1 "$3"
	nsx sub1 sysctl -qw net.ipv4.tcp_timestamps=2
	capture_start "$name" || fail "cannot capture on cfr-fd"
	capture_start "$name-sub" sub1 gw0 || fail "cannot capture on cfr-sub1"
	for fam in 4 6; do
		host=$SVC4
		[ "$fam" = 4 ] || host="[$SVC6]"
		for n in 1 2 3 4 5; do
			code=$(nsx sub1 curl -sS --max-time 10 --cacert "$LAB_RUN/fd.crt" -o /dev/null \
				-w '%{http_code}' "https://$host/?test=$name&fam=$fam&n=$n" 2>&1) ||
				fail "$name: curl $n IPv$fam: $code"
			[ "$code" = 200 ] || fail "$name: curl $n IPv$fam: HTTP $code"
			sleep 0.3
		done
	done
	ok "$name: 10 HTTPS connections from sub1 (tcp_timestamps=2)"
	capture_stop "$name-sub"
	capture_stop "$name"
	for fam in 4 6; do
		"$PY" -c "$TS_PY" frontdoor "$LAB_RUN/$name.pcap" "$fam" "$want" ||
			fail "$name: front-door TSvals (IPv$fam) not $want"
	done
	ok "$name: front door sees $want TSvals across connections, constant offset within each"
	"$PY" -c "$TS_PY" subscriber "$LAB_RUN/$name-sub.pcap" || fail "$name: TSecr not restored"
	ok "$name: every TSecr reaching sub1 is one of its own TSvals"
	pcap_tool leaks "$LAB_RUN/$name.pcap" || fail "$name: front-door capture check failed"
	ok "$name: front door saw no subscriber address"
}

run_phase ts-scrubbed unrelated "$(printf '[scrub]\ntcp-timestamps = yes')"
run_phase ts-control related "$(printf '[scrub]\ntcp-timestamps = no')"
echo "PASS $TEST_NAME"
