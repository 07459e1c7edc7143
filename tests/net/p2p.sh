#!/bin/bash
# tests/net/p2p.sh: peer-to-peer keeps working through cfr (issue 17).
#
#  cfr-sub1 --+                                          +-- cfr-fd: turnserver (STUN, RFC 5780)
#             |-- cfr-gw [cfr0 <-> cfrd: classes] ------+     203.0.113.10, .11
#  cfr-sub2 --+      hairpin: sub1 <-> sub2 via aliases        2001:db8:f::10, ::11
#
# 1. coturn's turnutils_natdiscovery in cfr-sub1, against coturn's
#    turnserver in cfr-fd with two service addresses per family, classifies
#    UDP to 3478 as endpoint-independent mapping with address-dependent
#    filtering and detects hairpinning, over IPv4 and IPv6.
# 2. The same run still gives TLS and QUIC per-flow aliases: one local port
#    sending to two service addresses leaves from two aliases for TCP 443
#    and UDP 443, and from one for other UDP.
# 3. sub1 and sub2 learn their mappings from the STUN server, punch a UDP
#    hole to each other through their aliases and exchange data, both
#    families; each sees only the other's alias.
#    sub2's port unreachable for a datagram after its socket closed reaches
#    sub1 from sub2's alias, its quote naming sub2's alias, never sub2.
# 4. The front door never sees a subscriber address (whole packets, ICMP
#    quotes included), and the hairpinned packets never reach it.
# 5. Configured classes change what natdiscovery finds: endpoint-independent
#    filtering, or per-flow for all UDP (address-and-port-dependent both).
# 6. With a TCP class that maps, two subscribers connect to each other by
#    simultaneous open through their aliases (IPv4 and IPv6).
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

test_requires turnserver turnutils_natdiscovery
ALT4=203.0.113.11
ALT6=2001:db8:f::11
test_lab_up 2

TURN_PID=""
p2p_cleanup() {
	local rc=$?
	set +e
	[ -z "$TURN_PID" ] || stop_pid TERM "$TURN_PID" 20
	(exit "$rc")
	_test_config_cleanup # also the lab's, and the configuration file of part 5
}
trap p2p_cleanup EXIT

# turn_up: the front door's second address of each family (RFC 5780's
# alternate) and turnserver on all four.
turn_up() {
	[ -z "$TURN_PID" ] || stop_pid TERM "$TURN_PID" 20
	nsx fd ip addr add "$ALT4/32" dev lo
	nsx fd ip addr add "$ALT6/128" dev lo nodad
	nsx gw ip route add "$ALT4/32" via 198.51.100.2
	ip netns exec "$LAB_NS-fd" turnserver -S -n --no-cli --no-tls --no-dtls \
		--listening-ip="$SVC4" --listening-ip="$ALT4" --listening-ip="$SVC6" --listening-ip="$ALT6" \
		--log-file=stdout --simple-log >"$LAB_RUN/turnserver.log" 2>&1 9<&- &
	TURN_PID=$!
	for _ in $(seq 50); do
		nsx fd ss -Hlun "( sport = :3478 )" | grep -q "$ALT6" && break
		sleep 0.1
	done
	nsx fd ss -Hlun "( sport = :3478 )" | grep -q "$ALT6" || fail "turnserver did not listen: $(tail -5 "$LAB_RUN/turnserver.log")"
}
turn_up
ok "turnserver listens on $SVC4, $ALT4, $SVC6, $ALT6 port 3478"

