#!/usr/bin/python3
"""bench/report.py: the number crunching of bench/run, kept out of shell.

  report.py iperf-tcp FILE          Gbit/s received, from iperf3 -J output
  report.py iperf-udp FILE          datagrams/s received, from iperf3 -u -J
  report.py cfrd-field PATH         a field (a.b.c) of cfrctl --json stats on stdin
  report.py table RESULTS [opts]    the markdown table of medians and ratios
  report.py splice DOC NAME FILE    put FILE between <!-- BEGIN NAME --> and
                                    <!-- END NAME --> in DOC (appended if absent)

Every parser prints "nan" rather than failing, so one failed load costs one
cell of the table, not the run. It reads files and prints; it never runs
anything.
"""
import argparse
import json
import math
import os
import statistics
import sys

MODES = ("routing", "nft", "cfrd")

# id, label, unit, higher-is-better, target (kind, value) against nft/routing
METRICS = [
    ("tcp1_v4", "TCP bulk, 1 stream, IPv4", "Gbit/s", True, ("nft", 1.0)),
    ("tcp4_v4", "TCP bulk, 4 streams, IPv4", "Gbit/s", True, ("nft", 1.0)),
    ("tcp1_v6", "TCP bulk, 1 stream, IPv6", "Gbit/s", True, ("nft", 1.0)),
    ("tcp4_v6", "TCP bulk, 4 streams, IPv6", "Gbit/s", True, ("nft", 1.0)),
    ("udp64_v4", "UDP 64 B payload, IPv4, received", "kpps", True, ("nft", 0.8)),
    ("udp64_v6", "UDP 64 B payload, IPv6, received", "kpps", True, ("nft", 0.8)),
    ("udp1400_v4", "UDP 1400 B payload, IPv4, received", "kpps", True, None),
    ("udp1400_v6", "UDP 1400 B payload, IPv6, received", "kpps", True, None),
    ("udp64tx_v4", "  offered by the sender (64 B, IPv4)", "kpps", True, None),
    ("udp64tx_v6", "  offered by the sender (64 B, IPv6)", "kpps", True, None),
    ("udp1400tx_v4", "  offered by the sender (1400 B, IPv4)", "kpps", True, None),
    ("udp1400tx_v6", "  offered by the sender (1400 B, IPv6)", "kpps", True, None),
    ("conn_v4", "new TCP connections (HTTP/1.1, close), IPv4", "conn/s", True, ("nft", 1.0)),
    ("conn_v6", "new TCP connections (HTTP/1.1, close), IPv6", "conn/s", True, ("nft", 1.0)),
    ("rtt50_v4", "ICMP echo RTT median, IPv4", "µs", False, ("added", 20.0)),
    ("rtt99_v4", "ICMP echo RTT p99, IPv4", "µs", False, None),
    ("rtt50_v6", "ICMP echo RTT median, IPv6", "µs", False, ("added", 20.0)),
    ("rtt99_v6", "ICMP echo RTT p99, IPv6", "µs", False, None),
    ("mem_v4", "memory per flow, IPv4 (1M UDP flows)", "bytes", False, ("nft", 1 / 3)),
    ("mem_v6", "memory per flow, IPv6 (1M UDP flows)", "bytes", False, ("nft", 1 / 2)),
    ("ctobj_v4", "  of which nf_conntrack objects, IPv4", "bytes", False, None),
    ("ctobj_v6", "  of which nf_conntrack objects, IPv6", "bytes", False, None),
    ("bpfmem_v4", "  of which the fast path's table (kernel), IPv4", "bytes", False, None),
    ("bpfmem_v6", "  of which the fast path's table (kernel), IPv6", "bytes", False, None),
    ("acct_v4", "  cfrd memory_bytes / flows, IPv4", "bytes", False, None),
    ("acct_v6", "  cfrd memory_bytes / flows, IPv6", "bytes", False, None),
    ("cpugbit_tcp1_v4", "machine CPU per Gbit/s, TCP 1 stream, IPv4", "% core", False, ("nft", 1.0)),
    ("cpugbit_tcp1_v6", "machine CPU per Gbit/s, TCP 1 stream, IPv6", "% core", False, ("nft", 1.0)),
    ("cpu_tcp1_v4", "cfrd CPU during TCP 1 stream, IPv4", "% core", False, None),
    ("cpu_tcp1_v6", "cfrd CPU during TCP 1 stream, IPv6", "% core", False, None),
    ("cpu_udp64_v4", "cfrd CPU during UDP 64 B, IPv4", "% core", False, None),
    ("cpu_udp64_v6", "cfrd CPU during UDP 64 B, IPv6", "% core", False, None),
    ("flows_v4", "flows alive at the reading, IPv4", "flows", True, None),
    ("flows_v6", "flows alive at the reading, IPv6", "flows", True, None),
]
SCALE = {"kpps": 1e-3}


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def iperf_tcp(path):
    d = load_json(path)
    try:
        return "%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9)
    except (TypeError, KeyError):
        return "nan"


def iperf_udp(path):
    d = load_json(path)
    try:
        s = d["end"]["sum"]
        return "%.0f" % ((s["packets"] - s["lost_packets"]) / s["seconds"])
    except (TypeError, KeyError, ZeroDivisionError):
        return "nan"


def cfrd_field(path):
    try:
        d = json.load(sys.stdin)
        for k in path.split("."):
            d = d[k]
        return str(d)
    except (ValueError, KeyError, TypeError):
        return "nan"


