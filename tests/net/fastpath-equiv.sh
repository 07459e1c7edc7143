#!/bin/bash
# tests/net/fastpath-equiv.sh: the fast path's program and the engine give
# the same packet, byte for byte (build/tests/fastpath_equiv, which says
# what may differ and why), for TCP, UDP and ICMP echo in both families and
# directions. The program routes like the kernel, so it runs in a namespace
# of its own with the lab's addresses: cfr0 (a TUN device standing for cfrd's
# TUN device), sub0 towards the subscriber 100.64.1.2 / 2001:db8:100:1::2,
# up0 towards the remote 198.51.100.7 / 2001:db8:ffff::80, both neighbours
# resolved. No packet leaves the namespace: the program runs on test input.
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

[ "$(id -u)" = 0 ] || skip "needs root (BPF, a network namespace)"
BIN=$LAB_ROOT/build/tests/fastpath_equiv
[ -x "$BIN" ] || skip "build/tests/fastpath_equiv missing: run make unit"
NS=$LAB_NS-fpeq
ip netns del "$NS" 2>/dev/null || true
trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
ip netns add "$NS"
e() { ip netns exec "$NS" "$@"; }
e sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
e ip link set lo up
e ip tuntap add dev cfr0 mode tun
e ip link add sub0 type veth peer name sub0p
e ip link add up0 type veth peer name up0p
for d in cfr0 sub0 sub0p up0 up0p; do e ip link set "$d" up; done
e ip addr add 100.64.1.1/24 dev sub0
e ip addr add 2001:db8:100:1::1/64 dev sub0 nodad
e ip addr add 198.51.100.1/24 dev up0
e ip addr add 2001:db8:ffff::1/64 dev up0 nodad
e ip neigh replace 100.64.1.2 lladdr 02:00:00:00:01:02 dev sub0 nud permanent
e ip neigh replace 2001:db8:100:1::2 lladdr 02:00:00:00:01:02 dev sub0 nud permanent
e ip neigh replace 198.51.100.7 lladdr 02:00:00:00:00:07 dev up0 nud permanent
e ip neigh replace 2001:db8:ffff::80 lladdr 02:00:00:00:00:07 dev up0 nud permanent

# The program loads with what cfrd.service grants (no CAP_PERFMON: the
# verifier then refuses some pointer arithmetic that root may do).
caps=$(sed -n 's/^AmbientCapabilities=//p' "$LAB_ROOT/contrib/systemd/cfrd.service" | tr '[:upper:]' '[:lower:]' | sed 's/cap_//g')
capset=$(for c in $caps; do printf '+%s,' "$c"; done | sed 's/,$//')
setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,"$capset" --ambient-caps=-all,"$capset" \
	--bounding-set=-all,"$capset" "$BIN" --load-only ||
	fail "the program does not load with cfrd.service's capabilities ($caps) alone"
ok "the program loads with cfrd.service's capabilities alone: $caps"

out=$(CMOCKA_MESSAGE_OUTPUT=stdout e "$BIN" 2>&1) || { echo "$out"; fail "the fast path and the engine differ"; }
echo "$out" | sed -n 's/^\[       OK \] /  ok: program = engine: /p'
echo "PASS $TEST_NAME"