# --- 1. RFC 5780 behaviour discovery -----------------------------------------
for addr in "$SVC4" "$SVC6"; do
	out=$(nsx sub1 timeout 60 turnutils_natdiscovery -m -f "$addr" 2>&1 9<&-) || true
	echo "$out" >"$LAB_RUN/natdiscovery-$addr.log"
	echo "$out" | grep -q "NAT with Endpoint Independent Mapping" \
		|| fail "$addr: mapping not classified endpoint-independent: $(echo "$out" | grep -i 'mapping\|error' | head -5)"
	echo "$out" | grep -q "Address Dependent Filtering" \
		|| fail "$addr: filtering not classified address-dependent: $(echo "$out" | grep -i 'filter\|error' | head -5)"
	ok "natdiscovery via $addr: $(echo "$out" | grep -o 'NAT with Endpoint Independent Mapping'), $(echo "$out" | grep -o 'Address Dependent Filtering' | head -1)"
	out=$(nsx sub1 timeout 30 turnutils_natdiscovery -H "$addr" 2>&1 9<&-) || true
	echo "$out" >>"$LAB_RUN/natdiscovery-$addr.log"
	echo "$out" | grep -q "Received a request (maybe a successful hairpinning)" \
		|| fail "$addr: no hairpinning: $(echo "$out" | tail -5)"
	ok "natdiscovery via $addr: hairpinning detected"
done

