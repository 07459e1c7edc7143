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
		pcap_tool ts-frontdoor "$LAB_RUN/$name.pcap" "$fam" "$want" ||
			fail "$name: front-door TSvals (IPv$fam) not $want"
	done
	ok "$name: front door sees $want TSvals across connections, constant offset within each"
	pcap_tool ts-subscriber "$LAB_RUN/$name-sub.pcap" || fail "$name: TSecr not restored"
	ok "$name: every TSecr reaching sub1 is one of its own TSvals"
	pcap_tool leaks "$LAB_RUN/$name.pcap" || fail "$name: front-door capture check failed"
	ok "$name: front door saw no subscriber address"
}

run_phase ts-scrubbed unrelated "$(printf '[scrub]\ntcp-timestamps = yes')"
run_phase ts-control related "$(printf '[scrub]\ntcp-timestamps = no')"
echo "PASS $TEST_NAME"
