/*
 * Every ICMP and ICMPv6 error type and code the engine translates, in both
 * directions and both families, from one table (issue 11).
 *
 * Inbound, an error about a packet an alias sent (from a router or from the
 * remote) reaches the subscriber with the quote restored and the rest of
 * header (next-hop MTU, Packet Too Big MTU, pointer) intact, or PMTUD breaks.
 * Outbound, an error about a packet a subscriber was sent, whoever raised it
 * on the inside (the subscriber, a router on its access side, the gateway's
 * own stack), leaves as if the alias had sent it: the alias as source, the
 * quote cut to the quoted IP header plus 8 bytes and naming the alias, the
 * outer header scrubbed like any packet of the flow, and no subscriber
 * address at any offset. Other ICMP types in error position, quotes with IPv4
 * options and quotes of no flow are dropped, each with a counted reason.
 *
 * pkt.c builds the packets; what leaves the engine is read by the decoder
 * below, written byte by byte from RFC 791/792/8200/4443 with its own RFC
 * 1071 checksum, so that neither libcfr's parser nor pkt.c's can hide a bug
 * it shares with the code under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lab.h"

#define T0         1000
#define ARRAY_N(a) (sizeof(a) / sizeof((a)[0]))
#define SENDER_ID  0x1234 /* IPv4 identification every inside sender uses */

struct err_case {
	int family; /* 4 or 6 */
	uint8_t type, code;
	uint32_t rest;   /* rest of header: MTU or pointer, which must survive */
	bool translated; /* false: not an error the engine translates, must be dropped */
};

/* clang-format off */
static const struct err_case cases[] = {
	/* Destination unreachable 0-15 (RFC 792, 1812); 4 carries the next-hop MTU (RFC 1191). */
	{4, 3, 0, 0, true}, {4, 3, 1, 0, true}, {4, 3, 2, 0, true}, {4, 3, 3, 0, true},
	{4, 3, 4, 1400, true}, {4, 3, 5, 0, true}, {4, 3, 6, 0, true}, {4, 3, 7, 0, true},
	{4, 3, 8, 0, true}, {4, 3, 9, 0, true}, {4, 3, 10, 0, true}, {4, 3, 11, 0, true},
	{4, 3, 12, 0, true}, {4, 3, 13, 0, true}, {4, 3, 14, 0, true}, {4, 3, 15, 0, true},
	{4, 11, 0, 0, true}, {4, 11, 1, 0, true},  /* time exceeded: TTL, reassembly */
	{4, 12, 0, 8u << 24, true},                /* parameter problem, pointer at the TTL */
	/* RFC 4443: unreachable 0-7, packet too big, time exceeded, parameter problem. */
	{6, 1, 0, 0, true}, {6, 1, 1, 0, true}, {6, 1, 2, 0, true}, {6, 1, 3, 0, true},
	{6, 1, 4, 0, true}, {6, 1, 5, 0, true}, {6, 1, 6, 0, true}, {6, 1, 7, 0, true},
	{6, 2, 0, 1280, true},
	{6, 3, 0, 0, true}, {6, 3, 1, 0, true},
	{6, 4, 0, 4, true}, {6, 4, 1, 6, true}, {6, 4, 2, 40, true}, {6, 4, 3, 0, true},
	/* Source quench, redirect (RFC 792), ICMPv6 redirect (RFC 4861): never translated. */
	{4, 4, 0, 0, false}, {4, 5, 1, 0, false}, {6, 137, 0, 0, false},
};
/* clang-format on */

/* Everyone who sends here; addresses by family below. */
enum who {
	SUB,           /* the subscriber of every flow here */
	ACCESS_ROUTER, /* on the subscriber's access side, inside the subscriber prefixes */
	GATEWAY,       /* the gateway's own stack, outside the subscriber prefixes */
	REMOTE,        /* the server the subscriber talks to */
	ROUTER,        /* a router on the internet */
	WHO__COUNT
};