# --- 2. per-flow classes in the same run -------------------------------------
# From one local port to both service addresses of a family: TCP SYNs and UDP
# to 443, and UDP to 5555. The front door's capture names the aliases.
capture_stop "$TEST_NAME"
mv "$LAB_RUN/$TEST_NAME.pcap" "$LAB_RUN/$TEST_NAME-1.pcap"
capture_start "$TEST_NAME-2" || fail "cannot capture on cfr-fd"
# shellcheck disable=SC2016
nsx sub1 "$PY" - "$SVC4" "$ALT4" "$SVC6" "$ALT6" <<'PYEOF' 9<&- || fail "could not send the class probes"
import socket, sys, time
for fam, a, b in ((socket.AF_INET, sys.argv[1], sys.argv[2]), (socket.AF_INET6, sys.argv[3], sys.argv[4])):
    for kind, port, lport in (("udp", 443, 42443), ("udp", 5555, 42555), ("tcp", 443, 43443)):
        for dst in (a, b):
            s = socket.socket(fam, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", lport))
            if kind == "udp":
                s.sendto(b"class probe", (dst, port))
            else:
                s.settimeout(2)
                try:
                    s.connect((dst, port))
                except OSError:
                    pass  # nginx listens on the first address only: the SYN is what counts
            time.sleep(0.1)
            s.close()
PYEOF
sleep 0.3
capture_stop "$TEST_NAME-2"
pcap_tool flows "$LAB_RUN/$TEST_NAME-2.pcap" >"$LAB_RUN/$TEST_NAME-2.flows"
for fam in 4 6; do
	for probe in "17 443 per-flow" "6 443 per-flow" "17 5555 endpoint-independent"; do
		# shellcheck disable=SC2086 # three words
		set -- $probe
		# "fam proto src sport dst dport flags": the distinct source alias:ports.
		n=$(awk -v f="$fam" -v p="$1" -v d="$2" '$1 == f && $2 == p && $6 == d && (p == 17 || $7 ~ /S/) {print $3, $4}' \
			"$LAB_RUN/$TEST_NAME-2.flows" | sort -u | wc -l)
		dsts=$(awk -v f="$fam" -v p="$1" -v d="$2" '$1 == f && $2 == p && $6 == d {print $5}' \
			"$LAB_RUN/$TEST_NAME-2.flows" | sort -u | wc -l)
		[ "$dsts" = 2 ] || fail "IPv$fam proto $1 to $2: the front door saw $dsts destinations, want 2"
		want=2
		[ "$3" = per-flow ] || want=1
		[ "$n" = "$want" ] || fail "IPv$fam proto $1 to $2: one local port left from $n aliases, want $want ($3)"
		ok "IPv$fam $([ "$1" = 6 ] && echo TCP || echo UDP) to $2, one local port to two addresses: $n alias:port ($3)"
	done
done
capture_start "$TEST_NAME" || fail "cannot capture on cfr-fd"

# --- 3. hole punching between two subscribers ---------------------------------
# Each peer (tests/lib/punch.py udp): one socket on LPORT; a STUN binding
# request to the server gives its mapping (XOR-MAPPED-ADDRESS), written to
# FILE; it waits for the other's file, then sends 60 datagrams "TAG n" to
# that alias over 3 s and counts the other's for 1 s more: the first few are
# filtered until both have punched, at least 10 must arrive, all from the
# other's alias.
PUNCH=$LAB_ROOT/tests/lib/punch.py
declare -a MAPPED=()
for addr in "$SVC4" "$SVC6"; do
	rm -f "$LAB_RUN/peer1" "$LAB_RUN/peer2"
	t_punch=$(date +%s)
	ip netns exec "$LAB_NS-sub1" "$PY" "$PUNCH" udp "$addr" 40001 "$LAB_RUN/peer1" "$LAB_RUN/peer2" peer-1 \
		>"$LAB_RUN/punch1.out" 2>&1 9<&- &
	p1=$!
	ip netns exec "$LAB_NS-sub2" "$PY" "$PUNCH" udp "$addr" 40002 "$LAB_RUN/peer2" "$LAB_RUN/peer1" peer-2 \
		>"$LAB_RUN/punch2.out" 2>&1 9<&- &
	p2=$!
	wait "$p1" || fail "via $addr: sub1 got too little from sub2: $(cat "$LAB_RUN/punch1.out")"
	wait "$p2" || fail "via $addr: sub2 got too little from sub1: $(cat "$LAB_RUN/punch2.out")"
	m1=$(cat "$LAB_RUN/peer1")
	m2=$(cat "$LAB_RUN/peer2")
	in_pool "${m1% *}" && in_pool "${m2% *}" || fail "via $addr: mappings $m1 / $m2 are not aliases"
	# Each saw the other's alias and port, and nothing else.
	f1=$(awk '{print $NF}' "$LAB_RUN/punch1.out")
	f2=$(awk '{print $NF}' "$LAB_RUN/punch2.out")
	case $addr in *:*) MAPPED+=("$t_punch $m1 $addr 2001:db8:100:1::/64") ;; *) MAPPED+=("$t_punch $m1 $addr 100.64.1.2") ;; esac
	w1="${m2% *}:${m2#* }"
	w2="${m1% *}:${m1#* }"
	[ "$f1" = "$w1" ] || fail "via $addr: sub1 heard from $f1, not sub2's alias $w1"
	[ "$f2" = "$w2" ] || fail "via $addr: sub2 heard from $f2, not sub1's alias $w2"
	ok "via $addr: sub1 ($m1) <-> sub2 ($m2) through the hairpin: $(awk '{print $4, $5, $6, $7}' "$LAB_RUN/punch1.out") / $(awk '{print $4, $5, $6, $7}' "$LAB_RUN/punch2.out")"

	# sub2's socket is closed now: its stack answers sub1's next datagrams
	# with port unreachable, which goes back through both translations. sub1
	# must get it from sub2's alias, quoting its own packet to that alias,
	# with sub2's address nowhere in it.
	capture_start "$TEST_NAME-sub1" sub1 gw0 || fail "cannot capture on cfr-sub1"
	# shellcheck disable=SC2016
	refused=$(nsx sub1 "$PY" - "${m2% *}" "${m2#* }" <<'PYEOF' 9<&-
import socket, sys, time
peer = (sys.argv[1], int(sys.argv[2]))
s = socket.socket(socket.AF_INET6 if ":" in peer[0] else socket.AF_INET, socket.SOCK_DGRAM)
if ":" in peer[0]:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if ":" in peer[0] else "0.0.0.0", 40001))
s.connect(peer)
s.settimeout(0.5)
refused = 0
for i in range(4):  # the kernel rate-limits its errors: a few, spaced
    try:
        s.send(b"after %d" % i)
        s.recv(100)
    except ConnectionRefusedError:
        refused += 1
    except socket.timeout:
        pass
    time.sleep(0.3)
