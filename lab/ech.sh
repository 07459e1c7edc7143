# lab/ech.sh: the lab's ECH scenario, as shell functions sourced after
# lab/lib.sh by lab/ech-scenario, lab/demo and tests/net/ech-*.sh. Sourced,
# never run. Needs a running lab (lab/cfr-lab up) and `make ech`.
#
# It plays the draft's picture with a real ECH implementation (NSS, lab/ech/):
# the front door cfr-fd runs ech-server, the ECH client-facing server (CFS),
# on both service addresses; subscribers connect with ech-client; captures
# on the gateway (access side and upstream side) and on the front door
# record what each party sees on the wire.
#
#  cfr-subI: ech-client --ech-config ech4.b64 203.0.113.10 8443 secret-site-I.example
#     | gw0                                    (capture: gw side, "acc-I")
#  cfr-gw: subI -> cfr0 -> cfrd -> fd0         (capture: "up")
#     |
#  cfr-fd: gw0 (capture: "fd") -> ech-server 203.0.113.10:8443, [2001:db8:f::10]:8443
#          public name public.example, one X25519 key per address family;
#          --no-ech servers on :8444 for GREASE
#
# The ECHConfigList reaches clients as a file under $ECH_DIR: it stands in
# for the HTTPS RR (RFC 9848) the lab has no DNS for. Everything lives in
# $ECH_DIR (under /run/cfr-lab, removed by `cfr-lab down`); every process has
# a pid file there, so `cfr-lab down` stops it. Servers and clients are
# bounded in time.
# shellcheck shell=bash disable=SC2034

ECH_BUILD=${ECH_BUILD:-$LAB_ROOT/build/ech}
ECH_SERVER=$ECH_BUILD/ech-server
ECH_CLIENT=$ECH_BUILD/ech-client
ECH_DIR=$LAB_RUN/ech
ECH_PORT=8443
ECH_NOECH_PORT=8444
ECH_PUBLIC=public.example
# One log for every ech-server: connections are served one at a time and
# each line is one write(), so the log's order is the order clients ran in.
ECH_LOG=$ECH_DIR/frontdoor.log
# One line per client run: "sub=I fam=F mode=M <ech-client's line> rc=N".
ECH_CLIENTS=$ECH_DIR/clients.log
# Servers end by themselves after this long (seconds), whatever happens.
ECH_SERVER_LIFE=${ECH_SERVER_LIFE:-600}

# ech_inner I: the protected (inner) name subscriber I asks for.
ech_inner() { printf 'secret-site-%d.example' "$1"; }

# ech_missing: print why the scenario cannot run (nothing if it can).
ech_missing() {
	local c
	for c in certutil tcpdump ss; do
		command -v "$c" >/dev/null 2>&1 || { echo "$c not installed (scripts/setup-deps)"; return; }
	done
	if [ ! -x "$ECH_SERVER" ] || [ ! -x "$ECH_CLIENT" ]; then
		echo "ECH peers missing in $ECH_BUILD: run make ech"
	fi
}

# ech_db N: an NSS database with a self-signed certificate for the public
# name and the inner names of subscribers 1..N. ech-client accepts any
# certificate (lab peer); the names are there to be honest about what the
# front door serves.
ech_db() {
	local n=$1 san="dns:$ECH_PUBLIC" i
	for i in $(seq "$n"); do san="$san,dns:$(ech_inner "$i")"; done
	mkdir -p "$ECH_DIR/db"
	head -c 64 /dev/urandom >"$ECH_DIR/noise"
	certutil -N -d "sql:$ECH_DIR/db" --empty-password &&
		certutil -S -d "sql:$ECH_DIR/db" -n ech-fd -s "CN=$ECH_PUBLIC" -x -t "CT,," \
			-k ec -q secp256r1 --extSAN "$san" -v 12 -z "$ECH_DIR/noise" >/dev/null 2>&1
}

