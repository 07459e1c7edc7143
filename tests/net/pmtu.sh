#!/bin/bash
# tests/net/pmtu.sh: path MTU discovery through cfrd. The link between gateway
# and front door drops to 1280 bytes; subscribers keep 1500. A 2.5 MB HTTPS
# upload (POST) only completes if the gateway's ICMP Fragmentation Needed /
# ICMPv6 Packet Too Big, sent to the alias, is translated back by cfrd to the
# subscriber (TCP sets DF; the kernel does no MTU probing by default).
#
#  cfr-sub1,2 (mtu 1500) --- cfr-gw: cfrd -> fd0 (mtu 1280) === gw0 (mtu 1280) cfr-fd
#      ^                         |  ICMP "too big" to the alias -> cfr0 -> cfrd
#      +------ restored ICMP ----+
# The front door advertises a 1460/1440 MSS regardless of its own link (route
# advmss), as a server behind a bigger-MTU hop would, so the subscriber sends
# full-size segments and must learn the PMTU from ICMP.
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

test_lab_up 2

nsx gw ip link set fd0 mtu 1280
nsx fd ip link set "$FD_IF" mtu 1280
nsx fd ip route replace "$POOL4" via 198.51.100.1 advmss 1460
nsx fd ip -6 route replace "$POOL6" via 2001:db8:ffff::1 advmss 1440
for i in 1 2; do
	nsx "sub$i" ip route flush cache
	nsx "sub$i" ip -6 route flush cache
done
head -c 2621440 /dev/urandom >"$LAB_RUN/upload.bin"
size=$(stat -c %s "$LAB_RUN/upload.bin")

# upload NS URL: POST the file; prints "http_code size_upload".
upload() {
	nsx "$1" curl -sS --max-time 60 --cacert "$LAB_RUN/fd.crt" -H 'Expect:' \
		--data-binary "@$LAB_RUN/upload.bin" -o /dev/null -w '%{http_code} %{size_upload}' "$2"
}

for fam in 4 6; do
	if [ "$fam" = 4 ]; then i=1 host=$SVC4 dst=$SVC4; else i=2 host="[$SVC6]" dst=$SVC6; fi
	nsx "sub$i" ip "-$fam" route get "$dst" | grep -q 'mtu 1280' && fail "sub$i already has a PMTU for $dst before the test"
	res=$(upload "sub$i" "https://$host/upload?test=pmtu&fam=$fam" 2>&1) \
		|| fail "IPv$fam upload from sub$i did not complete through a 1280-byte link: $res"
	[ "$res" = "200 $size" ] || fail "IPv$fam upload: got '$res', want '200 $size'"
	# nginx logs a request after it sent the answer curl already has: give it 2 s.
	for _ in $(seq 20); do
		read -r status reqlen <<<"$(awk -v u="/upload?test=pmtu&fam=$fam" '$4 == u {print $5, $6}' "$LAB_RUN/nginx-access.log")"
		[ -z "${status:-}" ] || break
		sleep 0.1
	done
	if [ "${status:-}" != 200 ] || [ "${reqlen:-0}" -lt "$size" ]; then
		fail "IPv$fam: front door logged status '${status:-}' and ${reqlen:-0} request bytes (want 200, >= $size)"
	fi
	ok "IPv$fam: $size-byte upload from sub$i complete (front door read $reqlen request bytes)"
	route=$(nsx "sub$i" ip "-$fam" route get "$dst")
	echo "$route" | grep -q 'mtu 1280' \
		|| fail "sub$i did not learn the 1280-byte PMTU to $dst: $(echo "$route" | tr '\n' ' ')"
	ok "sub$i route cache: $(echo "$route" | tr -s ' \n' ' ')"
done

test_leak_check
echo "PASS $TEST_NAME"
