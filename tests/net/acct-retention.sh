#!/bin/bash
# tests/net/acct-retention.sh: records are forgotten on time. With segments of
# 2 s kept 4 s, a complaint that cfr-lookup answers right after the epoch is
# sealed must find nothing once the segment's end is older than the
# retention, and the records directory must then hold no segment at all.
#
#  cfr-sub1 --veth-- cfr-gw [cfr0 <-> cfrd, segment = 2, retention = 4]
#                        --veth-- cfr-fd (udp echo :7, capture)
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

LOOKUP=$LAB_ROOT/build/cfr-lookup
[ -x "$LOOKUP" ] || skip "build/cfr-lookup missing: run make"
[ -x "$LAB_ROOT/build/cfr-keygen" ] || skip "build/cfr-keygen missing: run make"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
CONF=$(mktemp /tmp/cfr-acct-retention.XXXXXX)
{
	lab_config
	printf '\n[accounting]\npublic-key = %s\nrecords = %s\nsegment = 2\nretention = 4\n' \
		"$LAB_RUN/acct.pub" "$LAB_RUN/records"
} >"$CONF"
# cfr-lab copies the file: it is not needed once the lab is up.
test_lab_up 1 --config "$CONF"
rm -f "$CONF"
grep -q '^retention = 4' "$LAB_RUN/cfrd.conf" || fail "the lab does not run the test's config"

# One UDP flow from sub1; the front door sees its alias and port.
port=$(udp_roundtrip sub1 "$SVC4" 32 1 fresh | awk '{print $1}') || fail "udp echo failed"
sleep 0.3
capture_stop "$TEST_NAME"
line=$(tcpdump -nn -tt -r "$LAB_RUN/$TEST_NAME.pcap" "udp and dst host $SVC4 and dst port 7" 2>/dev/null | head -n 1)
t=$(echo "$line" | awk '{print $1}')
src=$(echo "$line" | awk '{print $3}')
alias=${src%.*}
aport=${src##*.}
if [ -z "$t" ] || [ -z "$aport" ]; then
	fail "no datagram from sub1 (local port $port) in the capture"
fi
pcap_tool leaks "$LAB_RUN/$TEST_NAME.pcap" >/dev/null || fail "front-door capture shows a subscriber address"
ok "front door saw $alias:$aport at $t, no subscriber address"

nsx gw "$CFRCTL" -s "$LAB_CTL" epoch rotate >/dev/null || fail "cfrctl epoch rotate failed"
lookup() {
	"$LOOKUP" -k "$LAB_RUN/acct.key" -d "$LAB_RUN/records" --time "$t" --alias "$alias" \
		--port "$aport" --tolerance 2 --proto udp
}
found=0
for _ in $(seq 10); do
	if out=$(lookup 2>&1) && echo "$out" | grep -q ' 100\.64\.1\.2 '; then
		found=1
		break
	fi
	sleep 0.2
done
[ "$found" = 1 ] || fail "before retention, cfr-lookup did not name 100.64.1.2: $out"
ok "before retention: complaint answered with 100.64.1.2"

# The segment ends at most 2 s after it began; it must be gone 4 s later
# (plus the writer's 2 s check interval and slack), and not before it is due.
sleep 9
rc=0
out=$(lookup 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "after retention, cfr-lookup exit $rc (expected 1, no match): $out"
left=$(find "$LAB_RUN/records" -name '*.seg' | wc -l)
[ "$left" = 0 ] || fail "after retention, $left segment(s) remain in $LAB_RUN/records"
grep -q 'retention: deleted' "$LAB_RUN/cfrd.log" || fail "cfrd did not log the deletion"
ok "after retention: complaint finds nothing, records directory empty"
echo "PASS $TEST_NAME"