print(refused)
PYEOF
	) || fail "via $addr: the probe after the punch failed"
	capture_stop "$TEST_NAME-sub1"
	[ "$refused" -ge 1 ] || fail "via $addr: no port unreachable came back to sub1 through the hairpin"
	case $addr in *:*) s1=$(sub_addr6 1) s2=$(sub_addr6 2) ;; *) s1=$(sub_addr4 1) s2=$(sub_addr4 2) ;; esac
	n=$(pcap_tool errors "$LAB_RUN/$TEST_NAME-sub1.pcap" | awk -v a="${m2% *}" -v p="${m2#* }" -v s="$s1" \
		'$2 == a && $3 == s && $9 == s && $10 == 40001 && $11 == a && $12 == p' | wc -l)
	[ "$n" -ge 1 ] || fail "via $addr: sub1 got no error from sub2's alias quoting its packet: $(pcap_tool errors "$LAB_RUN/$TEST_NAME-sub1.pcap")"
	"$PY" - "$LAB_RUN/$TEST_NAME-sub1.pcap" "$s2" <<'PYEOF' || fail "via $addr: sub2's address $s2 reached sub1"
import ipaddress, sys
data = open(sys.argv[1], "rb").read()
sys.exit(1 if ipaddress.ip_address(sys.argv[2]).packed in data else 0)
PYEOF
	ok "via $addr: sub2's port unreachable reached sub1 as $n error(s) from ${m2% *} quoting sub1 -> ${m2% *}:${m2#* }; sub2's address in no byte of sub1's capture"
done

json=$(cfrctl_json)
filtered=$(echo "$json" | json_get drops.filtered 2>/dev/null || echo "?")
say "cfrd: drops.filtered $filtered (the first punches, natdiscovery's filtering tests), $(echo "$json" | json_get flows.mappings_created) mappings, $(echo "$json" | json_get flows.hairpinned) packets hairpinned"

# The sealed records attribute a mapping: a complaint about sub1's mapping
# (the alias and port the STUN server reported, the time it was made) names
# sub1 once the epoch is sealed.
LOOKUP=$LAB_ROOT/build/cfr-lookup
if [ -x "$LOOKUP" ] && [ -f "$LAB_RUN/acct.key" ]; then
	nsx gw "$CFRCTL" -s "$LAB_CTL" epoch rotate >/dev/null || fail "cfrctl epoch rotate failed"
	for m in "${MAPPED[@]}"; do
		# shellcheck disable=SC2086 # fields on purpose
		set -- $m
		for _ in $(seq 20); do
			out=$("$LOOKUP" -k "$LAB_RUN/acct.key" -d "$LAB_RUN/records" --time "$1" --alias "$2" \
				--port "$3" --remote "$4" --tolerance 2 --proto udp --json 2>&1) && break
			sleep 0.2
		done
		who=$(echo "$out" | "$PY" -c 'import json,sys; print(" ".join(sorted({m["subscriber"] for m in json.load(sys.stdin)["matches"]})))' 2>/dev/null) ||
			fail "cfr-lookup on $2 port $3: $out"
		[ "$who" = "$5" ] || fail "complaint about the mapping $2 port $3: expected $5, cfr-lookup said '$who'"
		ok "complaint about the mapping $2 port $3 -> $who"
	done
else
	say "cfr-lookup or the lab's key missing: records not checked"
fi

# --- 4. the front door never saw a subscriber, nor a hairpinned packet --------
capture_stop "$TEST_NAME"
for c in "$TEST_NAME-1" "$TEST_NAME-2" "$TEST_NAME"; do
	pcap_tool leaks "$LAB_RUN/$c.pcap" >/dev/null || fail "front-door capture $c shows a subscriber address: $(pcap_tool leaks "$LAB_RUN/$c.pcap" 2>&1 | tail -3)"