static const char *const who_text[WHO__COUNT][2] = {
    [SUB] = {"100.64.1.2", "2001:db8:100:1::2"},
    [ACCESS_ROUTER] = {"100.64.1.3", "2001:db8:100:1::1"},
    [GATEWAY] = {"198.51.100.1", "2001:db8:ffff::1"},
    [REMOTE] = {"203.0.113.10", "2001:db8:f::10"},
    [ROUTER] = {"198.51.100.77", "2001:db8:e::77"},
};

static const char *const who_name[WHO__COUNT] = {"subscriber", "access router", "gateway", "remote",
                                                 "router"};

static const uint8_t *addr(int family, enum who w)
{
	static uint8_t buf[WHO__COUNT][2][16];

	pkt_addr(family, who_text[w][family == 6], buf[w][family == 6]);
	return buf[w][family == 6];
}

/* What the running check is about, printed with any failure. */
static char where[128];

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fail_msg("%s: %s", where, #cond);                                          \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		unsigned long a_ = (a), b_ = (b);                                                  \
		if (a_ != b_)                                                                      \
			fail_msg("%s: %s is %lu (%#lx), expected %lu (%#lx)", where, #a, a_, a_,   \
			         b_, b_);                                                          \
	} while (0)

#define CHECK_ADDR(fam, got, want) check_addr_at((fam), (got), (want), #got)

static void check_addr_at(int family, const uint8_t *got, const uint8_t *want, const char *what)
{
	char g[INET6_ADDRSTRLEN], w[INET6_ADDRSTRLEN];
	int af = family == 4 ? AF_INET : AF_INET6;

	if (memcmp(got, want, family == 4 ? 4 : 16) == 0)
		return;
	inet_ntop(af, got, g, sizeof g);
	inet_ntop(af, want, w, sizeof w);
	fail_msg("%s: %s is %s, expected %s", where, what, g, w);
}

/* ---- The independent decoder ---- */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* RFC 1071: add big-endian 16-bit words to <acc>, an odd last byte padded with zero. */
static uint32_t sum16(uint32_t acc, const uint8_t *d, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)d[i] << 8 | d[i + 1];
	if (n & 1)
		acc += (uint32_t)d[n - 1] << 8;
	return acc;
}

