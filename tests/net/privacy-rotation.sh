#!/bin/bash
# tests/net/privacy-rotation.sh: R4 across forced epoch rotations, with the
# per-destination policy (so that within an epoch every flow from sub1 to one
# front-door address shares an alias, which makes "a fresh alias after the
# rotation" observable). While a long TCP download (curl --limit-rate, ~14 s,
# long enough to outlast the rotations on a loaded machine) and a long UDP flow
# (80 datagrams to the echo, one every 0.2 s, one
# socket) run, `cfrctl epoch rotate` is called three times:
#   - both long flows keep ONE alias:port from first to last packet at the
#     front door (one TCP connection, opened by its SYN before the first
#     rotation and still sending after the last; one UDP tuple carrying all
#     80 datagrams), the download is intact and every datagram echoed;
#   - a connection before the rotations shares the long flows' alias (the
#     policy), and a new connection after each rotation gets the new epoch's
#     alias: never the old one on IPv6 (a random /64 IID); on IPv4 (a /26,
#     equal by chance 1 time in 64) at most one of three rotations may
#     repeat the previous alias (false failure p < 1e-3);
#   - cfrctl's privacy.epoch moves by exactly 3.
#
#  cfr-sub1 --veth-- cfr-gw [cfrd per-destination; cfrctl epoch rotate x3] --veth-- cfr-fd
#                                                                 (capture, nginx log)
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

# Long UDP flow: COUNT datagrams to ADDR:7 every 0.2 s from one socket.
# shellcheck disable=SC2016
LONG_UDP_PY='
import os, socket, sys, time
addr, count = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(2.0)
s.connect((addr, 7))
for i in range(count):
    data = os.urandom(48)
    s.send(data)
    try:
        got = s.recv(2048)
    except socket.timeout:
        sys.exit("datagram %d: no echo within 2 s" % i)
    if got != data:
        sys.exit("datagram %d: echo differs" % i)
    time.sleep(0.2)
print("%d datagrams echoed from port %d" % (count, s.getsockname()[1]))
'

UDP_N=80
test_lab_config_up 1 "$(printf '[privacy]\nipv4-policy = per-destination\nipv6-policy = per-destination\nepoch = 3600')"
capture_start "$TEST_NAME" || fail "cannot capture on cfr-fd"
epoch0=$(cfrctl_json | json_get privacy.epoch)

# get PHASE FAM [CURL OPTIONS...]: one HTTPS request tagged with PHASE.
get() {
	local phase=$1 fam=$2 host=$SVC4
	shift 2
	[ "$fam" = 4 ] || host="[$SVC6]"
	nsx sub1 curl -sS --max-time 30 --cacert "$LAB_RUN/fd.crt" -o "$LAB_RUN/rot-$phase-$fam.body" \
		-w '%{http_code}' "$@" "https://$host/big.bin?test=$TEST_NAME&phase=$phase&fam=$fam"
}

for fam in 4 6; do
	code=$(get pre "$fam" 2>&1) || fail "pre-rotation request IPv$fam: $code"
done
pids=()
for fam in 4 6; do
	get long "$fam" --limit-rate 150k >"$LAB_RUN/rot-long-$fam.code" 2>&1 &
	pids+=($!)
done
nsx sub1 "$PY" -c "$LONG_UDP_PY" "$SVC4" "$UDP_N" >"$LAB_RUN/rot-udp4.log" 2>&1 &
pids+=($!)
nsx sub1 "$PY" -c "$LONG_UDP_PY" "$SVC6" "$UDP_N" >"$LAB_RUN/rot-udp6.log" 2>&1 &
pids+=($!)
sleep 2

t_first=""
for r in 1 2 3; do
	now=$(date +%s.%N)
	[ -n "$t_first" ] || t_first=$now
	t_last=$now
	out=$("$LAB_DIR/cfr-lab" exec gw "$CFRCTL" -s "$LAB_CTL" epoch rotate 2>&1) || fail "cfrctl epoch rotate: $out"
	sleep 0.3
	for fam in 4 6; do
		code=$(get "post$r" "$fam" 2>&1) || fail "request after rotation $r, IPv$fam: $code"
	done
done
ok "3 forced rotations while a download and a UDP flow per family run"

bad=0
for p in "${pids[@]}"; do
	wait "$p" || bad=$((bad + 1))
done
want=$(sha256sum <"$LAB_RUN/www/big.bin" | cut -d' ' -f1)
for fam in 4 6; do
	code=$(cat "$LAB_RUN/rot-long-$fam.code")
	[ "$code" = 200 ] || fail "long download IPv$fam: $code"
	got=$(sha256sum <"$LAB_RUN/rot-long-$fam.body" | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "long download IPv$fam: body differs"
	grep -q "^$UDP_N datagrams echoed" "$LAB_RUN/rot-udp$fam.log" || fail "long UDP flow IPv$fam: $(cat "$LAB_RUN/rot-udp$fam.log")"
done
[ "$bad" = 0 ] || fail "$bad long-lived clients failed"
ok "long download intact and all $UDP_N datagrams echoed, both families"

epoch1=$(cfrctl_json | json_get privacy.epoch)
[ "$epoch1" = $((epoch0 + 3)) ] || fail "privacy.epoch went from $epoch0 to $epoch1, want +3"
ok "privacy.epoch $epoch0 -> $epoch1"

capture_stop "$TEST_NAME"
# What nginx saw: alias address and port per tagged request.
alias_of() { awk -v p="phase=$1&fam=$2" 'index($4, p) {print $1, $2}' "$LAB_RUN/nginx-access.log"; }
for fam in 4 6; do
	svc=$SVC4
	[ "$fam" = 4 ] || svc=$SVC6
	read -r long_addr long_port <<<"$(alias_of long "$fam")"
	[ -n "${long_port:-}" ] || fail "IPv$fam: long download not in the nginx log"
	pcap_tool long-flows "$LAB_RUN/$TEST_NAME.pcap" "$fam" "$svc" "$t_first" "$t_last" \
		"$long_addr" "$long_port" "$UDP_N" || fail "IPv$fam: a long-lived flow did not keep one alias"
	ok "IPv$fam: the long TCP and UDP flows kept one alias:port across 3 rotations"

	prev=$(alias_of pre "$fam" | cut -d' ' -f1)
	[ "$prev" = "$long_addr" ] ||
		fail "IPv$fam: per-destination: two connections in one epoch to one remote used $prev and $long_addr"
	repeats=0
	for r in 1 2 3; do
		a=$(alias_of "post$r" "$fam" | cut -d' ' -f1)
		[ -n "$a" ] || fail "IPv$fam: request after rotation $r not in the nginx log"
		in_pool "$a" || fail "IPv$fam: alias $a outside the pool"
		say "IPv$fam: epoch alias $prev -> $a"
		[ "$a" != "$prev" ] || repeats=$((repeats + 1))
		prev=$a
	done
	if [ "$fam" = 6 ]; then
		[ "$repeats" = 0 ] || fail "IPv6: $repeats rotations kept the previous epoch's alias"
	else
		[ "$repeats" -le 1 ] || fail "IPv4: $repeats of 3 rotations kept the previous epoch's alias"
	fi
	ok "IPv$fam: each new epoch gave new connections a new alias ($repeats chance repeats)"
done

test_leak_check
echo "PASS $TEST_NAME"
