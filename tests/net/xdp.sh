#!/bin/bash
# tests/net/xdp.sh: the AF_XDP fast path ([xdp] in cfrd.conf, cfr-lab up
# --xdp). Real peers through it from every subscriber, both families: HTTPS
# to nginx, UDP echo byte for byte, ping, and an iperf3 TCP stream. The
# fast path must carry the traffic (AF_XDP frames, not TUN reads), the front
# door must never see a subscriber address, and the gateway's own services
# (ARP/ND, ping to the gateway) must still work. Then the one state the fast
# path adds, the learned subscriber MACs: a subscriber spoofing another's
# address must not pull that subscriber's replies to itself.
#
#  cfr-sub1..3 --veth (XDP inside)-- cfr-gw [cfrd: AF_XDP + cfr0] --veth (XDP outside)-- cfr-fd
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

N=3
test_requires curl iperf3 ethtool
test_lab_up "$N" --xdp

nsx gw ip -d link show sub1 | grep -q 'prog/xdp' || fail "no XDP program on the gateway's sub1"
nsx gw ip -d link show "$GW_UP_IF" | grep -q 'prog/xdp' || fail "no XDP program on $GW_UP_IF"
cfrctl_json | json_get io.xdp.rx >/dev/null || fail "no io.xdp in cfrctl stats"
ok "XDP program attached to the inside and outside veths"

for i in $(seq "$N"); do
	for addr in "$SVC4" "[$SVC6]"; do
		code=$(nsx "sub$i" curl -sk --max-time 5 -o /dev/null -w '%{http_code}' "https://$addr/") || true
		[ "$code" = 200 ] || fail "sub$i: HTTPS to $addr: $code"
	done
	udp_roundtrip "sub$i" "$SVC4" 1200 20 >/dev/null || fail "sub$i: UDP echo over IPv4"
	udp_roundtrip "sub$i" "$SVC6" 1200 20 >/dev/null || fail "sub$i: UDP echo over IPv6"
	nsx "sub$i" ping -n -q -c 5 -i 0.05 -W 2 "$SVC4" >/dev/null || fail "sub$i: ping $SVC4"
	nsx "sub$i" ping -6 -n -q -c 5 -i 0.05 -W 2 "$SVC6" >/dev/null || fail "sub$i: ping $SVC6"
done
ok "$N subscribers: HTTPS, 20 UDP echoes (1200 B) and 5 pings each, IPv4 and IPv6"

nsx fd iperf3 -s -1 -D -p 5201 >/dev/null
sleep 0.3
out=$(nsx sub1 timeout 20 iperf3 -c "$SVC4" -p 5201 -t 2 -J) || fail "iperf3 through the fast path failed"
gbps=$(echo "$out" | "$PY" -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))')
ok "iperf3 TCP, 2 s, IPv4: $gbps Gbit/s received"

# The gateway itself is still reachable: its packets pass the program to the kernel.
nsx sub1 ping -n -q -c 2 -i 0.1 -W 1 100.64.1.1 >/dev/null || fail "sub1 cannot ping its gateway"
nsx sub1 ping -6 -n -q -c 2 -i 0.1 -W 1 2001:db8:100:1::1 >/dev/null || fail "sub1 cannot ping6 its gateway"
ok "the gateway answers its own pings (XDP passes them to the kernel)"

stats=$(cfrctl_json)
rx=$(echo "$stats" | json_get io.xdp.rx)
tx=$(echo "$stats" | json_get io.xdp.tx)
tun=$(echo "$stats" | "$PY" -c 'import json, sys; print(sum(json.load(sys.stdin)["io"]["packets_by_worker"]))')
say "AF_XDP rx $rx, tx $tx; TUN reads $tun"
[ "$rx" -gt 1000 ] || fail "only $rx frames took the fast path"
[ "$tun" -lt $((rx / 20)) ] || fail "the TUN path carried $tun packets against $rx on AF_XDP"
[ "$tx" -ge $((rx * 99 / 100)) ] || fail "AF_XDP sent $tx of $rx frames"
nsx gw "$CFRCTL" -s "$LAB_CTL" stats | grep -q '^af_xdp ' || fail "no af_xdp line in cfrctl stats"
ok "the fast path carried the traffic: $rx frames in, $tx out, $tun through TUN"

