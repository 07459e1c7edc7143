#!/bin/bash
# tests/net/privacy-tls.sh: HTTPS keeps working with every scrubber on
# (tcp-timestamps, ip-id, flow-label, ttl-cap = 50, set explicitly): two
# subscribers (sub2 with net.ipv4.tcp_timestamps=2, a raw clock) download
# 2 MiB over TLS, IPv4 and IPv6, four transfers at once; bodies compared
# with the original. Then the scrubbers are seen at work: cfrctl counts
# packets for each of the four, the front door sees no run of sequential
# IPv4 IDs (Linux numbers a connection's packets +1 each: cfr must not
# pass that through) and one non-zero flow label per IPv6 connection.
#
#  cfr-sub1,2 --veth-- cfr-gw [cfrd, every scrubber on] --veth-- cfr-fd: nginx :443
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

# shellcheck disable=SC2016
SCRUB_PY='
import ipaddress, struct, sys
POOLS = [ipaddress.ip_network(n) for n in ("192.0.2.0/26", "2001:db8:a1::/64")]
# A connection counts from 20 packets of the subscriber: with TUN offloads
# (cfrd.conf(5) offload) the download reaches the subscriber in 64 KB GSO
# packets, so a 2 MiB body draws only a few dozen ACKs.
MIN_PKTS = 20
ids, labels = {}, {}
with open(sys.argv[1], "rb") as f:
    hdr = f.read(24)
    e = "<" if struct.unpack("<I", hdr[:4])[0] in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    while True:
        ph = f.read(16)
        if len(ph) < 16:
            break
        data = f.read(struct.unpack(e + "IIII", ph)[2])
        et, p = struct.unpack(">H", data[12:14])[0], data[14:]
        if et == 0x0800 and len(p) >= 24 and p[9] == 6:
            src = ipaddress.ip_address(p[12:16])
            l4 = p[(p[0] & 15) * 4:]
            if any(src in n for n in POOLS):
                ids.setdefault((src, l4[:2]), []).append(struct.unpack(">H", p[4:6])[0])
        elif et == 0x86dd and len(p) >= 44 and p[6] == 6:
            src = ipaddress.ip_address(p[8:24])
            if any(src in n for n in POOLS):
                label = struct.unpack(">I", p[:4])[0] & 0xfffff
                labels.setdefault((src, p[40:42]), set()).add(label)
bad = 0
for k, v in ids.items():
    if len(v) < MIN_PKTS:
        continue
    seq = sum(1 for a, b in zip(v, v[1:]) if (b - a) & 0xffff == 1)
    print("IPv4 connection: %d packets, %d consecutive IDs that step by +1" % (len(v), seq))
    if seq * 10 > len(v):
        bad += 1
for k, v in labels.items():
    print("IPv6 connection: flow labels %s" % sorted("%05x" % x for x in v))
    if len(v) != 1 or 0 in v:
        bad += 1
if sum(1 for v in ids.values() if len(v) >= MIN_PKTS) < 2 or len(labels) < 2:
    print("too few connections in the capture")
    bad += 1
sys.exit(1 if bad else 0)
'

test_lab_config_up 2 "$(printf '[scrub]\ntcp-timestamps = yes\nip-id = yes\nflow-label = yes\nttl-cap = 50')"
capture_start "$TEST_NAME" || fail "cannot capture on cfr-fd"
nsx sub2 sysctl -qw net.ipv4.tcp_timestamps=2

want=$(sha256sum <"$LAB_RUN/www/big.bin" | cut -d' ' -f1)
pids=()
for i in 1 2; do
	for fam in 4 6; do
		host=$SVC4
		[ "$fam" = 4 ] || host="[$SVC6]"
		nsx "sub$i" curl -sS --max-time 60 --cacert "$LAB_RUN/fd.crt" \
			-o "$LAB_RUN/scrub-$i-$fam.body" -w '%{http_code}\n' \
			"https://$host/big.bin?test=$TEST_NAME&sub=$i&fam=$fam" >"$LAB_RUN/scrub-$i-$fam.code" 2>&1 &
		pids+=($!)
	done
done
bad=0
for p in "${pids[@]}"; do
	wait "$p" || bad=$((bad + 1))
done
for i in 1 2; do
	for fam in 4 6; do
		code=$(cat "$LAB_RUN/scrub-$i-$fam.code")
		[ "$code" = 200 ] || fail "sub$i IPv$fam: curl: $code"
		got=$(sha256sum <"$LAB_RUN/scrub-$i-$fam.body" | cut -d' ' -f1)
		[ "$got" = "$want" ] || fail "sub$i IPv$fam: body differs from the front door's file"
	done
done
[ "$bad" = 0 ] || fail "$bad curl processes failed"
ok "4 concurrent HTTPS downloads of 2 MiB with every scrubber on, bodies identical"

stats=$(cfrctl_json)
for s in tcp_timestamps ip_id ttl flow_label; do
	n=$(json_get "privacy.scrubbed.$s" <<<"$stats") || fail "cfrctl --json stats has no privacy.scrubbed.$s"
	[ "$n" -gt 0 ] || fail "privacy.scrubbed.$s is $n after 4 downloads"
	say "privacy.scrubbed.$s = $n"
done
ok "cfrctl counts packets for each of the four scrubbers"

capture_stop "$TEST_NAME"
"$PY" -c "$SCRUB_PY" "$LAB_RUN/$TEST_NAME.pcap" || fail "IP ID or flow label not scrubbed as expected"
ok "front door: IPv4 IDs not sequential, one non-zero flow label per IPv6 connection"

test_leak_check
echo "PASS $TEST_NAME"
