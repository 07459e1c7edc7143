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
pcap_tool ipid-flowlabel "$LAB_RUN/$TEST_NAME.pcap" || fail "IP ID or flow label not scrubbed as expected"
ok "front door: IPv4 IDs not sequential, one non-zero flow label per IPv6 connection"

test_leak_check
echo "PASS $TEST_NAME"
