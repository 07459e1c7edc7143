/*
 * ICMP and ICMPv6 errors (RFC 5508, RFC 4443): errors about a translated flow
 * coming back from the remote or any router reach the subscriber with the
 * outer destination and the quoted packet restored, the MTU of
 * "fragmentation needed" / "packet too big" intact (PMTUD must keep working)
 * and every checksum right; errors a subscriber sends about inbound traffic
 * go out under the alias; and the error-specific drops.
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

enum quote { QUOTE_8, QUOTE_FULL };

/*
 * The parameters of a case (the table in main): the family and protocol of
 * the subscriber's flow the error is about, and what one test or another
 * also takes.
 */
struct icase {
	int family;
	uint8_t proto;
	bool from_remote;         /* inbound_error: from the remote, else a router */
	uint8_t type, code;       /* inbound_error: the error */
	uint32_t rest;            /* inbound_error: its MTU field, if any */
	enum quote quote;         /* inbound_error: how much it quotes */
	void (*edit)(uint8_t *q); /* bad_inner: what breaks the quote */
	size_t qlen;              /* bad_inner: bytes quoted, 0 for all */
};

static void parse_ok(const struct pkt *p, struct pkt_info *pi)
{
	assert_int_equal(pkt_parse(p->data, p->len, false, pi), 0);
}

/* The part of <p> an error quotes: IP header plus 8 bytes (RFC 792) or all of it. */
static size_t quote_len(const struct pkt *p, enum quote q)
{
	struct pkt_info pi;

	parse_ok(p, &pi);
	return q == QUOTE_FULL ? p->len : pi.l3_len + 8;
}

/*
 * Open a flow with <proto> from the subscriber, let <from> send an error of
 * <type>/<code>/<rest> about the translated packet to the alias, and check
 * what reaches the subscriber.
 */
static void inbound_error(void **state)
{
	const struct lab_case *lc = *state;
	const struct icase *c = lc->params;
	const uint8_t *from = c->from_remote ? lab_remote(c->family) : lab_router(c->family);
	struct pkt orig, out, err, err_orig;
	struct pkt_info o, e, eo, in;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, c->family, c->proto, 40100, 443);
	pkt_build(&orig, &s);
	out = orig;
	r = lab_process(lc->eng, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);

	parse_ok(&out, &o);
	pkt_build_icmp_error(&err_orig, c->family, from, o.src, c->type, c->code, c->rest, out.data,
	                     quote_len(&out, c->quote));
	err = err_orig;
	r = lab_process(lc->eng, &err, T0 + 5);
	lab_expect_forward(&r, CFR_DIR_IN);
	lab_expect_checksums(&err);

	parse_ok(&orig, &o);
	parse_ok(&err, &e);
	parse_ok(&err_orig, &eo);
	assert_memory_equal(e.dst, o.src, 16);
	assert_memory_equal(e.src, from, 16);
	assert_int_equal(e.icmp_type, c->type);
	assert_int_equal(e.icmp_code, c->code);
	assert_int_equal(e.icmp_rest, c->rest);
	assert_int_equal(e.ip_len, eo.ip_len);

	assert_int_equal(
	    pkt_parse(err.data + pkt_inner_off(&e), e.ip_len - pkt_inner_off(&e), true, &in), 0);
	assert_memory_equal(in.src, o.src, 16);
	assert_memory_equal(in.dst, o.dst, 16);
	assert_int_equal(in.sport, o.sport);
	assert_int_equal(in.dport, o.dport);
	assert_int_equal(in.proto, o.proto);
}

/*
 * When the whole packet is quoted, its transport checksum was right as the
 * alias sent it; restoring address and port must keep it right, or the
 * subscriber's stack may discard the error (Linux checks nothing here, others
 * may).
 */
static void full_quote_inner_l4(void **state)
{
	const struct lab_case *lc = *state;
	const struct icase *c = lc->params;
	struct pkt out, err;
	struct pkt_info o;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, c->family, c->proto, 40101, 443);
	r = lab_send(lc->eng, &s, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_equal(pkt_verify_inner_l4(out.data, out.len), -1);
	parse_ok(&out, &o);
	pkt_build_icmp_error(&err, c->family, lab_router(c->family), o.src, c->family == 4 ? 3 : 1,
	                     c->family == 4 ? 1 : 3, 0, out.data, out.len);
	assert_int_equal(pkt_verify_inner_l4(err.data, err.len), 0);
	r = lab_process(lc->eng, &err, T0 + 1);
	lab_expect_forward(&r, CFR_DIR_IN);
	assert_int_equal(pkt_verify_inner_l4(err.data, err.len), 0);
}

/*
 * The subscriber answers an inbound UDP packet with "port unreachable",
 * quoting it as received: the error must leave under the flow's alias, the
 * quoted destination must be the alias and port the remote used, and the
 * quote ends 8 bytes into the quoted transport header.
 */
