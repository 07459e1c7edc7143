/*
 * Packet parsing. Every length is checked before it is read: inputs come
 * straight from subscribers and from the internet.
 */
#include "parse.h"

#include <string.h>

#include "cfr/internal/csum.h"

static enum cfr_drop parse_icmp_kind(struct cfr_parsed *p, uint8_t type)
{
	bool v6 = p->family == CFR_FAMILY_V6;

	if (type == (v6 ? 128 : 8))
		p->icmp_kind = CFR_ICMP_ECHO_REQUEST;
	else if (type == (v6 ? 129 : 0))
		p->icmp_kind = CFR_ICMP_ECHO_REPLY;
	else if (v6 ? (type >= 1 && type <= 4) : (type == 3 || type == 11 || type == 12))
		p->icmp_kind = CFR_ICMP_ERROR;
	else
		return CFR_DROP_UNSUPPORTED_ICMP;
	return CFR_DROP_NONE;
}

/*
 * The transport header. A quoted packet needs only its first 8 bytes (RFC 792
 * guarantees no more for IPv4), enough for ports and the ICMP identifier.
 */
static enum cfr_drop parse_l4(const uint8_t *buf, bool quoted, struct cfr_parsed *p)
{
	uint32_t off = p->l4_off, avail = p->end - off;
	const uint8_t *l4 = buf + off;
	enum cfr_drop reason;

	if (avail < 8)
		return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_TRUNCATED;

	switch (p->proto) {
	case CFR_IPPROTO_TCP:
		if (!quoted) {
			uint32_t doff;

			if (avail < 20)
				return CFR_DROP_TRUNCATED;
			doff = (uint32_t)(l4[12] >> 4) * 4;
			if (doff < 20 || doff > avail)
				return CFR_DROP_BAD_L4_HEADER;
			p->tcp_flags = l4[13];
		}
		p->csum_off = off + 16;
		break;
	case CFR_IPPROTO_UDP:
		/* The UDP length covers the whole datagram, which a fragment lacks. */
		if (!quoted && !p->frag) {
			uint16_t ulen = get16(l4 + 4);

			if (ulen < 8 || ulen > avail)
				return CFR_DROP_BAD_L4_HEADER;
		}
		p->csum_off = off + 6;
		if (p->family == CFR_FAMILY_V6 && get16(l4 + 6) == 0 && !quoted)
			return CFR_DROP_UDP6_ZERO_CHECKSUM;
		break;
	case CFR_IPPROTO_ICMP:
	case CFR_IPPROTO_ICMPV6:
		if (p->proto !=
		    (p->family == CFR_FAMILY_V6 ? CFR_IPPROTO_ICMPV6 : CFR_IPPROTO_ICMP))
			return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_UNSUPPORTED_PROTO;
		reason = parse_icmp_kind(p, l4[0]);
		if (reason != CFR_DROP_NONE)
			return quoted ? CFR_DROP_ICMP_BAD_INNER : reason;
		p->csum_off = off + 2;
		if (p->icmp_kind != CFR_ICMP_ERROR) {
			p->sport_off = p->dport_off = off + 4;
			p->sport = p->dport = get16(l4 + 4);
		}
		p->has_l4 = true;
		return CFR_DROP_NONE;
	default:
		return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_UNSUPPORTED_PROTO;
	}
	p->sport_off = off;
	p->dport_off = off + 2;
	p->sport = get16(l4);
	p->dport = get16(l4 + 2);
	p->has_l4 = true;
	return CFR_DROP_NONE;
}

/*
 * IPv4 options. Record Route, Timestamp (with addresses) and the source
 * routes fill slots with the addresses of the hops a packet passes: a slot
 * written on the access side names the subscriber or its line to whoever
 * reads the packet outside, and the other way round. Nothing cfr forwards
 * (TLS, QUIC) needs an option, and RFC 7126 already has routers drop the
 * source routes, so any option but padding drops the packet: removing
 * options would mean moving the payload, and an option we do not know
 * cannot be proven harmless.
 */
static bool v4_options_clean(const uint8_t *buf, uint32_t ihl)
{
	uint32_t off;

	for (off = 20; off < ihl && buf[off] != 0; off++)
		if (buf[off] != 1) /* anything but EOL and NOP */
			return false;
	return true;
}

/*
 * The Home Address option (RFC 6275 §6.3) in a Destination Options header
 * carries a second source address that the receiver substitutes for the
 * one we rewrote. Walk the header's TLVs looking for it.
 */
static bool v6_has_home_address(const uint8_t *opt, uint32_t len)
{
	uint32_t off = 2;

	while (off < len) {
		if (opt[off] == 0) { /* Pad1 */
			off++;
			continue;
		}
		if (off + 2 > len)
			return false;
		if (opt[off] == 0xc9)
			return true;
		off += 2u + opt[off + 1];
	}
	return false;
}

static enum cfr_drop parse_v4(const uint8_t *buf, uint32_t len, bool quoted, struct cfr_parsed *p)
{
	uint32_t ihl, total;
	uint16_t frag;

