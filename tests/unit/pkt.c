/*
 * Test packet builder and checker (see pkt.h). It must never share code with
 * src/lib: its value is being a second, independent reading of the RFCs.
 */
#include "pkt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint16_t pkt_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

uint32_t pkt_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void pkt_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void pkt_put32(uint8_t *p, uint32_t v)
{
	pkt_put16(p, (uint16_t)(v >> 16));
	pkt_put16(p + 2, (uint16_t)v);
}

void pkt_addr(int family, const char *text, uint8_t out[16])
{
	memset(out, 0, 16);
	if (inet_pton(family == 4 ? AF_INET : AF_INET6, text, out) != 1) {
		fprintf(stderr, "pkt_addr: bad address %s\n", text);
		abort();
	}
}

/* Unfolded 16-bit big-endian sum; an odd tail byte is padded with zero. */
static uint32_t sum_bytes(const uint8_t *d, size_t n, uint32_t acc)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		acc += pkt_get16(d + i);
	if (n & 1)
		acc += (uint32_t)d[n - 1] << 8;
	return acc;
}

uint16_t pkt_csum(const uint8_t *d, size_t n, uint32_t acc)
{
	acc = sum_bytes(d, n, acc);
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

uint32_t pkt_pseudo_sum(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto,
                        size_t len)
{
	size_t alen = family == 4 ? 4 : 16;
	uint32_t acc = sum_bytes(src, alen, 0);

	acc = sum_bytes(dst, alen, acc);
	return acc + proto + (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff);
}

/* Offset of the checksum inside a transport header, 0 if it has none. */
static size_t csum_off(int family, uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return 16;
	case IPPROTO_UDP:
		return 6;
	case IPPROTO_ICMP:
		return family == 4 ? 2 : 0;
	case IPPROTO_ICMPV6:
		return family == 6 ? 2 : 0;
	default:
		return 0;
	}
}

/*
 * The checksum <l4> should carry, summing around its own checksum field. ICMP
 * for IPv4 has no pseudo-header (RFC 792); UDP sends a computed zero as
 * 0xffff because zero means "no checksum" (RFC 768).
 */
static uint16_t l4_compute(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto,
                           const uint8_t *l4, size_t len)
{
	size_t co = csum_off(family, proto);
	uint32_t acc = proto == IPPROTO_ICMP ? 0 : pkt_pseudo_sum(family, src, dst, proto, len);
	uint16_t c;

	acc = sum_bytes(l4, co, acc);
	c = pkt_csum(l4 + co + 2, len - co - 2, acc);
	if (proto == IPPROTO_UDP && c == 0)
		c = 0xffff;
	return c;
}

static size_t ext_len(enum pkt_ext e)
{
	return e == PKT_EXT_ROUTING ? 24 : 8;
}

static bool is_echo(int family, uint8_t type)
{
	return family == 4 ? (type == 0 || type == 8) : (type == 128 || type == 129);
}

/* Write the transport header and payload at <l4>; returns its length. */
static size_t build_l4(uint8_t *l4, const struct pkt_spec *s)
{
	uint8_t icmp = s->family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	size_t hl = 0;

	if (s->proto == IPPROTO_TCP) {
		hl = s->tcp_ts ? 40 : 20;
		pkt_put16(l4, s->sport);
		pkt_put16(l4 + 2, s->dport);
		pkt_put32(l4 + 4, s->seq);
		pkt_put32(l4 + 8, s->ack);
		l4[12] = (uint8_t)(hl / 4 << 4);
		l4[13] = s->tcp_flags;
		pkt_put16(l4 + 14, 65535);
		if (s->tcp_ts) {
			/* MSS 1460, SACK permitted, timestamps, NOP, window scale 7. */
			static const uint8_t opts[8] = {2, 4, 5, 180, 4, 2, 8, 10};
			memcpy(l4 + 20, opts, sizeof opts);
			pkt_put32(l4 + 28, s->tsval);
			pkt_put32(l4 + 32, s->tsecr);
			l4[36] = 1;
			l4[37] = 3;
			l4[38] = 3;
			l4[39] = 7;
		}
	} else if (s->proto == IPPROTO_UDP) {
		hl = 8;
		pkt_put16(l4, s->sport);
		pkt_put16(l4 + 2, s->dport);
		pkt_put16(l4 + 4, (uint16_t)(8 + s->payload_len));
	} else if (s->proto == icmp) {
		hl = 8;
		l4[0] = s->icmp_type;
		l4[1] = s->icmp_code;
		if (is_echo(s->family, s->icmp_type)) {
			pkt_put16(l4 + 4, s->sport);
			pkt_put16(l4 + 6, s->icmp_seq);
		} else {
			pkt_put32(l4 + 4, s->icmp_rest);
		}
	}
	if (s->payload_len)
		memcpy(l4 + hl, s->payload, s->payload_len);
	return hl + s->payload_len;
}

