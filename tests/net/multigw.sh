#!/bin/bash
# tests/net/multigw.sh: two gateways, each cfrd with its own slice of the
# pools announced over BGP by BIRD (lab/multigw.sh). Every subscriber reaches
# the front door over IPv4 and IPv6 from its gateway's slice; cfr-core routes
# each slice to its gateway; kill -9 of one cfrd withdraws its slice and its
# subscribers are served by the other within 10 s (the time is measured and
# printed); cfr-lookup names subscribers from both gateways' records; a BIRD
# that is misconfigured or stopped leaves the gateway's cfrd running and its
# subscribers served; a gateway that freezes whole is dropped by BFD, which
# the packaged BIRD configuration (contrib/bird/cfr-gateway.conf, what the
# lab's gateways run) turns on. The front door never sees a subscriber
# address.
#
#  cfr-sub1,3 --+            +-- cfr-gw1 (cfrd, slice 1, BIRD) --+
#               +-- cfr-acc -+                                    +-- cfr-core -- cfr-fd
#  cfr-sub2,4 --+   (BIRD)   +-- cfr-gw2 (cfrd, slice 2, BIRD) --+    (BIRD)     (capture)
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"
# shellcheck source=lab/multigw.sh
. "$LAB_DIR/multigw.sh"

[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
test_requires ip tcpdump nginx openssl curl flock bird birdc
[ -x "$PY" ] || skip "$PY missing"
if [ ! -x "$CFRD" ] || [ ! -x "$CFRCTL" ]; then skip "build/cfrd or build/cfrctl missing: run make"; fi
LOOKUP=$LAB_ROOT/build/cfr-lookup
[ -x "$LOOKUP" ] || skip "build/cfr-lookup missing: run make"
# Of cfr-lab, which the lab's helpers above use.
pid_running() { [ -f "$1" ] && alive "$(cat "$1")"; }
wait_for() {
	local tries=$1 delay=$2
	shift 2
	for _ in $(seq "$tries"); do
		"$@" >/dev/null 2>&1 && return 0
		sleep "$delay"
	done
	return 1
}
# since T0: seconds from T0 (date +%s.%N) to now, two decimals.
since() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }

# Two gateways by default; MULTIGW_GATEWAYS=3 or 4 shows that a failure
# moves only the dead gateway's lines (the others stay home). Two lines each.
N=${MULTIGW_GATEWAYS:-2}
case $N in 2 | 3 | 4) ;; *) fail "MULTIGW_GATEWAYS must be 2, 3 or 4" ;; esac
M=$((2 * N))
lab_lock
TEST_LAB_UP=1
trap _test_cleanup EXIT
trap 'exit 1' INT TERM
"$LAB_DIR/cfr-lab" up --gateways "$N" --subscribers "$M" >"/tmp/cfr-lab-up.$$.log" 2>&1 9<&- || {
	cat "/tmp/cfr-lab-up.$$.log"
	rm -f "/tmp/cfr-lab-up.$$.log"
	fail "lab/cfr-lab up --gateways $N failed"
}
rm -f "/tmp/cfr-lab-up.$$.log"
capture_start "$TEST_NAME" || fail "cannot capture on cfr-fd"

# slice_of ADDR: the gateway whose slice holds ADDR (0: none).
slice_of() {
	local k s4 s6
	for k in $(seq "$N"); do
		read -r s4 s6 <"$LAB_RUN/gw$k/slice"
		if in_net "$1" "$s4" 2>/dev/null || in_net "$1" "$s6" 2>/dev/null; then
			echo "$k"
			return
		fi
	done
	echo 0
}
# home I: subscriber I's own gateway (lab/multigw.sh: (I-1) mod N + 1).
home() { echo $((($1 - 1) % N + 1)); }
other() { echo $(($1 % N + 1)); }

# served I FAM TAG: one UDP datagram "TAG.0" from subscriber I echoed back
# (1 s); prints the gateway whose slice it left from.
served() {
	local dst=$SVC4 a
	[ "$2" = 4 ] || dst=$SVC6
	udp_convo "sub$1" "$dst" "$3" 0.1 0 >/dev/null 2>&1 || return 1
	a=$(udp_alias "$3") || return 1
	slice_of "${a% *}"
}

# served_by I G TAG TRIES: subscriber I's IPv4 datagrams (TAG1, TAG2 ...)
# until one leaves from gateway G's slice, at most TRIES; prints G if so.
served_by() {
	local t g
	for t in $(seq "$4"); do
		g=$(served "$1" 4 "$3$t-s$1") && [ "$g" = "$2" ] && echo "$g" && return 0
	done
	return 1
}

