#!/bin/bash
# tests/net/metrics.sh: cfr-exporter's metrics, scraped by Debian's real
# Prometheus server. Inside cfr-gw the test starts prometheus (bounded by
# timeout(1), scraping every second, with cfr's alert rules loaded), sends
# traffic, and checks through the query API that the packet counters rose;
# `promtool check metrics` passes on the scrape; no subscriber, alias or
# remote address appears in the scrape or in any label value Prometheus
# stored; every drop reason of cfr.h's X-macro list is a series; no stats
# field lacks its metric. Then a scrape flood (wrk) and malformed HTTP
# requests: cfrd and the exporter stay up, the exporter asks cfrd at most
# about once a second, forwarding (iperf3 TCP, ping) goes on, and
# Prometheus still scrapes.
#
#  cfr-sub1 --ping/udp/iperf3--> cfr-gw [cfrd] --> cfr-fd
#                                cfr-gw: cfr-exporter 127.0.0.1:9848 <-- prometheus 127.0.0.1:9090
#                                                                   <-- wrk, bad requests
set -eu
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/../../lab/lib.sh"

test_requires prometheus promtool iperf3
METRICS=http://127.0.0.1:9848/metrics
PROM=http://127.0.0.1:9090
test_lab_up 2

# --- Prometheus in the gateway namespace --------------------------------------
P=$LAB_RUN/prometheus
mkdir -p "$P/data"
cp "$LAB_ROOT/contrib/prometheus/cfr-rules.yml" "$P/"
cat >"$P/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["$P/cfr-rules.yml"]
scrape_configs:
  - job_name: cfr
    static_configs: [{targets: ["127.0.0.1:9848"]}]
EOF
chown -R prometheus: "$P"
# Bounded: timeout(1) ends it after 150 s whatever happens; lab down stops it by pid.
ip netns exec "$LAB_NS-gw" timeout -k 5 150 setpriv --reuid=prometheus --regid=prometheus --clear-groups \
	prometheus --config.file="$P/prometheus.yml" --storage.tsdb.path="$P/data" \
	--web.listen-address=127.0.0.1:9090 --storage.tsdb.retention.time=1h \
	>"$P/prometheus.log" 2>&1 &
echo $! >"$LAB_RUN/prometheus.pid"
for _ in $(seq 100); do
	nsx gw curl -sf "$PROM/-/ready" >/dev/null 2>&1 && break
	sleep 0.2
done
nsx gw curl -sf "$PROM/-/ready" >/dev/null || { tail -20 "$P/prometheus.log"; fail "prometheus not ready after 20 s"; }
ok "prometheus $(prometheus --version 2>&1 | awk 'NR==1 {print $3}') scraping the exporter every second"

# query EXPR: the value of an instant query ("" if the result is empty).
query() {
	nsx gw curl -sf -G "$PROM/api/v1/query" --data-urlencode "query=$1" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
assert r["status"] == "success", r
res = r["data"]["result"]
print(res[0]["value"][1] if res else "")'
}
# wait_value EXPR: poll until EXPR has a value (10 s).
wait_value() {
	local v=""
	for _ in $(seq 50); do
		v=$(query "$1") || true
		[ -z "$v" ] || { echo "$v"; return 0; }
		sleep 0.2
	done
	return 1
}

up=$(wait_value 'up{job="cfr"}') || fail "prometheus has no up{job=\"cfr\"}"
[ "$up" = 1 ] || fail "up{job=\"cfr\"} = $up"
[ "$(wait_value cfr_up)" = 1 ] || fail "cfr_up is not 1: the exporter cannot reach cfrd"
before=$(wait_value 'sum(cfr_packets_sent_total)') || fail "no cfr_packets_sent_total in prometheus"
flows_before=$(query cfr_flows_created_total)
bytes_in_before=$(query 'sum(cfr_sent_bytes_total{direction="inbound"})')
bytes_out_before=$(query 'sum(cfr_received_bytes_total{direction="outbound"})')
worker_before=$(query 'sum(cfr_worker_packets_received_total)')
# With the in-kernel fast path on, the workers see a flow's first packets only.
fast_before=$(query 'sum(cfr_fastpath_packets_total)')
ok "up 1, cfr_up 1, sum(cfr_packets_sent_total) = $before"