void pkt_build(struct pkt *p, const struct pkt_spec *s)
{
	uint8_t *d = p->data;
	size_t l3, l4_len, off;
	unsigned i;

	memset(p, 0, sizeof *p);
	if (s->family == 4) {
		l3 = 20 + s->ip4_opt_len;
	} else {
		l3 = 40;
		for (i = 0; i < s->n_ext; i++)
			l3 += ext_len(s->ext[i]);
	}
	if (l3 + 60 + s->payload_len > PKT_MAX)
		abort();
	l4_len = build_l4(d + l3, s);

	if (s->family == 4) {
		d[0] = (uint8_t)(0x40 | l3 / 4);
		pkt_put16(d + 2, (uint16_t)(l3 + l4_len));
		pkt_put16(d + 4, s->ip_id);
		pkt_put16(d + 6, s->df ? 0x4000 : 0);
		d[8] = s->ttl ? s->ttl : 64;
		d[9] = s->proto;
		memcpy(d + 12, s->src, 4);
		memcpy(d + 16, s->dst, 4);
		/* Options: NOPs closed by an end-of-list byte. */
		if (s->ip4_opt_len) {
			memset(d + 20, 1, s->ip4_opt_len - 1);
			d[l3 - 1] = 0;
		}
		pkt_fix_ip4_csum(d);
	} else {
		d[0] = 0x60;
		pkt_put16(d + 4, (uint16_t)(l3 - 40 + l4_len));
		d[6] = s->n_ext ? (uint8_t)s->ext[0] : s->proto;
		d[7] = s->ttl ? s->ttl : 64;
		memcpy(d + 8, s->src, 16);
		memcpy(d + 24, s->dst, 16);
		off = 40;
		for (i = 0; i < s->n_ext; i++) {
			uint8_t *e = d + off;

			e[0] = i + 1 < s->n_ext ? (uint8_t)s->ext[i + 1] : s->proto;
			if (s->ext[i] == PKT_EXT_ROUTING) {
				e[1] = 2;
				e[2] = 2;
				e[3] = s->rh_segleft;
				pkt_addr(6, "2001:db8:ffff::2", e + 8);
			} else if (s->ext[i] == PKT_EXT_FRAG) {
				pkt_put32(e + 4, s->frag_id);
			} else {
				/* PadN option filling the 6 bytes after the header. */
				e[2] = 1;
				e[3] = 4;
			}
			off += ext_len(s->ext[i]);
		}
	}
	p->len = (uint32_t)(l3 + l4_len);
	if (csum_off(s->family, s->proto) && !(s->proto == IPPROTO_UDP && s->udp_zero_csum))
		pkt_fix_l4_csum(d, p->len);
}

void pkt_build_icmp_error(struct pkt *p, int family, const uint8_t *src, const uint8_t *dst,
                          uint8_t type, uint8_t code, uint32_t rest, const uint8_t *quote,
                          size_t quote_len)
{
	struct pkt_spec s = {
	    .family = family,
	    .proto = family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6,
	    .icmp_type = type,
	    .icmp_code = code,
	    .icmp_rest = rest,
	    .payload = quote,
	    .payload_len = quote_len,
	};

	memcpy(s.src, src, 16);
	memcpy(s.dst, dst, 16);
	pkt_build(p, &s);
}

