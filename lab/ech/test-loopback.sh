#!/bin/bash
# test-loopback.sh - real ECH handshakes between ech-client and ech-server
# (NSS) on loopback, for 127.0.0.1 and ::1, with tcpdump as the on-path
# observer.
#
#   ech-client ---- lo (tcpdump -i lo 'tcp port P') ---- ech-server ADDR P
#   (OS-chosen source)                                   (bound to ADDR only)
#
# Per address family it checks:
#   1. ECH: client and server agree ech=accepted, the server logs the
#      protected inner name and the public outer name, and the capture holds
#      the public name but not one byte string "secret.example".
#   2. plain SNI (control): works, and the capture DOES hold the name, which
#      proves the capture would have seen it in run 1.
#   3. GREASE ECH against an ECH server: completes, server logs "rejected".
#   4. stale ECHConfigList (another server's key): client reports rejected,
#      fails with SSL_ERROR_ECH_RETRY_WITH_ECH, never falls back silently.
#   5. GREASE ECH against a --no-ech server: completes, ech=grease/ignored.
#   6. interop: NSS's own tstclnt -N with our ECHConfigList is accepted too.
#
# Usage: make ech && lab/ech/test-loopback.sh [BUILD_DIR]   (default build/ech)
#        or: make -C lab/ech check
# Exit: 0 pass, 1 fail, 77 skip (not root, or a tool is missing).
# Everything created lives in one temp dir removed on exit; every process
# started has a timeout and is stopped by its own pid.
set -u

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build/ech}
server=$build/ech-server
client=$build/ech-client
inner=secret.example
public=public.example

for tool in certutil tstclnt tcpdump ss timeout; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: tcpdump on lo needs root"; exit 77; }
[ -x "$server" ] && [ -x "$client" ] || { echo "FAIL: build $build first (make ech)"; exit 1; }

tmp=$(mktemp -d /tmp/cfr-ech-test.XXXXXX)
pids=()
fails=0

cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then
		echo "PASS: $what"
	else
		echo "FAIL: $what"
		fails=$((fails + 1))
	fi
}

wait_for() { # wait_for SECONDS COMMAND...: poll until COMMAND succeeds
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		[ -z "$(ss -Htan "( sport = :$p )")" ] && { echo $p; return; }
	done
}

listening() { [ -n "$(ss -Hltn "( sport = :$1 )")" ]; }

# A throw-away NSS database with a self-signed server certificate.
make_db() {
	mkdir "$tmp/db" && head -c 64 /dev/urandom >"$tmp/noise" &&
		certutil -N -d "sql:$tmp/db" --empty-password &&
		certutil -S -d "sql:$tmp/db" -n ech-server -s "CN=$public" -x -t "CT,," \
			-k ec -q secp256r1 --extSAN "dns:$public,dns:$inner" -v 12 \
			-z "$tmp/noise" >/dev/null 2>&1
}

start_server() { # start_server NAME ARGS...: log in $tmp/NAME.log
	local name=$1
	shift
	timeout 60 "$server" --db "$tmp/db" --cert ech-server --log "$tmp/$name.log" \
		"$@" 2>"$tmp/$name.err" &
	pids+=($!)
}

# --immediate-mode: without it TPACKET_V3 hands packets over in blocks
# (1 s timeout) and a capture stopped sooner is empty ("0 packets captured").
cap_pid=
cap_start() { # cap_start FILE PORT
	timeout 30 tcpdump -i lo --immediate-mode -U -n -s 0 -w "$1" "tcp port $2" 2>"$1.err" &
	cap_pid=$!
	pids+=($cap_pid)
	wait_for 5 grep -qs "listening on" "$1.err"
}

cap_stop() {
	sleep 0.3 # let the last segments (FIN, close_notify) reach the capture
	kill -INT "$cap_pid" 2>/dev/null
	wait "$cap_pid" 2>/dev/null
}

count_in() { grep -ac -- "$1" "$2"; } # count_in STRING FILE (binary safe)

run_client() { # run_client ARGS...: sets $out and $rc
	out=$(timeout 15 "$client" --timeout 10 "$@" 2>>"$tmp/client.err")
	rc=$?
	echo "  client: $out (rc=$rc)"
}

log_line() { sed -n "${2}p" "$tmp/$1.log"; } # log_line NAME N

has() { [[ $1 == *"$2"* ]]; } # has TEXT SUBSTRING