done
n=$(pcap_tool flows "$LAB_RUN/$TEST_NAME.pcap" | awk '$2 == 17 && ($4 == 40001 || $4 == 40002 || $6 == 40001 || $6 == 40002)' | wc -l)
[ "$n" = 0 ] || fail "the front door saw $n datagrams with a subscriber's own port"
hp=$(pcap_tool flows "$LAB_RUN/$TEST_NAME.pcap" | while read -r _ _ src _ dst _; do
	in_pool "$src" && in_pool "$dst" && echo "$src $dst"
done | wc -l)
[ "$hp" = 0 ] || fail "the front door saw $hp packets from an alias to an alias: hairpinned traffic left the gateway"
ok "front door: no subscriber address in 3 captures (ICMP quotes included), no hairpinned datagram"

# --- 5. the classes are the operator's ----------------------------------------
# The same discovery with configured classes: endpoint-independent filtering
# for UDP, then every UDP flow per-flow (cfr before issue 17).
for run in "endpoint-independent endpoint-independent|NAT with Endpoint Independent Mapping|NAT with Endpoint Independent Filtering" \
	"per-flow|NAT with Address and Port Dependent Mapping|NAT with Address and Port Dependent Filtering"; do
	IFS='|' read -r cls want_m want_f <<<"$run"
	test_lab_config_up 2 "[privacy]
class = udp 443 per-flow
class = udp 0-65535 $cls"
	trap p2p_cleanup EXIT
	TURN_PID=""
	turn_up
	out=$(nsx sub1 timeout 60 turnutils_natdiscovery -m -f "$SVC4" 2>&1 9<&-) || true
	echo "$out" >"$LAB_RUN/natdiscovery-$cls.log"
	echo "$out" | grep -q "$want_m" || fail "class udp $cls: not '$want_m': $(echo "$out" | grep -i 'nat with\|error' | head -4)"
	echo "$out" | grep -q "$want_f" || fail "class udp $cls: not '$want_f': $(echo "$out" | grep -i 'nat with\|error' | head -4)"
	ok "class = udp 0-65535 $cls: natdiscovery says '${want_m#NAT with }', '${want_f#NAT with }'"
done

# --- 6. a TCP class with a mapping: hole punching by simultaneous open ---------
# Each peer (tests/lib/punch.py tcp) learns its TCP mapping with a STUN
# binding request over TCP, then connects from the same port to the other's
# alias while the other does the same; the first SYN is filtered, the
# retransmitted one meets a SYN-SENT socket, and the connection carries a
# line each way.
test_lab_config_up 2 "[privacy]
class = tcp 1024-65535 endpoint-independent"
trap p2p_cleanup EXIT
TURN_PID=""
turn_up
for addr in "$SVC4" "$SVC6"; do
	rm -f "$LAB_RUN/tpeer1" "$LAB_RUN/tpeer2"
	ip netns exec "$LAB_NS-sub1" "$PY" "$PUNCH" tcp "$addr" 41001 "$LAB_RUN/tpeer1" "$LAB_RUN/tpeer2" tcp-peer-1 \
		>"$LAB_RUN/tpunch1.out" 2>&1 9<&- &
	p1=$!
	ip netns exec "$LAB_NS-sub2" "$PY" "$PUNCH" tcp "$addr" 41002 "$LAB_RUN/tpeer2" "$LAB_RUN/tpeer1" tcp-peer-2 \
		>"$LAB_RUN/tpunch2.out" 2>&1 9<&- &
	p2=$!
	wait "$p1" || fail "TCP via $addr: sub1: $(cat "$LAB_RUN/tpunch1.out")"
	wait "$p2" || fail "TCP via $addr: sub2: $(cat "$LAB_RUN/tpunch2.out")"
	m2=$(cat "$LAB_RUN/tpeer2")
	grep -q "connected to ${m2% *} ${m2#* } got tcp-peer-2" "$LAB_RUN/tpunch1.out" ||
		fail "TCP via $addr: sub1 is not connected to sub2's alias $m2: $(cat "$LAB_RUN/tpunch1.out")"
	ok "TCP via $addr: simultaneous open through the mappings: $(cut -d' ' -f2- "$LAB_RUN/tpunch1.out") / $(cut -d' ' -f2- "$LAB_RUN/tpunch2.out")"
done
echo "PASS $TEST_NAME"
