/*
 * Translation of ordinary traffic: outbound TCP/UDP/ICMP echo for both
 * families gets an alias from the pool and a port in range with nothing else
 * changed; replies are restored exactly; the mapping is endpoint-dependent,
 * stable per 5-tuple and different across flows; and the guard drops
 * (no flow, unauthorised source, non-SYN opener, hairpin, IPv6 UDP without
 * checksum).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "lab.h"

#define T0 1000

/*
 * The parameters of a case (the table in main): the family and protocol of
 * the subscriber's flow, and what one test or another also takes.
 */
struct tcase {
	int family;
	uint8_t proto;
	uint16_t sport;       /* outbound: source port or echo identifier */
	uint8_t tcp_flags;    /* tcp_not_syn: the flags of the opener */
	int what;             /* reply_mismatch: 0 other port, 1 other host, 2 other protocol */
	unsigned min_aliases; /* many_flows: distinct aliases among NFLOWS flows, at least */
};

static void parse_ok(const struct pkt *p, struct pkt_info *pi)
{
	assert_int_equal(pkt_parse(p->data, p->len, false, pi), 0);
}

/* Payload bytes after the transport header must be untouched. */
static void assert_same_payload(const struct pkt *a, const struct pkt *b)
{
	struct pkt_info pa, pb;
	size_t oa, ob;

	parse_ok(a, &pa);
	parse_ok(b, &pb);
	oa = pkt_payload_off(a->data, &pa);
	ob = pkt_payload_off(b->data, &pb);
	assert_int_equal(a->len - oa, b->len - ob);
	assert_memory_equal(a->data + oa, b->data + ob, a->len - oa);
}

static void outbound(void **state)
{
	const struct lab_case *lc = *state;
	const struct tcase *c = lc->params;
	struct pkt orig, p;
	struct pkt_info o, t;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, c->family, c->proto, c->sport, 443);
	pkt_build(&orig, &s);
	p = orig;
	r = lab_process(lc->eng, &p, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	parse_ok(&orig, &o);
	parse_ok(&p, &t);
	assert_true(lab_in_pool(c->family, t.src));
	assert_in_range(t.sport, LAB_PORT_MIN, LAB_PORT_MAX);
	assert_memory_equal(t.dst, o.dst, 16);
	assert_int_equal(t.dport, o.dport);
	assert_int_equal(t.proto, o.proto);
	assert_int_equal(t.icmp_type, o.icmp_type);
	assert_int_equal(t.tcp_flags, o.tcp_flags);
	assert_same_payload(&p, &orig);
	lab_expect_checksums(&p);
}

/* Out, then the reply back in: the reply must reach exactly the subscriber's socket. */
static void round_trip(void **state)
{
	const struct lab_case *lc = *state;
	const struct tcase *c = lc->params;
	struct pkt orig, out, in, reply_orig;
	struct pkt_info o, i, t;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, c->family, c->proto, 40001, 8443);
	pkt_build(&orig, &s);
	out = orig;
	r = lab_process(lc->eng, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	parse_ok(&out, &t);

	lab_reply_spec(&s, &out);
	pkt_build(&reply_orig, &s);
	in = reply_orig;
	r = lab_process(lc->eng, &in, T0 + 10);
	lab_expect_forward(&r, CFR_DIR_IN);
	parse_ok(&orig, &o);
	parse_ok(&in, &i);
	/* translate-then-reverse gives back the original tuple, mirrored */
	assert_memory_equal(i.dst, o.src, 16);
	assert_int_equal(i.dport, c->proto == IPPROTO_TCP || c->proto == IPPROTO_UDP ? o.sport : 0);
	if (c->proto != IPPROTO_TCP && c->proto != IPPROTO_UDP)
		assert_int_equal(i.sport, o.sport); /* echo identifier restored */
	else
		assert_int_equal(i.sport, o.dport);
	assert_memory_equal(i.src, o.dst, 16);
	assert_same_payload(&in, &reply_orig);
	lab_expect_checksums(&in);
}