static void outbound_error(void **state)
{
	const struct lab_case *lc = *state;
	const struct icase *c = lc->params;
	struct pkt out, in, err;
	struct pkt_info t, i, e, q;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_open_flow(lc->eng, c->family, c->proto, 40102, 443, &out, T0);
	parse_ok(&out, &t);
	lab_reply_spec(&s, &out);
	r = lab_send(lc->eng, &s, &in, T0 + 1);
	lab_expect_forward(&r, CFR_DIR_IN);
	parse_ok(&in, &i);

	pkt_build_icmp_error(&err, c->family, i.dst, i.src, c->family == 4 ? 3 : 1,
	                     c->family == 4 ? 3 : 4, 0, in.data, in.len);
	r = lab_process(lc->eng, &err, T0 + 2);
	lab_expect_forward(&r, CFR_DIR_OUT);
	lab_expect_checksums(&err);
	parse_ok(&err, &e);
	assert_memory_equal(e.src, t.src, 16);
	assert_memory_equal(e.dst, lab_remote(c->family), 16);
	assert_int_equal(
	    pkt_parse(err.data + pkt_inner_off(&e), e.ip_len - pkt_inner_off(&e), true, &q), 0);
	assert_memory_equal(q.src, lab_remote(c->family), 16);
	assert_int_equal(q.sport, 443);
	assert_memory_equal(q.dst, t.src, 16);
	assert_int_equal(q.dport, t.sport);
	assert_int_equal(e.ip_len, pkt_inner_off(&e) + (c->family == 4 ? 20 : 40) + 8);
	assert_int_equal(err.len, e.ip_len);
}

/* An error about a packet that no flow sent, to a pool address. */
static void error_no_flow(void **state)
{
	const struct lab_case *lc = *state;
	const struct icase *c = lc->params;
	struct pkt_spec s;
	struct pkt quoted, err;
	struct cfr_pkt r;

	lab_spec(&s, c->family, c->proto, 40103, 443);
	pkt_addr(c->family, c->family == 4 ? "192.0.2.33" : "2001:db8:a1::33", s.src);
	pkt_build(&quoted, &s);
	pkt_build_icmp_error(&err, c->family, lab_router(c->family), s.src, c->family == 4 ? 3 : 1,
	                     1, 0, quoted.data, quoted.len);
	r = lab_process(lc->eng, &err, T0);
	lab_expect_drop(&r, CFR_DROP_ICMP_NO_FLOW);
}

/* Build a valid error about a live flow into <err>; <quote> receives what it quotes. */
static void error_for_flow(const struct lab_case *lc, struct pkt *err, struct pkt *quote)
{
	const struct icase *c = lc->params;
	struct pkt_info o;

	lab_open_flow(lc->eng, c->family, c->proto, 40104, 443, quote, T0);
	parse_ok(quote, &o);
	pkt_build_icmp_error(err, c->family, lab_router(c->family), o.src, c->family == 4 ? 11 : 3,
	                     0, 0, quote->data, quote->len);
}

static void error_bad_checksum(void **state)
{
	const struct lab_case *lc = *state;
	struct pkt err, quote;
	struct pkt_info e;
	struct cfr_pkt r;

	error_for_flow(lc, &err, &quote);
	parse_ok(&err, &e);
	err.data[e.l3_len + 2] ^= 0x5a;
	r = lab_process(lc->eng, &err, T0 + 1);
	lab_expect_drop(&r, CFR_DROP_ICMP_BAD_CHECKSUM);
}

/* Rebuild the error around an edited copy of the quote (<qlen> bytes of it). */
static void bad_inner(void **state)
{
	const struct lab_case *lc = *state;
	const struct icase *c = lc->params;
	struct pkt err, quote;
	struct pkt_info o;
	struct cfr_pkt r;

	error_for_flow(lc, &err, &quote);
	parse_ok(&quote, &o);
	c->edit(quote.data);
	pkt_build_icmp_error(&err, c->family, lab_router(c->family), o.src, c->family == 4 ? 11 : 3,
	                     0, 0, quote.data, c->qlen ? c->qlen : quote.len);
	r = lab_process(lc->eng, &err, T0 + 1);
	lab_expect_drop(&r, CFR_DROP_ICMP_BAD_INNER);
}

static void set_version_7(uint8_t *q)
{
	q[0] = (uint8_t)(0x70 | (q[0] & 15));
}

static void set_ihl_3(uint8_t *q)
{
	q[0] = 0x43;
}

static void no_edit(uint8_t *q)
{
	(void)q;
}

/*
 * A fragmented ICMP error cannot be rewritten (the checksum covers data in
 * later fragments) and has a distinct reason.
 */
