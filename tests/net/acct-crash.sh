#!/bin/bash
# tests/net/acct-crash.sh: write-ahead accountability. Three subscribers
# open HTTPS and UDP flows to the front door in both families, a few per
# second each, while cfrd is killed with SIGKILL at a random moment of its
# first epoch and started again, KILLS times (default 3; the measurement in
# docs/accountability.md ran 60). Afterwards every flow the front door
# captured is put to cfr-lookup as an abuse desk would (alias, port, time,
# remote): a flow that began BOUND seconds (2) or more before the kill that
# followed it must be named by its own subscriber (alone, or with another
# whose sequence hit the same alias and port in the window: the pool's
# birthday bound, counted apart); no flow may ever be named for another. The flows younger than BOUND at the kill are
# counted by age: that is the measured write-ahead bound.
#
#  cfr-sub1..3 --veth-- cfr-gw [cfr0 <-> cfrd -> /run/cfr-lab/records/*.seg]
#   (load: UDP to :7,                 ^ kill -9, start again, KILLS times
#    HTTPS with SNI subN.acct.test) --veth-- cfr-fd (nginx :443, udp echo :7, capture)
#
# Who sent a flow is read from the flow itself at the front door: the UDP
# payload says "cfr-acct-subN-", the TLS ClientHello names subN.acct.test.
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

KILLS=${CFR_ACCT_KILLS:-3}
RATE=${CFR_ACCT_RATE:-8}  # new flows per second per subscriber
BOUND=${CFR_ACCT_BOUND:-2} # seconds: older flows must all be attributed
SUBS=3
LOOKUP=$LAB_ROOT/build/cfr-lookup
[ -x "$LOOKUP" ] || skip "build/cfr-lookup missing: run make"
test_lab_up "$SUBS"
grep -q '^\[accounting\]' "$LAB_RUN/cfrd.conf" || skip "lab config has no [accounting] (build/cfr-keygen missing?)"
WORK=$(mktemp -d /tmp/cfr-acct-crash.XXXXXX)
trap 'rc=$?; rm -rf "$WORK"; (exit $rc); _test_cleanup' EXIT

# The load of one subscriber: a fresh UDP socket per datagram (a new flow
# each), every fifth flow an HTTPS connection instead; IPv4 and IPv6 in turn.
# shellcheck disable=SC2016
GEN_PY='
import socket, ssl, sys, time
sub, dur, rate = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
targets = [("203.0.113.10", socket.AF_INET), ("2001:db8:f::10", socket.AF_INET6)]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
end, n = time.time() + dur, 0
while time.time() < end:
    addr, fam = targets[n % 2]
    try:
        if n % 5 == 4:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(1)
            s.connect((addr, 443))
            t = ctx.wrap_socket(s, server_hostname="sub%d.acct.test" % sub)
            t.sendall(b"GET / HTTP/1.0\r\n\r\n")
            t.recv(64)
            t.close()
        else:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.settimeout(0.3)
            s.sendto(b"cfr-acct-sub%d-%d" % (sub, n), (addr, 7))
            s.recv(64)
            s.close()
    except Exception:
        pass
    n += 1
    time.sleep(1.0 / rate)
'

# start_cfrd: cfrd again in cfr-gw, as lab/cfr-lab starts it (the TUN
# devices, routes and the egress guard outlive a killed cfrd).
start_cfrd() {
	ip netns exec "$LAB_NS-gw" "$CFRD" -c "$LAB_RUN/cfrd.conf" >>"$LAB_RUN/cfrd.log" 2>&1 &
	echo $! >"$LAB_RUN/cfrd.pid"
	disown # its SIGKILL is the point, not news
	for _ in $(seq 100); do
		alive "$(cat "$LAB_RUN/cfrd.pid")" || fail "cfrd exited on start (see $LAB_RUN/cfrd.log)"
		nsx gw "$CFRCTL" -s "$LAB_CTL" stats >/dev/null 2>&1 && break
		sleep 0.1
	done
	nsx gw ip link set cfr0 up
	for _ in $(seq 20); do
		nsx sub1 ping -n -c 1 -W 1 "$SVC4" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	fail "no traffic through the restarted cfrd"
}

: >"$WORK/kills"
for k in $(seq "$KILLS"); do
	[ "$k" = 1 ] || start_cfrd
	pids=""
	for i in $(seq "$SUBS"); do
		# Not through nsx: $! must be the generator itself, to stop it.
		ip netns exec "$LAB_NS-sub$i" "$PY" -c "$GEN_PY" "$i" 30 "$RATE" >/dev/null 2>&1 &
		pids="$pids $!"
	done
	# A random moment of the first epoch: 2 to 6 s of load, to the millisecond.
	sleep "$(awk -v s="$RANDOM$k" 'BEGIN { srand(s); printf "%.3f", 2 + 4 * rand() }')"
	# When the kill was sent, and when cfrd was gone: a packet it sent in
	# between (the front door sees it a moment later) is still its own.
	pid=$(cat "$LAB_RUN/cfrd.pid")
	sent=$(date +%s.%N)
	kill -KILL "$pid"
	while alive "$pid"; do sleep 0.01; done
	echo "$sent $(date +%s.%N)" >>"$WORK/kills"
	# shellcheck disable=SC2086 # a list of pids
	kill $pids 2>/dev/null || true
	# shellcheck disable=SC2086
	wait $pids 2>/dev/null || true
	grep -q 'journal every' "$LAB_RUN/cfrd.log" || fail "cfrd does not say it keeps a journal"
