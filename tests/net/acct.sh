#!/bin/bash
# tests/net/acct.sh: accountability without profiling, end to end. Two
# subscribers open HTTPS connections (IPv4 and IPv6); from the front door's
# capture we take each flow's (alias, port, time) as an abuse desk would get
# it, force an epoch boundary so the records are sealed, and cfr-lookup with
# the lab's private key must name exactly the right subscriber. The segment
# files must hold no subscriber or remote address in any encoding, and a
# SIGKILL of cfrd mid-traffic must leave every sealed segment readable.
#
#  cfr-sub1,2 --veth-- cfr-gw [cfr0 <-> cfrd -> /run/cfr-lab/records/*.seg]
#                                  --veth-- cfr-fd (nginx :443, capture)
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

LOOKUP=$LAB_ROOT/build/cfr-lookup
[ -x "$LOOKUP" ] || skip "build/cfr-lookup missing: run make"
test_lab_up 2
grep -q '^\[accounting\]' "$LAB_RUN/cfrd.conf" || skip "lab config has no [accounting] (build/cfr-keygen missing?)"
[ "$(stat -c %a "$LAB_RUN/acct.key")" = 600 ] || fail "lab private key is not mode 0600"

# syns: every outgoing SYN seen by the front door so far, as "TIME ALIAS PORT".
syns() {
	tcpdump -nn -tt -r "$LAB_RUN/$TEST_NAME.pcap" \
		'(tcp[tcpflags] & (tcp-syn|tcp-ack)) == tcp-syn or (ip6 and (ip6[53] & 0x12) == 0x02)' \
		2>/dev/null | awk '{ split($3, a, "."); port = a[length(a)]; addr = substr($3, 1, length($3) - length(port) - 1); print $1, addr, port }'
}

# One connection per (subscriber, family), one at a time, so each new SYN is known.
declare -a FLOWS=()
for spec in "1 $SVC4 100.64.1.2" "2 $SVC4 100.64.2.2" "1 $SVC6 2001:db8:100:1::/64"; do
	# shellcheck disable=SC2086 # fields on purpose
	set -- $spec
	before=$(syns | wc -l)
	url=https://$2/
	[ "${2#*:}" = "$2" ] || url="https://[$2]/"
	nsx "sub$1" curl -sk --max-time 5 -o /dev/null "$url" || fail "sub$1: curl $url failed"
	sleep 0.3
	line=$(syns | sed -n "$((before + 1))p")
	[ -n "$line" ] || fail "no SYN from sub$1 to $2 in the capture"
	FLOWS+=("$line $2 $3")
	ok "sub$1 -> $2: front door saw $(echo "$line" | cut -d' ' -f2,3)"
done

nsx gw "$CFRCTL" -s "$LAB_CTL" epoch rotate >/dev/null || fail "cfrctl epoch rotate failed"

# lookup TIME ALIAS PORT REMOTE: cfr-lookup's JSON for a complaint.
lookup() {
	"$LOOKUP" -k "$LAB_RUN/acct.key" -d "$LAB_RUN/records" --time "$1" --alias "$2" \
		--port "$3" --remote "$4" --tolerance 2 --proto tcp --json
}

for f in "${FLOWS[@]}"; do
	# shellcheck disable=SC2086 # fields on purpose
	set -- $f
	# Sealing happens in cfrd's loop right after the rotation: allow it a moment.
	for _ in $(seq 20); do
		out=$(lookup "$1" "$2" "$3" "$4") && break
		sleep 0.2
	done
	subs=$(echo "$out" | json_get subscribers) || fail "no answer for $2:$3: $out"
	who=$(echo "$out" | "$PY" -c 'import json,sys; print(" ".join(sorted({m["subscriber"] for m in json.load(sys.stdin)["matches"]})))')
	[ "$who" = "$5" ] || fail "complaint $2 port $3 at $1: expected $5, cfr-lookup said '$who'"
	[ "$subs" = 1 ] || fail "complaint $2 port $3: $subs candidates"
	ok "complaint $2 port $3 at $1 -> $who (1 candidate)"
done

# No address of a subscriber or of the front door in any byte encoding.
"$PY" - "$LAB_RUN/records" <<'EOF' || fail "an address appears in the record files"
import ipaddress, os, struct, sys
d = sys.argv[1]
blob = b"".join(open(os.path.join(d, f), "rb").read() for f in os.listdir(d))
if not blob:
    sys.exit("no record files")
needles = []
for a in ("100.64.1.2", "100.64.2.2", "203.0.113.10", "198.51.100.1"):
    ip = ipaddress.IPv4Address(a)
    p = ip.packed
    needles += [p, p[::-1], ipaddress.IPv6Address("::ffff:" + a).packed, a.encode(),
                a.encode("utf-16-le"), "%08x".encode() % int(ip), "%08X".encode() % int(ip)]
for a in ("2001:db8:100:1::2", "2001:db8:100:2::2", "2001:db8:f::10"):
    ip = ipaddress.IPv6Address(a)
    needles += [ip.packed, ip.packed[:8], ip.packed[::-1], ip.compressed.encode(),
                ip.exploded.encode(), ip.packed.hex().encode()]
bad = [n for n in needles if n in blob]
print("  ok: %d bytes of records, %d encodings searched, %d found" % (len(blob), len(needles), len(bad)))
sys.exit(1 if bad else 0)
EOF

# SIGKILL mid-traffic: the segments sealed before stay readable and still answer.
nsx gw "$CFRCTL" -s "$LAB_CTL" epoch rotate >/dev/null || fail "second epoch rotate failed"
udp_roundtrip sub1 "$SVC4" 64 40 fresh >/dev/null 2>&1 &
traffic=$!
sleep 1
kill -KILL "$(cat "$LAB_RUN/cfrd.pid")"
wait "$traffic" 2>/dev/null || true
for f in "${FLOWS[@]}"; do
	# shellcheck disable=SC2086 # fields on purpose
	set -- $f
	out=$(lookup "$1" "$2" "$3" "$4") || fail "after SIGKILL, complaint $2:$3 finds nothing: $out"
	# The killed cfrd's segment is not closed, and cfr-lookup says up to when
	# it is complete (tests/net/acct-crash.sh); anything else is damage.
	[ "$(echo "$out" | "$PY" -c 'import json,sys; print(len([w for w in json.load(sys.stdin)["warnings"] if ": not closed (cfrd stopped" not in w]))')" = 0 ] ||
		fail "after SIGKILL, records report damage: $out"
done
ok "after SIGKILL of cfrd: every complaint still answered, no damaged record"

test_leak_check
echo "PASS $TEST_NAME"