static bool is_icmp_error(int family, uint8_t type)
{
	if (family == 4)
		return type == 3 || type == 4 || type == 11 || type == 12;
	return type < 128;
}

static int parse_ip6(const uint8_t *d, size_t tot, struct pkt_info *pi, uint8_t *nh, size_t *off)
{
	size_t nh_off = 6, hl;
	unsigned i;

	*nh = d[6];
	*off = 40;
	/* Bounded like any sane parser; tests that need longer chains build them raw. */
	for (i = 0; i < 64; i++) {
		if (*nh == 0 || *nh == 60 || *nh == 43) {
			if (*off + 8 > tot)
				return -1;
			hl = ((size_t)d[*off + 1] + 1) * 8;
			if (*off + hl > tot)
				return -1;
		} else if (*nh == 44) {
			if (*off + 8 > tot)
				return -1;
			hl = 8;
			pi->frag_hdr_off = *off;
			pi->nh_field_off = nh_off;
			pi->frag_off = pkt_get16(d + *off + 2) & 0xfff8;
			pi->mf = pkt_get16(d + *off + 2) & 1;
			pi->frag_id = pkt_get32(d + *off + 4);
			pi->frag = pi->frag_off || pi->mf;
		} else {
			return 0;
		}
		nh_off = *off;
		*nh = d[*off];
		*off += hl;
	}
	return -1;
}

int pkt_parse(const uint8_t *d, size_t len, bool quoted, struct pkt_info *pi)
{
	uint8_t icmp, nh = 0;
	size_t off = 0, tot, need;

	memset(pi, 0, sizeof *pi);
	if (len < 1)
		return -1;
	if (d[0] >> 4 == 4) {
		size_t ihl = (size_t)(d[0] & 15) * 4;
		uint16_t fo;

		if (len < 20 || ihl < 20 || ihl > len)
			return -1;
		tot = pkt_get16(d + 2);
		if (tot < ihl)
			return -1;
		pi->family = 4;
		memcpy(pi->src, d + 12, 4);
		memcpy(pi->dst, d + 16, 4);
		fo = pkt_get16(d + 6);
		pi->frag_off = (uint32_t)(fo & 0x1fff) * 8;
		pi->mf = fo & 0x2000;
		pi->frag = pi->frag_off || pi->mf;
		pi->frag_id = pkt_get16(d + 4);
		nh = d[9];
		off = ihl;
	} else if (d[0] >> 4 == 6) {
		if (len < 40)
			return -1;
		tot = 40 + (size_t)pkt_get16(d + 4);
		pi->family = 6;
		memcpy(pi->src, d + 8, 16);
		memcpy(pi->dst, d + 24, 16);
	} else {
		return -1;
	}
	if (tot > len) {
		if (!quoted)
			return -1;
		tot = len;
	}
	if (pi->family == 6 && parse_ip6(d, tot, pi, &nh, &off))
		return -1;
	pi->proto = nh;
	pi->l3_len = off;
	pi->ip_len = tot;
	pi->l4_len = tot - off;
	if (pi->frag_off)
		return 0;

	icmp = pi->family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	if (nh != IPPROTO_TCP && nh != IPPROTO_UDP && nh != icmp)
		return 0;
	need = nh == IPPROTO_TCP && !quoted && !pi->frag ? 20 : 8;
	if (pi->l4_len < need)
		return -1;
	pi->sport = pkt_get16(d + off);
	pi->dport = pkt_get16(d + off + 2);
	if (nh == IPPROTO_TCP) {
		size_t doff = (size_t)(d[off + 12] >> 4) * 4;

		if (need == 20 && (doff < 20 || doff > pi->l4_len))
			return -1;
		if (pi->l4_len >= 14)
			pi->tcp_flags = d[off + 13];
	} else if (nh == icmp) {
		pi->icmp_type = d[off];
		pi->icmp_code = d[off + 1];
		pi->icmp_rest = pkt_get32(d + off + 4);
		pi->icmp_error = is_icmp_error(pi->family, pi->icmp_type);
		pi->sport = is_echo(pi->family, pi->icmp_type) ? pkt_get16(d + off + 4) : 0;
		pi->dport = 0;
	}
	return 0;
}

