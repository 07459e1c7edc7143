#!/bin/bash
# tests/net/workers.sh: cfrd's packet workers. With workers = auto and the
# lab's multi_queue cfr0, cfrd runs one worker per CPU, each on its own queue;
# many flows from several subscribers are spread by the kernel over the
# queues, every worker must carry some, and every echo must come back intact
# (one shared engine: a flow translated by one worker can return through
# another). Then a persistent single-queue device: workers = auto falls back
# to one worker and says why, workers = 2 refuses to start with one line.
#
#  cfr-sub1..4 --veth-- cfr-gw [cfr0: queue k <-> worker k] --veth-- cfr-fd
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

N=4
FLOWS=16 # per subscriber and family
test_lab_up "$N"

cpus=$(nproc)
want=$((cpus > 64 ? 64 : cpus))
got=$(cfrctl_json | json_get io.workers) || fail "no io.workers in cfrctl stats"
[ "$got" = "$want" ] || fail "cfrd runs $got workers on $cpus CPUs, want $want"
grep -q "running: $want worker" "$LAB_RUN/cfrd.log" || fail "no 'running: $want worker' in the log"
ok "workers = auto: $got workers on $cpus CPUs"

# One socket per datagram: every datagram is a new flow with its own hash.
pids=()
for i in $(seq "$N"); do
	for addr in "$SVC4" "$SVC6"; do
		udp_roundtrip "sub$i" "$addr" 200 "$FLOWS" fresh >"$LAB_RUN/workers-$i-$addr.out" 2>&1 &
		pids+=($!)
	done
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a UDP echo failed: $(cat "$LAB_RUN"/workers-*.out | grep -v ' ok$' | head -n 3)"
done
ok "$((N * 2 * FLOWS)) UDP flows from $N subscribers, IPv4 and IPv6: every echo intact"

by_worker=$(cfrctl_json | "$PY" -c 'import json, sys; print(*json.load(sys.stdin)["io"]["packets_by_worker"])')
say "packets read by each worker: $by_worker"
k=0
for n in $by_worker; do
	[ "$n" -gt 0 ] || fail "worker $k read no packet of $((N * 2 * FLOWS)) flows ($by_worker)"
	k=$((k + 1))
done
[ "$k" = "$want" ] || fail "packets_by_worker has $k entries, want $want"
[ "$want" -gt 1 ] && ok "every worker carried traffic"
line=$(nsx gw "$CFRCTL" -s "$LAB_CTL" stats | grep '^workers ') || fail "no workers line in cfrctl stats"
[ "$(echo "$line" | tr -s ' ' | cut -d' ' -f2)" = "$want," ] || fail "cfrctl stats: $line"
ok "cfrctl stats: $line"
test_leak_check

# A single-queue persistent device, beside the lab's cfrd (no traffic to it).
nsx gw ip tuntap add mode tun name cfrsq0
conf=$LAB_RUN/single-queue.conf
lab_config | sed -e 's/^tun = cfr0/tun = cfrsq0/' -e "s#^control = .*#control = $LAB_RUN/sq.sock#" \
	-e 's/^max-flows = .*/max-flows = 1024/' >"$conf"
nsx gw timeout 2 "$CFRD" -c "$conf" >"$LAB_RUN/sq-auto.log" 2>&1 || true
grep -q "running: 1 worker," "$LAB_RUN/sq-auto.log" || fail "workers = auto on a single-queue device: $(cat "$LAB_RUN/sq-auto.log")"
if [ "$want" -gt 1 ]; then
	grep -q "running 1 worker instead of $want" "$LAB_RUN/sq-auto.log" || fail "no fallback warning: $(cat "$LAB_RUN/sq-auto.log")"
fi
ok "workers = auto on a single-queue device: 1 worker$([ "$want" -gt 1 ] && echo ', with a warning')"

sed -i 's/^log-level = .*/&\nworkers = 2/' "$conf"
rc=0
nsx gw timeout 5 "$CFRD" -c "$conf" >"$LAB_RUN/sq-two.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "workers = 2 on a single-queue device: exit $rc, want 1: $(cat "$LAB_RUN/sq-two.log")"
grep -q "error: cannot attach TUN device cfrsq0: .*multi_queue" "$LAB_RUN/sq-two.log" \
	|| fail "no clear error line: $(cat "$LAB_RUN/sq-two.log")"
ok "workers = 2 on a single-queue device: exit 1, $(grep error: "$LAB_RUN/sq-two.log" | head -n 1)"
nsx gw ip link del cfrsq0
echo "PASS $TEST_NAME"
