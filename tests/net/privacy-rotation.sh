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

# Check the capture: FILE FAM SVC T_FIRST T_LAST LONG_ADDR LONG_PORT UDP_COUNT
# shellcheck disable=SC2016
FLOWS_PY='
import ipaddress, struct, sys
path, fam, svc = sys.argv[1], int(sys.argv[2]), ipaddress.ip_address(sys.argv[3])
t_first, t_last = float(sys.argv[4]), float(sys.argv[5])
long_addr, long_port, udp_count = ipaddress.ip_address(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
tcp, udp = {}, {}
with open(path, "rb") as f:
    hdr = f.read(24)
    e = "<" if struct.unpack("<I", hdr[:4])[0] in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    nano = struct.unpack(e + "I", hdr[:4])[0] in (0xa1b23c4d, 0x4d3cb2a1)
    while True:
        ph = f.read(16)
        if len(ph) < 16:
            break
        sec, frac, incl, _ = struct.unpack(e + "IIII", ph)
        t = sec + frac / (1e9 if nano else 1e6)
        data = f.read(incl)
        et, p = struct.unpack(">H", data[12:14])[0], data[14:]
        if et == 0x0800 and fam == 4 and len(p) >= 28:
            src, dst, proto, l4 = ipaddress.ip_address(p[12:16]), ipaddress.ip_address(p[16:20]), p[9], p[(p[0] & 15) * 4:]
        elif et == 0x86dd and fam == 6 and len(p) >= 48:
            src, dst, proto, l4 = ipaddress.ip_address(p[8:24]), ipaddress.ip_address(p[24:40]), p[6], p[40:]
        else:
            continue
        if dst != svc:
            continue
        sport, dport = struct.unpack(">HH", l4[:4])
        if proto == 6 and dport == 443:
            g = tcp.setdefault((src, sport), {"syn": False, "first": t, "last": t, "n": 0})
            if g["n"] == 0 and (l4[13] & 0x12) == 0x02:
                g["syn"] = True
            g["last"], g["n"] = t, g["n"] + 1
        elif proto == 17 and dport == 7:
            g = udp.setdefault((src, sport), {"first": t, "last": t, "n": 0})
            g["last"], g["n"] = t, g["n"] + 1
bad = []
for (src, sport), g in sorted(tcp.items(), key=lambda x: x[1]["first"]):
    print("IPv%d TCP %s:%d: %d packets, %.2f..%.2f s, starts with SYN: %s" % (fam, src, sport, g["n"], g["first"] - t_first, g["last"] - t_first, g["syn"]))
    if not g["syn"]:
        bad.append("TCP %s:%d appears mid-connection (no SYN): a flow changed its alias" % (src, sport))
g = tcp.get((long_addr, long_port))
if not g:
    bad.append("the long download (%s:%d in the nginx log) is not in the capture" % (long_addr, long_port))
elif not (g["first"] < t_first and g["last"] > t_last):
    bad.append("the long download did not span the rotations (%.2f..%.2f s around the first)" % (g["first"] - t_first, g["last"] - t_first))
for (src, sport), g in udp.items():
    print("IPv%d UDP %s:%d: %d datagrams, %.2f..%.2f s" % (fam, src, sport, g["n"], g["first"] - t_first, g["last"] - t_first))
if len(udp) != 1:
    bad.append("the long UDP flow appeared under %d alias:port tuples, want 1" % len(udp))
else:
    g = list(udp.values())[0]
    if g["n"] != udp_count or not (g["first"] < t_first and g["last"] > t_last):
        bad.append("the long UDP flow: %d datagrams (want %d) or it did not span the rotations" % (g["n"], udp_count))
for b in bad:
    print("IPv%d: %s" % (fam, b))
sys.exit(1 if bad else 0)
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
	"$PY" -c "$FLOWS_PY" "$LAB_RUN/$TEST_NAME.pcap" "$fam" "$svc" "$t_first" "$t_last" \
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
