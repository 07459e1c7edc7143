#!/usr/bin/python3
"""Malformed and hostile packets for cfr, built with scapy.

One list serves two users: tests/net/abuse-malformed.sh sends it through the
lab (from a subscriber, and from the front door towards an alias), and
tests/fuzz/mkcorpus writes it out as seeds of the engine fuzz target. Each
entry is (name, raw bytes); the names say what is wrong, so a counter that
does not move points at one packet.

    malformed_packets.py send out|in COUNT_EACH IFACE PEER_MAC   (in a lab namespace)
    malformed_packets.py list
"""
import struct
import sys

from scapy.all import (ICMP, IP, UDP, ICMPv6DestUnreach, ICMPv6PacketTooBig, IPv6,
                       IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                       IPv6ExtHdrRouting, Raw, TCP, raw)

SUB4, SUB6 = "100.64.1.2", "2001:db8:100:1::2"
SVC4, SVC6 = "203.0.113.10", "2001:db8:f::10"
ALIAS4, ALIAS6 = "192.0.2.7", "2001:db8:a1::7"


# Malformed, but a translator may pass them on: the receiver owns the
# decision. Overlapping fragments are discarded at reassembly (RFC 5722 for
# IPv6; Linux does the same for IPv4) and cfr does not reassemble; a
# hop-by-hop header out of place gets a Parameter Problem from the
# destination (RFC 8200 section 4.1). Everything else must be dropped.
FORWARDABLE = {
    "ip4-frag-overlap-first", "ip4-frag-overlap-second",
    "ip6-frag-overlap-first", "ip6-frag-overlap-second",
    "ip6-ext-hopbyhop-repeated-not-first",
}


