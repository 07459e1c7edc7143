#!/bin/bash
# tests/net/privacy-quiet.sh: cfrd warns when its pool is too quiet to hide
# anyone. One subscriber opens 120 UDP flows on a lab whose /26 pool has far
# more aliases than subscribers, so every new flow lands on an alias used by
# fewer than anonymity-k (8) subscribers. Within a minute and a bit of cfrd's
# start its log must say so (the check runs once a minute), with the share
# it measured; and the flows themselves must still work.
#
#  cfr-sub1 --(120 UDP flows)--> cfr-gw [cfrd: anonymity-k 8, warn above 50%] --> cfr-fd
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

test_lab_config_up 1 "$(printf '[privacy]\nanonymity-k = 8\nanonymity-warn-percent = 50')"
capture_start "$TEST_NAME" || fail "cannot capture on cfr-fd"
start=$(date +%s)

udp_roundtrip sub1 "$SVC4" 32 120 fresh >/dev/null || fail "UDP echo (IPv4) failed"
ok "120 UDP flows from sub1, each from a new source port"
below=$(cfrctl_json | json_get privacy.new_flows_below_k)
[ "${below:-0}" -ge 120 ] || fail "new_flows_below_k is ${below:-none}, want at least 120"
ok "cfrctl counts $below new flows below anonymity-k"

# The watch looks once a minute from cfrd's start; give it 15 s of slack.
deadline=$((start + 75))
while ! grep -q "pool too quiet" "$LAB_RUN/cfrd.log"; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "no quiet-pool warning in cfrd.log after 75 s"
	sleep 2
done
line=$(grep -m1 "pool too quiet" "$LAB_RUN/cfrd.log")
say "$line"
case $line in
*"(100%)"*) ok "the warning gives the measured share (100%)" ;;
*) fail "the warning does not report 100% of new flows below k: $line" ;;
esac

test_leak_check
echo "PASS $TEST_NAME"