done
ok "cfrd killed $KILLS times, each in its first epoch, under load"
capture_stop "$TEST_NAME"
if [ -n "${CFR_ACCT_KEEP:-}" ]; then
	# Everything the analysis reads, for a closer look (CFR_ACCT_KEEP=DIR).
	mkdir -p "$CFR_ACCT_KEEP"
	cp -r "$LAB_RUN/records" "$LAB_RUN/acct.key" "$LAB_RUN/$TEST_NAME.pcap" "$LAB_RUN/cfrd.log" \
		"$WORK/kills" "$CFR_ACCT_KEEP/"
fi
pcap_tool leaks "$LAB_RUN/$TEST_NAME.pcap" >/dev/null || fail "front-door capture shows a subscriber address"

# Every flow the front door saw from the pools, with its owner (the capture
# reader's acct-flows), the age it had when cfrd was killed; then cfr-lookup
# on each (four at a time).
# shellcheck disable=SC2016
ANALYZE_PY='
import concurrent.futures, json, subprocess, sys
flows_file, kills_file, lookup, key, records, bound = sys.argv[1:7]
bound = float(bound)
kills = sorted(tuple(float(x) for x in l.split()) for l in open(kills_file) if l.strip())
flows = {}
for line in open(flows_file):
    t, proto, fam, src, sport, dst, dport, owner = line.split()
    flows[(int(proto), src, int(sport), dst, int(dport))] = {
        "t": float(t), "fam": int(fam), "owner": None if owner == "-" else int(owner)}
def expected(fam, owner):
    return "100.64.%d.2" % owner if fam == 4 else "2001:db8:100:%d::/64" % owner
def ask(item):
    (proto, src, sport, dst, dport), fl = item
    out = subprocess.run([lookup, "-k", key, "-d", records, "--alias", src, "--port", str(sport),
                          "--time", "%.3f" % fl["t"], "--tolerance", "1", "--remote", dst,
                          "--proto", "tcp" if proto == 6 else "udp", "--json"],
                         capture_output=True, text=True)
    try:
        j = json.loads(out.stdout)
        who = {m["subscriber"] for m in j["matches"]}
    except Exception:
        return item, "error", out.stderr.strip()
    want = expected(fl["fam"], fl["owner"])
    if who == {want}:
        return item, "right", ""
    if want in who:
        return item, "ambiguous", ""
    return item, ("wrong" if who else "none"), " ".join(sorted(who) + j["warnings"])
todo = [(k, fl) for k, fl in flows.items() if fl["owner"] is not None]
buckets = [(0, 0.5), (0.5, 1), (1, 1.5), (1.5, 2), (2, 3), (3, 1e9)]
stats = {b: {"right": 0, "ambiguous": 0, "none": 0, "wrong": 0, "error": 0} for b in buckets}
kinds = set()
bad = []
with concurrent.futures.ThreadPoolExecutor(4) as ex:
    for (k, fl), verdict, why in ex.map(ask, todo):
        after = [x for x in kills if x[1] >= fl["t"]]
        if not after:
            continue
        age = max(0.0, after[0][0] - fl["t"])
        b = next(b for b in buckets if b[0] <= age < b[1])
        stats[b][verdict] += 1
        if verdict == "right":
            kinds.add((k[0], fl["fam"]))
        # Ambiguous (another subscriber drew the same alias and port within the
        # tolerance: the birthday bound of the pool) still names the owner.
        if verdict in ("wrong", "error") or (age >= bound and verdict == "none"):
            bad.append("%s %s:%d at %.3f (%.2f s before the kill), owner sub%d: %s %s" %
                       ("tcp" if k[0] == 6 else "udp", k[1], k[2], fl["t"], age, fl["owner"], verdict, why))
print("  flows captured: %d, with an owner: %d" % (len(flows), len(todo)))
print("  age at the kill    right  ambiguous  none  wrong")
for b in buckets:
    s = stats[b]
    print("  %-16s %7d %10d %5d %6d" % ("[%g, %g) s" % (b[0], b[1]) if b[1] < 1e9 else ">= %g s" % b[0],
          s["right"], s["ambiguous"], s["none"], s["wrong"] + s["error"]))
for line in bad[:20]:
    print("  BAD: " + line)
missing = {(6, 4), (6, 6), (17, 4), (17, 6)} - kinds
if missing:
    print("  BAD: no attributed flow of %s" % sorted(missing))
sys.exit(1 if bad or missing else 0)
'
pcap_tool acct-flows "$LAB_RUN/$TEST_NAME.pcap" >"$WORK/flows" || fail "cannot read the front-door capture"
"$PY" -c "$ANALYZE_PY" "$WORK/flows" "$WORK/kills" "$LOOKUP" "$LAB_RUN/acct.key" \
	"$LAB_RUN/records" "$BOUND" || fail "a flow older than ${BOUND} s at the kill was not attributed, or one was attributed wrongly"
ok "every flow that began ${BOUND} s or more before a kill is named, by its own subscriber only"
echo "PASS $TEST_NAME"