/* Later packets of one 5-tuple keep the alias and port of the first (R4). */
static void flow_stability(void **state)
{
	const struct lab_case *lc = *state;
	const struct tcase *c = lc->params;
	struct pkt first, p;
	struct pkt_info f, t;
	struct pkt_spec s;
	struct cfr_pkt r;
	int k;

	lab_open_flow(lc->eng, c->family, c->proto, 40002, 443, &first, T0);
	parse_ok(&first, &f);
	for (k = 1; k <= 5; k++) {
		lab_spec(&s, c->family, c->proto, 40002, 443);
		if (c->proto == IPPROTO_TCP)
			s.tcp_flags =
			    PKT_TCP_ACK; /* retransmitted SYNs are covered by the same rule */
		s.seq = 1001 + (uint32_t)k;
		s.icmp_seq = (uint16_t)(1 + k);
		r = lab_send(lc->eng, &s, &p, T0 + (uint64_t)k * 100);
		lab_expect_forward(&r, CFR_DIR_OUT);
		parse_ok(&p, &t);
		assert_memory_equal(t.src, f.src, 16);
		assert_int_equal(t.sport, f.sport);
		lab_expect_checksums(&p);
	}
}

#define NFLOWS 200

/*
 * 200 flows of one subscriber to one front door: every outside tuple must be
 * distinct (or return traffic would be ambiguous), and the aliases and ports
 * must spread (cross-flow rotation: one subscriber must not be pinned to one
 * alias). With 64 addresses, 200 uniform picks leave ~61 distinct; 32 is a
 * bound a correct random allocator misses with negligible probability.
 */
static void many_flows(void **state)
{
	const struct lab_case *lc = *state;
	const struct tcase *c = lc->params;
	static struct pkt_info t[NFLOWS];
	unsigned i, j, aliases = 0, ports = 0;
	struct pkt p;

	for (i = 0; i < NFLOWS; i++) {
		lab_open_flow(lc->eng, c->family, c->proto, (uint16_t)(10000 + i), 443, &p, T0);
		parse_ok(&p, &t[i]);
	}
	for (i = 0; i < NFLOWS; i++) {
		bool new_alias = true, new_port = true;

		for (j = 0; j < i; j++) {
			if (!memcmp(t[i].src, t[j].src, 16)) {
				new_alias = false;
				if (t[i].sport == t[j].sport)
					fail_msg("flows %u and %u share an outside tuple", i, j);
			}
			if (t[i].sport == t[j].sport)
				new_port = false;
		}
		aliases += new_alias;
		ports += new_port;
	}
	assert_true(aliases >= c->min_aliases);
	assert_true(ports >= NFLOWS * 9 / 10);
}

