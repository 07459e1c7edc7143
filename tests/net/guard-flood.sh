#!/bin/bash
# tests/net/guard-flood.sh: flood isolation. Subscriber 1 floods new TCP
# flows (raw SYNs with fresh source ports) in two bursts, FLOOD_S seconds
# and FLOOD_MAX packets at most in all: first to an address nobody answers,
# so flows stay half-open, then (once those expired) to the front door's
# HTTPS port, faster than the new-flow rate, while subscribers 2-4 fetch
# over TLS again and again. The others' success rate must be 100%; the
# flooder's refusals show up in drops.subscriber_rate_limit,
# drops.subscriber_half_open_limit and drops.subscriber_flow_limit; cfrd's
# resident memory stays under its ceiling (the engine's fixed allocation
# plus packet buffers and a margin).
#
#  cfr-sub1 ==SYN flood==> cfr-gw [cfrd: limits per subscriber] --> cfr-fd
#  cfr-sub2..4 --curl https (repeat)--> cfr-gw [cfrd] -----------> cfr-fd nginx
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

FLOOD_S=5        # seconds of flooding, at most (0.5 half-open + 4.5 answered)
FLOOD_MAX=16000  # packets, at most
CURLS=15         # fetches per other subscriber
RSS_MARGIN_KB=$((48 * 1024)) # buffers (64 x 64 KiB), libc, json-c, stack

"$PY" -c 'import scapy' 2>/dev/null || skip "$PY has no scapy (python3-scapy)"
conf=$(mktemp /tmp/cfr-guard-flood.XXXXXX)
# Limits low enough that a few seconds of flood reach each of them (lab_config
# ends in [limits]; tcp-embryonic joins its [timeouts]).
# The engine checks flows, then half-open, then rate: the half-open burst
# must expire (tcp-embryonic) before the second burst can meet the others.
lab_config | sed '/^\[timeouts\]/a tcp-embryonic = 2' >"$conf"
cat >>"$conf" <<'EOF'
tcp-per-subscriber = 300
half-open-per-subscriber = 50
new-flows-per-second = 100
new-flows-burst = 100
EOF
test_lab_up 4 --config "$conf"
rm -f "$conf"
pid=$(cat "$LAB_RUN/cfrd.pid")
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
mem_kb=$(($(cfrctl_json | json_get memory_bytes) / 1024))
ceiling=$((mem_kb + RSS_MARGIN_KB))
rss0=$(rss)
say "engine memory ${mem_kb} KiB, RSS before ${rss0} KiB, ceiling ${ceiling} KiB"
before=$(cfrctl_json)

# The flood: raw TCP SYNs built once, source port and checksum patched per packet.
nsx sub1 "$PY" - "$FLOOD_S" "$FLOOD_MAX" >"$LAB_RUN/flood.log" 2>&1 <<'PYEOF' &
import socket, struct, sys, time
secs, limit = float(sys.argv[1]), int(sys.argv[2])
src = socket.inet_aton("100.64.1.2")
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
n = 0
def burst(dst_text, secs, limit):
    global n
    dst = socket.inet_aton(dst_text)
    end, first = time.time() + secs, n
    while n - first < limit and time.time() < end:
        sport = 10000 + n % 50000
        tcp = struct.pack("!HHIIBBHHH", sport, 443, n, 0, 5 << 4, 0x02, 64240, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), n & 0xffff, 0, 64, 6, 0,
                         src, dst)
        s.sendto(ip + tcp, (dst_text, 0))
        n += 1
        if n % 200 == 0:
            time.sleep(0.02)  # a few thousand per second: a flood, not a DoS of the host
# 1. Unanswered SYNs (no route beyond the gateway): flows stay half-open.
burst("203.0.113.99", 0.5, limit // 8)
time.sleep(3)  # the embryonic timeout (2 s) frees them
# 2. Answered SYNs, faster than the rate: the bucket, then the flow limit.
burst("203.0.113.10", secs - 0.5, limit - n)
print("sent", n)
PYEOF
flood=$!

# Meanwhile everyone else keeps fetching over TLS.
fetch() {
	local i=$1 fam=$2 url ok_n=0
	[ "$fam" = 6 ] && url="https://[$SVC6]/" || url="https://$SVC4/"
	for _ in $(seq "$CURLS"); do
		if nsx "sub$i" curl -sk --max-time 5 -o /dev/null "$url"; then
			ok_n=$((ok_n + 1))
		fi
		sleep 0.2
	done
	echo "$ok_n" >"$LAB_RUN/fetch-$i-$fam"
}
fetch 2 4 &
fetchers=$!
fetch 3 4 &
fetchers="$fetchers $!"
fetch 4 6 &
fetchers="$fetchers $!"
peak=$rss0
while kill -0 "$flood" 2>/dev/null; do
	r=$(rss)
	[ "$r" -le "$peak" ] || peak=$r
	sleep 0.2
done
wait "$flood" || fail "the flood script failed: $(cat "$LAB_RUN/flood.log")"
# Not a bare `wait`: the front-door capture is a child of this shell too.
# shellcheck disable=SC2086
wait $fetchers
say "flood: $(cat "$LAB_RUN/flood.log")"
r=$(rss)
[ "$r" -le "$peak" ] || peak=$r
kill -0 "$pid" 2>/dev/null || fail "cfrd died during the flood"

for f in 2-4 3-4 4-6; do
	got=$(cat "$LAB_RUN/fetch-$f")
	[ "$got" = "$CURLS" ] || fail "subscriber ${f%-*} (IPv${f#*-}): $got of $CURLS fetches during the flood"
done
ok "subscribers 2-4: $CURLS of $CURLS TLS fetches each during the flood (100%)"

[ "$peak" -le "$ceiling" ] || fail "cfrd RSS peaked at $peak KiB, above the ceiling $ceiling KiB"
ok "cfrd RSS peak $peak KiB <= ceiling $ceiling KiB"

after=$(cfrctl_json)
get() { echo "$1" | json_get "$2"; }
total=0
for r in subscriber_rate_limit subscriber_half_open_limit subscriber_flow_limit; do
	d=$(($(get "$after" "drops.$r") - $(get "$before" "drops.$r")))
	say "drops.$r +$d"
	total=$((total + d))
	eval "d_$r=$d"
done
# shellcheck disable=SC2154
[ "$d_subscriber_rate_limit" -gt 0 ] || fail "the flood never hit the new-flow rate limit"
# shellcheck disable=SC2154
[ "$d_subscriber_half_open_limit" -gt 0 ] || fail "the flood never hit the half-open limit"
ok "the flooder's refusals are counted ($total in all)"
test_leak_check