static void fragmented_error(void **state)
{
	const struct lab_case *lc = *state;
	const struct icase *c = lc->params;
	static uint8_t big[1200];
	struct pkt quote, err, frags[4];
	struct pkt_spec s;
	struct pkt_info o;
	struct cfr_pkt r;

	lab_spec(&s, c->family, c->proto, 40105, 443);
	s.payload = big;
	s.payload_len = sizeof big;
	r = lab_send(lc->eng, &s, &quote, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	parse_ok(&quote, &o);
	pkt_build_icmp_error(&err, c->family, lab_router(c->family), o.src, c->family == 4 ? 3 : 2,
	                     c->family == 4 ? 4 : 0, 1000, quote.data, quote.len);
	assert_int_equal(pkt_fragment(&err, 600, 77, frags, 4), 3);
	r = lab_process(lc->eng, &frags[0], T0 + 1);
	lab_expect_drop(&r, CFR_DROP_FRAG_ICMP_ERROR);
}

/* Case NAME: TEST for FAMILY and PROTOCOL (TCP, UDP, ICMP4 or ICMP6: echo), then the rest. */
#define C(name, test, fam, prot, ...)                                                              \
	LAB_CASE(name, test, struct icase, .family = (fam), .proto = IPPROTO_##prot, __VA_ARGS__)
#define IPPROTO_ICMP4 IPPROTO_ICMP
#define IPPROTO_ICMP6 IPPROTO_ICMPV6
/* inbound_error's: from the remote or a router, type, code, MTU field, how much is quoted. */
#define REMOTE(t, c, mtu, q)                                                                       \
	.from_remote = true, .type = (t), .code = (c), .rest = (mtu), .quote = (q)
#define ROUTER(t, c, mtu, q)                                                                       \
	.from_remote = false, .type = (t), .code = (c), .rest = (mtu), .quote = (q)

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
	    /* case name                                test                 family, protocol, parameters */
	    C(in_host_unreach_udp4_from_router,         inbound_error,       4, UDP,   ROUTER(3, 1, 0, QUOTE_8)),
	    C(in_port_unreach_udp4_from_remote,         inbound_error,       4, UDP,   REMOTE(3, 3, 0, QUOTE_FULL)),
	    C(in_frag_needed_tcp4_keeps_mtu,            inbound_error,       4, TCP,   ROUTER(3, 4, 1400, QUOTE_8)),
	    C(in_frag_needed_udp4_full_quote,           inbound_error,       4, UDP,   ROUTER(3, 4, 1280, QUOTE_FULL)),
	    C(in_time_exceeded_tcp4,                    inbound_error,       4, TCP,   ROUTER(11, 0, 0, QUOTE_8)),
	    C(in_time_exceeded_udp4,                    inbound_error,       4, UDP,   ROUTER(11, 0, 0, QUOTE_FULL)),
	    C(in_time_exceeded_echo4,                   inbound_error,       4, ICMP4, ROUTER(11, 0, 0, QUOTE_FULL)),
	    C(in_ptb_udp6_keeps_mtu,                    inbound_error,       6, UDP,   ROUTER(2, 0, 1280, QUOTE_FULL)),
	    C(in_ptb_tcp6_keeps_mtu,                    inbound_error,       6, TCP,   ROUTER(2, 0, 1400, QUOTE_FULL)),
	    C(in_port_unreach_udp6_from_remote,         inbound_error,       6, UDP,   REMOTE(1, 4, 0, QUOTE_FULL)),
	    C(in_addr_unreach_tcp6_truncated,           inbound_error,       6, TCP,   ROUTER(1, 3, 0, QUOTE_8)),
	    C(in_time_exceeded_tcp6,                    inbound_error,       6, TCP,   ROUTER(3, 0, 0, QUOTE_8)),
	    C(in_time_exceeded_udp6,                    inbound_error,       6, UDP,   ROUTER(3, 0, 0, QUOTE_FULL)),
	    C(in_time_exceeded_echo6,                   inbound_error,       6, ICMP6, ROUTER(3, 0, 0, QUOTE_FULL)),
	    C(full_quote_inner_udp4_checksum_restored,  full_quote_inner_l4, 4, UDP),
	    C(full_quote_inner_udp6_checksum_restored,  full_quote_inner_l4, 6, UDP),
	    C(out_port_unreach_udp4,                    outbound_error,      4, UDP),
	    C(out_port_unreach_udp6,                    outbound_error,      6, UDP),
	    C(error_no_flow4,                           error_no_flow,       4, UDP),
	    C(error_no_flow6,                           error_no_flow,       6, UDP),
	    C(error_bad_checksum4,                      error_bad_checksum,  4, UDP),
	    C(error_bad_checksum6,                      error_bad_checksum,  6, UDP),
	    C(error_inner_bad_version4,                 bad_inner,           4, UDP,   .edit = set_version_7),
	    C(error_inner_bad_version6,                 bad_inner,           6, UDP,   .edit = set_version_7),
	    /* IPv6 has no header length to get wrong. */
	    C(error_inner_ihl_below_5,                  bad_inner,           4, UDP,   .edit = set_ihl_3),
	    C(error_inner_truncated_ip4,                bad_inner,           4, UDP,   .edit = no_edit, .qlen = 12),
	    C(error_inner_truncated_ip6,                bad_inner,           6, UDP,   .edit = no_edit, .qlen = 30),
	    C(error_inner_no_ports4,                    bad_inner,           4, UDP,   .edit = no_edit, .qlen = 22),
	    C(error_inner_no_ports6,                    bad_inner,           6, UDP,   .edit = no_edit, .qlen = 42),
	    C(fragmented_error4,                        fragmented_error,    4, UDP),
	    C(fragmented_error6,                        fragmented_error,    6, UDP),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