/* The checksum a sender writes for <n> bytes at <d> whose field at even <at> is zero. */
static uint16_t checksum(const uint8_t *d, size_t n, size_t at, uint32_t acc)
{
	acc = sum16(sum16(acc, d, at), d + at + 2, n - at - 2);
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

struct ip_hdr {
	int family;
	size_t alen;  /* address length */
	size_t hlen;  /* IPv4 header with options, or IPv6 header and extension headers */
	size_t total; /* what the length field says */
	uint8_t proto, ttl;
	uint16_t id;    /* IPv4 identification */
	uint32_t label; /* IPv6 flow label */
	const uint8_t *base, *src, *dst, *l4;
	size_t l4_len; /* upper-layer bytes present */
};

/*
 * Read the IP header at <d>, <len> bytes there. A <quoted> packet may be cut
 * short of its length field; any other must match it exactly.
 */
static void read_ip(const uint8_t *d, size_t len, bool quoted, struct ip_hdr *h)
{
	memset(h, 0, sizeof *h);
	CHECK(len >= 20);
	h->base = d;
	h->family = d[0] >> 4;
	if (h->family == 4) {
		h->alen = 4;
		h->hlen = (size_t)(d[0] & 0x0f) * 4;
		h->total = be16(d + 2);
		h->id = be16(d + 4);
		h->ttl = d[8];
		h->proto = d[9];
		h->src = d + 12;
		h->dst = d + 16;
		CHECK(h->hlen >= 20);
	} else {
		uint8_t nh;

		CHECK_EQ(h->family, 6);
		CHECK(len >= 40);
		h->alen = 16;
		h->label = (uint32_t)(d[1] & 0x0f) << 16 | (uint32_t)d[2] << 8 | d[3];
		h->total = 40 + (size_t)be16(d + 4);
		h->ttl = d[7];
		h->src = d + 8;
		h->dst = d + 24;
		h->hlen = 40;
		/* Hop-by-hop, routing, destination options: (length + 1) * 8 bytes; fragment: 8. */
		for (nh = d[6]; nh == 0 || nh == 43 || nh == 60 || nh == 44;) {
			size_t ext;

			CHECK(h->hlen + 8 <= len);
			ext = nh == 44 ? 8 : ((size_t)d[h->hlen + 1] + 1) * 8;
			nh = d[h->hlen];
			h->hlen += ext;
		}
		h->proto = nh;
	}
	CHECK(h->hlen <= len);
	if (!quoted)
		CHECK_EQ(h->total, len);
	h->l4 = d + h->hlen;
	h->l4_len = (h->total < len ? h->total : len) - h->hlen;
}

static bool is_icmp(uint8_t proto)
{
	return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;
}

struct icmp_err {
	struct ip_hdr ip; /* outer */
	uint8_t type, code;
	uint32_t rest;
	struct ip_hdr q;         /* the quoted packet */
	uint16_t qsport, qdport; /* its ports; an echo's identifier in both */
};

/* Decode the ICMP or ICMPv6 error in <p> and the start of the packet it quotes. */
static void read_error(const struct pkt *p, struct icmp_err *e)
{
	const uint8_t *icmp;

	read_ip(p->data, p->len, false, &e->ip);
	CHECK_EQ(e->ip.proto, e->ip.family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6);
	CHECK(e->ip.l4_len >= 8);
	icmp = e->ip.l4;
	e->type = icmp[0];
	e->code = icmp[1];
	e->rest = be32(icmp + 4);
	read_ip(icmp + 8, e->ip.l4_len - 8, true, &e->q);
	CHECK_EQ(e->q.family, e->ip.family);
	CHECK(e->q.l4_len >= 8);
	e->qsport = be16(e->q.l4 + (is_icmp(e->q.proto) ? 4 : 0));
	e->qdport = be16(e->q.l4 + (is_icmp(e->q.proto) ? 4 : 2));
}

/* The outer IPv4 header checksum and the ICMP checksum (ICMPv6: with the pseudo-header). */
static void check_checksums(const struct icmp_err *e)
{
	const struct ip_hdr *h = &e->ip;
	uint32_t pseudo = 0;

	if (h->family == 4) {
		CHECK_EQ(be16(h->base + 10), checksum(h->base, h->hlen, 10, 0));
	} else {
		/* RFC 8200 §8.1: source, destination, 32-bit length, 3 zero bytes, next header. */
		uint8_t tail[8] = {0, 0, 0, 0, 0, 0, 0, IPPROTO_ICMPV6};
		int k;

		for (k = 0; k < 4; k++)
			tail[k] = (uint8_t)(h->l4_len >> (24 - 8 * k));
		pseudo = sum16(sum16(sum16(0, h->src, 16), h->dst, 16), tail, sizeof tail);
	}
	CHECK_EQ(be16(h->l4 + 2), checksum(h->l4, h->l4_len, 2, pseudo));
}

/*
 * No subscriber address at any offset of <p>: not in the outer header, the
 * quote, an option, or anywhere else. IPv6: nothing of 2001:db8:100::/48,
 * the subscriber prefix, so no address of the access line either.
 */
static void check_no_subscriber(const struct pkt *p)
{
	uint8_t prefix6[16];
	const struct {
		const uint8_t *bytes;
		size_t n;
	} needles[] = {{addr(4, SUB), 4}, {addr(4, ACCESS_ROUTER), 4}, {prefix6, 6}};
	size_t i, off;

	pkt_addr(6, "2001:db8:100::", prefix6);
	for (i = 0; i < ARRAY_N(needles); i++)
		for (off = 0; off + needles[i].n <= p->len; off++)
			if (memcmp(p->data + off, needles[i].bytes, needles[i].n) == 0)
				fail_msg("%s: subscriber bytes at offset %zu of %u", where, off,
				         p->len);
}

/* ---- Engine fixture ---- */

struct fixture {
	const struct err_case *c; /* the table row, or NULL */
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	uint64_t now;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof *fx);

	if (!fx)
		return -1;
	fx->c = *state;
	lab_config(&fx->cfg); /* engine defaults, the lab's pools and subscribers */
	fx->eng = lab_engine(&fx->cfg);
	fx->now = T0;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	cfr_engine_free(fx->eng);
	free(fx);
	return 0;
}

