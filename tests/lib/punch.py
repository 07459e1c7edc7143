"""One peer of a hole punch through cfr (tests/net/p2p.sh), UDP or TCP.

    punch.py udp|tcp STUN LPORT MINE THEIRS TAG

From a socket bound to LPORT, a STUN binding request to STUN:3478 (over
the same protocol) gives the peer its mapping (XOR-MAPPED-ADDRESS), which
it writes to the file MINE; it waits for the other peer's file THEIRS, then
punches to that alias and port:
  udp  60 datagrams "TAG n" over 3 s, counting the other's for 1 s more:
       the first few are filtered until both have punched, at least 10
       must arrive; the last word printed is every source they came from;
  tcp  a simultaneous open from the same port (both connect at once), one
       line each way.
Prints one line ("mapped ADDR PORT ...") and exits 0 if the punch worked.
"""

import os
import socket
import struct
import sys
import time

MAGIC = 0x2112A442


def bound(proto, fam, lport):
    s = socket.socket(fam, proto)
    if proto == socket.SOCK_STREAM:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", lport))
    return s


def xor_mapped(data, tid):
    """The XOR-MAPPED-ADDRESS of a STUN answer (RFC 5389 15.2), or None."""
    off, mapped = 20, None
    while off + 4 <= len(data):
        t, n = struct.unpack("!HH", data[off:off + 4])
        v = data[off + 4:off + 4 + n]
        if t == 0x0020 and len(v) >= 8:
            key = struct.pack("!I", MAGIC) + (tid if v[1] == 2 else b"")
            raw = bytes(x ^ k for x, k in zip(v[4:], key))
            mapped = (socket.inet_ntop(socket.AF_INET6 if v[1] == 2 else socket.AF_INET, raw),
                      struct.unpack("!H", v[2:4])[0] ^ (MAGIC >> 16))
        off += 4 + (n + 3) // 4 * 4
    return mapped


def stun_udp(s, stun, tid):
    s.settimeout(1)
    for _ in range(5):
        s.sendto(struct.pack("!HHI", 1, 0, MAGIC) + tid, (stun, 3478))
        try:
            return s.recvfrom(2048)[0]
        except socket.timeout:
            continue
    sys.exit("no STUN answer")


def stun_tcp(fam, lport, stun, tid):
    s = bound(socket.SOCK_STREAM, fam, lport)
    s.settimeout(3)
    s.connect((stun, 3478))
    s.sendall(struct.pack("!HHI", 1, 0, MAGIC) + tid)
    data = s.recv(2048)
    s.close()
    return data


def exchange(mapped, mine, theirs):
    """Publish our mapping, wait up to 10 s for the other's: (addr, port)."""
    with open(mine + ".tmp", "w") as f:
        f.write("%s %d\n" % mapped)
    os.rename(mine + ".tmp", mine)
    end = time.monotonic() + 10
    while not os.path.exists(theirs):
        if time.monotonic() > end:
            sys.exit("no peer mapping")
        time.sleep(0.05)
    addr, port = open(theirs).read().split()
    return addr, int(port)


def punch_udp(s, peer, tag):
    s.settimeout(0.05)
    got, froms, n = 0, set(), 0
    stop = time.monotonic() + 3  # 60 datagrams, then 1 s more to hear the last of the peer
    while time.monotonic() < stop + 1:
        if n < 60:
            s.sendto(("%s %d" % (tag, n)).encode(), peer)
            n += 1
        try:
            while True:
                data, src = s.recvfrom(2048)
                if data.startswith(b"peer-"):
                    got += 1
                    froms.add(src[:2])
        except socket.timeout:
            pass
    return "sent %d got %d from %s" % (n, got, " ".join("%s:%d" % f for f in sorted(froms))), got >= 10


def punch_tcp(fam, lport, peer, tag):
    s = bound(socket.SOCK_STREAM, fam, lport)
    s.settimeout(8)
    s.connect(peer)
    s.sendall(tag.encode() + b"\n")
    got = s.recv(100).decode().strip()
    there = s.getpeername()
    s.close()
    return "connected to %s %d got %s" % (there[0], there[1], got), got.startswith("tcp-peer-")


def main(argv):
    proto, stun, lport, mine, theirs, tag = argv[1], argv[2], int(argv[3]), argv[4], argv[5], argv[6]
    fam = socket.AF_INET6 if ":" in stun else socket.AF_INET
    tid = os.urandom(12)
    if proto == "udp":
        s = bound(socket.SOCK_DGRAM, fam, lport)
        mapped = xor_mapped(stun_udp(s, stun, tid), tid)
    else:
        mapped = xor_mapped(stun_tcp(fam, lport, stun, tid), tid)
    if not mapped:
        sys.exit("no XOR-MAPPED-ADDRESS" + (" over TCP" if proto == "tcp" else ""))
    peer = exchange(mapped, mine, theirs)
    if proto == "udp":
        what, ok = punch_udp(s, peer, tag)
    else:
        what, ok = punch_tcp(fam, lport, peer, tag)
    print("mapped %s %d %s" % (mapped[0], mapped[1], what))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
