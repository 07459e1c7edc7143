/*
 * Test packet builder and checker, written from the RFCs and deliberately
 * independent of libcfr: if the tests shared the engine's parsing or checksum
 * code, a bug there would hide on both sides. Every checksum here is a full
 * RFC 1071 recomputation, never an incremental update.
 *
 * Families are written 4 and 6 (not enum cfr_family) so that nothing here
 * depends on the engine's headers.
 */
#ifndef CFR_TEST_PKT_H
#define CFR_TEST_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Large enough for every packet the tests build, including ICMP errors. */
#define PKT_MAX 4096

struct pkt {
	uint8_t data[PKT_MAX];
	uint32_t len;
};

#define PKT_TCP_FIN 0x01
#define PKT_TCP_SYN 0x02
#define PKT_TCP_RST 0x04
#define PKT_TCP_PSH 0x08
#define PKT_TCP_ACK 0x10

/* IPv6 extension headers the builder can insert, in the order listed. */
enum pkt_ext {
	PKT_EXT_HOPOPTS = 0,  /* hop-by-hop options, 8 bytes of PadN */
	PKT_EXT_DSTOPTS = 60, /* destination options, 8 bytes of PadN */
	PKT_EXT_ROUTING = 43, /* type 2 routing header, one address */
	PKT_EXT_FRAG = 44,    /* atomic fragment header (offset 0, M = 0) */
};

#define PKT_MAX_EXT 32

/*
 * What to build. Zero-initialise, then set what matters (a zero TTL means 64).
 * ICMP types are used as given: 8/0 and 128/129 are echo messages, whose
 * rest of header is <sport> and <icmp_seq>.
 */
struct pkt_spec {
	int family; /* 4 or 6 */
	uint8_t src[16], dst[16];
	uint8_t proto;         /* IPPROTO_*; anything but TCP/UDP/ICMP is raw payload */
	uint16_t sport, dport; /* TCP/UDP ports; ICMP echo: sport is the identifier */

	uint8_t tcp_flags;
	uint32_t seq, ack;
	bool tcp_ts; /* add MSS, SACK-permitted and timestamp options */
	uint32_t tsval, tsecr;

	bool udp_zero_csum; /* send UDP without checksum (RFC 768) */

	uint8_t icmp_type, icmp_code;
	uint16_t icmp_seq;  /* echo sequence number */
	uint32_t icmp_rest; /* rest of header of non-echo ICMP messages (MTU, ...) */

	uint8_t ttl;
	uint16_t ip_id;
	bool df;
	unsigned ip4_opt_len; /* bytes of IPv4 options (NOPs + EOL), multiple of 4 */

	enum pkt_ext ext[PKT_MAX_EXT]; /* IPv6 extension headers */
	unsigned n_ext;
	uint8_t rh_segleft; /* segments left of PKT_EXT_ROUTING */
	uint32_t frag_id;   /* identification of PKT_EXT_FRAG */

	const uint8_t *payload;
	size_t payload_len;
};

/* Build <s> into <p>, all checksums computed. */
void pkt_build(struct pkt *p, const struct pkt_spec *s);

/*
 * Build an ICMP (family 4) or ICMPv6 (6) error from <src> to <dst> quoting
 * <quote_len> bytes of <quote>. <rest> is the 32-bit rest of header: the
 * next-hop MTU of "fragmentation needed" or the MTU of "packet too big".
 */
void pkt_build_icmp_error(struct pkt *p, int family, const uint8_t *src, const uint8_t *dst,
                          uint8_t type, uint8_t code, uint32_t rest, const uint8_t *quote,
                          size_t quote_len);

/* What pkt_parse() found. */
struct pkt_info {
	int family;
	uint8_t src[16], dst[16];
	uint8_t proto;     /* upper-layer protocol, after extension headers */
	size_t l3_len;     /* bytes before the upper-layer header */
	size_t ip_len;     /* bytes the IP header claims (clipped to what is there if quoted) */
	size_t l4_len;     /* upper-layer bytes present */
	bool frag;         /* offset != 0 or more fragments */
	uint32_t frag_off; /* bytes */
	bool mf;
	uint32_t frag_id;
	size_t frag_hdr_off;   /* IPv6: offset of the fragment header, 0 if none */
	size_t nh_field_off;   /* IPv6: offset of the next-header byte naming the fragment header */
	uint16_t sport, dport; /* ports; ICMP echo: sport is the identifier */
	uint8_t tcp_flags;
	uint8_t icmp_type, icmp_code;
	bool icmp_error;
	uint32_t icmp_rest;
};

/*
 * Parse the packet at <d>. A <quoted> packet (inside an ICMP error) may be
 * cut short of its stated length. Returns 0, or -1 if it is not a packet
 * these helpers understand.
 */
int pkt_parse(const uint8_t *d, size_t len, bool quoted, struct pkt_info *pi);

/* Offset and length of the transport payload (after the TCP/UDP/ICMP header). */
size_t pkt_payload_off(const uint8_t *d, const struct pkt_info *pi);

/*
 * Recompute every checksum of the packet and compare it, bit for bit, with
 * the one it carries: the IPv4 header checksum, the TCP/UDP/ICMP/ICMPv6
 * checksum (unless the packet is a fragment), and for ICMP errors the quoted
 * IPv4 header checksum. Bit for bit matters: 0xffff where 0x0000 is due is
 * the RFC 1624 incremental-update bug. Returns the number of mismatches (and
 * describes the first in <why>), or -1 if the packet cannot be parsed.
 */
int pkt_verify_checksums(const uint8_t *d, size_t len, char *why, size_t why_len);

/*
 * For an ICMP error that quotes a whole packet: 0 if the quoted transport
 * checksum is right, 1 if not, -1 if there is no whole quoted packet.
 */
int pkt_verify_inner_l4(const uint8_t *d, size_t len);

/* Offset of the quoted packet inside an ICMP error. */
size_t pkt_inner_off(const struct pkt_info *pi);

/*
 * Fragment the unfragmented packet <whole> into pieces of at most <piece>
 * payload bytes (a multiple of 8). IPv6 packets get a fragment header right
 * after the fixed header (<whole> must carry no extension headers). Returns
 * the number of fragments written to <out>.
 */
unsigned pkt_fragment(const struct pkt *whole, size_t piece, uint32_t id, struct pkt *out,
                      unsigned max);

/* Reassemble <n> in-order fragments into <out>. Returns 0, or -1. */
int pkt_reassemble(const struct pkt *frags, unsigned n, struct pkt *out);

/* Recompute the IPv4 header checksum after a test has edited the header. */
void pkt_fix_ip4_csum(uint8_t *d);

/* Recompute the transport (or ICMP) checksum after a test edited the packet. */
void pkt_fix_l4_csum(uint8_t *d, size_t len);

/* inet_pton() that aborts on bad input: addresses in tests are constants. */
void pkt_addr(int family, const char *text, uint8_t out[16]);

/* Full RFC 1071 checksum over <n> bytes plus a running sum <acc>. */
uint16_t pkt_csum(const uint8_t *d, size_t n, uint32_t acc);

/* The pseudo-header sum (RFC 768, RFC 8200 8.1) for an upper layer of <len> bytes. */
uint32_t pkt_pseudo_sum(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto,
                        size_t len);

/* Big-endian accessors. */
uint16_t pkt_get16(const uint8_t *p);
uint32_t pkt_get32(const uint8_t *p);
void pkt_put16(uint8_t *p, uint16_t v);
void pkt_put32(uint8_t *p, uint32_t v);

#endif