# --- real traffic, seen through the query API -----------------------------------
nsx sub1 ping -n -c 5 -i 0.2 -W 2 "$SVC4" >/dev/null || fail "ping $SVC4 failed"
nsx sub1 ping -6 -n -c 5 -i 0.2 -W 2 "$SVC6" >/dev/null || fail "ping $SVC6 failed"
udp_roundtrip sub2 "$SVC4" 200 5 fresh >/dev/null || fail "UDP echo failed"
nsx sub2 curl -sfk -o /dev/null "https://$SVC4/big.bin" || fail "HTTPS download failed"
sleep 2.5 # two scrapes, one past the 1 s cache
after=$(query 'sum(cfr_packets_sent_total)')
flows_after=$(query cfr_flows_created_total)
rate=$(query 'sum(increase(cfr_packets_sent_total[30s]))')
[ "$after" -gt $((before + 20)) ] || fail "sum(cfr_packets_sent_total) went $before -> $after after traffic"
[ "$flows_after" -ge $((flows_before + 7)) ] || fail "cfr_flows_created_total went $flows_before -> $flows_after"
ok "through the query API: packets sent $before -> $after (increase over 30 s: $rate), flows created $flows_before -> $flows_after"

# Issue 15's metrics, with the same traffic: bytes (the 2 MiB download came
# in), per-worker load, pool occupancy, epoch age, records write lag.
bytes_in_after=$(query 'sum(cfr_sent_bytes_total{direction="inbound"})')
bytes_out_after=$(query 'sum(cfr_received_bytes_total{direction="outbound"})')
worker_after=$(query 'sum(cfr_worker_packets_received_total)')
fast_after=$(query 'sum(cfr_fastpath_packets_total)')
[ "$bytes_in_after" -ge $((bytes_in_before + 2097152)) ] ||
	fail "cfr_sent_bytes_total{direction=\"inbound\"} went $bytes_in_before -> $bytes_in_after after a 2 MiB download"
[ "$bytes_out_after" -gt "$bytes_out_before" ] || fail "cfr_received_bytes_total{direction=\"outbound\"} did not rise"
[ "$worker_after" -gt "$worker_before" ] &&
	[ $((worker_after + ${fast_after:-0})) -gt $((worker_before + ${fast_before:-0} + 20)) ] ||
	fail "sum(cfr_worker_packets_received_total) went $worker_before -> $worker_after, the fast path's ${fast_before:-none} -> ${fast_after:-none}"
[ "$(query 'cfr_pool_addresses{family="ipv4"}')" = 64 ] || fail "cfr_pool_addresses is not the lab's /26"
[ "$(query 'cfr_pool_ports{family="ipv4"}')" -gt 0 ] || fail "cfr_pool_ports is 0"
[ "$(query 'cfr_pool_prefixes{family="ipv6",state="active"}')" = 1 ] || fail "cfr_pool_prefixes{ipv6,active} is not 1"
in_use=$(query 'cfr_aliases_in_use{family="ipv4"}')
[ "$in_use" -ge 1 ] && [ "$in_use" -le 64 ] || fail "cfr_aliases_in_use{ipv4} = $in_use after traffic"
age=$(query cfr_epoch_age_seconds)
len=$(query cfr_epoch_length_seconds)
uptime=$(query cfr_uptime_seconds)
[ "$len" -gt 0 ] && [ "$age" -le "$len" ] && [ "$age" -le "$uptime" ] || fail "cfr_epoch_age_seconds $age, length $len, uptime $uptime"
lag=$(query cfr_records_write_lag_seconds)
[ "$(query cfr_accounting_enabled)" = 1 ] && [ "$lag" -le 3 ] || fail "cfr_records_write_lag_seconds = $lag with records enabled"
ok "bytes in +$((bytes_in_after - bytes_in_before)), out +$((bytes_out_after - bytes_out_before)); worker packets +$((worker_after - worker_before)); aliases in use $in_use of 64; epoch $age s of $len; records write lag $lag s"

# The alert rules loaded into the real server and evaluate without error.
nsx gw curl -sf "$PROM/api/v1/rules" | "$PY" -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
bad = [r["name"] for r in rules if r.get("health") not in ("ok", "unknown")]
assert rules, "no rules loaded"
assert not bad, "rules with errors: %s" % bad
print(len(rules))' >"$P/rules.n" || fail "prometheus did not load contrib/prometheus/cfr-rules.yml cleanly"
ok "$(cat "$P/rules.n") alert and recording rules loaded and healthy"

# --- the scrape itself ---------------------------------------------------------
nsx gw curl -sf "$METRICS" >"$P/scrape.txt" || fail "GET $METRICS failed"
promtool check metrics <"$P/scrape.txt" >"$P/promtool.log" 2>&1 || { cat "$P/promtool.log"; fail "promtool check metrics failed"; }
ok "promtool check metrics: clean ($(grep -vc '^#' "$P/scrape.txt") samples)"
if grep -nE '([0-9]{1,3}\.){3}[0-9]{1,3}|2001:db8|[0-9a-f]{1,4}::|::[0-9a-f]{1,4}' "$P/scrape.txt"; then
	fail "the scrape holds an address (above)"