size_t pkt_payload_off(const uint8_t *d, const struct pkt_info *pi)
{
	if (pi->frag_off)
		return pi->l3_len;
	if (pi->proto == IPPROTO_TCP)
		return pi->l3_len + (size_t)(d[pi->l3_len + 12] >> 4) * 4;
	if (pi->proto == IPPROTO_UDP || pi->proto == IPPROTO_ICMP || pi->proto == IPPROTO_ICMPV6)
		return pi->l3_len + 8;
	return pi->l3_len;
}

size_t pkt_inner_off(const struct pkt_info *pi)
{
	return pi->l3_len + 8;
}

void pkt_fix_ip4_csum(uint8_t *d)
{
	size_t ihl = (size_t)(d[0] & 15) * 4;

	pkt_put16(d + 10, 0);
	pkt_put16(d + 10, pkt_csum(d, ihl, 0));
}

void pkt_fix_l4_csum(uint8_t *d, size_t len)
{
	struct pkt_info pi;
	size_t co;

	if (pkt_parse(d, len, false, &pi) || pi.frag)
		abort();
	co = csum_off(pi.family, pi.proto);
	if (!co)
		abort();
	pkt_put16(d + pi.l3_len + co,
	          l4_compute(pi.family, pi.src, pi.dst, pi.proto, d + pi.l3_len, pi.l4_len));
}

