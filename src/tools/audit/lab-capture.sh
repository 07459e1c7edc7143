#!/bin/bash
# src/tools/audit/lab-capture.sh: cfr-audit's capture mode on the lab.
#
#  cfr-sub1 .. cfr-subN            cfr-gw                 cfr-fd
#  curl https, UDP datagrams --veth-- cfrd --veth-- nginx :443, UDP echo :7
#  ^ capture on each gw0 (truth)                 ^ capture on gw0 (front door)
#
# Brings the lab up (under the machine-wide lab lock, down again on exit),
# gives the first L subscribers one TCP timestamp clock for all connections
# (net.ipv4.tcp_timestamps=2, like old kernels), makes C HTTPS connections and
# C UDP exchanges per subscriber over IPv4 and IPv6, then runs
#   cfr-audit --pcap fd.pcap --truth-per-file --truth sub1.pcap ...
# Each subscriber capture is one subscriber, so a dual-stack line counts
# once. The captures stay in OUTDIR.
#
# usage: lab-capture.sh [-n SUBSCRIBERS] [-c CONNECTIONS] [-l LEGACY] OUTDIR [cfr-audit options]
set -eu
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
# shellcheck source=lab/lib.sh
. "$ROOT/lab/lib.sh"

n=8 conns=40 legacy=2
while getopts n:c:l: opt; do
	case $opt in
	n) n=$OPTARG ;;
	c) conns=$OPTARG ;;
	l) legacy=$OPTARG ;;
	*) sed -n 's/^# usage: //p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n 's/^# usage: //p' "$0" >&2; exit 2; }
out=$1
shift
[ "$(id -u)" = 0 ] || lab_die "must run as root"
[ -x "$ROOT/build/cfr-audit" ] && [ -x "$CFRD" ] || lab_die "run make first"
mkdir -p "$out"

# Only a lab this script brought up is taken down: if `up` fails, the
# namespaces may belong to someone who did not take the lock.
lab_is_ours=0
cleanup() {
	local i
	capture_stop audit-fd
	for i in $(seq "$n"); do capture_stop "audit-sub$i"; done
	[ "$lab_is_ours" = 0 ] || "$LAB_DIR/cfr-lab" down >/dev/null 2>&1 || true
}
lab_lock
trap cleanup EXIT
trap 'exit 1' INT TERM
"$LAB_DIR/cfr-lab" up --subscribers "$n" >"$out/lab-up.log" 2>&1 9<&- || {
	cat "$out/lab-up.log" >&2
	lab_die "lab/cfr-lab up failed"
}
lab_is_ours=1
for i in $(seq "$legacy"); do nsx "sub$i" sysctl -qw net.ipv4.tcp_timestamps=2; done

capture_start audit-fd
for i in $(seq "$n"); do capture_start "audit-sub$i" "sub$i" gw0; done

# Per subscriber, in parallel: HTTPS and UDP, two flows in five over IPv6.
# bash's /dev/udp opens a fresh socket (a fresh source port) every time.
pids=()
for i in $(seq "$n"); do
	nsx "sub$i" bash -c '
		for j in $(seq '"$conns"'); do
			if [ $((j % 5)) -lt 2 ]; then url="https://[2001:db8:f::10]/" u=2001:db8:f::10
			else url="https://203.0.113.10/" u=203.0.113.10; fi
			curl -sk -o /dev/null --max-time 5 "$url" || true
			head -c 64 /dev/urandom >"/dev/udp/$u/7" || true
			sleep "0.$((RANDOM % 4))"
		done' &
	pids+=($!)
done
# Only these: a bare `wait` would also wait for the captures, forever.
wait "${pids[@]}"
sleep 1
capture_stop audit-fd
truth=()
for i in $(seq "$n"); do
	capture_stop "audit-sub$i"
	cp "$LAB_RUN/audit-sub$i.pcap" "$out/sub$i.pcap"
	truth+=(--truth "$out/sub$i.pcap")
done
cp "$LAB_RUN/audit-fd.pcap" "$out/fd.pcap"
"$ROOT/build/cfr-audit" --pcap "$out/fd.pcap" --truth-per-file "${truth[@]}" "$@"