fi
# Every label value Prometheus stored, not only this scrape's.
nsx gw curl -sf "$PROM/api/v1/labels" | "$PY" -c 'import json,sys; print("\n".join(json.load(sys.stdin)["data"]))' >"$P/labels"
while read -r label; do
	nsx gw curl -sf "$PROM/api/v1/label/$label/values" | "$PY" -c 'import json,sys; print("\n".join(json.load(sys.stdin)["data"]))'
done <"$P/labels" >"$P/label-values"
if grep -nE '^100\.|^192\.0\.2\.|^203\.0\.113\.|2001:db8' "$P/label-values"; then
	fail "a label value Prometheus stored is an address (above)"
fi
ok "no subscriber, alias or remote address in the scrape or in $(wc -l <"$P/label-values") stored label values"

# Every drop reason of the X-macro list is a series, and no stats field lacks its metric.
n=0
# shellcheck disable=SC2013 # one name per line, no spaces
for reason in $(sed -n 's/^[[:space:]]*_([A-Z0-9_]*, "\([a-z0-9_]*\)".*/\1/p' "$LAB_ROOT/include/cfr/cfr.h"); do
	grep -q "^cfr_dropped_packets_total{reason=\"$reason\"} " "$P/scrape.txt" || fail "no series for drop reason $reason"
	n=$((n + 1))
done
[ "$n" -ge 20 ] || fail "read only $n drop reasons from cfr.h"
grep -q '^cfr_exporter_unmapped_fields 0$' "$P/scrape.txt" ||
	fail "stats fields without a metric: $(grep '^cfr_exporter_unmapped_fields' "$P/scrape.txt")"
ok "all $n drop reasons of CFR_DROP_REASONS exported; cfr_exporter_unmapped_fields 0"

# The dashboard and the rules use only metrics the exporter serves (a fast
# path's only while it runs: AF_XDP's with [xdp] ports, the in-kernel one's
# when it is on, which this lab may set either way).
names=$(grep -ohE '\bcfr_[a-z0-9_]+' "$LAB_ROOT/contrib/grafana/cfr-dashboard.json" "$LAB_ROOT/contrib/prometheus/cfr-rules.yml" | sort -u)
for m in $names; do
	case $m in cfr_xdp_*) continue ;; esac
	case $m in cfr_fastpath_*) grep -q '^cfr_fastpath_interfaces ' "$P/scrape.txt" || continue ;; esac
	grep -qE "^$m(\{| )" "$P/scrape.txt" || grep -qE "^$m(_bucket|_count)\{" "$P/scrape.txt" ||
		fail "$m, used by the dashboard or the rules, is not in the scrape"
done
ok "the dashboard and the rules use $(echo "$names" | wc -w) metric names, all served"

# --- hostile HTTP: malformed requests, then a flood while traffic flows ----------
exporter_pid=$(cat "$LAB_RUN/exporter.pid")
cfrd_pid=$(cat "$LAB_RUN/cfrd.pid")
nsx gw "$PY" - <<'PYEOF' >"$P/malformed.log" 2>&1 || { cat "$P/malformed.log"; fail "malformed requests: the exporter stopped answering"; }
import socket, time
A = ("127.0.0.1", 9848)
bad = [
    b"GARBAGE\r\n\r\n",
    b"\x00\xff\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200),   # a TLS hello
    b"GET /metrics\r\n\r\n",                                              # no version
    b"GET /metrics HTTP/9.9\r\n\r\n",
    b"GET /" + b"A" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",            # 100 kB URL
    b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"B" * 70000 + b"\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(5000)) + b"\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
    b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc",
    b"GET /metrics HTTP/1.1\r\nHost: \x00\x01\x02\r\n\r\n",
    b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://evil/metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 200,                      # pipelined
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,2-3,-0\r\n\r\n",
    b"GET /metrics HTTP/1.1\nHost: x\n\n",                                # bare LF
    b"G\r\n",                                                             # cut short
]
for i, req in enumerate(bad):
    s = socket.create_connection(A, timeout=5)
    try:
        s.sendall(req)
        s.shutdown(socket.SHUT_WR)
        first = s.recv(64)
        print(i, first.split(b"\r\n")[0][:40])
    except OSError as e:
        print(i, "closed:", e)
    s.close()
# Slowloris: connections that never finish their headers hold slots only until the timeout.
slow = []
for _ in range(40):
    try:
        c = socket.create_connection(A, timeout=5)
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        slow.append(c)
    except OSError:
        pass
