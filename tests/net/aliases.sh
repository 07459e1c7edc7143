#!/bin/bash
# tests/net/aliases.sh: one subscriber, many flows. Each new connection must
# leave from a fresh random alias (address and port) drawn from the pool
# only: 20 HTTPS connections and 50 UDP flows (distinct source ports) per
# family, read back from the front door's capture.
#
#  cfr-sub1 --(70 flows per family)--> cfr-gw [cfrd] --> cfr-fd (capture: which
#  100.64.1.2, 2001:db8:100:1::2                          alias:port per flow?)
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

test_lab_up 1

for fam in 4 6; do
	host=$SVC4
	[ "$fam" = 4 ] || host="[$SVC6]"
	for n in $(seq 20); do
		code=$(nsx sub1 curl -sS --max-time 10 --cacert "$LAB_RUN/fd.crt" -o /dev/null -w '%{http_code}' \
			"https://$host/?test=aliases&fam=$fam&n=$n" 2>&1) || fail "curl $n IPv$fam: $code"
		[ "$code" = 200 ] || fail "curl $n IPv$fam: HTTP $code"
	done
done
ok "40 HTTPS connections from sub1 (20 per family)"
udp_roundtrip sub1 "$SVC4" 32 50 fresh >"$LAB_RUN/udp4.ports" || fail "UDP echo (IPv4) failed"
udp_roundtrip sub1 "$SVC6" 32 50 fresh >"$LAB_RUN/udp6.ports" || fail "UDP echo (IPv6) failed"
ok "100 UDP flows from sub1 (50 per family, each from a new source port)"

capture_stop "$TEST_NAME"
pcap_tool flows "$LAB_RUN/$TEST_NAME.pcap" >"$LAB_RUN/flows.txt"

# check_spread WHAT FILE MIN_FLOWS MIN_ADDRS MIN_PORTS POOL: FILE has one
# "addr port" per flow as the front door saw it.
check_spread() {
	local what=$1 file=$2 nflows addrs ports a
	nflows=$(sort -u "$file" | wc -l)
	addrs=$(awk '{print $1}' "$file" | sort -u | wc -l)
	ports=$(awk '{print $2}' "$file" | sort -u | wc -l)
	[ "$nflows" -ge "$3" ] || fail "$what: front door saw $nflows flows, want $3"
	[ "$addrs" -ge "$4" ] || fail "$what: only $addrs distinct alias addresses over $nflows flows (want >= $4): $(awk '{print $1}' "$file" | sort | uniq -c | sort -rn | head -n 3 | tr -s ' \n' ' ')"
	[ "$ports" -ge "$5" ] || fail "$what: only $ports distinct alias ports over $nflows flows (want >= $5)"
	while read -r a; do
		in_net "$a" "$6" || fail "$what: alias $a is outside $6"
	done < <(awk '{print $1}' "$file" | sort -u)
	ok "$what: $nflows flows used $addrs distinct addresses and $ports distinct ports, all in $6"
}

# TCP: one SYN per connection (retransmitted SYNs collapse in sort -u).
awk '$1 == 4 && $2 == 6 && $7 ~ /S/ && $6 == 443 {print $3, $4}' "$LAB_RUN/flows.txt" >"$LAB_RUN/tcp4"
awk '$1 == 6 && $2 == 6 && $7 ~ /S/ && $6 == 443 {print $3, $4}' "$LAB_RUN/flows.txt" >"$LAB_RUN/tcp6"
# A random address from a /26 for each of 20 flows: expect ~15 distinct,
# fewer than 5 is vanishingly unlikely; from a /64 every one is distinct.
check_spread "TCP/IPv4" "$LAB_RUN/tcp4" 20 5 18 "$POOL4"
check_spread "TCP/IPv6" "$LAB_RUN/tcp6" 20 18 18 "$POOL6"

# UDP: requests to port 7, in the order they were sent (one at a time).
for fam in 4 6; do
	awk -v f="$fam" '$1 == f && $2 == 17 && $6 == 7 {print $3, $4}' "$LAB_RUN/flows.txt" >"$LAB_RUN/udp$fam"
done
check_spread "UDP/IPv4" "$LAB_RUN/udp4" 50 10 45 "$POOL4"
check_spread "UDP/IPv6" "$LAB_RUN/udp6" 50 45 45 "$POOL6"

# Ports are chosen, not preserved: compare each flow's subscriber source port
# with the alias port the front door saw for it.
for fam in 4 6; do
	[ "$(wc -l <"$LAB_RUN/udp$fam")" = 50 ] || fail "UDP/IPv$fam: capture has $(wc -l <"$LAB_RUN/udp$fam") requests, want 50"
	same=$(paste -d' ' "$LAB_RUN/udp$fam.ports" "$LAB_RUN/udp$fam" | awk '$1 == $4' | wc -l)
	[ "$same" -lt 5 ] || fail "UDP/IPv$fam: $same of 50 flows kept the subscriber's source port"
	ok "UDP/IPv$fam: $same of 50 alias ports equal the subscriber's own port"
done

test_leak_check
echo "PASS $TEST_NAME"
