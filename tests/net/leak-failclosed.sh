#!/bin/bash
# tests/net/leak-failclosed.sh: the egress guard fails closed (issue 11).
# Two subscribers keep sending (ping and UDP, both families, 8 s, bounded)
# while cfrd dies of SIGKILL (no cleanup of its own), and then its TUN device
# goes too (ip link del cfr0): the policy routes into cfr0 vanish with it, so
# the gateway's main table routes subscriber traffic straight out of fd0,
# untranslated. The guard table cfrd installed at start (table inet
# cfr_guard, never removed) must drop all of it: nothing with a subscriber
# address reaches the front door, and the guard's subscriber_source counter
# goes up.
#
#  cfr-subI --ping/UDP--> cfr-gw: iif subI -> table 100 -> cfr0 (cfrd killed; then deleted)
#                                  `-> main table -> fd0 -> [egress: saddr 100.64/10 drop] -x- cfr-fd
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

test_requires nft
test_lab_up 2

guard_counter() {
	nsx gw nft list counter inet cfr_guard "$1" | awk '/packets/ {print $2}'
}
before=$(guard_counter subscriber_source) || fail "no guard table inet cfr_guard in cfr-gw"

# The load: 8 s each, 5 pings and 5 datagrams a second per subscriber and family.
pids=""
for i in 1 2; do
	nsx "sub$i" ping -n -q -c 40 -i 0.2 -W 1 "$SVC4" >/dev/null 2>&1 9<&- &
	pids="$pids $!"
	nsx "sub$i" ping -6 -n -q -c 40 -i 0.2 -W 1 "$SVC6" >/dev/null 2>&1 9<&- &
	pids="$pids $!"
	udp_hold "sub$i" "$SVC4" "fc$i-4" 8 &
	pids="$pids $!"
	udp_hold "sub$i" "$SVC6" "fc$i-6" 8 &
	pids="$pids $!"
done
sleep 1.5
udp_alias fc1-4 >/dev/null || fail "sub1's UDP never reached the front door before the kill"

pid=$(cat "$LAB_RUN/cfrd.pid")
kill -KILL "$pid"
for _ in $(seq 30); do
	alive "$pid" || break
	sleep 0.1
done
alive "$pid" && fail "cfrd (pid $pid) still runs after SIGKILL"
ok "cfrd killed with SIGKILL while both subscribers send"
sleep 2
nsx gw ip link del cfr0
nsx gw ip route show table 100 | grep -q . && fail "table 100 still routes after cfr0 went: $(nsx gw ip route show table 100)"
ok "cfr0 deleted: no policy route left, the main table routes the subscribers to fd0"
for p in $pids; do wait "$p" || true; done
after=$(guard_counter subscriber_source)
dropped=$((after - before))
# Each of 8 senders runs 4.5 s or so after cfr0 went: 5 a second each.
[ "$dropped" -ge 50 ] || fail "guard counter subscriber_source grew by $dropped, want >= 50"
ok "guard counter subscriber_source: +$dropped"
say "guard: $(nsx gw nft list counters table inet cfr_guard | awk '/counter/ {n = $2} /packets/ {printf "%s %s  ", n, $2}')"

capture_stop "$TEST_NAME"
pcap_tool flows "$LAB_RUN/$TEST_NAME.pcap" >"$LAB_RUN/flows"
n=$(awk -v a="$SVC4" -v b="$SVC6" '$5 == a || $5 == b' "$LAB_RUN/flows" | wc -l)
ok "front door received $n packets toward its services in all (before the kill, translated)"
test_leak_check
echo "PASS $TEST_NAME"