# 1. Everyone, both families, HTTPS and UDP, from the own gateway's slice.
for i in $(seq $M); do
	for fam in 4 6; do
		g=$(served "$i" "$fam" "s$i-v$fam") || fail "sub$i: no UDP echo over IPv$fam"
		[ "$g" = "$(home "$i")" ] || fail "sub$i IPv$fam left from gateway $g's slice, not gw$(home "$i")'s"
		dst=$SVC4
		[ "$fam" = 4 ] || dst="[$SVC6]"
		nsx "sub$i" curl -sk --max-time 5 -o /dev/null "https://$dst/?sub$i" || fail "sub$i: HTTPS over IPv$fam failed"
	done
	ok "sub$i: UDP and HTTPS over IPv4 and IPv6 through gw$(home "$i"), alias in its slice"
done
mg_core_has "$N" || fail "cfr-core does not route every slice to its gateway"
for k in $(seq "$N"); do
	read -r s4 s6 <"$LAB_RUN/gw$k/slice"
	ok "cfr-core: $(nsx core ip route show "$s4" | head -1); $(nsx core ip -6 route show "$s6" | head -1 | awk '{print $1, $2, $3}')"
done

# Anonymity is per gateway: each cfrd counts only the lines it serves (M/N
# here), whatever the others do; cfrctl stats and the metrics say so per gateway.
for k in $(seq "$N"); do
	js=$(nsx "gw$k" "$CFRCTL" -s "$LAB_RUN/gw$k/cfrd.sock" --json stats) || fail "gw$k: cfrctl stats failed"
	max=$(echo "$js" | json_get anonymity.ipv4.max) || fail "gw$k: no anonymity figures"
	med=$(echo "$js" | json_get anonymity.ipv4.median)
	[ "$max" -ge 1 ] && [ "$max" -le $((M / N)) ] || fail "gw$k: anonymity set max $max, outside 1..$((M / N))"
	ok "gw$k: anonymity set (IPv4) median $med, max $max: of its own $((M / N)) lines only"
	wait_for 30 0.1 nsx "gw$k" curl -sf -o /dev/null http://127.0.0.1:9848/metrics || fail "gw$k: no metrics"
	nsx "gw$k" curl -sf http://127.0.0.1:9848/metrics | grep -q '^cfr_anonymity_set_size' ||
		fail "gw$k: metrics without cfr_anonymity_set_size"
done
ok "each gateway serves its own metrics (cfr_anonymity_set_size) at 127.0.0.1:9848 in its namespace"

# 2. Accountability from both gateways: one HTTPS connection each from sub1
# (gw1) and sub2 (gw2), taken from the front door's capture the way an abuse
# desk would, answered by cfr-lookup from that gateway's records directory.
declare -a FLOWS=()
for i in 1 2; do
	nsx "sub$i" curl -sk --max-time 5 -o /dev/null "https://$SVC4/lookup-$i" || fail "sub$i: curl failed"
	line=$(tcpdump -nn -tt -r "$LAB_RUN/$TEST_NAME.pcap" 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn' 2>/dev/null |
		tail -1 | awk '{ split($3, a, "."); port = a[length(a)]; print $1, substr($3, 1, length($3) - length(port) - 1), port }')
	[ -n "$line" ] || fail "no SYN from sub$i in the capture"
	FLOWS+=("$line $i")
done
for k in $(seq "$N"); do
	nsx "gw$k" "$CFRCTL" -s "$LAB_RUN/gw$k/cfrd.sock" epoch rotate >/dev/null || fail "gw$k: epoch rotate failed"
done
# One cfr-lookup over both gateways' records (-d repeated): each complaint
# names its subscriber, found in the records of the gateway whose slice holds
# the alias.
for f in "${FLOWS[@]}"; do
	# shellcheck disable=SC2086 # fields on purpose
	set -- $f
	k=$(slice_of "$2")
	for _ in $(seq 20); do
		# shellcheck disable=SC2046 # one -d DIR pair per gateway
		out=$("$LOOKUP" -k "$LAB_RUN/acct.key" $(for j in $(seq "$N"); do echo "-d $LAB_RUN/gw$j/records"; done) \
			--time "$1" --alias "$2" --port "$3" --remote "$SVC4" --tolerance 2 --proto tcp --json 2>/dev/null) && break
		sleep 0.2
	done
	who=$(echo "$out" | "$PY" -c 'import json,sys; m = json.load(sys.stdin)["matches"]; print(" ".join(sorted({x["subscriber"] + "@" + x["records"] for x in m})))' 2>/dev/null) || who=""
	[ "$who" = "100.64.$4.2@$LAB_RUN/gw$k/records" ] ||
		fail "complaint $2:$3 (gw$k's slice): expected 100.64.$4.2 in gw$k's records, cfr-lookup said '$who'"
	ok "complaint $2 port $3 -> cfr-lookup over all $N gateways' records -> $who"