time.sleep(0.5)
def get():
    s = socket.create_connection(A, timeout=10)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return data
# The per-address limit (16) leaves room... for nobody else from 127.0.0.1: the
# slow ones must time out (5 s) before a scrape gets through again.
t0 = time.monotonic()
while True:
    try:
        data = get()
        if data.startswith(b"HTTP/1.1 200") and b"cfr_up 1" in data:
            break
    except OSError:
        pass
    if time.monotonic() - t0 > 15:
        raise SystemExit("no good scrape within 15 s of the slow connections")
    time.sleep(0.2)
print("scrape ok %.1f s after %d slow connections" % (time.monotonic() - t0, len(slow)))
for c in slow:
    c.close()
PYEOF
alive "$exporter_pid" || fail "the exporter died on malformed requests"
alive "$cfrd_pid" || fail "cfrd died"
ok "$(grep -c '' "$P/malformed.log") malformed/hostile requests answered or refused; $(tail -1 "$P/malformed.log")"

nsx fd iperf3 -s -1 -D -B "$SVC4" -p 5201 >/dev/null
sleep 0.3
base=$(nsx sub1 timeout 20 iperf3 -c "$SVC4" -p 5201 -t 3 -J | "$PY" -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))') ||
	fail "iperf3 baseline failed"
req0=$(nsx gw curl -sf "$METRICS" | awk '$1 == "cfr_exporter_control_requests_total" {print $2}')
nsx fd iperf3 -s -1 -D -B "$SVC4" -p 5202 >/dev/null
sleep 0.3
# The flood: wrk with 32 connections (twice the per-address limit) for 6 s,
# or, without wrk, 8 curl loops.
flood=""
if command -v wrk >/dev/null; then
	nsx gw timeout 15 wrk -t2 -c32 -d6s "$METRICS" >"$P/wrk.log" 2>&1 &
	flood=$!
else
	for _ in $(seq 8); do
		nsx gw timeout 7 bash -c "while :; do curl -s -o /dev/null $METRICS; done" &
		flood="$flood $!"
	done
fi
sleep 0.5
loaded=$(nsx sub1 timeout 20 iperf3 -c "$SVC4" -p 5202 -t 3 -J | "$PY" -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))') ||
	fail "iperf3 during the scrape flood failed"
pings=$(nsx sub2 ping -n -c 10 -i 0.1 -W 1 "$SVC4" || true)
received=$(echo "$pings" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
rtt=$(echo "$pings" | sed -n 's/^rtt [^=]*= [^/]*\/\([^/]*\)\/.*/\1/p')
# Only the flood: prometheus and the capture are this shell's jobs too.
# shellcheck disable=SC2086
wait $flood || true
req1=$(nsx gw curl -sf "$METRICS" | awk '$1 == "cfr_exporter_control_requests_total" {print $2}')
served=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$P/wrk.log" 2>/dev/null || true)
alive "$exporter_pid" || fail "the exporter died under the scrape flood"
alive "$cfrd_pid" || fail "cfrd died under the scrape flood"
[ "${received:-0}" = 10 ] || fail "ping during the flood: ${received:-0} of 10 answered"
ratio=$(awk -v a="$loaded" -v b="$base" 'BEGIN {printf "%.2f", a / b}')
say "iperf3 TCP sub1 -> front door: $((base / 1000000)) Mbit/s alone, $((loaded / 1000000)) Mbit/s during the flood ($ratio); ping rtt avg ${rtt:-?} ms, 10/10"
say "flood: ${served:-?} requests in 6 s (wrk; over the per-address limit some are refused); cfrd was asked $((req1 - req0)) times"
# 6 s of flood and the iperf3 runs around it: about 10 s, one stats request per second at most.
[ $((req1 - req0)) -le 14 ] || fail "the exporter asked cfrd $((req1 - req0)) times during the flood (cache not holding)"
# Two cores shared by cfrd, iperf3, wrk and the exporter: the flood costs CPU, but must not stall forwarding.
awk -v r="$ratio" 'BEGIN {exit !(r >= 0.25)}' || fail "forwarding fell to $ratio of its rate during the scrape flood"
ok "scrape flood: forwarding at $ratio of its rate, no ping lost, cfrd asked $((req1 - req0)) times"

sleep 1.5
[ "$(query 'up{job="cfr"}')" = 1 ] || fail "prometheus lost the exporter after the flood"
[ "$(query cfr_up)" = 1 ] || fail "cfr_up not 1 after the flood"
ok "prometheus still scrapes: up 1, cfr_up 1"

capture_stop "$TEST_NAME"
test_leak_check
echo "PASS $TEST_NAME"
