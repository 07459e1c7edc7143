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
static void inbound_error(void **state, int family, uint8_t proto, const uint8_t *from,
                          uint8_t type, uint8_t code, uint32_t rest, enum quote q)
{
	struct pkt orig, out, err, err_orig;
	struct pkt_info o, e, eo, in;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, family, proto, 40100, 443);
	pkt_build(&orig, &s);
	out = orig;
	r = lab_process(*state, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);

	parse_ok(&out, &o);
	pkt_build_icmp_error(&err_orig, family, from, o.src, type, code, rest, out.data,
	                     quote_len(&out, q));
	err = err_orig;
	r = lab_process(*state, &err, T0 + 5);
	lab_expect_forward(&r, CFR_DIR_IN);
	lab_expect_checksums(&err);

	parse_ok(&orig, &o);
	parse_ok(&err, &e);
	parse_ok(&err_orig, &eo);
	assert_memory_equal(e.dst, o.src, 16);
	assert_memory_equal(e.src, from, 16);
	assert_int_equal(e.icmp_type, type);
	assert_int_equal(e.icmp_code, code);
	assert_int_equal(e.icmp_rest, rest);
	assert_int_equal(e.ip_len, eo.ip_len);

	assert_int_equal(
	    pkt_parse(err.data + pkt_inner_off(&e), e.ip_len - pkt_inner_off(&e), true, &in), 0);
	assert_memory_equal(in.src, o.src, 16);
	assert_memory_equal(in.dst, o.dst, 16);
	assert_int_equal(in.sport, o.sport);
	assert_int_equal(in.dport, o.dport);
	assert_int_equal(in.proto, o.proto);
}

static void in_host_unreach_udp4_from_router(void **state)
{
	inbound_error(state, 4, IPPROTO_UDP, lab_router(4), 3, 1, 0, QUOTE_8);
}

static void in_port_unreach_udp4_from_remote(void **state)
{
	inbound_error(state, 4, IPPROTO_UDP, lab_remote(4), 3, 3, 0, QUOTE_FULL);
}

static void in_frag_needed_tcp4_keeps_mtu(void **state)
{
	inbound_error(state, 4, IPPROTO_TCP, lab_router(4), 3, 4, 1400, QUOTE_8);
}

static void in_frag_needed_udp4_full_quote(void **state)
{
	inbound_error(state, 4, IPPROTO_UDP, lab_router(4), 3, 4, 1280, QUOTE_FULL);
}

static void in_time_exceeded_tcp4(void **state)
{
	inbound_error(state, 4, IPPROTO_TCP, lab_router(4), 11, 0, 0, QUOTE_8);
}

static void in_time_exceeded_echo4(void **state)
{
	inbound_error(state, 4, IPPROTO_ICMP, lab_router(4), 11, 0, 0, QUOTE_FULL);
}

static void in_ptb_udp6_keeps_mtu(void **state)
{
	inbound_error(state, 6, IPPROTO_UDP, lab_router(6), 2, 0, 1280, QUOTE_FULL);
}

static void in_ptb_tcp6_keeps_mtu(void **state)
{
	inbound_error(state, 6, IPPROTO_TCP, lab_router(6), 2, 0, 1400, QUOTE_FULL);
}

static void in_port_unreach_udp6_from_remote(void **state)
{
	inbound_error(state, 6, IPPROTO_UDP, lab_remote(6), 1, 4, 0, QUOTE_FULL);
}

static void in_addr_unreach_tcp6_truncated(void **state)
{
	inbound_error(state, 6, IPPROTO_TCP, lab_router(6), 1, 3, 0, QUOTE_8);
}

static void in_time_exceeded_udp6(void **state)
{
	inbound_error(state, 6, IPPROTO_UDP, lab_router(6), 3, 0, 0, QUOTE_FULL);
}

static void in_time_exceeded_echo6(void **state)
{
	inbound_error(state, 6, IPPROTO_ICMPV6, lab_router(6), 3, 0, 0, QUOTE_FULL);
}

/*
 * When the whole packet is quoted, its transport checksum was right as the
 * alias sent it; restoring address and port must keep it right, or the
 * subscriber's stack may discard the error (Linux checks nothing here, others
 * may).
 */