done

# 3. kill -9 of gw2's cfrd: its slice leaves cfr-core, its subscribers are
# served from a survivor's slice; every other line stays home. Bounded: 10 s.
read -r s4 s6 <"$LAB_RUN/gw2/slice"
t0=$(date +%s.%N)
kill -KILL "$(cat "$LAB_RUN/gw2/cfrd.pid")"
withdrawn="" first=""
# Time to the withdrawal (cfr-core's kernel table, polled every 10 ms), then
# to the first fresh flow of sub2 (gw2's) served again: 10 s at most.
for _ in $(seq 1000); do
	if ! nsx core ip route show "$s4" | grep -q via && ! nsx core ip -6 route show "$s6" | grep -q via; then
		withdrawn=$(since "$t0")
		break
	fi
	sleep 0.01
done
for try in $(seq 100); do
	if udp_convo sub2 "$SVC4" "f$try" 0.05 0 >/dev/null 2>&1; then
		first=$(since "$t0")
		break
	fi
	[ "$(since "$t0" | cut -d. -f1)" -lt 10 ] || break
done
[ -n "$withdrawn" ] || fail "gw2's slice still in cfr-core's table 10 s after kill -9"
[ -n "$first" ] || fail "sub2 not served within 10 s of gw2's kill -9"
# Then every subscriber, both families, fresh flows: gw2's lines from one
# survivor's slice, the others' from their own gateway's as before.
moved_to=""
for i in $(seq $M); do
	for fam in 4 6; do
		g=$(served "$i" "$fam" "after-s$i-v$fam") || fail "sub$i: no echo over IPv$fam after the failover"
		if [ "$(home "$i")" = 2 ]; then
			[ "$g" != 2 ] && [ "$g" != 0 ] || fail "sub$i IPv$fam left from gw$g's slice after gw2 died"
			[ -z "$moved_to" ] || [ "$moved_to" = "$g" ] || fail "gw2's lines split over gw$moved_to and gw$g"
			moved_to=$g
		else
			[ "$g" = "$(home "$i")" ] || fail "sub$i (gw$(home "$i")'s) moved to gw$g though its gateway is alive"
		fi
	done
done
all=$(since "$t0")
ok "kill -9 of gw2's cfrd: slice withdrawn from cfr-core after $withdrawn s; sub2 served again after $first s; by $all s all $M lines checked on both families: gw2's on gw$moved_to, the others at home"
echo "FAILOVER withdrawn=$withdrawn first=$first all_checked=$all"

# gw2 back: its routes return, and with them its subscribers.
mg_cfrd_start 2
wait_for 50 0.2 mg_core_has "$N" || fail "gw2's slice did not come back to cfr-core"
wait_for 50 0.2 mg_acc_has "$N" || fail "gw2's default did not come back to cfr-acc"
g=$(served 2 4 back-s2) || fail "sub2: no echo after gw2's return"
[ "$g" = 2 ] || fail "sub2 not back on gw2 (slice of gw$g)"
ok "cfrd on gw2 restarted: slice announced again, sub2 back on gw2"

# A hung cfrd (SIGSTOP: alive, cfr0 held, carrier up): the lab's health
# check (contrib/bird/cfr-health, as the lab runs it) finds it silent twice and has BIRD
# withdraw; SIGCONT brings it back. Bounded: 10 s each way.
pid=$(cat "$LAB_RUN/gw2/cfrd.pid")
t0=$(date +%s.%N)
kill -STOP "$pid"
wait_for 100 0.1 bash -c "! ip netns exec $LAB_NS-core ip route show $s4 | grep -q via" || {
	kill -CONT "$pid"
	fail "gw2's slice still announced 10 s after its cfrd hung"
}
hung=$(since "$t0")
g=$(served_by 2 "$moved_to" hang 20) || g=""
kill -CONT "$pid"
[ "$g" = "$moved_to" ] || fail "sub2 not served through gw$moved_to while gw2's cfrd hung"
ok "SIGSTOP of gw2's cfrd: slice withdrawn after $hung s (health check: two silent polls), sub2 served by gw$g after $(since "$t0") s"
echo "HANG withdrawn=$hung"
wait_for 100 0.1 mg_core_has "$N" || fail "gw2's slice not back 10 s after SIGCONT"
wait_for 50 0.1 mg_acc_has "$N" || fail "gw2's default not back at cfr-acc after SIGCONT"
ok "SIGCONT: gw2 announces its slice again"