/*
 * Run <p> through the engine from a heap buffer of exactly its length (so
 * that AddressSanitizer sees any overrun). The engine may shorten a packet
 * (an outbound error's quote) but never lengthen it.
 */
static struct cfr_pkt run(struct fixture *fx, struct pkt *p)
{
	uint8_t *copy = malloc(p->len);
	struct cfr_pkt cp = {.data = copy, .len = p->len, .verdict = 0xff, .reason = 0xff};

	assert_non_null(copy);
	memcpy(copy, p->data, p->len);
	cfr_engine_process(fx->eng, &cp, 1, fx->now++);
	CHECK(cp.len <= p->len);
	memcpy(p->data, copy, cp.len);
	p->len = cp.len;
	free(copy);
	cp.data = p->data;
	return cp;
}

static void expect_forward(const struct cfr_pkt *r, enum cfr_dir dir)
{
	if (r->verdict != CFR_VERDICT_FORWARD)
		fail_msg("%s: dropped (%s)", where,
		         r->reason < CFR_DROP__COUNT ? cfr_drop_name(r->reason) : "invalid reason");
	CHECK_EQ(r->dir, dir);
}

/*
 * Run <p> and expect a drop, counted under its reason and nothing sent; the
 * reason must be named <ok1> or <ok2> unless both are NULL.
 */
static void expect_drop(struct fixture *fx, struct pkt *p, const char *ok1, const char *ok2)
{
	struct cfr_stats before = *cfr_engine_stats(fx->eng);
	const struct cfr_stats *after;
	struct cfr_pkt r = run(fx, p);
	const char *name;

	if (r.verdict != CFR_VERDICT_DROP)
		fail_msg("%s: forwarded, expected a drop", where);
	CHECK(r.reason != CFR_DROP_NONE && r.reason < CFR_DROP__COUNT);
	name = cfr_drop_name(r.reason);
	if (ok1 && strcmp(name, ok1) != 0 && (!ok2 || strcmp(name, ok2) != 0))
		fail_msg("%s: dropped as %s, expected %s%s%s", where, name, ok1, ok2 ? " or " : "",
		         ok2 ? ok2 : "");
	after = cfr_engine_stats(fx->eng);
	CHECK_EQ(after->drops[r.reason], before.drops[r.reason] + 1);
	CHECK_EQ(after->tx[0] + after->tx[1], before.tx[0] + before.tx[1]);
}

/* ---- Flows and errors ---- */

struct flow {
	int family;
	uint8_t proto;                  /* TCP, UDP, or the family's ICMP (echo) */
	uint16_t sub_port, remote_port; /* an echo: the identifier, and 0 */
	uint8_t alias[16];
	uint16_t alias_port; /* an echo: the alias identifier */
	uint32_t label;      /* the flow label the opening packet left with */
	struct pkt out;      /* the opening packet as the remote received it */
	struct pkt in;       /* the remote's answer as the subscriber received it */
	size_t in_hlen;      /* IP header length of <in> */
};

/* The flow's port on the far side of the quote: an echo has its identifier there too. */
static uint16_t far_port(const struct flow *fl, uint16_t id)
{
	return is_icmp(fl->proto) ? id : fl->remote_port;
}

/*
 * A TCP SYN, UDP datagram or echo request from the subscriber to the remote,
 * and the remote's answer (SYN-ACK, datagram, echo reply), both translated.
 */
