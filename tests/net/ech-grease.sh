#!/bin/bash
# tests/net/ech-grease.sh: GREASE ECH (RFC 9849 6.2) through cfrd, IPv4 and
# IPv6, three subscribers. A GREASE client offers a fake ECH extension and
# sends its real name as the outer SNI: the handshake must complete against
# a server without ECH (which ignores the extension) and against the ECH
# server (which rejects it and sends retry configs the client ignores). The
# front door logs only pool aliases. GREASE hides nothing: the name is in
# the gateway's capture, and that is checked too, so nobody mistakes
# GREASE for protection.
#
#  cfr-subI ech-client --grease --veth-- cfr-gw [cfrd] --veth-- cfr-fd
#                                ^capture acc-I               ech-server --no-ech :8444
#                                                             ech-server (ECH)   :8443
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"
# shellcheck source=lab/ech.sh
. "$LAB_DIR/ech.sh"

N=3
ech_test_up "$N"

caps=()
for i in $(seq "$N"); do
	ech_capture_start "acc-$i" gw "sub$i" || fail "capture on cfr-gw sub$i"
	caps+=("acc-$i")
done

k=0
for i in $(seq "$N"); do
	name=$(ech_inner "$i")
	for fam in 4 6; do
		pool=$POOL4
		[ "$fam" = 4 ] || pool=$POOL6
		for mode in grease grease-ech; do
			k=$((k + 1))
			out=$(ech_client "$i" "$fam" "$mode") || fail "sub$i IPv$fam $mode: ${out:-no output}"
			has "$out" "ech=grease inner_sni=- outer_sni=$name status=200 result=ok" ||
				fail "sub$i IPv$fam $mode: client says: $out"
			line=$(sed -n "${k}p" "$ECH_LOG")
			want=ignored
			[ "$mode" = grease ] || want=rejected
			has "$line" "outer_sni=$name inner_sni=- ech=$want result=ok" ||
				fail "sub$i IPv$fam $mode: front door logged: $line"
			in_net "$(ech_field peer "$line")" "$pool" ||
				fail "sub$i IPv$fam $mode: front door saw a non-alias: $line"
			say "sub$i IPv$fam $mode: client ech=grease, front door ech=$want from $(ech_field peer "$line")"
		done
	done
done
ech_capture_stop "${caps[@]}"
ok "$k GREASE handshakes completed (no-ECH server: ignored; ECH server: rejected, no failure)"

for i in $(seq "$N"); do
	case $(ech_observe "$ECH_DIR/acc-$i.pcap") in packets=0\ *) fail "capture acc-$i is empty" ;; esac
	cnt=$(grep -ac -- "$(ech_inner "$i")" "$ECH_DIR/acc-$i.pcap" || true)
	[ "$cnt" -ge 1 ] || fail "GREASE: $(ech_inner "$i") not in sub$i's access capture"
done
ok "GREASE sends the name in clear: every name is in the gateway's access capture"

ech_down
test_leak_check
echo "PASS $TEST_NAME"