/* Two subscribers using the same port towards the same server get separate mappings. */
static void two_subscribers_same_port(void **state)
{
	struct pkt a, b, ra, rb;
	struct pkt_info ta, tb, ia, ib;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, 4, IPPROTO_UDP, 5555, 443);
	r = lab_send(*state, &s, &a, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	memcpy(s.src, lab_sub2(4), 16);
	r = lab_send(*state, &s, &b, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	parse_ok(&a, &ta);
	parse_ok(&b, &tb);
	assert_false(!memcmp(ta.src, tb.src, 4) && ta.sport == tb.sport);

	lab_reply_spec(&s, &b);
	r = lab_send(*state, &s, &rb, T0 + 1);
	lab_expect_forward(&r, CFR_DIR_IN);
	lab_reply_spec(&s, &a);
	r = lab_send(*state, &s, &ra, T0 + 1);
	lab_expect_forward(&r, CFR_DIR_IN);
	parse_ok(&ra, &ia);
	parse_ok(&rb, &ib);
	assert_memory_equal(ia.dst, lab_sub(4), 4);
	assert_memory_equal(ib.dst, lab_sub2(4), 4);
	assert_int_equal(ia.dport, 5555);
	assert_int_equal(ib.dport, 5555);
}

static void udp4_zero_checksum_stays_zero(void **state)
{
	struct pkt p, reply;
	struct pkt_info t;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, 4, IPPROTO_UDP, 40003, 53);
	s.udp_zero_csum = true;
	r = lab_send(*state, &s, &p, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	parse_ok(&p, &t);
	assert_int_equal(pkt_get16(p.data + t.l3_len + 6), 0);
	lab_expect_checksums(&p);

	lab_reply_spec(&s, &p);
	s.udp_zero_csum = true;
	r = lab_send(*state, &s, &reply, T0 + 1);
	lab_expect_forward(&r, CFR_DIR_IN);
	parse_ok(&reply, &t);
	assert_int_equal(pkt_get16(reply.data + t.l3_len + 6), 0);
	assert_int_equal(t.dport, 40003);
}

/* RFC 8200 8.1: a zero UDP checksum is invalid over IPv6. */
static void udp6_zero_checksum_dropped(void **state)
{
	struct pkt_spec s;
	struct cfr_pkt r;
	struct pkt p;

	lab_spec(&s, 6, IPPROTO_UDP, 40004, 53);
	s.udp_zero_csum = true;
	r = lab_send(*state, &s, &p, T0);
	lab_expect_drop(&r, CFR_DROP_UDP6_ZERO_CHECKSUM);
}

static void unsolicited(void **state)
{
	const struct lab_case *lc = *state;
	const struct tcase *c = lc->params;
	struct pkt_spec s;
	struct cfr_pkt r;
	struct pkt p;

	lab_spec(&s, c->family, c->proto, 443, 4000);
	memcpy(s.src, lab_remote(c->family), 16);
	pkt_addr(c->family, c->family == 4 ? "192.0.2.10" : "2001:db8:a1::10", s.dst);
	r = lab_send(lc->eng, &s, &p, T0);
	lab_expect_drop(&r, CFR_DROP_NO_FLOW);
}

/*
 * Endpoint-dependent filtering: a reply is accepted only from the remote
 * address and port the flow was opened to, with the same protocol.
 */
static void reply_mismatch(void **state)
{
	const struct lab_case *lc = *state;
	const struct tcase *c = lc->params;
	struct pkt out, in;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_open_flow(lc->eng, c->family, c->proto, 40005, 443, &out, T0);
	lab_reply_spec(&s, &out);
	if (c->what == 0) {
		s.sport = 444;
	} else if (c->what == 1) {
		memcpy(s.src, lab_router(c->family), 16);
	} else {
		s.proto = IPPROTO_TCP;
		s.tcp_flags = PKT_TCP_SYN | PKT_TCP_ACK;
	}
	r = lab_send(lc->eng, &s, &in, T0 + 1);
	lab_expect_drop(&r, CFR_DROP_NO_FLOW);
}

static void unauthorised(void **state)
{
	const struct lab_case *lc = *state;
	const struct tcase *c = lc->params;
	struct pkt_spec s;
	struct cfr_pkt r;
	struct pkt p;

	lab_spec(&s, c->family, c->proto, 40006, 443);
	pkt_addr(c->family, c->family == 4 ? "10.1.2.3" : "2001:db8:200::3", s.src);
	r = lab_send(lc->eng, &s, &p, T0);
	lab_expect_drop(&r, CFR_DROP_UNAUTHORISED_SOURCE);
}

static void tcp_not_syn(void **state)
{
	const struct lab_case *lc = *state;
	const struct tcase *c = lc->params;
	struct pkt_spec s;
	struct cfr_pkt r;
	struct pkt p;

	lab_spec(&s, c->family, c->proto, 40007, 443);
	s.tcp_flags = c->tcp_flags;
	r = lab_send(lc->eng, &s, &p, T0);
	lab_expect_drop(&r, CFR_DROP_TCP_NOT_SYN);
}

static void hairpin(void **state)
{
	const struct lab_case *lc = *state;
	const struct tcase *c = lc->params;
	struct pkt_spec s;
	struct cfr_pkt r;
	struct pkt p;

	lab_spec(&s, c->family, c->proto, 40008, 443);
	pkt_addr(c->family, c->family == 4 ? "192.0.2.5" : "2001:db8:a1::5", s.dst);
	r = lab_send(lc->eng, &s, &p, T0);
	lab_expect_drop(&r, CFR_DROP_HAIRPIN);
}

/* IPv4 options ride along untouched; only addresses and ports change. */
static void ip4_options_preserved(void **state)
{
	struct pkt orig, p;
	struct pkt_info t;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, 4, IPPROTO_UDP, 40009, 443);
	s.ip4_opt_len = 8;
	pkt_build(&orig, &s);
	p = orig;
	r = lab_process(*state, &p, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	parse_ok(&p, &t);
	assert_int_equal(t.l3_len, 28);
	assert_memory_equal(p.data + 20, orig.data + 20, 8);
	assert_true(lab_in_pool(4, t.src));
	assert_same_payload(&p, &orig);
	lab_expect_checksums(&p);
}

static void ip6_ext_headers(void **state, const enum pkt_ext *ext, unsigned n)
{
	struct pkt orig, p;
	struct pkt_info t, o;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, 6, IPPROTO_UDP, 40010, 443);
	memcpy(s.ext, ext, n * sizeof *ext);
	s.n_ext = n;
	pkt_build(&orig, &s);
	p = orig;
	r = lab_process(*state, &p, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	parse_ok(&orig, &o);
	parse_ok(&p, &t);
	assert_int_equal(t.l3_len, o.l3_len);
	assert_memory_equal(p.data + 40, orig.data + 40, o.l3_len - 40);
	assert_true(lab_in_pool(6, t.src));
	assert_in_range(t.sport, LAB_PORT_MIN, LAB_PORT_MAX);
	assert_same_payload(&p, &orig);
	lab_expect_checksums(&p);
}

static void ip6_hopopts_dstopts_translated(void **state)
{
	static const enum pkt_ext ext[] = {PKT_EXT_HOPOPTS, PKT_EXT_DSTOPTS};

	ip6_ext_headers(state, ext, 2);
}

/*
 * Even with segments left 0 a routing header carries addresses (the hops
 * it was routed through): it never leaves with an alias as source.
 */
static void ip6_routing_header_dropped(void **state)
{
	struct pkt p;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, 6, IPPROTO_UDP, 40010, 443);
	s.ext[0] = PKT_EXT_ROUTING;
	s.n_ext = 1;
	pkt_build(&p, &s);
	r = lab_process(*state, &p, T0);
	lab_expect_drop(&r, CFR_DROP_ROUTING_HDR);
}