# 4. A misconfigured routing daemon: a reload with a broken configuration is
# refused, BIRD keeps the last good one, and gw2 keeps forwarding.
cp "$LAB_RUN/gw2/bird.conf" "$LAB_RUN/gw2/bird.conf.good"
echo "protocol bgp broken { neighbor 192.0.2.999 as 1; }" >>"$LAB_RUN/gw2/bird.conf"
err=$(mg_birdc gw2 configure 2>&1 | grep -v -e '^BIRD.*ready' -e '^Reading configuration' | head -1)
ok "broken BIRD config on gw2 says: $err"
mv "$LAB_RUN/gw2/bird.conf.good" "$LAB_RUN/gw2/bird.conf"
mg_core_has "$N" || fail "the refused reload withdrew a slice"
g=$(served 2 6 misconf-s2) || fail "sub2: no echo with gw2's BIRD misconfigured"
[ "$g" = 2 ] || fail "sub2 moved off gw2 though only a reload failed"
ok "gw2 keeps forwarding after the refused reload"

# 5. A gateway that freezes whole (SIGSTOP of cfrd, BIRD, cfr-health and the
# exporter: a hung host says nothing, and its sockets stay open): only BFD
# can tell, which the packaged BIRD configuration turns on for every
# session (contrib/bird/cfr-gateway.conf). cfr-core and cfr-acc must drop
# gw2 because its BFD sessions went down, not on the 9 s hold timer, and
# sub2 must be served by the survivor. Bounded: 10 s.
frozen=""
for f in cfrd bird health exporter; do frozen="$frozen $(cat "$LAB_RUN/gw2/$f.pid")"; done
t0=$(date +%s.%N)
# shellcheck disable=SC2086
kill -STOP $frozen
thaw() {
	# shellcheck disable=SC2086
	kill -CONT $frozen 2>/dev/null || true
}
wait_for 100 0.1 bash -c "! ip netns exec $LAB_NS-core ip route show $s4 | grep -q via" || {
	thaw
	fail "gw2's slice still at cfr-core 10 s after the gateway froze"
}
froze=$(since "$t0")
g=$(served_by 2 "$moved_to" freeze 20) || g=""
why_core=$(mg_birdc core show protocols all gw2_4 | grep -m1 -i 'error' || true)
why_acc=$(mg_birdc acc show protocols all gw2_4 | grep -m1 -i 'error' || true)
thaw
[ "$g" = "$moved_to" ] || fail "sub2 not served through gw$moved_to while gw2 was frozen"
echo "$why_core" | grep -q 'BFD session down' || fail "cfr-core dropped gw2 for another reason than BFD: $why_core"
echo "$why_acc" | grep -q 'BFD session down' || fail "cfr-acc dropped gw2 for another reason than BFD: $why_acc"
ok "gw2 frozen whole: slice withdrawn from cfr-core after $froze s (BFD; the hold timer is 9 s), sub2 served by gw$g after $(since "$t0") s"
echo "FREEZE withdrawn=$froze"
wait_for 50 0.1 pid_running "$LAB_RUN/gw2/cfrd.pid" || fail "cfrd on gw2 did not survive the freeze"
nsx gw2 "$CFRCTL" -s "$LAB_RUN/gw2/cfrd.sock" stats >/dev/null || fail "cfrd on gw2 no longer answers after the freeze"

# A stopped routing daemon: its sessions close, cfr-core and cfr-acc drop gw2
# at once; cfrd on gw2 keeps running (and forwarding whatever still reaches
# it); its subscribers are served by the survivor they moved to before.
t0=$(date +%s.%N)
kill -TERM "$(cat "$LAB_RUN/gw2/bird.pid")"
g=$(served_by 2 "$moved_to" stop 50) || g=""
[ "$g" = "$moved_to" ] || fail "sub2 not served through gw$moved_to after gw2's BIRD stopped"
ok "BIRD on gw2 stopped: sub2 served by gw$g after $(since "$t0") s"
pid_running "$LAB_RUN/gw2/cfrd.pid" || fail "cfrd on gw2 stopped with its BIRD"
line=$("$LAB_DIR/cfr-lab" status 9<&- | grep '^gw2:')
ok "cfr-lab status: $line"
echo "$line" | grep -q 'cfrd running, BIRD NOT running' || fail "status does not say what is wrong"
nsx gw2 "$CFRCTL" -s "$LAB_RUN/gw2/cfrd.sock" stats >/dev/null || fail "cfrd on gw2 no longer answers"

capture_stop "$TEST_NAME"
test_leak_check
echo "PASS $TEST_NAME"
