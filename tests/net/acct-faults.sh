#!/bin/bash
# tests/net/acct-faults.sh: accounting faults never stop forwarding. cfrd
# starts with a public key others may write (mode 0666) and its records on
# a small tmpfs; then the tmpfs fills up; then the records directory is
# removed. Each time: one log line, traffic keeps flowing both ways, `cfrctl
# stats` says accounting.degraded = 1 and counts the fault; once the key's
# mode or the disk is fixed, sealing resumes by itself and the flows of the
# outage are attributed all the same (the engine kept them).
#
#  cfr-sub1 (UDP to 203.0.113.10:7) --veth--+
#                                            cfr-gw [cfrd, records on tmpfs] --veth-- cfr-fd
#  cfr-sub2 (UDP to 2001:db8:f::10:7) --veth-+
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

LOOKUP=$LAB_ROOT/build/cfr-lookup
KEYGEN=$LAB_ROOT/build/cfr-keygen
if [ ! -x "$LOOKUP" ] || [ ! -x "$KEYGEN" ]; then skip "build/cfr-lookup or build/cfr-keygen missing: run make"; fi
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, tmpfs)"
WORK=$(mktemp -d /tmp/cfr-acct-faults.XXXXXX)
chmod 755 "$WORK"
# Our own cleanup runs before the lab's (which this wraps): the tmpfs goes too.
eval "lab_$(declare -f _test_config_cleanup)"
_test_config_cleanup() {
	local rc=$?
	umount "$WORK/disk" 2>/dev/null
	rm -rf "$WORK"
	(exit "$rc")
	lab__test_config_cleanup
}
mkdir "$WORK/disk"
mount -t tmpfs -o size=512k,mode=0755 cfr-acct-faults "$WORK/disk"
mkdir -m 0700 "$WORK/disk/records"
"$KEYGEN" -o "$WORK/acct" >/dev/null
chmod 0666 "$WORK/acct.pub"
# Segments of 3 s: a full tmpfs is met when the next one is made (a segment
# already open writes into its last page for a while).
test_lab_config_up 2 "$(printf '[accounting]\npublic-key = %s\nrecords = %s\nsegment = 3\n' \
	"$WORK/acct.pub" "$WORK/disk/records")"
capture_start "$TEST_NAME" || fail "cannot capture on cfr-fd"

# acct_stat KEY: one number of cfrctl stats' accounting object.
acct_stat() { cfrctl_json | json_get "accounting.$1"; }
# wait_stat KEY VALUE SECONDS
wait_stat() {
	for _ in $(seq $(($3 * 10))); do
		[ "$(acct_stat "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
# traffic N: N fresh UDP flows from each subscriber, every echo back.
traffic() {
	udp_roundtrip sub1 "$SVC4" 32 "$1" fresh >/dev/null || fail "sub1: UDP echo failed ($2)"
	udp_roundtrip sub2 "$SVC6" 32 "$1" fresh >/dev/null || fail "sub2: UDP echo failed ($2)"
}
lines() { grep -c "$1" "$LAB_RUN/cfrd.log" || true; }

# 1. A public key others may write: refused in one line, cfrd runs on.
[ "$(lines 'public key is writable by others')" = 1 ] || fail "expected one log line about the key's mode"
[ "$(lines 'accounting degraded')" = 1 ] || fail "expected one line saying accounting is degraded"
traffic 5 "public key refused"
[ "$(acct_stat degraded)" = 1 ] || fail "accounting not degraded with a refused key"
[ "$(acct_stat faults)" -ge 1 ] || fail "no fault counted"
ok "public key mode 0666: one log line, forwarding on, accounting.degraded = 1"
chmod 0644 "$WORK/acct.pub"
wait_stat degraded 0 6 || fail "sealing did not resume after chmod go-w"
[ "$(lines 'writing again')" = 1 ] || fail "no line saying sealing resumed"
traffic 5 "after the key was fixed"
ok "key fixed: sealing resumed by itself"

# 2. A full disk: the journal's next write fails.
dd if=/dev/zero of="$WORK/disk/filler" bs=4k 2>/dev/null || true
traffic 5 "disk full"
wait_stat degraded 1 8 || fail "accounting not degraded with the disk full"
[ "$(lines 'No space left on device')" = 1 ] || fail "expected one log line about the full disk"
[ "$(lines 'accounting degraded')" = 2 ] || fail "expected one more line saying accounting is degraded"
traffic 5 "disk full, degraded"
faults=$(acct_stat faults)
ok "disk full: one log line, forwarding on, accounting.degraded = 1, faults = $faults"
rm -f "$WORK/disk/filler"
wait_stat degraded 0 6 || fail "sealing did not resume once the disk had room"
[ "$(lines 'writing again')" = 2 ] || fail "no line saying sealing resumed after the full disk"
traffic 5 "after the disk had room"
ok "disk has room again: sealing resumed by itself"

# Every flow so far, those of both outages included, is attributed.
nsx gw "$CFRCTL" -s "$LAB_CTL" epoch rotate >/dev/null || fail "cfrctl epoch rotate failed"
sleep 1
capture_stop "$TEST_NAME"
n=0
while read -r t src; do
	alias=${src%.*}
	port=${src##*.}
	want=100.64.1.2
	[ "${alias#*:}" = "$alias" ] || want=2001:db8:100:2::/64
	out=$("$LOOKUP" -k "$WORK/acct.key" -d "$WORK/disk/records" --alias "$alias" --port "$port" \
		--time "$t" --tolerance 1 --proto udp --json) || fail "no answer for $src at $t: $out"
	who=$(echo "$out" | "$PY" -c 'import json,sys; print(" ".join(sorted({m["subscriber"] for m in json.load(sys.stdin)["matches"]})))')
	[ "$who" = "$want" ] || fail "flow $src at $t: expected $want, cfr-lookup said '$who'"
	n=$((n + 1))
done < <(tcpdump -nn -tt -r "$LAB_RUN/$TEST_NAME.pcap" 'udp and dst port 7' 2>/dev/null |
	awk '{ print $1, $3 }' | sort -k2,2 -u)
[ "$n" -ge 40 ] || fail "only $n flows in the capture"
[ "$(acct_stat records_lost)" = 0 ] || fail "records lost: $(acct_stat records_lost)"
ok "all $n flows attributed to their subscriber, those of the outages included"

# 3. The records directory removed: degraded, forwarding on. Landlock keeps
# cfrd out of a directory made again under the same name until it restarts.
rm -rf "$WORK/disk/records"
traffic 5 "directory removed"
wait_stat degraded 1 4 || fail "accounting not degraded without its directory"
# Found by the check every second, or by the next segment made there.
[ "$(lines 'records directory was removed\|cannot create a segment')" = 1 ] ||
	fail "expected one log line about the directory"
[ "$(lines 'accounting degraded')" = 3 ] || fail "expected one more line saying accounting is degraded"
traffic 5 "directory removed, degraded"
ok "records directory removed: one log line, forwarding on, accounting.degraded = 1"
pcap_tool leaks "$LAB_RUN/$TEST_NAME.pcap" >/dev/null || fail "front-door capture shows a subscriber address"
echo "PASS $TEST_NAME"
