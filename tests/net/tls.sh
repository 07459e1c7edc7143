#!/bin/bash
# tests/net/tls.sh: HTTPS through cfrd from several subscribers at once, IPv4
# and IPv6. The front door must only ever see pool addresses: in its capture
# and in nginx's own access log. Every body is compared with the original.
#
#  cfr-sub1..4 --veth-- cfr-gw [subI -> cfr0 -> cfrd -> fd0] --veth-- cfr-fd
#  100.64.I.2                   alias from 192.0.2.0/26,             nginx :443
#  2001:db8:100:I::2            2001:db8:a1::/64                     203.0.113.10
#                                                                    2001:db8:f::10
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

N=4
test_lab_up "$N"

want=$(sha256sum <"$LAB_RUN/www/big.bin" | cut -d' ' -f1)
pids=()
for i in $(seq "$N"); do
	for fam in 4 6; do
		host=$SVC4
		[ "$fam" = 4 ] || host="[$SVC6]"
		nsx "sub$i" curl -sS --max-time 60 --cacert "$LAB_RUN/fd.crt" \
			-o "$LAB_RUN/tls-$i-$fam.body" -w '%{http_code}\n' \
			"https://$host/big.bin?test=tls&sub=$i&fam=$fam" >"$LAB_RUN/tls-$i-$fam.code" 2>&1 &
		pids+=($!)
	done
done
say "${#pids[@]} concurrent HTTPS downloads of 2 MiB (sub1..sub$N, IPv4 and IPv6)"
bad=0
for p in "${pids[@]}"; do
	wait "$p" || bad=$((bad + 1))
done
for i in $(seq "$N"); do
	for fam in 4 6; do
		code=$(cat "$LAB_RUN/tls-$i-$fam.code")
		[ "$code" = 200 ] || fail "sub$i IPv$fam: curl: $code"
		got=$(sha256sum <"$LAB_RUN/tls-$i-$fam.body" | cut -d' ' -f1)
		[ "$got" = "$want" ] || fail "sub$i IPv$fam: body differs from the front door's file"
	done
done
[ "$bad" = 0 ] || fail "$bad curl processes failed"
ok "all $((N * 2)) downloads complete, bodies identical"

# nginx's view: one line per request, remote address inside the right pool.
log=$LAB_RUN/nginx-access.log
lines=$(grep -c 'test=tls' "$log" || true)
[ "$lines" = $((N * 2)) ] || fail "expected $((N * 2)) requests in the access log, found $lines"
while read -r addr port _ uri status _; do
	case $uri in *fam=4*) net=$POOL4 ;; *fam=6*) net=$POOL6 ;; *) continue ;; esac
	in_net "$addr" "$net" || fail "front door logged $addr:$port for $uri (not in $net)"
	[ "$status" = 200 ] || fail "front door answered $status to $uri"
done <"$log"
while read -r addr _; do
	in_pool "$addr" || fail "front door access log has a non-pool address: $addr"
done <"$log"
ok "front door access log shows only pool addresses ($(awk '{print $1}' "$log" | sort -u | wc -l) distinct)"

test_leak_check
echo "PASS $TEST_NAME"