static void open_flow(struct fixture *fx, int family, uint8_t proto, struct flow *fl)
{
	struct pkt_spec s;
	struct ip_hdr h;
	struct cfr_pkt r;

	memset(fl, 0, sizeof *fl);
	lab_spec(&s, family, proto, (uint16_t)(40000 + proto), 443);
	memcpy(s.src, addr(family, SUB), 16);
	memcpy(s.dst, addr(family, REMOTE), 16);
	fl->family = family;
	fl->proto = s.proto;
	fl->sub_port = s.sport;
	fl->remote_port = s.dport;
	pkt_build(&fl->out, &s);
	r = run(fx, &fl->out);
	expect_forward(&r, CFR_DIR_OUT);
	read_ip(fl->out.data, fl->out.len, false, &h);
	memcpy(fl->alias, h.src, h.alen);
	fl->alias_port = be16(h.l4 + (is_icmp(fl->proto) ? 4 : 0));
	fl->label = h.label;

	memcpy(s.src, addr(family, REMOTE), 16);
	memcpy(s.dst, fl->alias, 16);
	s.sport = is_icmp(fl->proto) ? fl->alias_port : fl->remote_port;
	s.dport = fl->alias_port;
	s.tcp_flags = PKT_TCP_SYN | PKT_TCP_ACK;
	s.seq = 5000;
	s.ack = 1001;
	s.icmp_type = family == 4 ? 0 : 129;
	s.ip_id = 0x4321;
	pkt_build(&fl->in, &s);
	r = run(fx, &fl->in);
	expect_forward(&r, CFR_DIR_IN);
	read_ip(fl->in.data, fl->in.len, false, &h);
	fl->in_hlen = h.hlen;
}

/*
 * An error of the row's type and code from <src> to <dst> quoting
 * <quote_len> bytes of <quote>, with the outer TTL / hop limit <ttl>, IPv4
 * identification SENDER_ID and IPv6 flow label <label>.
 */
static void build_error(struct pkt *p, const struct err_case *c, const uint8_t *src,
                        const uint8_t *dst, const uint8_t *quote, size_t quote_len, uint8_t ttl,
                        uint32_t label)
{
	struct pkt_spec s = {
	    .family = c->family,
	    .proto = c->family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6,
	    .icmp_type = c->type,
	    .icmp_code = c->code,
	    .icmp_rest = c->rest,
	    .ttl = ttl,
	    .ip_id = SENDER_ID,
	    .payload = quote,
	    .payload_len = quote_len,
	};

	memcpy(s.src, src, 16);
	memcpy(s.dst, dst, 16);
	pkt_build(p, &s);
	if (c->family == 6) { /* outside the checksum: no recomputation */
		p->data[1] = (uint8_t)((p->data[1] & 0xf0) | ((label >> 16) & 0x0f));
		p->data[2] = (uint8_t)(label >> 8);
		p->data[3] = (uint8_t)label;
	}
}

static const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP};

static const char *proto_name(uint8_t proto)
{
	return proto == IPPROTO_TCP ? "TCP" : proto == IPPROTO_UDP ? "UDP" : "echo";
}

/* An inbound error as it reaches the subscriber. */
static void check_inbound(const struct err_case *c, const struct flow *fl, enum who from,
                          const struct pkt *err)
{
	struct icmp_err e;

	read_error(err, &e);
	check_checksums(&e);
	CHECK_ADDR(c->family, e.ip.src, addr(c->family, from));
	CHECK_ADDR(c->family, e.ip.dst, addr(c->family, SUB));
	CHECK_EQ(e.type, c->type);
	CHECK_EQ(e.code, c->code);
	CHECK_EQ(e.rest, c->rest);
	CHECK_EQ(e.q.proto, fl->proto);
	CHECK_ADDR(c->family, e.q.src, addr(c->family, SUB));
	CHECK_ADDR(c->family, e.q.dst, addr(c->family, REMOTE));
	CHECK_EQ(e.qsport, fl->sub_port);
	CHECK_EQ(e.qdport, far_port(fl, fl->sub_port));
	if (fl->proto == IPPROTO_TCP)
		CHECK_EQ(be32(e.q.l4 + 4), 1000); /* the sequence number the sender checks */
}