/*
 * IPv4 options that carry addresses (issue 11): a Record Route slot, a
 * timestamp with addresses or a source route filled on the access side
 * would name the subscriber behind the alias, and one filled outside would
 * reach the subscriber. Either way the packet is dropped, counted.
 */
static const uint8_t address_options[][12] = {
    {7, 7, 8, 100, 64, 1, 2, 1, 1, 1, 1, 0},       /* Record Route, one slot used */
    {68, 12, 13, 0x01, 100, 64, 1, 2, 0, 0, 0, 1}, /* Timestamp with addresses */
    {131, 7, 4, 198, 51, 100, 9, 1, 1, 1, 1, 0},   /* loose source route */
    {137, 7, 4, 198, 51, 100, 9, 1, 1, 1, 1, 0},   /* strict source route */
};

static void with_option(struct pkt *p, const uint8_t opt[12])
{
	memcpy(p->data + 20, opt, 12);
	pkt_fix_ip4_csum(p->data);
}

static void ip4_address_options_dropped(void **state)
{
	struct pkt out, p, in;
	struct pkt_spec s;
	struct cfr_pkt r;
	unsigned k;

	lab_open_flow(*state, 4, IPPROTO_UDP, 40030, 443, &out, T0);
	for (k = 0; k < sizeof address_options / sizeof address_options[0]; k++) {
		lab_spec(&s, 4, IPPROTO_UDP, 40030, 443);
		s.ip4_opt_len = 12;
		pkt_build(&p, &s);
		with_option(&p, address_options[k]);
		r = lab_process(*state, &p, T0 + 1);
		lab_expect_drop(&r, CFR_DROP_IP_OPTIONS);

		lab_reply_spec(&s, &out);
		s.ip4_opt_len = 12;
		pkt_build(&in, &s);
		with_option(&in, address_options[k]);
		r = lab_process(*state, &in, T0 + 1);
		lab_expect_drop(&r, CFR_DROP_IP_OPTIONS);
	}
}

/*
 * The Home Address option (RFC 6275) carries the address a receiver puts
 * in place of the source: a second, untranslated source address.
 */
static void ip6_home_address_dropped(void **state)
{
	static const uint8_t hao_hdr[24] = {17,   2,    0xc9, 16, 0x20, 0x01, 0x0d, 0xb8,
	                                    0x01, 0x00, 0,    1,  0,    0,    0,    0,
	                                    0,    0,    0,    2,  1,    2,    0,    0};
	struct pkt p;
	struct pkt_spec s;
	struct cfr_pkt r;
	uint32_t plen;

	lab_spec(&s, 6, IPPROTO_UDP, 40031, 443);
	pkt_build(&p, &s);
	memmove(p.data + 64, p.data + 40, p.len - 40);
	memcpy(p.data + 40, hao_hdr, sizeof hao_hdr);
	p.data[6] = 60;
	plen = (uint32_t)p.data[4] << 8 | p.data[5];
	pkt_put16(p.data + 4, (uint16_t)(plen + 24));
	p.len += 24;
	r = lab_process(*state, &p, T0);
	lab_expect_drop(&r, CFR_DROP_HOME_ADDRESS);
}

