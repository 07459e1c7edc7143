/*
 * cfr-audit: raw IPv4/IPv6 TCP and UDP packets, built the way the
 * simulated hosts and remotes would send them, and parsed back the way the
 * front door reads them (also used on captured packets, so the parser
 * checks every length against the buffer).
 *
 * Checksums are computed in full: the engine verifies the IPv4 header
 * checksum, and a packet it forwards should be one a real peer accepts.
 */
#include <string.h>

#include "audit.h"
#include "cfr/internal/csum.h"

/*
 * TCP options as the two stack families send them: Linux orders the SYN's
 * options MSS, SACK-permitted, timestamps, NOP, window scale; a stack
 * without timestamps (Windows by default) sends MSS, NOP, WS, NOP, NOP, SACK.
 */
static uint32_t tcp_options(uint8_t *o, const struct pkt_spec *s)
{
	uint32_t n = 0;

	if (s->tcp_flags & TCPF_SYN) {
		o[n++] = 2;
		o[n++] = 4;
		put16(o + n, s->family == CFR_FAMILY_V4 ? 1460 : 1440);
		n += 2;
		if (!s->has_ts) {
			static const uint8_t tail[] = {1, 3, 3, 8, 1, 1, 4, 2};

			memcpy(o + n, tail, sizeof(tail));
			return n + sizeof(tail);
		}
		o[n++] = 4;
		o[n++] = 2;
	} else if (s->has_ts) {
		o[n++] = 1;
		o[n++] = 1;
	}
	if (s->has_ts) {
		o[n++] = 8;
		o[n++] = 10;
		put32(o + n, s->tsval);
		put32(o + n + 4, s->tsecr);
		n += 8;
	}
	if (s->tcp_flags & TCPF_SYN) {
		static const uint8_t ws[] = {1, 3, 3, 7};

		memcpy(o + n, ws, sizeof(ws));
		n += sizeof(ws);
	}
	return n;
}

uint32_t pkt_build(uint8_t *buf, const struct pkt_spec *s)
{
	uint32_t ip_len = s->family == CFR_FAMILY_V4 ? 20 : 40, alen = ip_len == 20 ? 4 : 16;
	uint8_t *l4 = buf + ip_len;
	uint32_t l4_hlen, l4_len, sum;

	memset(buf, 0, PKT_MAX);
	if (s->proto == 6) {
		uint32_t opt = tcp_options(l4 + 20, s);

		l4_hlen = 20 + opt;
		put16(l4, s->sport);
		put16(l4 + 2, s->dport);
		put32(l4 + 4, s->seq);
		put32(l4 + 8, s->ack);
		l4[12] = (uint8_t)(l4_hlen / 4 << 4);
		l4[13] = s->tcp_flags;
		put16(l4 + 14, 64240);
	} else {
		l4_hlen = 8;
	}
	l4_len = l4_hlen + s->payload_len;
	if (s->payload_len >= 8)
		memcpy(l4 + l4_hlen, &s->payload_tag, 8);
	if (s->proto == 17) {
		put16(l4, s->sport);
		put16(l4 + 2, s->dport);
		put16(l4 + 4, (uint16_t)l4_len);
	}

	if (s->family == CFR_FAMILY_V4) {
		buf[0] = 0x45;
		put16(buf + 2, (uint16_t)(ip_len + l4_len));
		put16(buf + 4, s->ip_id);
		buf[6] = 0x40; /* DF */
		buf[8] = s->ttl;
		buf[9] = s->proto;
		memcpy(buf + 12, s->src, 4);
		memcpy(buf + 16, s->dst, 4);
		put16(buf + 10, csum_fold(csum_add(0, buf, 20)));
	} else {
		put32(buf, 6u << 28 | (s->label & 0xfffff));
		put16(buf + 4, (uint16_t)l4_len);
		buf[6] = s->proto;
		buf[7] = s->ttl;
		memcpy(buf + 8, s->src, 16);
		memcpy(buf + 24, s->dst, 16);
	}
	sum = csum_pseudo(s->src, s->dst, alen, s->proto, l4_len);
	sum = csum_fold(csum_add(sum, l4, l4_len));
	if (s->proto == 17 && sum == 0)
		sum = 0xffff;
	put16(l4 + (s->proto == 6 ? 16 : 6), (uint16_t)sum);
	return ip_len + l4_len;
}

static void parse_tcp_ts(const uint8_t *l4, uint32_t hlen, struct pkt_view *v)
{
	uint32_t off = 20;

	while (off < hlen) {
		uint8_t kind = l4[off];

		if (kind == 0)
			break;
		if (kind == 1) {
			off++;
			continue;
		}
		if (off + 2 > hlen || l4[off + 1] < 2 || off + l4[off + 1] > hlen)
			break;
		if (kind == 8 && l4[off + 1] == 10) {
			v->has_ts = true;
			v->tsval = get32(l4 + off + 2);
			v->tsecr = get32(l4 + off + 6);
			return;
		}
		off += l4[off + 1];
	}
}

bool pkt_parse(const uint8_t *buf, uint32_t len, struct pkt_view *v)
{
	uint32_t off, end;
	uint8_t nh;
	unsigned hops = 0;

	memset(v, 0, sizeof(*v));
	if (len < 20)
		return false;
	if (buf[0] >> 4 == 4) {
		off = (uint32_t)(buf[0] & 15) * 4;
		end = get16(buf + 2);
		if (off < 20 || end < off || (get16(buf + 6) & 0x1fff) != 0)
			return false;
		/* Captures cut packets short (snap length): the headers are all we need. */
		end = end < len ? end : len;
		v->family = CFR_FAMILY_V4;
		v->ip_id = get16(buf + 4);
		v->ttl = buf[8];
		nh = buf[9];
		memcpy(v->src, buf + 12, 4);
		memcpy(v->dst, buf + 16, 4);
	} else if (buf[0] >> 4 == 6 && len >= 40) {
		end = 40 + get16(buf + 4);
		end = end < len ? end : len;
		v->family = CFR_FAMILY_V6;
		v->label = get32(buf) & 0xfffff;
		v->ttl = buf[7];
		nh = buf[6];
		memcpy(v->src, buf + 8, 16);
		memcpy(v->dst, buf + 24, 16);
		off = 40;
		/* Hop-by-hop, routing, fragment (first only), destination options. */
		while (nh == 0 || nh == 43 || nh == 44 || nh == 60) {
			uint8_t cur = nh;

			if (off + 8 > end || ++hops > 8)
				return false;
			if (cur == 44 && (get16(buf + off + 2) & 0xfff8) != 0)
				return false;
			nh = buf[off];
			off += cur == 44 ? 8 : (uint32_t)(buf[off + 1] + 1) * 8;
		}
	} else {
		return false;
	}
	v->proto = nh;
	if (nh == 6) {
		uint32_t hlen;

		if (off + 20 > end)
			return false;
		hlen = (uint32_t)(buf[off + 12] >> 4) * 4;
		if (hlen < 20 || off + hlen > end)
			return false;
		v->seq = get32(buf + off + 4);
		v->tcp_flags = buf[off + 13];
		parse_tcp_ts(buf + off, hlen, v);
		v->payload = buf + off + hlen;
		v->payload_len = end - off - hlen;
	} else if (nh == 17) {
		if (off + 8 > end)
			return false;
		v->payload = buf + off + 8;
		v->payload_len = end - off - 8;
	} else {
		return false;
	}
	v->sport = get16(buf + off);
	v->dport = get16(buf + off + 2);
	return true;
}