# ech_server_start TAG ADDR PORT [ech-server options]: one ech-server in
# cfr-fd, pid in $LAB_RUN/ech-TAG.pid; waits until it listens.
ech_server_start() {
	local tag=$1 addr=$2 port=$3
	shift 3
	# Not through nsx: $! must be ech-server itself (ip netns exec execs it).
	ip netns exec "$LAB_NS-fd" "$ECH_SERVER" --db "$ECH_DIR/db" --cert ech-fd --log "$ECH_LOG" \
		--timeout "$ECH_SERVER_LIFE" "$@" "$addr" "$port" \
		>"$ECH_DIR/server-$tag.out" 2>&1 9<&- &
	echo $! >"$LAB_RUN/ech-$tag.pid"
	for _ in $(seq 50); do
		nsx fd ss -Hltn "( sport = :$port )" | grep -qF "$addr" && return 0
		kill -0 "$(cat "$LAB_RUN/ech-$tag.pid")" 2>/dev/null || break
		sleep 0.1
	done
	cat "$ECH_DIR/server-$tag.out" >&2
	lab_log "ech-server $tag ($addr $port) did not start"
	return 1
}

# ech_up N: the front door's ECH service for subscribers 1..N. ECH servers
# on $ECH_PORT (one key pair per family, generated in process; the
# ECHConfigLists land in $ECH_DIR/ech4.b64 and ech6.b64) and servers without
# ECH on $ECH_NOECH_PORT (GREASE targets).
ech_up() {
	local n=$1
	rm -rf "$ECH_DIR"
	mkdir -p "$ECH_DIR"
	: >"$ECH_LOG"
	: >"$ECH_CLIENTS"
	ech_db "$n" || { lab_log "certutil failed"; return 1; }
	ech_server_start ech4 "$SVC4" "$ECH_PORT" --ech-out "$ECH_DIR/ech4.b64" --public-name "$ECH_PUBLIC" &&
		ech_server_start ech6 "$SVC6" "$ECH_PORT" --ech-out "$ECH_DIR/ech6.b64" --public-name "$ECH_PUBLIC" &&
		ech_server_start noech4 "$SVC4" "$ECH_NOECH_PORT" --no-ech &&
		ech_server_start noech6 "$SVC6" "$ECH_NOECH_PORT" --no-ech || return 1
	# The config file is written right after listen(): wait for it too.
	for _ in $(seq 50); do
		[ -s "$ECH_DIR/ech4.b64" ] && [ -s "$ECH_DIR/ech6.b64" ] && return 0
		sleep 0.1
	done
	lab_log "no ECHConfigList from ech-server"
	return 1
}

# ech_test_up N: how an ECH lab test starts: skipped without the ECH peers,
# then the lab with N subscribers and the front door's ECH servers.
ech_test_up() {
	local why
	why=$(ech_missing)
	[ -z "$why" ] || skip "$why"
	test_lab_up "$1"
	ech_up "$1" || fail "the front door's ECH servers did not start"
}

# has TEXT SUBSTRING: whether TEXT contains SUBSTRING.
has() { [[ $1 == *"$2"* ]]; }

# ech_down: stop the ECH servers (cfr-lab down would too).
ech_down() {
	local f
	for f in "$LAB_RUN"/ech-*.pid; do
		[ -e "$f" ] || continue
		stop_pid TERM "$(cat "$f")" 30
		rm -f "$f"
	done
}

# ech_client I FAM MODE [NAME]: subscriber I connects to the front door over
# IPv FAM (4|6). MODE: ech (ECHConfigList of that family, port $ECH_PORT),
# plain (plain SNI, $ECH_PORT), grease (GREASE ECH to the --no-ech server,
# $ECH_NOECH_PORT), grease-ech (GREASE ECH to the ECH server). NAME
# defaults to the subscriber's inner name. Prints ech-client's line, appends
# it to $ECH_CLIENTS, returns its status.
ech_client() {
	local i=$1 fam=$2 mode=$3 name=${4:-$(ech_inner "$1")} addr=$SVC4 port=$ECH_PORT out rc=0
	local -a args
	[ "$fam" = 4 ] || addr=$SVC6
	case $mode in
	ech) args=(--ech-config "$ECH_DIR/ech$fam.b64") ;;
	plain) args=(--plain) ;;
	grease) args=(--grease) port=$ECH_NOECH_PORT ;;
	grease-ech) args=(--grease) ;;
	*) lab_log "ech_client: unknown mode $mode"; return 2 ;;
	esac
	out=$(nsx "sub$i" timeout -k 2 20 "$ECH_CLIENT" --timeout 10 "${args[@]}" \
		"$addr" "$port" "$name" 2>>"$ECH_DIR/client.err" 9<&-) || rc=$?
	echo "sub=$i fam=$fam mode=$mode $out rc=$rc" >>"$ECH_CLIENTS"
	echo "$out"
	return "$rc"
}