/* An atomic fragment (RFC 6946) is a whole datagram and translates as one. */
static void ip6_atomic_fragment_translated(void **state)
{
	static const enum pkt_ext ext[] = {PKT_EXT_FRAG};

	ip6_ext_headers(state, ext, 1);
}

/*
 * TCP timestamps: whatever the engine does to TSval on the way out (a
 * per-flow offset and rate, to unlink flows), the echoed TSecr coming back
 * must be the subscriber's own clock again, and the flow's clock must run
 * on, 1 to 2 of its ticks per subscriber tick.
 */
static void tcp_timestamps(void **state)
{
	const struct lab_case *lc = *state;
	const struct tcase *c = lc->params;
	struct pkt out, out2, in;
	struct pkt_info t, t2, i;
	struct pkt_spec s;
	struct cfr_pkt r;
	uint32_t ts_out;

	lab_spec(&s, c->family, c->proto, 40011, 443);
	s.tcp_ts = true;
	s.tsval = 0x10000000;
	r = lab_send(lc->eng, &s, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	lab_expect_checksums(&out);
	parse_ok(&out, &t);
	ts_out = pkt_get32(out.data + t.l3_len + 28);

	lab_reply_spec(&s, &out);
	s.tcp_ts = true;
	s.tsval = 0x77777777;
	s.tsecr = ts_out;
	r = lab_send(lc->eng, &s, &in, T0 + 1);
	lab_expect_forward(&r, CFR_DIR_IN);
	lab_expect_checksums(&in);
	parse_ok(&in, &i);
	assert_int_equal(pkt_get32(in.data + i.l3_len + 32), 0x10000000);
	assert_int_equal(pkt_get32(in.data + i.l3_len + 28), 0x77777777);

	lab_spec(&s, c->family, c->proto, 40011, 443);
	s.tcp_flags = PKT_TCP_ACK;
	s.tcp_ts = true;
	s.tsval = 0x10000100;
	s.tsecr = 0x77777777;
	r = lab_send(lc->eng, &s, &out2, T0 + 2);
	lab_expect_forward(&r, CFR_DIR_OUT);
	lab_expect_checksums(&out2);
	parse_ok(&out2, &t2);
	assert_in_range(pkt_get32(out2.data + t2.l3_len + 28) - ts_out, 0x100, 0x200);
	assert_int_equal(pkt_get32(out2.data + t2.l3_len + 32), 0x77777777);
}

#define T(f) cmocka_unit_test_setup_teardown(f, lab_setup, lab_teardown)
/* Case NAME: TEST for FAMILY and PROTOCOL (TCP, UDP, ICMP4 or ICMP6: echo), then the rest. */
#define C(name, test, fam, prot, ...)                                                              \
	LAB_CASE(name, test, struct tcase, .family = (fam), .proto = IPPROTO_##prot, __VA_ARGS__)
#define IPPROTO_ICMP4 IPPROTO_ICMP
#define IPPROTO_ICMP6 IPPROTO_ICMPV6

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
	    /* case name                          test            family, protocol, parameters */
	    C(out_tcp4_syn,                       outbound,       4, TCP,   .sport = 40000),
	    C(out_udp4,                           outbound,       4, UDP,   .sport = 40000),
	    C(out_icmp4_echo,                     outbound,       4, ICMP4, .sport = 0x0abc),
	    C(out_tcp6_syn,                       outbound,       6, TCP,   .sport = 40000),
	    C(out_udp6,                           outbound,       6, UDP,   .sport = 40000),
	    C(out_icmp6_echo,                     outbound,       6, ICMP6, .sport = 0x0abc),
	    /* A privileged source port (below port_min) must still come out inside the range. */
	    C(out_low_port_mapped_into_range4,    outbound,       4, UDP,   .sport = 53),
	    C(out_low_port_mapped_into_range6,    outbound,       6, UDP,   .sport = 53),
	    C(in_reply_tcp4,                      round_trip,     4, TCP),
	    C(in_reply_udp4,                      round_trip,     4, UDP),
	    C(in_reply_icmp4_echo,                round_trip,     4, ICMP4),
	    C(in_reply_tcp6,                      round_trip,     6, TCP),
	    C(in_reply_udp6,                      round_trip,     6, UDP),
	    C(in_reply_icmp6_echo,                round_trip,     6, ICMP6),
	    C(stable_tcp4,                        flow_stability, 4, TCP),
	    C(stable_udp4,                        flow_stability, 4, UDP),
	    C(stable_icmp4,                       flow_stability, 4, ICMP4),
	    C(stable_tcp6,                        flow_stability, 6, TCP),
	    C(stable_udp6,                        flow_stability, 6, UDP),
	    C(stable_icmp6,                       flow_stability, 6, ICMP6),
	    C(many_flows_udp4,                    many_flows,     4, UDP,   .min_aliases = 32),
	    C(many_flows_tcp4,                    many_flows,     4, TCP,   .min_aliases = 32),
	    C(many_flows_udp6,                    many_flows,     6, UDP,   .min_aliases = NFLOWS * 9 / 10),
	    C(many_flows_tcp6,                    many_flows,     6, TCP,   .min_aliases = NFLOWS * 9 / 10),
	    C(many_flows_icmp4,                   many_flows,     4, ICMP4, .min_aliases = 32),
	    C(many_flows_icmp6,                   many_flows,     6, ICMP6, .min_aliases = NFLOWS * 9 / 10),
	    T(two_subscribers_same_port),
	    T(udp4_zero_checksum_stays_zero),
	    T(udp6_zero_checksum_dropped),
	    C(unsolicited_udp4_no_flow,           unsolicited,    4, UDP),
	    C(unsolicited_tcp4_no_flow,           unsolicited,    4, TCP),
	    C(unsolicited_udp6_no_flow,           unsolicited,    6, UDP),
	    C(unsolicited_tcp6_no_flow,           unsolicited,    6, TCP),
	    C(unsolicited_icmp4_no_flow,          unsolicited,    4, ICMP4),
	    C(unsolicited_icmp6_no_flow,          unsolicited,    6, ICMP6),
	    C(reply_from_other_port4_no_flow,     reply_mismatch, 4, UDP,   .what = 0),
	    C(reply_from_other_host4_no_flow,     reply_mismatch, 4, UDP,   .what = 1),
	    C(reply_other_proto4_no_flow,         reply_mismatch, 4, UDP,   .what = 2),
	    C(reply_from_other_port6_no_flow,     reply_mismatch, 6, UDP,   .what = 0),
	    C(reply_from_other_host6_no_flow,     reply_mismatch, 6, UDP,   .what = 1),
	    C(reply_other_proto6_no_flow,         reply_mismatch, 6, UDP,   .what = 2),
	    C(unauthorised_source4,               unauthorised,   4, UDP),
	    C(unauthorised_source6,               unauthorised,   6, UDP),
	    C(tcp4_ack_opens_no_flow,             tcp_not_syn,    4, TCP,   .tcp_flags = PKT_TCP_ACK),
	    C(tcp6_ack_opens_no_flow,             tcp_not_syn,    6, TCP,   .tcp_flags = PKT_TCP_ACK),
	    C(tcp4_rst_opens_no_flow,             tcp_not_syn,    4, TCP,   .tcp_flags = PKT_TCP_RST),
	    C(tcp4_fin_opens_no_flow,             tcp_not_syn,    4, TCP,   .tcp_flags = PKT_TCP_FIN | PKT_TCP_ACK),
	    C(tcp6_rst_opens_no_flow,             tcp_not_syn,    6, TCP,   .tcp_flags = PKT_TCP_RST),
	    C(tcp6_fin_opens_no_flow,             tcp_not_syn,    6, TCP,   .tcp_flags = PKT_TCP_FIN | PKT_TCP_ACK),
	    C(hairpin4,                           hairpin,        4, UDP),
	    C(hairpin6,                           hairpin,        6, UDP),
	    T(ip4_options_preserved),
	    T(ip6_hopopts_dstopts_translated),
	    T(ip6_routing_header_dropped),
	    T(ip4_address_options_dropped),
	    T(ip6_home_address_dropped),
	    T(ip6_atomic_fragment_translated),
	    C(tcp4_timestamps_restored,           tcp_timestamps, 4, TCP),
	    C(tcp6_timestamps_restored,           tcp_timestamps, 6, TCP),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