family() { # family TAG ADDR
	local tag=$1 addr=$2 port stale_port plain_port line n_pub n_in
	echo "== $tag ($addr)"

	port=$(free_port)
	start_server "ech-$tag" --ech-out "$tmp/ech-$tag.b64" --max-conns 5 --timeout 40 \
		"$addr" "$port"
	check "$tag: ech-server ready" wait_for 5 test -s "$tmp/ech-$tag.b64"

	# A second ECH server lives just long enough to hand out a config
	# whose key the first server does not hold.
	stale_port=$(free_port)
	start_server "stale-$tag" --ech-out "$tmp/stale-$tag.b64" --timeout 1 \
		"$addr" "$stale_port"
	wait_for 5 test -s "$tmp/stale-$tag.b64"

	# 1. real ECH, observed on the wire
	cap_start "$tmp/ech-$tag.pcap" "$port"
	run_client --ech-config "$tmp/ech-$tag.b64" "$addr" "$port" "$inner"
	cap_stop
	check "$tag: client ECH accepted" \
		has "$out rc=$rc" "ech=accepted inner_sni=$inner outer_sni=$public status=200 result=ok rc=0"
	line=$(log_line "ech-$tag" 1)
	echo "  server: $line"
	check "$tag: server logs the peer address accept() saw" \
		has "$line" "peer=$addr port="
	check "$tag: server sees outer=$public inner=$inner accepted" \
		has "$line" "outer_sni=$public inner_sni=$inner ech=accepted result=ok"
	n_pub=$(count_in "$public" "$tmp/ech-$tag.pcap")
	n_in=$(count_in "$inner" "$tmp/ech-$tag.pcap")
	echo "  capture: $public x$n_pub, $inner x$n_in"
	check "$tag: ECH capture has the public name" test "$n_pub" -ge 1
	check "$tag: ECH capture has no '$inner' bytes" test "$n_in" -eq 0

	# 2. plain SNI control: the same capture method does see the name
	cap_start "$tmp/plain-$tag.pcap" "$port"
	run_client --plain "$addr" "$port" "$inner"
	cap_stop
	check "$tag: client plain SNI" \
		has "$out rc=$rc" "ech=none inner_sni=- outer_sni=$inner status=200 result=ok rc=0"
	line=$(log_line "ech-$tag" 2)
	echo "  server: $line"
	check "$tag: server sees plain SNI" has "$line" "outer_sni=$inner inner_sni=- ech=none"
	n_in=$(count_in "$inner" "$tmp/plain-$tag.pcap")
	echo "  capture: $inner x$n_in"
	check "$tag: plain capture has '$inner' bytes (control)" test "$n_in" -ge 1

	# 3. GREASE towards a server that has ECH keys
	run_client --grease "$addr" "$port" "$inner"
	check "$tag: client GREASE vs ECH server" \
		has "$out rc=$rc" "ech=grease inner_sni=- outer_sni=$inner status=200 result=ok rc=0"
	line=$(log_line "ech-$tag" 3)
	echo "  server: $line"
	check "$tag: server rejects GREASE" has "$line" "inner_sni=- ech=rejected result=ok"

	# 4. stale config: must fail loudly, never downgrade silently
	run_client --ech-config "$tmp/stale-$tag.b64" "$addr" "$port" "$inner"
	check "$tag: client stale config rejected, exit 1" \
		has "$out rc=$rc" "ech=rejected inner_sni=- outer_sni=$public status=- result=SSL_ERROR_ECH_RETRY_WITH_ECH rc=1"
	line=$(log_line "ech-$tag" 4)
	echo "  server: $line"
	check "$tag: server logs stale config as rejected" \
		has "$line" "outer_sni=$public inner_sni=- ech=rejected"

	# 6. a second ECH client: tstclnt from libnss3-tools
	out=$(printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$inner" |
		timeout 10 tstclnt -d "sql:$tmp/db" -h "$addr" -p "$port" -a "$inner" -o \
			-V tls1.3:tls1.3 -N "$(cat "$tmp/ech-$tag.b64")" 2>&1)
	check "$tag: tstclnt -N reaches the inner name" has "$out" "served $inner"
	line=$(log_line "ech-$tag" 5)
	echo "  server: $line"
	check "$tag: server accepts tstclnt's ECH" \
		has "$line" "outer_sni=$public inner_sni=$inner ech=accepted result=ok"

	# 5. GREASE towards a server without ECH
	plain_port=$(free_port)
	start_server "noech-$tag" --no-ech --max-conns 1 --timeout 20 "$addr" "$plain_port"
	check "$tag: --no-ech server ready" wait_for 5 listening "$plain_port"
	run_client --grease "$addr" "$plain_port" "$inner"
	check "$tag: client GREASE vs --no-ech server" \
		has "$out rc=$rc" "ech=grease inner_sni=- outer_sni=$inner status=200 result=ok rc=0"
	line=$(log_line "noech-$tag" 1)
	echo "  server: $line"
	check "$tag: --no-ech server ignores GREASE" \
		has "$line" "outer_sni=$inner inner_sni=- ech=ignored result=ok"
}

check "NSS database with self-signed certificate" make_db
family v4 127.0.0.1
family v6 ::1

if [ $fails -ne 0 ]; then
	echo "FAILED: $fails check(s); server stderr:"
	cat "$tmp"/*.err 2>/dev/null | grep -v "listening on\|packets" | head -20
	exit 1
fi
echo "OK: all ECH loopback checks passed"
exit 0