	if (len < 20)
		return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_TRUNCATED;
	ihl = (uint32_t)(buf[0] & 0x0f) * 4;
	total = get16(buf + 2);
	if (ihl < 20 || total < ihl)
		return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_BAD_IP_HEADER;
	if (ihl > len)
		return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_TRUNCATED;
	if (ihl > 20 && !v4_options_clean(buf, ihl))
		return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_IP_OPTIONS;
	if (!quoted) {
		if (total > len)
			return CFR_DROP_TRUNCATED;
		/* Almost every header has no options: a constant length unrolls the sum. */
		if (csum_fold(ihl == 20 ? csum_add(0, buf, 20) : csum_add(0, buf, ihl)) != 0)
			return CFR_DROP_BAD_IP_CHECKSUM;
	}
	p->family = CFR_FAMILY_V4;
	p->addr_len = 4;
	p->src_off = 12;
	p->dst_off = 16;
	p->proto = buf[9];
	p->end = total < len ? total : len;
	p->l4_off = ihl;
	frag = get16(buf + 6);
	p->frag = (frag & 0x3fff) != 0; /* MF set or offset non-zero */
	p->frag_id = get16(buf + 4);
	p->frag_nh = p->proto;
	p->frag_more = (frag & 0x2000) != 0;
	p->frag_off = (uint32_t)(frag & 0x1fff) * 8;
	p->frag_data_off = ihl;
	/*
	 * RFC 1858: a TCP fragment at offset 8 overlaps the header of the first
	 * (flags, checksum) and could rewrite what we translated; nothing
	 * legitimate sends one.
	 */
	if (p->frag && (frag & 0x1fff) == 1 && p->proto == CFR_IPPROTO_TCP && !quoted)
		return CFR_DROP_BAD_IP_HEADER;
	if (p->frag && (frag & 0x1fff) != 0)
		return CFR_DROP_NONE; /* a later fragment: no transport header */
	return parse_l4(buf, quoted, p);
}

static bool is_ext_hdr(uint8_t nh)
{
	return nh == 0 || nh == 43 || nh == 44 || nh == 60;
}

static enum cfr_drop parse_v6(const uint8_t *buf, uint32_t len, bool quoted, struct cfr_parsed *p)
{
	uint32_t total, off = 40;
	uint8_t nh;
	unsigned n;

	if (len < 40)
		return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_TRUNCATED;
	total = 40 + (uint32_t)get16(buf + 4);
	if (total == 40 && buf[6] == 0)
		return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_BAD_IP_HEADER; /* jumbogram */
	if (total > len && !quoted)
		return CFR_DROP_TRUNCATED;
	p->family = CFR_FAMILY_V6;
	p->addr_len = 16;
	p->src_off = 8;
	p->dst_off = 24;
	p->end = total < len ? total : len;
	nh = buf[6];

	for (n = 0; is_ext_hdr(nh); n++) {
		uint32_t hlen;

		if (n == CFR_MAX_EXT_HDRS)
			return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_EXT_HDR_LIMIT;
		/* RFC 8200 §4.1: hop-by-hop options only right after the IPv6 header. */
		if (nh == 0 && n != 0)
			return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_BAD_IP_HEADER;
		if (off + 8 > p->end)
			return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_TRUNCATED;
		hlen = nh == 44 ? 8 : ((uint32_t)buf[off + 1] + 1) * 8;
		if (off + hlen > p->end)
			return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_TRUNCATED;
		/*
		 * Every routing header type carries addresses (type 0 and the
		 * segment routing header a list of hops, type 2 a home address),
		 * and with segments left the destination field is not the one the
		 * transport checksum covers. No client-initiated TLS or QUIC flow
		 * needs one.
		 */
		if (nh == 43)
			return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_ROUTING_HDR;
		if (nh == 60 && v6_has_home_address(buf + off, hlen))
			return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_HOME_ADDRESS;
		if (nh == 44) {
			uint16_t fo = get16(buf + off + 2);

			if (p->frag) /* two fragment headers */
				return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_BAD_IP_HEADER;
			p->frag = true;
			p->frag_id = get32(buf + off + 4);
			/*
			 * The first fragment may carry more headers (destination
			 * options) before the transport; later fragments only name
			 * the first of them. The fragment header's value is the one
			 * all fragments share.
			 */
			p->frag_nh = buf[off];
			p->frag_more = (fo & 1) != 0;
			p->frag_off = fo & 0xfff8;
			p->frag_data_off = off + 8;
			if ((fo & 0xfff8) != 0) {
				p->proto = buf[off];
				p->l4_off = off + 8;
				return CFR_DROP_NONE;
			}
		}
		nh = buf[off];
		off += hlen;
	}
	p->proto = nh;
	p->l4_off = off;
	return parse_l4(buf, quoted, p);
}

enum cfr_drop cfr_parse(const uint8_t *buf, uint32_t len, bool quoted, struct cfr_parsed *p)
{
	memset(p, 0, sizeof(*p));
	if (len < 1)
		return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_TRUNCATED;
	switch (buf[0] >> 4) {
	case 4:
		return parse_v4(buf, len, quoted, p);
	case 6:
		return parse_v6(buf, len, quoted, p);
	default:
		return quoted ? CFR_DROP_ICMP_BAD_INNER : CFR_DROP_BAD_VERSION;
	}
}
