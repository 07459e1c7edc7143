#!/bin/bash
# tests/net/privacy-ttl.sh: the TTL / hop-limit cap with real stacks, in a lab
# whose cfrd runs with [scrub] ttl-cap = 50.
#   sub1 sends with the Linux default 64: the front door must see exactly 49
#   on every IPv4 and IPv6 packet from the pool (TCP, UDP, ICMP echo);
#   sub2 sends with 40 (below the cap): the front door must see exactly 38,
#   never raised, and cfrd's ttl counter must not move.
# Where the two decrements come from: cfrd sits behind the gateway's own
# forwarding on both sides. A subscriber's packet is routed by cfr-gw's
# kernel from subI into cfr0 (TTL - 1: 64 -> 63), cfrd reads it from the TUN
# and caps it (63 -> 50), writes it back into cfr0, and cfr-gw's kernel
# forwards it again from cfr0 to fd0 (TTL - 1: 50 -> 49). So the front door
# sees cap - 1 when the subscriber's TTL - 1 exceeds the cap, and TTL - 2
# otherwise. IPv6 hop limits take the same path.
#
#  cfr-sub1 (64) --> cfr-gw: fwd -1 -> cfr0 -> cfrd cap 50 -> cfr0 -> fwd -1 --> cfr-fd sees 49
#  cfr-sub2 (40) --> cfr-gw: fwd -1 -> cfr0 -> cfrd (39)   -> cfr0 -> fwd -1 --> cfr-fd sees 38
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

# traffic NS: HTTPS, UDP echo and ping from cfr-NS, both families.
traffic() {
	local ns=$1 code
	for host in "$SVC4" "[$SVC6]"; do
		code=$(nsx "$ns" curl -sS --max-time 10 --cacert "$LAB_RUN/fd.crt" -o /dev/null \
			-w '%{http_code}' "https://$host/?test=$TEST_NAME&ns=$ns" 2>&1) || fail "$ns: curl $host: $code"
		[ "$code" = 200 ] || fail "$ns: curl $host: HTTP $code"
	done
	udp_roundtrip "$ns" "$SVC4" 64 5 >/dev/null || fail "$ns: UDP echo (IPv4) failed"
	udp_roundtrip "$ns" "$SVC6" 64 5 >/dev/null || fail "$ns: UDP echo (IPv6) failed"
	nsx "$ns" ping -n -q -c 3 -i 0.2 -W 2 "$SVC4" >/dev/null || fail "$ns: ping $SVC4 failed"
	nsx "$ns" ping -6 -n -q -c 3 -i 0.2 -W 2 "$SVC6" >/dev/null || fail "$ns: ping $SVC6 failed"
}

ttl_scrubbed() { cfrctl_json | json_get privacy.scrubbed.ttl; }

test_lab_config_up 2 "$(printf '[scrub]\nttl-cap = 50')"
nsx sub2 sysctl -qw net.ipv4.ip_default_ttl=40 net.ipv6.conf.all.hop_limit=40 \
	net.ipv6.conf.default.hop_limit=40 net.ipv6.conf.gw0.hop_limit=40

capture_start ttl-high || fail "cannot capture on cfr-fd"
traffic sub1
capture_stop ttl-high
pcap_tool ttl-cap "$LAB_RUN/ttl-high.pcap" 49 12 || fail "sub1 (TTL 64): front door did not see cap - 1 = 49"
ok "sub1 sends 64: front door sees 49 on every IPv4 and IPv6 packet (capped to 50, then forwarded)"
n_high=$(ttl_scrubbed)
[ "$n_high" -gt 0 ] || fail "cfrctl: privacy.scrubbed.ttl is $n_high after capped traffic"

sleep 0.5
n_before=$(ttl_scrubbed)
capture_start ttl-low || fail "cannot capture on cfr-fd"
traffic sub2
capture_stop ttl-low
pcap_tool ttl-cap "$LAB_RUN/ttl-low.pcap" 38 12 || fail "sub2 (TTL 40): front door did not see 40 - 2 = 38"
ok "sub2 sends 40: front door sees 38 (below the cap: never raised)"
n_after=$(ttl_scrubbed)
[ "$n_after" = "$n_before" ] || fail "cfrctl: privacy.scrubbed.ttl moved from $n_before to $n_after for packets below the cap"
ok "cfrctl counts $n_high capped packets, none for sub2"

for c in ttl-high ttl-low; do
	pcap_tool leaks "$LAB_RUN/$c.pcap" || fail "front-door capture $c check failed"
done
ok "front door saw no subscriber address"
echo "PASS $TEST_NAME"