static void full_quote_inner_l4(void **state, int family)
{
	struct pkt out, err;
	struct pkt_info o;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, family, IPPROTO_UDP, 40101, 443);
	r = lab_send(*state, &s, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_equal(pkt_verify_inner_l4(out.data, out.len), -1);
	parse_ok(&out, &o);
	pkt_build_icmp_error(&err, family, lab_router(family), o.src, family == 4 ? 3 : 1,
	                     family == 4 ? 1 : 3, 0, out.data, out.len);
	assert_int_equal(pkt_verify_inner_l4(err.data, err.len), 0);
	r = lab_process(*state, &err, T0 + 1);
	lab_expect_forward(&r, CFR_DIR_IN);
	assert_int_equal(pkt_verify_inner_l4(err.data, err.len), 0);
}

static void full_quote_inner_udp4_checksum_restored(void **state)
{
	full_quote_inner_l4(state, 4);
}

static void full_quote_inner_udp6_checksum_restored(void **state)
{
	full_quote_inner_l4(state, 6);
}

/*
 * The subscriber answers an inbound UDP packet with "port unreachable",
 * quoting it as received: the error must leave under the flow's alias, the
 * quoted destination must be the alias and port the remote used, and the
 * quote ends 8 bytes into the quoted transport header.
 */
static void outbound_error(void **state, int family)
{
	struct pkt out, in, err;
	struct pkt_info t, i, e, q;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_open_flow(*state, family, IPPROTO_UDP, 40102, 443, &out, T0);
	parse_ok(&out, &t);
	lab_reply_spec(&s, &out);
	r = lab_send(*state, &s, &in, T0 + 1);
	lab_expect_forward(&r, CFR_DIR_IN);
	parse_ok(&in, &i);

	pkt_build_icmp_error(&err, family, i.dst, i.src, family == 4 ? 3 : 1, family == 4 ? 3 : 4,
	                     0, in.data, in.len);
	r = lab_process(*state, &err, T0 + 2);
	lab_expect_forward(&r, CFR_DIR_OUT);
	lab_expect_checksums(&err);
	parse_ok(&err, &e);
	assert_memory_equal(e.src, t.src, 16);
	assert_memory_equal(e.dst, lab_remote(family), 16);
	assert_int_equal(
	    pkt_parse(err.data + pkt_inner_off(&e), e.ip_len - pkt_inner_off(&e), true, &q), 0);
	assert_memory_equal(q.src, lab_remote(family), 16);
	assert_int_equal(q.sport, 443);
	assert_memory_equal(q.dst, t.src, 16);
	assert_int_equal(q.dport, t.sport);
	assert_int_equal(e.ip_len, pkt_inner_off(&e) + (family == 4 ? 20 : 40) + 8);
	assert_int_equal(err.len, e.ip_len);
}

static void out_port_unreach_udp4(void **state)
{
	outbound_error(state, 4);
}

static void out_port_unreach_udp6(void **state)
{
	outbound_error(state, 6);
}

/* An error about a packet that no flow sent, to a pool address. */
static void error_no_flow(void **state, int family)
{
	struct pkt_spec s;
	struct pkt quoted, err;
	struct cfr_pkt r;

	lab_spec(&s, family, IPPROTO_UDP, 40103, 443);
	pkt_addr(family, family == 4 ? "192.0.2.33" : "2001:db8:a1::33", s.src);
	pkt_build(&quoted, &s);
	pkt_build_icmp_error(&err, family, lab_router(family), s.src, family == 4 ? 3 : 1, 1, 0,
	                     quoted.data, quoted.len);
	r = lab_process(*state, &err, T0);
	lab_expect_drop(&r, CFR_DROP_ICMP_NO_FLOW);
}

static void error_no_flow4(void **state)
{
	error_no_flow(state, 4);
}

static void error_no_flow6(void **state)
{
	error_no_flow(state, 6);
}

/* Build a valid error about a live flow into <err>; <quote> receives what it quotes. */
static void error_for_flow(void **state, int family, struct pkt *err, struct pkt *quote)
{
	struct pkt_info o;

	lab_open_flow(*state, family, IPPROTO_UDP, 40104, 443, quote, T0);
	parse_ok(quote, &o);
	pkt_build_icmp_error(err, family, lab_router(family), o.src, family == 4 ? 11 : 3, 0, 0,
	                     quote->data, quote->len);
}

static void error_bad_checksum(void **state, int family)
{
	struct pkt err, quote;
	struct pkt_info e;
	struct cfr_pkt r;

	error_for_flow(state, family, &err, &quote);
	parse_ok(&err, &e);
	err.data[e.l3_len + 2] ^= 0x5a;
	r = lab_process(*state, &err, T0 + 1);
	lab_expect_drop(&r, CFR_DROP_ICMP_BAD_CHECKSUM);
}