/*
 * From a router and from the remote, about each flow's opening packet as the
 * remote saw it: IPv4 quoting header + 8 bytes (RFC 792), IPv6 as much as
 * fits (RFC 4443).
 */
static void error_in(void **state)
{
	static const enum who senders[] = {ROUTER, REMOTE};
	struct fixture *fx = *state;
	const struct err_case *c = fx->c;
	size_t i, j;

	for (i = 0; i < ARRAY_N(protos); i++) {
		struct flow fl;
		struct ip_hdr h;

		open_flow(fx, c->family, protos[i], &fl);
		read_ip(fl.out.data, fl.out.len, false, &h);
		for (j = 0; j < ARRAY_N(senders); j++) {
			struct pkt err;
			struct cfr_pkt r;

			snprintf(where, sizeof where, "inbound %s error from the %s",
			         proto_name(fl.proto), who_name[senders[j]]);
			build_error(&err, c, addr(c->family, senders[j]), fl.alias, fl.out.data,
			            c->family == 4 ? h.hlen + 8 : fl.out.len, 64, 0);
			if (!c->translated) {
				expect_drop(fx, &err, NULL, NULL);
				continue;
			}
			r = run(fx, &err);
			expect_forward(&r, CFR_DIR_IN);
			check_inbound(c, &fl, senders[j], &err);
		}
	}
}

/* An outbound error as it leaves for the remote. */
static void check_outbound(const struct fixture *fx, const struct err_case *c,
                           const struct flow *fl, const struct pkt *err, struct icmp_err *e)
{
	read_error(err, e);
	check_checksums(e);
	check_no_subscriber(err);
	CHECK_ADDR(c->family, e->ip.src, fl->alias);
	CHECK_ADDR(c->family, e->ip.dst, addr(c->family, REMOTE));
	CHECK(e->ip.ttl <= fx->cfg.scrub.ttl_cap);
	if (c->family == 6)
		CHECK_EQ(e->ip.label, fl->label); /* the flow's, as each of its packets carries */
	CHECK_EQ(e->type, c->type);
	CHECK_EQ(e->code, c->code);
	CHECK_EQ(e->rest, c->rest);
	/* Cut to the quoted IP header (extension headers included) and 8 bytes. */
	CHECK_EQ(e->q.hlen, fl->in_hlen);
	CHECK_EQ(err->len, e->ip.hlen + 8 + e->q.hlen + 8);
	CHECK_EQ(e->q.proto, fl->proto);
	CHECK_ADDR(c->family, e->q.src, addr(c->family, REMOTE));
	CHECK_ADDR(c->family, e->q.dst, fl->alias);
	CHECK_EQ(e->qsport, far_port(fl, fl->alias_port));
	CHECK_EQ(e->qdport, fl->alias_port);
	if (fl->proto == IPPROTO_TCP)
		CHECK_EQ(be32(e->q.l4 + 4), 5000);
}

/*
 * From each inside sender, twice per flow (a Windows and a router's initial
 * TTL, each time a flow label of its own and the same IPv4 identification),
 * about the remote's answer as the subscriber received it, quoted whole.
 */