def ip4_fix(b):
    """Recompute the IPv4 header checksum of raw bytes (after editing them)."""
    b = bytearray(b)
    ihl = (b[0] & 15) * 4
    if ihl < 20 or ihl > len(b):
        return bytes(b)
    b[10:12] = b"\0\0"
    s = sum(struct.unpack("!%dH" % (ihl // 2), bytes(b[:ihl])))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    b[10:12] = struct.pack("!H", ~s & 0xffff)
    return bytes(b)


def packets(src4, dst4, src6, dst6):
    """Every malformed packet, from (src4, src6) to (dst4, dst6)."""
    out = []
    syn4 = raw(IP(src=src4, dst=dst4, id=1) / TCP(sport=40000, dport=443, flags="S"))
    udp4 = raw(IP(src=src4, dst=dst4) / UDP(sport=40001, dport=7) / Raw(b"x" * 16))
    syn6 = raw(IPv6(src=src6, dst=dst6) / TCP(sport=40000, dport=443, flags="S"))

    # --- IPv4 header lengths and checksums
    b = bytearray(syn4); b[2:4] = struct.pack("!H", len(b) + 40)
    out.append(("ip4-total-length-too-long", ip4_fix(b)))
    b = bytearray(syn4); b[2:4] = struct.pack("!H", 12)
    out.append(("ip4-total-length-below-header", ip4_fix(b)))
    b = bytearray(syn4); b[0] = 0x43
    out.append(("ip4-ihl-below-5", bytes(b)))
    b = bytearray(syn4); b[0] = 0x4f
    out.append(("ip4-ihl-past-packet", ip4_fix(b)))
    b = bytearray(syn4); b[10] ^= 0x55
    out.append(("ip4-bad-checksum", bytes(b)))
    b = bytearray(syn4); b[0] = 0x55
    out.append(("ip-version-5", bytes(b)))
    out.append(("ip4-header-only-13-bytes", syn4[:13]))
    # --- transport headers
    b = bytearray(syn4[:28]); b[2:4] = struct.pack("!H", 28)
    out.append(("tcp-header-truncated", ip4_fix(b)))
    b = bytearray(syn4); b[32] = 0x20  # data offset 2 words
    out.append(("tcp-data-offset-below-5", bytes(b)))
    b = bytearray(syn4); b[32] = 0xf0  # data offset 60 bytes, packet has 20
    out.append(("tcp-data-offset-past-packet", bytes(b)))
    b = bytearray(udp4); b[24:26] = struct.pack("!H", 200)
    out.append(("udp-length-too-long", bytes(b)))
    b = bytearray(udp4); b[24:26] = struct.pack("!H", 4)
    out.append(("udp-length-below-header", bytes(b)))
    # --- ICMP errors: truncated, nested, quoting garbage
    err = IP(src=src4, dst=dst4) / ICMP(type=3, code=4, nexthopmtu=1400)
    out.append(("icmp-error-quote-4-bytes", raw(err / Raw(syn4[:4]))))
    out.append(("icmp-error-quote-ip-header-only", raw(err / Raw(syn4[:20]))))
    out.append(("icmp-error-quote-garbage", raw(err / Raw(b"\x45" + b"\xff" * 27))))
    inner_err = raw(IP(src=dst4, dst=src4) / ICMP(type=11) / Raw(syn4[:28]))
    out.append(("icmp-error-quoting-icmp-error", raw(err / Raw(inner_err))))
    out.append(("icmp-header-truncated", raw(IP(src=src4, dst=dst4, proto=1) / Raw(b"\x08\x00"))))
    ptb = IPv6(src=src6, dst=dst6) / ICMPv6PacketTooBig(mtu=1280)
    out.append(("icmp6-ptb-quote-8-bytes", raw(ptb / Raw(syn6[:8]))))
    out.append(("icmp6-unreach-quote-garbage",
                raw(IPv6(src=src6, dst=dst6) / ICMPv6DestUnreach() / Raw(b"\x60" + b"\xee" * 47))))
    # --- IPv6 lengths and extension headers
    b = bytearray(syn6); b[4:6] = struct.pack("!H", 400)
    out.append(("ip6-payload-length-too-long", bytes(b)))
    out.append(("ip6-header-only-30-bytes", syn6[:30]))
    chain = IPv6(src=src6, dst=dst6)
    for _ in range(20):
        chain = chain / IPv6ExtHdrDestOpt()
    out.append(("ip6-ext-chain-20-dstopts", raw(chain / TCP(sport=40000, dport=443, flags="S"))))
    hbh = IPv6(src=src6, dst=dst6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / IPv6ExtHdrHopByHop()
    out.append(("ip6-ext-hopbyhop-repeated-not-first", raw(hbh / UDP(sport=40001, dport=7))))
    # A "loop": every header names itself as the next one, up to the end of the packet.
    loop = b"\x3c\x00\x01\x04\0\0\0\0" * 24  # dest options -> dest options -> ...
    out.append(("ip6-ext-self-loop", raw(IPv6(src=src6, dst=dst6, nh=60) / Raw(loop))))
    b = bytearray(raw(IPv6(src=src6, dst=dst6) / IPv6ExtHdrDestOpt() / UDP(sport=40001, dport=7)))
    b[41] = 30  # header length 248 bytes, packet has 8
    out.append(("ip6-ext-length-past-packet", bytes(b)))
    rh = IPv6(src=src6, dst=dst6) / IPv6ExtHdrRouting(addresses=[dst6], segleft=1)
    out.append(("ip6-routing-header-segments-left", raw(rh / UDP(sport=40001, dport=7))))
    # --- fragments: overlapping, tiny, beyond 64 KiB
    payload = raw(UDP(sport=40002, dport=7) / Raw(b"A" * 64))
    f1 = IP(src=src4, dst=dst4, id=4242, flags="MF", frag=0, proto=17) / Raw(payload[:48])
    f2 = IP(src=src4, dst=dst4, id=4242, flags=0, frag=2, proto=17) / Raw(payload[16:])
    out.append(("ip4-frag-overlap-first", raw(f1)))
    out.append(("ip4-frag-overlap-second", raw(f2)))
    out.append(("ip4-frag-tiny-first", raw(IP(src=src4, dst=dst4, id=4243, flags="MF", proto=6) / Raw(b"\x9c\x40\x01\xbb"))))
    out.append(("ip4-frag-past-64k", raw(IP(src=src4, dst=dst4, id=4244, frag=8190, proto=17) / Raw(b"B" * 64))))
    out.append(("ip4-frag-later-no-first", raw(IP(src=src4, dst=dst4, id=4245, frag=100, proto=17) / Raw(b"C" * 16))))
    p6 = raw(UDP(sport=40003, dport=7) / Raw(b"D" * 64))
    g1 = IPv6(src=src6, dst=dst6) / IPv6ExtHdrFragment(id=77, m=1, offset=0, nh=17) / Raw(p6[:48])
    g2 = IPv6(src=src6, dst=dst6) / IPv6ExtHdrFragment(id=77, m=0, offset=3, nh=17) / Raw(p6[24:])
    out.append(("ip6-frag-overlap-first", raw(g1)))
    out.append(("ip6-frag-overlap-second", raw(g2)))
    out.append(("ip6-frag-tiny-first",
                raw(IPv6(src=src6, dst=dst6) / IPv6ExtHdrFragment(id=78, m=1, nh=6) / Raw(b"\x9c\x40"))))
    out.append(("ip6-frag-icmp6-error", raw(IPv6(src=src6, dst=dst6) / IPv6ExtHdrFragment(id=79, m=1, nh=58) / ICMPv6PacketTooBig(mtu=1280) / Raw(syn6))))
    return out


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "list":
        for name, b in packets(SUB4, SVC4, SUB6, SVC6):
            print(name, len(b))
        return 0
    if len(sys.argv) == 6 and sys.argv[1] == "send":
        import socket
        import time
        side, count, iface, peer = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
        if side == "out":
            pkts = packets(SUB4, SVC4, SUB6, SVC6)
        else:
            pkts = packets(SVC4, ALIAS4, SVC6, ALIAS6)
        # Raw Ethernet frames to the peer's MAC: the sender's own IP stack
        # would refuse or repair most of these packets.
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((iface, 0))
        with open("/sys/class/net/%s/address" % iface) as f:
            mac = bytes.fromhex(f.read().strip().replace(":", ""))
        dst = bytes.fromhex(peer.replace(":", ""))
        sent = 0
        for _, b in pkts:
            et = b"\x86\xdd" if b and b[0] >> 4 == 6 else b"\x08\x00"
            for _ in range(count):
                s.send(dst + mac + et + b)
                sent += 1
            time.sleep(0.002)  # bounded and gentle: a few hundred packets in all
        print("sent %d packets (%d kinds x %d)" % (sent, len(pkts), count))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