# ech_capture_start NAME NS IF: full-packet capture (-s 0: the whole
# ClientHello, so a name in it cannot fall outside the snapshot) into
# $ECH_DIR/NAME.pcap. The pid file follows lib.sh's naming, so capture_stop
# NAME stops it and `cfr-lab down` would too.
ech_capture_start() {
	local name=$1 ns=$2 ifname=$3 pidf="$LAB_RUN/capture-$1.pid"
	rm -f "$ECH_DIR/$name.pcap" "$ECH_DIR/$name.capture.log"
	# --immediate-mode: without it a short capture can end up empty.
	ip netns exec "$LAB_NS-$ns" tcpdump -i "$ifname" -n -U --immediate-mode -s 0 -Z root \
		-w "$ECH_DIR/$name.pcap" >"$ECH_DIR/$name.capture.log" 2>&1 9<&- &
	echo $! >"$pidf"
	for _ in $(seq 50); do
		grep -q 'listening on' "$ECH_DIR/$name.capture.log" 2>/dev/null && return 0
		kill -0 "$(cat "$pidf")" 2>/dev/null || break
		sleep 0.1
	done
	cat "$ECH_DIR/$name.capture.log" >&2
	lab_log "capture $name ($ns $ifname) did not start"
	return 1
}

# ech_capture_stop NAME...: stop captures, after a moment for the last
# segments (FIN, close_notify) to be written.
ech_capture_stop() {
	local name
	sleep 0.3
	for name in "$@"; do capture_stop "$name"; done
}

# ech_count STRING FILE...: how often STRING (case-insensitive, fixed
# string) occurs in the raw bytes of FILEs (pcap or text); 0 if none.
ech_count() {
	local s=$1
	shift
	grep -aoiF -- "$s" "$@" 2>/dev/null | wc -l
}

# ech_observe PCAP...: what the captures show, from their IP headers (pcap_tool
# flows): "packets=N subscriber=yes|no frontdoor=yes|no alias=yes|no",
# where subscriber means an address in 100.64.0.0/10 or 2001:db8:100::/48,
# frontdoor one of the service addresses, alias one inside the pools.
# shellcheck disable=SC2016
ECH_OBSERVE_PY='
import ipaddress, sys
subs = [ipaddress.ip_network(n) for n in ("100.64.0.0/10", "2001:db8:100::/48")]
pools = [ipaddress.ip_network(n) for n in sys.argv[1:3]]
svc = {ipaddress.ip_address(a) for a in sys.argv[3:5]}
n = sub = fd = alias = 0
for line in sys.stdin:
    f = line.split()
    n += 1
    for a in (ipaddress.ip_address(f[2]), ipaddress.ip_address(f[4])):
        sub += any(a in s for s in subs)
        alias += any(a in p for p in pools)
        fd += a in svc
yn = lambda v: "yes" if v else "no"
print("packets=%d subscriber=%s frontdoor=%s alias=%s" % (n, yn(sub), yn(fd), yn(alias)))
'
ech_observe() {
	local f
	for f in "$@"; do pcap_tool flows "$f"; done |
		"$PY" -c "$ECH_OBSERVE_PY" "$POOL4" "$POOL6" "$SVC4" "$SVC6"
}

# ech_field KEY LINE: the value of KEY=VALUE in a key=value line.
ech_field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