static void error_out(void **state)
{
	static const enum who senders[] = {SUB, ACCESS_ROUTER, GATEWAY};
	struct fixture *fx = *state;
	const struct err_case *c = fx->c;
	unsigned n_ids = 0, n_sender_id = 0, n_first_id = 0;
	uint16_t first_id = 0;
	size_t i, j;

	/* Without these the checks below would prove nothing. */
	assert_true(fx->cfg.scrub.ttl_cap > 0 && fx->cfg.scrub.ttl_cap < 128);
	assert_true(fx->cfg.scrub.ip_id && fx->cfg.scrub.flow_label);
	for (i = 0; i < ARRAY_N(protos); i++) {
		struct flow fl;

		open_flow(fx, c->family, protos[i], &fl);
		/* Two errors from each sender, the first with TTL 128, the second 255. */
		for (j = 0; j < 2 * ARRAY_N(senders); j++) {
			enum who from = senders[j / 2];
			struct icmp_err e;
			struct pkt err;
			struct cfr_pkt r;

			snprintf(where, sizeof where, "outbound %s error from the %s (#%zu)",
			         proto_name(fl.proto), who_name[from], j % 2 + 1);
			build_error(&err, c, addr(c->family, from), addr(c->family, REMOTE),
			            fl.in.data, fl.in.len, j % 2 ? 255 : 128,
			            (uint32_t)(0x12340 + j));
			if (!c->translated) {
				expect_drop(fx, &err, NULL, NULL);
				continue;
			}
			r = run(fx, &err);
			expect_forward(&r, CFR_DIR_OUT);
			check_outbound(fx, c, &fl, &err, &e);
			if (n_ids++ == 0)
				first_id = e.ip.id;
			n_first_id += e.ip.id == first_id;
			n_sender_id += e.ip.id == SENDER_ID;
		}
	}
	/*
	 * IPv4 identification: drawn afresh, not the sender's. A random 16-bit
	 * value may meet SENDER_ID once in a row's 18 packets, hardly twice, and
	 * all 18 alike means a constant.
	 */
	if (c->family == 4 && c->translated) {
		snprintf(where, sizeof where, "IPv4 identification of %u outbound errors", n_ids);
		CHECK(n_sender_id <= 1);
		CHECK(n_first_id < n_ids);
	}
}

/*
 * Insert a Record Route option holding <slot> after the fixed IPv4 header
 * of <p> (RFC 791: type 7, length 7, pointer past the one full slot, then
 * end of list), fixing total length and header checksum.
 */
static void add_record_route(struct pkt *p, const uint8_t *slot)
{
	const uint8_t opt[8] = {7, 7, 8, slot[0], slot[1], slot[2], slot[3], 0};

	memmove(p->data + 28, p->data + 20, p->len - 20);
	memcpy(p->data + 20, opt, sizeof opt);
	p->len += 8;
	p->data[0] = 0x47;
	pkt_put16(p->data + 2, (uint16_t)p->len);
	pkt_put16(p->data + 10, 0);
	pkt_put16(p->data + 10, checksum(p->data, 28, 10, 0));
}

/*
 * A quote whose IPv4 header carries an option that names hops (here the
 * subscriber, or a router) is dropped in either direction.
 */
static void quoted_ip_options4(void **state)
{
	static const struct err_case unreach = {4, 3, 1, 0, true};
	struct fixture *fx = *state;
	struct flow fl;
	struct pkt quote, err;

	open_flow(fx, 4, IPPROTO_UDP, &fl);
	snprintf(where, sizeof where, "inbound error quoting Record Route");
	quote = fl.out;
	add_record_route(&quote, addr(4, ROUTER));
	build_error(&err, &unreach, addr(4, ROUTER), fl.alias, quote.data, quote.len, 64, 0);
	expect_drop(fx, &err, "icmp_bad_inner", "ip_options");

	snprintf(where, sizeof where, "outbound error quoting Record Route");
	quote = fl.in;
	add_record_route(&quote, addr(4, SUB));
	build_error(&err, &unreach, addr(4, SUB), addr(4, REMOTE), quote.data, quote.len, 64, 0);
	expect_drop(fx, &err, "icmp_bad_inner", "ip_options");
}

/* Errors about packets no flow carried: to an unused alias, and to an unused subscriber port. */
static void quoted_no_flow(int family, void **state)
{
	static const enum who senders[] = {SUB, ACCESS_ROUTER, GATEWAY};
	const struct err_case unreach = {family, family == 4 ? 3 : 1, 1, 0, true};
	struct fixture *fx = *state;
	struct pkt_spec s;
	struct pkt quote, err;
	size_t j;

	snprintf(where, sizeof where, "inbound error about an unused alias");
	lab_spec(&s, family, IPPROTO_UDP, 5555, 443);
	pkt_addr(family, family == 4 ? "192.0.2.33" : "2001:db8:a1::33", s.src);
	memcpy(s.dst, addr(family, REMOTE), 16);
	pkt_build(&quote, &s);
	build_error(&err, &unreach, addr(family, ROUTER), s.src, quote.data, quote.len, 64, 0);
	expect_drop(fx, &err, "icmp_no_flow", NULL);

	lab_spec(&s, family, IPPROTO_UDP, 443, 40999);
	memcpy(s.src, addr(family, REMOTE), 16);
	memcpy(s.dst, addr(family, SUB), 16);
	pkt_build(&quote, &s);
	for (j = 0; j < ARRAY_N(senders); j++) {
		snprintf(where, sizeof where, "outbound error from the %s about an unused port",
		         who_name[senders[j]]);
		build_error(&err, &unreach, addr(family, senders[j]), addr(family, REMOTE),
		            quote.data, quote.len, 64, 0);
		expect_drop(fx, &err, "icmp_no_flow", NULL);
	}
}