static void error_bad_checksum4(void **state)
{
	error_bad_checksum(state, 4);
}

static void error_bad_checksum6(void **state)
{
	error_bad_checksum(state, 6);
}

/* Rebuild the error around an edited copy of the quote (<qlen> bytes of it). */
static void bad_inner(void **state, int family, void (*edit)(uint8_t *q), size_t qlen)
{
	struct pkt err, quote;
	struct pkt_info o;
	struct cfr_pkt r;

	error_for_flow(state, family, &err, &quote);
	parse_ok(&quote, &o);
	edit(quote.data);
	pkt_build_icmp_error(&err, family, lab_router(family), o.src, family == 4 ? 11 : 3, 0, 0,
	                     quote.data, qlen ? qlen : quote.len);
	r = lab_process(*state, &err, T0 + 1);
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

static void error_inner_bad_version4(void **state)
{
	bad_inner(state, 4, set_version_7, 0);
}

static void error_inner_bad_version6(void **state)
{
	bad_inner(state, 6, set_version_7, 0);
}

static void error_inner_ihl_below_5(void **state)
{
	bad_inner(state, 4, set_ihl_3, 0);
}

/* A quote shorter than an IP header cannot name a flow. */
static void error_inner_truncated_ip4(void **state)
{
	bad_inner(state, 4, no_edit, 12);
}

static void error_inner_truncated_ip6(void **state)
{
	bad_inner(state, 6, no_edit, 30);
}

/* The ports are the first 4 bytes of the transport header; fewer cannot name a flow. */
static void error_inner_no_ports4(void **state)
{
	bad_inner(state, 4, no_edit, 22);
}

static void error_inner_no_ports6(void **state)
{
	bad_inner(state, 6, no_edit, 42);
}

/*
 * A fragmented ICMP error cannot be rewritten (the checksum covers data in
 * later fragments) and has a distinct reason.
 */
static void fragmented_error(void **state, int family)
{
	static uint8_t big[1200];
	struct pkt quote, err, frags[4];
	struct pkt_spec s;
	struct pkt_info o;
	struct cfr_pkt r;

	lab_spec(&s, family, IPPROTO_UDP, 40105, 443);
	s.payload = big;
	s.payload_len = sizeof big;
	r = lab_send(*state, &s, &quote, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	parse_ok(&quote, &o);
	pkt_build_icmp_error(&err, family, lab_router(family), o.src, family == 4 ? 3 : 2,
	                     family == 4 ? 4 : 0, 1000, quote.data, quote.len);
	assert_int_equal(pkt_fragment(&err, 600, 77, frags, 4), 3);
	r = lab_process(*state, &frags[0], T0 + 1);
	lab_expect_drop(&r, CFR_DROP_FRAG_ICMP_ERROR);
}

static void fragmented_error4(void **state)
{
	fragmented_error(state, 4);
}

static void fragmented_error6(void **state)
{
	fragmented_error(state, 6);
}

#define T(f) cmocka_unit_test_setup_teardown(f, lab_setup, lab_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(in_host_unreach_udp4_from_router),
	    T(in_port_unreach_udp4_from_remote),
	    T(in_frag_needed_tcp4_keeps_mtu),
	    T(in_frag_needed_udp4_full_quote),
	    T(in_time_exceeded_tcp4),
	    T(in_time_exceeded_echo4),
	    T(in_ptb_udp6_keeps_mtu),
	    T(in_ptb_tcp6_keeps_mtu),
	    T(in_port_unreach_udp6_from_remote),
	    T(in_addr_unreach_tcp6_truncated),
	    T(in_time_exceeded_udp6),
	    T(in_time_exceeded_echo6),
	    T(full_quote_inner_udp4_checksum_restored),
	    T(full_quote_inner_udp6_checksum_restored),
	    T(out_port_unreach_udp4),
	    T(out_port_unreach_udp6),
	    T(error_no_flow4),
	    T(error_no_flow6),
	    T(error_bad_checksum4),
	    T(error_bad_checksum6),
	    T(error_inner_bad_version4),
	    T(error_inner_bad_version6),
	    T(error_inner_ihl_below_5),
	    T(error_inner_truncated_ip4),
	    T(error_inner_truncated_ip6),
	    T(error_inner_no_ports4),
	    T(error_inner_no_ports6),
	    T(fragmented_error4),
	    T(fragmented_error6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