def read_results(path):
    vals = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            metric, mode, rep, value = parts
            try:
                v = float(value)
            except ValueError:
                v = math.nan
            vals.setdefault((metric, mode), []).append((int(rep), v))
    return vals


def median(samples):
    good = [v for _, v in samples if not math.isnan(v)]
    return statistics.median(good) if good else math.nan


def fmt(v, unit):
    if v is None or math.isnan(v):
        return "—"
    v *= SCALE.get(unit, 1)
    if unit == "Gbit/s":
        return "%.2f" % v
    if unit in ("µs", "kpps") or abs(v) < 1000:
        return "%.1f" % v if abs(v) < 100 else "%.0f" % v
    return "{:,.0f}".format(v)


def ratio(a, b):
    if math.isnan(a) or math.isnan(b) or b == 0:
        return "—"
    return "%.2f×" % (a / b)


def target_cell(target, higher, med):
    """The issue's target for this row and whether this run meets it."""
    if target is None:
        return ""
    kind, value = target
    c, n, r = med["cfrd"], med["nft"], med["routing"]
    if kind == "added":
        if math.isnan(c) or math.isnan(r):
            return "≤ +%.0f µs over routing" % value
        ok = c - r <= value
        return "≤ +%.0f µs over routing: %s (+%.1f)" % (value, "met" if ok else "NOT met", c - r)
    want = ("≥ %.1f× nft" if higher else "≤ %s nft") % (
        value if higher else ("1/%d" % round(1 / value)))
    if math.isnan(c) or math.isnan(n) or n == 0:
        return want
    ok = c / n >= value if higher else c / n <= value
    return "%s: %s" % (want, "met" if ok else "NOT met")


def table(args):
    vals = read_results(args.results)
    out = []
    out.append("Run of `%s` at commit %s, %s UTC, %s s in all." % (
        args.command, args.commit,
        os.popen("date -u +%Y-%m-%dT%H:%M").read().strip(), args.elapsed))
    out.append("")
    out.append("Machine: %s." % args.machine)
    out.append("")
    has_mem = any(mid.startswith("mem_") for mid, _ in vals)
    out.append("Medians of %s rounds (each round: routing, nftables, cfrd in turn, %s s per "
               "load)%s." % (args.reps, args.duration,
                             "; memory with %s concurrent UDP flows, one reading each" %
                             "{:,}".format(int(args.flows)) if has_mem else ""))
    out.append("")
    out.append("| workload | unit | routing | nftables | cfrd | cfrd/nft | cfrd/routing | target (issue 6) |")
    out.append("|---|---|---:|---:|---:|---:|---:|---|")
    for mid, label, unit, higher, target in METRICS:
        med = {m: median(vals.get((mid, m), [])) for m in MODES}
        if all(math.isnan(v) for v in med.values()):
            continue
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, unit, fmt(med["routing"], unit), fmt(med["nft"], unit),
            fmt(med["cfrd"], unit), ratio(med["cfrd"], med["nft"]),
            ratio(med["cfrd"], med["routing"]), target_cell(target, higher, med)))
    for fam in ("4", "6"):
        med = {m: median(vals.get(("rtt50_v" + fam, m), [])) for m in MODES}
        if math.isnan(med["routing"]):
            continue
        out.append("| added median RTT over routing, IPv%s | µs | 0 | %+.1f | %+.1f | | | |" % (
            fam, med["nft"] - med["routing"], med["cfrd"] - med["routing"]))
    if has_mem:
        out.append("")
        out.append("Memory: nftables = growth of all kernel slab caches (/proc/slabinfo) per "
                   "conntrack entry (`conntrack -C`); cfrd = growth of its RSS plus of its fast "
                   "path's flow table in the kernel (the memlock of its BPF hash maps) per flow "
                   "(`cfrctl --json stats`). \"memory_bytes / flows\" is cfrd's own "
                   "accounting: the table it allocated at start for max-flows = 1048576.")
    out.append("")
    out.append("<details><summary>every round (routing / nftables / cfrd)</summary>")
    out.append("")
    out.append("| workload | routing | nftables | cfrd |")
    out.append("|---|---|---|---|")
    for mid, label, unit, _, _ in METRICS:
        cells = []
        for m in MODES:
            s = sorted(vals.get((mid, m), []))
            cells.append(", ".join(fmt(v, unit) for _, v in s) if s else "—")
        if all(c == "—" for c in cells):
            continue
        out.append("| %s (%s) | %s |" % (label.strip(), unit, " | ".join(cells)))
    out.append("")
    out.append("</details>")
    print("\n".join(out))


def splice(doc, name, path):
    begin, end = "<!-- BEGIN %s -->" % name, "<!-- END %s -->" % name
    with open(path) as f:
        body = f.read().rstrip("\n")
    try:
        with open(doc) as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Performance\n"
    block = "%s\n%s\n%s" % (begin, body, end)
    i, j = text.find(begin), text.find(end)
    if i >= 0 and j > i:
        text = text[:i] + block + text[j + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(doc, "w") as f:
        f.write(text)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = sys.argv[1]
    if cmd == "iperf-tcp":
        print(iperf_tcp(sys.argv[2]))
    elif cmd == "iperf-udp":
        print(iperf_udp(sys.argv[2]))
    elif cmd == "cfrd-field":
        print(cfrd_field(sys.argv[2]))
    elif cmd == "splice":
        splice(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "table":
        p = argparse.ArgumentParser(prog="report.py table")
        p.add_argument("results")
        for opt in ("machine", "command", "elapsed", "reps", "duration", "flows", "commit"):
            p.add_argument("--" + opt, default="?")
        table(p.parse_args(sys.argv[2:]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