static void quoted_no_flow4(void **state)
{
	quoted_no_flow(4, state);
}

static void quoted_no_flow6(void **state)
{
	quoted_no_flow(6, state);
}

/*
 * An outbound ICMPv6 error quoting a packet with a destination options
 * header keeps the header and 8 bytes after it: the remote needs the ports.
 */
static void quote_keeps_ext_headers6(void **state)
{
	static const struct err_case unreach = {6, 1, 4, 0, true};
	struct fixture *fx = *state;
	struct flow fl;
	struct pkt_spec s;
	struct pkt err;
	struct icmp_err e;
	struct cfr_pkt r;

	open_flow(fx, 6, IPPROTO_UDP, &fl);
	snprintf(where, sizeof where, "remote's answer with destination options");
	memset(&s, 0, sizeof s);
	s.family = 6;
	s.proto = IPPROTO_UDP;
	memcpy(s.src, addr(6, REMOTE), 16);
	memcpy(s.dst, fl.alias, 16);
	s.sport = fl.remote_port;
	s.dport = fl.alias_port;
	s.ext[s.n_ext++] = PKT_EXT_DSTOPTS;
	s.payload = lab_payload;
	s.payload_len = sizeof lab_payload;
	pkt_build(&fl.in, &s);
	r = run(fx, &fl.in);
	expect_forward(&r, CFR_DIR_IN);
	fl.in_hlen = 48;

	snprintf(where, sizeof where, "outbound error quoting destination options");
	build_error(&err, &unreach, addr(6, SUB), addr(6, REMOTE), fl.in.data, fl.in.len, 64, 1);
	r = run(fx, &err);
	expect_forward(&r, CFR_DIR_OUT);
	check_outbound(fx, &unreach, &fl, &err, &e);
}

int main(void)
{
	static struct CMUnitTest tests[2 * ARRAY_N(cases) + 4];
	static char names[2 * ARRAY_N(cases)][32];
	size_t i, n = 0;

	for (i = 0; i < ARRAY_N(cases); i++) {
		const struct err_case *c = &cases[i];
		int dir;

		for (dir = 0; dir < 2; dir++) {
			snprintf(names[n], sizeof names[n], "%s_icmp%s_type%u_code%u",
			         dir == CFR_DIR_IN ? "in" : "out", c->family == 4 ? "v4" : "v6",
			         c->type, c->code);
			tests[n] = (struct CMUnitTest){
			    .name = names[n],
			    .test_func = dir == CFR_DIR_IN ? error_in : error_out,
			    .setup_func = setup,
			    .teardown_func = teardown,
			    .initial_state = (void *)c,
			};
			n++;
		}
	}
	tests[n++] =
	    (struct CMUnitTest)cmocka_unit_test_setup_teardown(quoted_ip_options4, setup, teardown);
	tests[n++] =
	    (struct CMUnitTest)cmocka_unit_test_setup_teardown(quoted_no_flow4, setup, teardown);
	tests[n++] =
	    (struct CMUnitTest)cmocka_unit_test_setup_teardown(quoted_no_flow6, setup, teardown);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(quote_keeps_ext_headers6,
	                                                                setup, teardown);
	return _cmocka_run_group_tests("icmp_errors", tests, n, NULL, NULL);
}