# sub1 holds a UDP flow; sub2 then sends as sub1 (same tuple) from its own
# veth. The program's reverse-path check keeps those frames off the fast
# path, so sub2's MAC is never learned for sub1's address, and on the TUN
# path the guard table's source check drops them (spoofed_source): sub1
# keeps getting its own echoes.
# shellcheck disable=SC2016
# The frames go to the gateway's MAC: left to scapy, an unanswered ARP
# would make them broadcasts, which the gateway never forwards.
gw_mac=$(nsx gw cat /sys/class/net/sub2/address)
spoofed_before=$(nsx gw nft list counter inet cfr_guard spoofed_source | awk '/packets/ {print $2}')
nsx sub1 "$PY" - "$SVC4" "$gw_mac" "$(sub_addr4 1)" "$LAB_NS-sub2" <<'EOF' || fail "sub1 lost its replies to a spoofer"
import socket, subprocess, sys
svc, gw_mac, me, sub2 = sys.argv[1:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40000))
s.settimeout(2)

def echo(tag):
    s.sendto(tag, (svc, 7))
    while True:
        data, _ = s.recvfrom(2048)
        if data == tag:
            return

echo(b"before")
spoof = ("from scapy.all import IP, UDP, Raw, Ether, sendp, conf; conf.verb = 0; "
         "sendp([Ether(dst='%s')/IP(src='%s', dst='%s')/UDP(sport=40000, dport=7)/Raw(b'spoof')] * 5, "
         "iface='gw0')" % (gw_mac, me, svc))
subprocess.run(["ip", "netns", "exec", sub2, sys.executable, "-c", spoof], check=True)
for i in range(5):
    echo(b"after %d" % i)
EOF
spoofed=$(($(nsx gw nft list counter inet cfr_guard spoofed_source | awk '/packets/ {print $2}') - spoofed_before))
[ "$spoofed" -ge 5 ] || fail "the guard counted $spoofed of sub2's 5 spoofed frames"
ok "a subscriber sending as another does not take its replies ($spoofed spoofed frames dropped by the guard)"
test_leak_check

# A port that does not exist, or that already runs an XDP program (the lab's
# cfrd holds fd0): a second cfrd says which and exits 1, before any traffic.
conf=$LAB_RUN/xdp-bad.conf
lab_config | sed -e "s#^control = .*#control = $LAB_RUN/xdp-bad.sock#" -e 's/^tun = cfr0/tun = cfrxbad0/' \
	-e 's/^max-flows = .*/max-flows = 1024/' >"$conf"
printf '\n[xdp]\noutside = nosuch0\ninside = sub1\n' >>"$conf"
for want in "port nosuch0: No such device" "port $GW_UP_IF: cannot attach the XDP program: Device or resource busy"; do
	rc=0
	nsx gw timeout 10 "$CFRD" -c "$conf" >"$LAB_RUN/xdp-bad.log" 2>&1 || rc=$?
	[ "$rc" = 1 ] || fail "cfrd with a bad [xdp] port: exit $rc, want 1: $(cat "$LAB_RUN/xdp-bad.log")"
	grep -q "error: \[xdp\] $want" "$LAB_RUN/xdp-bad.log" || fail "no clear error line: $(cat "$LAB_RUN/xdp-bad.log")"
	ok "bad port: exit 1, $(grep error: "$LAB_RUN/xdp-bad.log")"
	sed -i "s/^outside = nosuch0/outside = $GW_UP_IF/" "$conf"
done
nsx gw ip link del cfrxbad0 2>/dev/null || true

# Closing AF_XDP sockets and BPF links happens under the seccomp filter.
stop_pid TERM "$(cat "$LAB_RUN/cfrd.pid")" 50
grep -q 'info: stopped$' "$LAB_RUN/cfrd.log" || fail "cfrd did not stop cleanly: $(tail -n 3 "$LAB_RUN/cfrd.log")"
# A sanitizer build (tests/run's net-asan) reports leaks as it exits.
# (Its own warning that it runs without Landlock names the sanitizer too.)
report='ERROR: [A-Za-z]*Sanitizer|SUMMARY: [A-Za-z]*Sanitizer|runtime error:'
! grep -qE "$report" "$LAB_RUN/cfrd.log" || fail "cfrd: $(grep -m 1 -E "$report" "$LAB_RUN/cfrd.log")"
ok "cfrd stops cleanly, sockets and program released"
echo "PASS $TEST_NAME"
