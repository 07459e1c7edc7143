#!/usr/bin/python3
"""Unit tests of cfrcap.py, the lab's capture reader: no privileges, no lab.

Each test writes a small capture (packets built by scapy, so the encoder is
not the decoder under test), runs one mode on it and checks its verdict and
its lines. tests/run runs them with the unit tests:
    python3 -m unittest discover -s tests/lib -v
"""
import contextlib
import io
import logging
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cfrcap  # noqa: E402

try:
    from scapy.all import (ARP, HAO, ICMP, IP, TCP, UDP, Ether, ICMPv6DestUnreach, ICMPv6EchoRequest,
                           ICMPv6ND_NS, ICMPv6PacketTooBig, IPOption_RR, IPv6, IPv6ExtHdrDestOpt,
                           IPv6ExtHdrFragment, IPv6ExtHdrRouting, PcapWriter, Raw, fragment)
except ImportError:  # pragma: no cover
    raise unittest.SkipTest("scapy missing (python3-scapy)")

# Raw frames on an Ethernet or raw-IP writer: scapy warns, rightly, that it
# cannot tell their link type; the test knows it.
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
MAC = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
SUB4, SUB6 = "100.64.1.2", "2001:db8:100:1::2"
GW4 = "100.64.1.1"
ALIAS4, ALIAS6 = "192.0.2.7", "2001:db8:a1::7"
SVC4, SVC6 = "203.0.113.10", "2001:db8:f::10"


class CaptureTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.n = 0

    def pcap(self, pkts, link=1, eth=True, times=None, nano=False):
        """A capture of <pkts> (each in an Ethernet frame unless eth is false);
        times: one timestamp per packet (default 1000.0 + 0.001 * i)."""
        self.n += 1
        path = os.path.join(self.dir.name, "c%d.pcap" % self.n)
        w = PcapWriter(path, linktype=link, nano=nano, sync=True)
        for i, p in enumerate(pkts):
            if eth and link == 1:
                p = Ether(**MAC) / p
            # As bytes: scapy would also check each packet's link type.
            r = Raw(bytes(p))
            r.time = times[i] if times else 1000.0 + 0.001 * i
            w.write(r)
        w.close()
        return path

    def run_mode(self, mode, *args):
        """(exit status, stdout lines) of a mode."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = cfrcap.MODES[mode](*args)
        return rc, out.getvalue().splitlines()


class Reading(CaptureTest):
    def test_link_types_and_byte_orders(self):
        p = IP(src=ALIAS4, dst=SVC4) / UDP(sport=1234, dport=7) / Raw(b"x")
        for path in (self.pcap([p]), self.pcap([Ether(**MAC) / p], eth=False),
                     self.pcap([p], link=101), self.pcap([p], link=12)):
            rc, lines = self.run_mode("flows", path)
            self.assertEqual(lines, ["4 17 192.0.2.7 1234 203.0.113.10 7 -"], path)
        # Big-endian file, nanosecond timestamps, a VLAN tag.
        big = os.path.join(self.dir.name, "be.pcap")
        frame = bytes(Ether(type=0x8100, **MAC)) + struct.pack(">HH", 5, 0x86dd) + bytes(
            IPv6(src=ALIAS6, dst=SVC6) / UDP(sport=5, dport=7))
        with open(big, "wb") as f:
            f.write(struct.pack(">IHHiIII", 0xa1b23c4d, 2, 4, 0, 0, 65535, 1))
            f.write(struct.pack(">IIII", 7, 500000000, len(frame), len(frame)) + frame)
        (pk,) = cfrcap.packets(big)
        self.assertEqual((pk.t, pk.fam, pk.proto, cfrcap.ports(pk)), (7.5, 6, 17, (5, 7)))

    def test_linux_cooked(self):
        p = IP(src=ALIAS4, dst=SVC4, ttl=33) / TCP(sport=9, dport=443)
        sll = struct.pack(">HHH8sH", 0, 1, 6, bytes(8), 0x0800) + bytes(p)
        sll2 = struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, bytes(8)) + bytes(p)
        for link, frame in ((113, sll), (276, sll2)):
            rc, lines = self.run_mode("ttls", self.pcap([Raw(frame)], link=link, eth=False))
            self.assertEqual(lines, ["4 6 192.0.2.7 203.0.113.10 33"])

    def test_not_a_pcap(self):
        path = os.path.join(self.dir.name, "x.pcap")
        with open(path, "wb") as f:
            f.write(b"0" * 40)
        with self.assertRaises(SystemExit):
            list(cfrcap.frames(path))


class Leaks(CaptureTest):
    def leaks(self, *pkts):
        return self.run_mode("leaks", self.pcap(list(pkts)))

    def assertLeak(self, what, *pkts):
        rc, lines = self.leaks(*pkts)
        self.assertEqual(rc, 1, lines)
        self.assertTrue(any(what in l for l in lines if l.startswith("LEAK")), lines)

    def test_clean_traffic_passes(self):
        rc, lines = self.leaks(IP(src=ALIAS4, dst=SVC4) / TCP(sport=1, dport=443, flags="S"),
                               IPv6(src=SVC6, dst=ALIAS6) / UDP(sport=7, dport=9) / Raw(b"a" * 40),
                               IP(src=ALIAS4, dst=SVC4) / ICMP(type=8) / Raw(bytes((100, 64, 1, 2))))
        self.assertEqual(rc, 0, lines)
        self.assertIn("3 IP packets, 0 ARP, 0 subscriber addresses seen", lines[-1])

    def test_empty_capture_fails(self):
        rc, lines = self.leaks()
        self.assertEqual(rc, 1)
        self.assertIn("capture is empty", lines[-1])
        rc, lines = self.leaks(Ether(**MAC) / ARP(psrc="192.0.2.1", pdst="192.0.2.2"))
        self.assertEqual(rc, 1)

    def test_headers(self):
        self.assertLeak("outer source", IP(src=SUB4, dst=SVC4) / UDP())
        self.assertLeak("outer destination", IPv6(src=SVC6, dst="2001:db8:100:ff::9") / UDP())
        # Anywhere in 100.64.0.0/10, not only the lab's own addresses.
        self.assertLeak("outer source", IP(src="100.127.255.254", dst=SVC4) / UDP())

    def test_ipv4_options(self):
        self.assertLeak("record-route slot 1",
                        IP(src=ALIAS4, dst=SVC4, options=[IPOption_RR(routers=["192.0.2.1", "100.70.0.1"])]) / UDP())
        rc, lines = self.leaks(IP(src=ALIAS4, dst=SVC4, options=[Raw(b"\x07\x01")]) / UDP())
        self.assertEqual(rc, 1)
        self.assertTrue(any("malformed option 7" in l for l in lines), lines)

    def test_ipv6_extension_headers(self):
        self.assertLeak("routing-header type 0 address 1",
                        IPv6(src=ALIAS6, dst=SVC6) / IPv6ExtHdrRouting(addresses=[SVC6, "2001:db8:100:77::5"]) / UDP())
        self.assertLeak("destination-options home-address option",
                        IPv6(src=ALIAS6, dst=SVC6) / IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8:100:2::9")]) / UDP())

    def test_icmp_quotes_recursively(self):
        quote = IP(src=SUB4, dst=SVC4) / UDP(sport=5, dport=7)
        self.assertLeak("icmp-quoted source", IP(src=SVC4, dst=ALIAS4) / ICMP(type=3, code=3) / quote)
        inner6 = IPv6(src=SVC6, dst=ALIAS6) / ICMPv6DestUnreach() / IPv6(src=ALIAS6, dst=SUB6) / UDP()
        self.assertLeak("icmp6-quoted icmp6-quoted destination",
                        IPv6(src=SVC6, dst=ALIAS6) / ICMPv6PacketTooBig(mtu=1280) / inner6)
        self.assertLeak("icmp redirect gateway", IP(src=SVC4, dst=ALIAS4) / ICMP(type=5, code=1, gw=GW4) /
                        IP(src=ALIAS4, dst=SVC4) / UDP())

    def test_raw_bytes_in_icmp(self):
        # A lab gateway address inside an ICMP error's quoted payload, where
        # no header names it: only the raw scan finds it.
        pl = Raw(b"...." + bytes((100, 64, 3, 1)))
        self.assertLeak("raw bytes", IP(src=SVC4, dst=ALIAS4) / ICMP(type=11) / IP(src=ALIAS4, dst=SVC4) / UDP() / pl)
        # Inside an echo the same bytes are data (a ping payload), not a leak.
        rc, _ = self.leaks(IP(src=ALIAS4, dst=SVC4) / ICMP(type=8) / pl)
        self.assertEqual(rc, 0)

    def test_tunnel_arp_and_nd(self):
        self.assertLeak("ip-in-ip source", IP(src=ALIAS4, dst=SVC4) / IP(src=SUB4, dst=SVC4) / UDP())
        self.assertLeak("ipv6-in-ip source", IP(src=ALIAS4, dst=SVC4) / IPv6(src=SUB6, dst=SVC6) / UDP())
        rc, lines = self.run_mode("leaks", self.pcap([
            IP(src=ALIAS4, dst=SVC4) / UDP(), Ether(**MAC) / ARP(psrc=GW4, pdst="192.0.2.1")], eth=False))
        self.assertEqual(rc, 1)
        self.assertTrue(any("arp sender" in l for l in lines), lines)
        self.assertLeak("nd target", IPv6(src=ALIAS6, dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt=SUB6))


class Listings(CaptureTest):
    def test_flows_and_frags(self):
        big4 = fragment(IP(src=ALIAS4, dst=SVC4) / UDP(sport=3, dport=7) / Raw(bytes(3000)), 1400)
        frag6 = [IPv6(src=ALIAS6, dst=SVC6) / IPv6ExtHdrFragment(offset=o, m=m, id=9) / Raw(bytes(16))
                 for o, m in ((0, 1), (2, 0))]
        frag6[0] = IPv6(src=ALIAS6, dst=SVC6) / IPv6ExtHdrFragment(offset=0, m=1, id=9) / UDP(sport=4, dport=7)
        path = self.pcap([IP(src=ALIAS4, dst=SVC4) / TCP(sport=1, dport=443, flags="S"),
                          IP(src=SVC4, dst=ALIAS4) / TCP(sport=443, dport=1, flags="SA"),
                          IPv6(src=ALIAS6, dst=SVC6) / ICMPv6EchoRequest(id=5)] + big4 + frag6)
        rc, lines = self.run_mode("flows", path)
        self.assertEqual(lines, [
            "4 6 192.0.2.7 1 203.0.113.10 443 S",
            "4 6 203.0.113.10 443 192.0.2.7 1 -",
            "6 58 2001:db8:a1::7 type128 2001:db8:f::10 code0 -",
            "4 17 192.0.2.7 3 203.0.113.10 7 F",
            "6 17 2001:db8:a1::7 4 2001:db8:f::10 7 F",
        ])
        self.assertEqual(self.run_mode("frags", path), (0, ["v4 %d v6 2" % len(big4)]))

    def test_errors(self):
        path = self.pcap([
            IP(src="198.51.100.1", dst=ALIAS4, ttl=60) / ICMP(type=3, code=4, nexthopmtu=1400) /
            IP(src=ALIAS4, dst=SVC4) / UDP(sport=3, dport=7),
            IPv6(src=SVC6, dst=ALIAS6, hlim=61) / ICMPv6PacketTooBig(mtu=1280) /
            IPv6(src=ALIAS6, dst=SVC6) / ICMPv6EchoRequest(id=77),
            IP(src=SVC4, dst=ALIAS4) / ICMP(type=0),
        ])
        rc, lines = self.run_mode("errors", path)
        self.assertEqual(lines, [
            "4 198.51.100.1 192.0.2.7 3 4 1400 60 17 192.0.2.7 3 203.0.113.10 7 28",
            "6 2001:db8:f::10 2001:db8:a1::7 2 0 1280 61 58 2001:db8:a1::7 77 2001:db8:f::10 77 48",
        ])

    def test_options_and_ttls(self):
        path = self.pcap([
            IP(src=ALIAS4, dst=SVC4, ttl=9, options=[IPOption_RR(routers=["192.0.2.1"])]) / UDP(),
            IPv6(src=ALIAS6, dst=SVC6, hlim=8) / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(type=0) / UDP(),
            IP(src=ALIAS4, dst=SVC4, ttl=7) / UDP(),
        ])
        self.assertEqual(self.run_mode("options", path)[1], [
            "4 192.0.2.7 203.0.113.10 opt7", "6 2001:db8:a1::7 2001:db8:f::10 dst,rh0"])
        self.assertEqual(self.run_mode("ttls", path)[1], [
            "4 17 192.0.2.7 203.0.113.10 9", "6 17 2001:db8:a1::7 2001:db8:f::10 8",
            "4 17 192.0.2.7 203.0.113.10 7"])


class Privacy(CaptureTest):
    def mix(self, ttl4, ttl6, n=6):
        out = []
        for i in range(n):
            out.append(IP(src=ALIAS4, dst=SVC4, ttl=ttl4) / UDP(sport=5, dport=7))
            out.append(IPv6(src=ALIAS6, dst=SVC6, hlim=ttl6) / TCP(sport=5, dport=443))
            out.append(IP(src=SVC4, dst=ALIAS4, ttl=3) / UDP(sport=7, dport=5))  # replies: not counted
        return self.pcap(out)

    def test_ttl_cap(self):
        self.assertEqual(self.run_mode("ttl-cap", self.mix(49, 49), "49", "6")[0], 0)
        self.assertEqual(self.run_mode("ttl-cap", self.mix(49, 49), "49", "7")[0], 1)  # too few
        self.assertEqual(self.run_mode("ttl-cap", self.mix(49, 50), "49", "6")[0], 1)  # one family uncapped
        rc, lines = self.run_mode("ttl-cap", self.pcap([IP(src=ALIAS4, dst=SVC4, ttl=t) / UDP() for t in (49, 50)] +
                                                       [IPv6(src=ALIAS6, dst=SVC6, hlim=49) / UDP()] * 2), "49", "2")
        self.assertEqual(rc, 1)
        self.assertIn("IPv4: 1 packets with TTL/hop limit 50, want 49", lines)

    def conns(self, ids4, labels6, n=20):
        """Two IPv4 connections numbered by ids4(conn, i) and two IPv6 ones
        labelled by labels6(conn, i), n packets each."""
        out = []
        for c in range(2):
            for i in range(n):
                out.append(IP(src=ALIAS4, dst=SVC4, id=ids4(c, i)) / TCP(sport=1000 + c, dport=443))
                out.append(IPv6(src=ALIAS6, dst=SVC6, fl=labels6(c, i)) / TCP(sport=1000 + c, dport=443))
        return self.pcap(out)

    def test_ipid_flowlabel(self):
        rnd = [(i * 7919 + 13) % 65536 for i in range(40)]
        ok = self.conns(lambda c, i: rnd[c * 20 + i], lambda c, i: 0x12345 + c)
        self.assertEqual(self.run_mode("ipid-flowlabel", ok)[0], 0)
        seq = self.conns(lambda c, i: 100 + i if c else rnd[i], lambda c, i: 0x12345 + c)
        self.assertEqual(self.run_mode("ipid-flowlabel", seq)[0], 1)
        zero = self.conns(lambda c, i: rnd[c * 20 + i], lambda c, i: 0 if c else 5)
        self.assertEqual(self.run_mode("ipid-flowlabel", zero)[0], 1)
        two = self.conns(lambda c, i: rnd[c * 20 + i], lambda c, i: 5 + (i & 1))
        self.assertEqual(self.run_mode("ipid-flowlabel", two)[0], 1)
        few = self.conns(lambda c, i: rnd[c * 20 + i], lambda c, i: 5, n=19)
        self.assertEqual(self.run_mode("ipid-flowlabel", few), (1, [
            "IPv6 connection: flow labels ['00005']", "IPv6 connection: flow labels ['00005']",
            "too few connections in the capture"]))

    def ts_conns(self, fam, offset, n=5):
        """n connections 0.3 s apart to port 443, each a SYN and two ACKs
        0.1 s apart; TSval = elapsed ms + offset(conn)."""
        ip = (lambda: IP(src=ALIAS4, dst=SVC4)) if fam == 4 else (lambda: IPv6(src=ALIAS6, dst=SVC6))
        pkts, times = [], []
        for c in range(n):
            for k, flags in enumerate(("S", "A", "A")):
                t = 1000.0 + 0.3 * c + 0.1 * k
                tsval = (int(round((t - 1000.0) * 1000)) + offset(c)) & 0xffffffff
                pkts.append(ip() / TCP(sport=2000 + c, dport=443, flags=flags,
                                       options=[("NOP", None), ("NOP", None), ("Timestamp", (tsval, 0))]))
                times.append(t)
        return self.pcap(pkts, times=times)

    def test_ts_frontdoor(self):
        related = self.ts_conns(4, lambda c: 5000)
        unrelated = self.ts_conns(6, lambda c: c * 0x2345678)
        self.assertEqual(self.run_mode("ts-frontdoor", related, "4", "related")[0], 0)
        self.assertEqual(self.run_mode("ts-frontdoor", related, "4", "unrelated")[0], 1)
        self.assertEqual(self.run_mode("ts-frontdoor", unrelated, "6", "unrelated")[0], 0)
        self.assertEqual(self.run_mode("ts-frontdoor", unrelated, "6", "related")[0], 1)
        self.assertEqual(self.run_mode("ts-frontdoor", unrelated, "4", "unrelated")[0], 1)  # no IPv4 at all
        self.assertEqual(self.run_mode("ts-frontdoor", self.ts_conns(4, lambda c: 0, n=4), "4", "related")[0], 1)
        # An offset that changes within a connection breaks PAWS and RTT.
        jump = self.ts_conns(4, lambda c: 0)
        pk = list(cfrcap.packets(jump))
        self.assertEqual(len(pk), 15)
        bad = self.pcap([IP(bytes(IP(src=ALIAS4, dst=SVC4) / TCP(sport=2000, dport=443, flags="A", options=[
            ("Timestamp", (99999, 0))])))] + [IP(bytes(p.ip)) for p in pk],
            times=[1000.2] + [p.t for p in pk])
        self.assertEqual(self.run_mode("ts-frontdoor", bad, "4", "related")[0], 0)  # before the SYN: ignored
        bad = self.pcap([IP(bytes(p.ip)) for p in pk] + [IP(src=ALIAS4, dst=SVC4) / TCP(
            sport=2000, dport=443, flags="A", options=[("Timestamp", (99999, 0))])], times=[p.t for p in pk] + [1000.3])
        self.assertEqual(self.run_mode("ts-frontdoor", bad, "4", "related")[0], 1)

    def test_ts_subscriber(self):
        def ts(v, e):
            return [("Timestamp", (v, e))]
        out = [IP(src=SUB4, dst=SVC4) / TCP(sport=7000, dport=443, flags="A", options=ts(100 + i, 0)) for i in range(20)]
        back = [IP(src=SVC4, dst=SUB4) / TCP(sport=443, dport=7000, flags="A", options=ts(5, 100 + i)) for i in range(20)]
        self.assertEqual(self.run_mode("ts-subscriber", self.pcap(out + back))[0], 0)
        self.assertEqual(self.run_mode("ts-subscriber", self.pcap(out + back[:19]))[0], 1)  # fewer than 20
        wrong = back[:19] + [IP(src=SVC4, dst=SUB4) / TCP(sport=443, dport=7000, flags="A", options=ts(5, 99))]
        self.assertEqual(self.run_mode("ts-subscriber", self.pcap(out + wrong))[0], 1)

    def test_long_flows(self):
        def flow(times):
            pkts, ts = [], []
            for k, t in enumerate(times):
                pkts.append(IP(src=ALIAS4, dst=SVC4) / TCP(sport=3000, dport=443, flags="S" if k == 0 else "A"))
                pkts.append(IP(src=ALIAS4, dst=SVC4) / UDP(sport=4000, dport=7) / Raw(bytes(48)))
                ts += [t, t]
            return pkts, ts
        pkts, ts = flow([10.0 + i for i in range(5)])
        args = ("4", SVC4, "11.5", "12.5", ALIAS4, "3000", "5")
        self.assertEqual(self.run_mode("long-flows", self.pcap(pkts, times=ts), *args)[0], 0)
        self.assertEqual(self.run_mode("long-flows", self.pcap(pkts, times=ts), "4", SVC4, "11.5", "12.5", ALIAS4,
                                       "3000", "6")[0], 1)  # a datagram missing
        self.assertEqual(self.run_mode("long-flows", self.pcap(pkts, times=ts), "4", SVC4, "9.5", "12.5", ALIAS4,
                                       "3000", "5")[0], 1)  # did not span the rotations
        moved = pkts + [IP(src="192.0.2.8", dst=SVC4) / UDP(sport=4000, dport=7)]
        self.assertEqual(self.run_mode("long-flows", self.pcap(moved, times=ts + [14.5]), *args)[0], 1)
        mid = pkts + [IP(src="192.0.2.8", dst=SVC4) / TCP(sport=3000, dport=443, flags="A")]
        self.assertEqual(self.run_mode("long-flows", self.pcap(mid, times=ts + [14.5]), *args)[0], 1)


class Accounting(CaptureTest):
    def test_acct_flows(self):
        path = self.pcap([
            IP(src=ALIAS4, dst=SVC4) / UDP(sport=1111, dport=7) / Raw(b"cfr-acct-sub3-17"),
            IP(src=SVC4, dst=ALIAS4) / UDP(sport=7, dport=1111) / Raw(b"cfr-acct-sub3-17"),
            IPv6(src=ALIAS6, dst=SVC6) / TCP(sport=2222, dport=443, flags="S"),
            IPv6(src=ALIAS6, dst=SVC6) / TCP(sport=2222, dport=443, flags="PA") / Raw(b"\x16\x03sub2.acct.test"),
            IP(src=ALIAS4, dst=SVC4) / UDP(sport=3333, dport=7) / Raw(b"no tag"),
        ], times=[5.25, 5.5, 6.0, 6.125, 7.0])
        self.assertEqual(self.run_mode("acct-flows", path), (0, [
            "5.250000 17 4 192.0.2.7 1111 203.0.113.10 7 3",
            "6.000000 6 6 2001:db8:a1::7 2222 2001:db8:f::10 443 2",
            "7.000000 17 4 192.0.2.7 3333 203.0.113.10 7 -",
        ]))


class CommandLine(CaptureTest):
    def test_usage(self):
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(cfrcap.main(["cfrcap.py"]), 2)
            self.assertEqual(cfrcap.main(["cfrcap.py", "nosuchmode", "x"]), 2)


if __name__ == "__main__":
    unittest.main()