static void note(char *why, size_t why_len, int *bad, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void note(char *why, size_t why_len, int *bad, const char *fmt, ...)
{
	va_list ap;

	if (!*bad && why && why_len) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	(*bad)++;
}

static void check_ip4(const uint8_t *d, const char *what, char *why, size_t why_len, int *bad)
{
	size_t ihl = (size_t)(d[0] & 15) * 4;
	uint8_t hdr[60];
	uint16_t want;

	memcpy(hdr, d, ihl);
	pkt_put16(hdr + 10, 0);
	want = pkt_csum(hdr, ihl, 0);
	if (pkt_get16(d + 10) != want)
		note(why, why_len, bad, "%s IPv4 header checksum 0x%04x, recomputed 0x%04x", what,
		     pkt_get16(d + 10), want);
}

int pkt_verify_checksums(const uint8_t *d, size_t len, char *why, size_t why_len)
{
	struct pkt_info pi, in;
	size_t co;
	int bad = 0;

	if (why && why_len)
		why[0] = 0;
	if (pkt_parse(d, len, false, &pi)) {
		if (why && why_len)
			snprintf(why, why_len, "unparseable packet");
		return -1;
	}
	if (pi.family == 4)
		check_ip4(d, "outer", why, why_len, &bad);
	if (pi.frag)
		return bad;
	co = csum_off(pi.family, pi.proto);
	if (co && pi.l4_len >= co + 2) {
		uint16_t got = pkt_get16(d + pi.l3_len + co);
		uint16_t want =
		    l4_compute(pi.family, pi.src, pi.dst, pi.proto, d + pi.l3_len, pi.l4_len);

		if (!(pi.proto == IPPROTO_UDP && pi.family == 4 && got == 0) && got != want)
			note(why, why_len, &bad, "proto %u checksum 0x%04x, recomputed 0x%04x",
			     pi.proto, got, want);
	}
	if (pi.icmp_error &&
	    !pkt_parse(d + pkt_inner_off(&pi), pi.ip_len - pkt_inner_off(&pi), true, &in) &&
	    in.family == 4)
		check_ip4(d + pkt_inner_off(&pi), "quoted", why, why_len, &bad);
	return bad;
}

int pkt_verify_inner_l4(const uint8_t *d, size_t len)
{
	struct pkt_info pi, in;
	const uint8_t *q;
	size_t qlen, declared, co;
	uint16_t got;

	if (pkt_parse(d, len, false, &pi) || !pi.icmp_error || pi.frag)
		return -1;
	q = d + pkt_inner_off(&pi);
	qlen = pi.ip_len - pkt_inner_off(&pi);
	if (pkt_parse(q, qlen, true, &in) || in.frag)
		return -1;
	declared = in.family == 4 ? pkt_get16(q + 2) : 40 + (size_t)pkt_get16(q + 4);
	co = csum_off(in.family, in.proto);
	if (declared > qlen || !co)
		return -1;
	got = pkt_get16(q + in.l3_len + co);
	if (in.proto == IPPROTO_UDP && in.family == 4 && got == 0)
		return 0;
	return got == l4_compute(in.family, in.src, in.dst, in.proto, q + in.l3_len, in.l4_len) ? 0
	                                                                                        : 1;
}

unsigned pkt_fragment(const struct pkt *whole, size_t piece, uint32_t id, struct pkt *out,
                      unsigned max)
{
	const uint8_t *d = whole->data;
	struct pkt_info pi;
	size_t plen, off, chunk;
	unsigned n = 0;

	if (pkt_parse(d, whole->len, false, &pi) || pi.frag || piece % 8 ||
	    (pi.family == 6 && pi.l3_len != 40))
		abort();
	plen = pi.ip_len - pi.l3_len;
	for (off = 0; off < plen; off += chunk) {
		uint8_t *o = out[n].data;
		bool more;

		if (n == max)
			abort();
		chunk = plen - off < piece ? plen - off : piece;
		more = off + chunk < plen;
		memset(&out[n], 0, sizeof out[n]);
		if (pi.family == 4) {
			memcpy(o, d, pi.l3_len);
			memcpy(o + pi.l3_len, d + pi.l3_len + off, chunk);
			pkt_put16(o + 2, (uint16_t)(pi.l3_len + chunk));
			pkt_put16(o + 4, (uint16_t)id);
			pkt_put16(o + 6, (uint16_t)(off / 8 | (more ? 0x2000 : 0)));
			pkt_fix_ip4_csum(o);
			out[n].len = (uint32_t)(pi.l3_len + chunk);
		} else {
			memcpy(o, d, 40);
			o[6] = 44;
			o[40] = d[6];
			pkt_put16(o + 42, (uint16_t)(off | (more ? 1 : 0)));
			pkt_put32(o + 44, id);
			memcpy(o + 48, d + 40 + off, chunk);
			pkt_put16(o + 4, (uint16_t)(8 + chunk));
			out[n].len = (uint32_t)(48 + chunk);
		}
		n++;
	}
	return n;
}

int pkt_reassemble(const struct pkt *frags, unsigned n, struct pkt *out)
{
	struct pkt_info first, pi;
	size_t unfrag, end = 0;
	unsigned i;

	if (!n || pkt_parse(frags[0].data, frags[0].len, false, &first) || !first.frag)
		return -1;
	unfrag = first.family == 4 ? first.l3_len : first.frag_hdr_off;
	memset(out, 0, sizeof *out);
	memcpy(out->data, frags[0].data, unfrag);
	for (i = 0; i < n; i++) {
		if (pkt_parse(frags[i].data, frags[i].len, false, &pi) || pi.frag_off != end ||
		    pi.mf != (i + 1 < n) || unfrag + end + pi.l4_len > PKT_MAX)
			return -1;
		memcpy(out->data + unfrag + end, frags[i].data + pi.l3_len, pi.l4_len);
		end += pi.l4_len;
	}
	out->len = (uint32_t)(unfrag + end);
	if (first.family == 4) {
		pkt_put16(out->data + 2, (uint16_t)out->len);
		pkt_put16(out->data + 6, 0);
		pkt_fix_ip4_csum(out->data);
	} else {
		out->data[first.nh_field_off] = frags[0].data[first.frag_hdr_off];
		pkt_put16(out->data + 4, (uint16_t)(out->len - 40));
	}
	return 0;
}
