/*
 * Malformed input: every class of broken packet gets its own named drop
 * reason. Each packet is handed to the engine in a heap buffer of exactly its
 * length (lab_process), so the ASan build also proves that no check reads
 * past the end.
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

/* A valid outbound packet of <proto> to start breaking. */
static void base(struct pkt *p, int family, uint8_t proto)
{
	struct pkt_spec s;

	lab_spec(&s, family, proto, 40300, 443);
	pkt_build(p, &s);
}

static void expect(void **state, struct pkt *p, enum cfr_drop reason)
{
	struct cfr_pkt r = lab_process(*state, p, T0);

	lab_expect_drop(&r, reason);
}

/* Cut the packet to <len> bytes and make the IP length fields agree. */
static void cut(struct pkt *p, uint32_t len)
{
	p->len = len;
	if (p->data[0] >> 4 == 4) {
		pkt_put16(p->data + 2, (uint16_t)len);
		pkt_fix_ip4_csum(p->data);
	} else {
		pkt_put16(p->data + 4, (uint16_t)(len - 40));
	}
}

static void empty_packet(void **state)
{
	struct pkt p = {.len = 0};

	expect(state, &p, CFR_DROP_TRUNCATED);
}

static void one_byte_packet(void **state)
{
	struct pkt p = {.data = {0x45}, .len = 1};

	expect(state, &p, CFR_DROP_TRUNCATED);
}

static void ip4_shorter_than_header(void **state)
{
	struct pkt p;

	base(&p, 4, IPPROTO_UDP);
	p.len = 19;
	expect(state, &p, CFR_DROP_TRUNCATED);
}

static void ip6_shorter_than_header(void **state)
{
	struct pkt p;

	base(&p, 6, IPPROTO_UDP);
	p.len = 39;
	expect(state, &p, CFR_DROP_TRUNCATED);
}

static void bad_version(void **state, uint8_t v)
{
	struct pkt p;

	base(&p, 4, IPPROTO_UDP);
	p.data[0] = (uint8_t)(v << 4 | 5);
	pkt_fix_ip4_csum(p.data);
	expect(state, &p, CFR_DROP_BAD_VERSION);
}

static void version_5(void **state)
{
	bad_version(state, 5);
}

static void version_0(void **state)
{
	bad_version(state, 0);
}

static void version_15(void **state)
{
	bad_version(state, 15);
}

static void ihl(void **state, uint8_t words)
{
	struct pkt p;

	base(&p, 4, IPPROTO_UDP);
	p.data[0] = (uint8_t)(0x40 | words);
	pkt_fix_ip4_csum(p.data);
	expect(state, &p, CFR_DROP_BAD_IP_HEADER);
}

static void ihl_below_5(void **state)
{
	ihl(state, 4);
}

static void ihl_zero(void **state)
{
	ihl(state, 0);
}

/* 60 header bytes claimed in a 52-byte packet. */
static void ihl_beyond_length(void **state)
{
	ihl(state, 15);
}

/*
 * The buffer ends before the length the IP header states: the packet lost
 * its tail, so it is truncated (an inconsistent header is BAD_IP_HEADER).
 */
static void total_length_beyond_buffer(void **state)
{
	struct pkt p;

	base(&p, 4, IPPROTO_UDP);
	pkt_put16(p.data + 2, (uint16_t)(p.len + 10));
	pkt_fix_ip4_csum(p.data);
	expect(state, &p, CFR_DROP_TRUNCATED);
}

static void total_length_below_ihl(void **state)
{
	struct pkt p;

	base(&p, 4, IPPROTO_UDP);
	pkt_put16(p.data + 2, 16);
	pkt_fix_ip4_csum(p.data);
	expect(state, &p, CFR_DROP_BAD_IP_HEADER);
}

static void bad_ip4_checksum(void **state)
{
	struct pkt p;

	base(&p, 4, IPPROTO_UDP);
	p.data[10] ^= 0x01;
	expect(state, &p, CFR_DROP_BAD_IP_CHECKSUM);
}

static void ip6_payload_length_beyond_buffer(void **state)
{
	struct pkt p;

	base(&p, 6, IPPROTO_UDP);
	pkt_put16(p.data + 4, (uint16_t)(p.len - 40 + 1));
	expect(state, &p, CFR_DROP_TRUNCATED);
}

/* The IP lengths are right, but the transport header does not fit. */
static void truncated_l4(void **state, int family, uint8_t proto, uint32_t l4_bytes)
{
	struct pkt p;

	base(&p, family, proto);
	cut(&p, (family == 4 ? 20 : 40) + l4_bytes);
	expect(state, &p, CFR_DROP_TRUNCATED);
}

static void truncated_tcp4(void **state)
{
	truncated_l4(state, 4, IPPROTO_TCP, 10);
}

static void truncated_tcp4_19(void **state)
{
	truncated_l4(state, 4, IPPROTO_TCP, 19);
}

static void truncated_udp4(void **state)
{
	truncated_l4(state, 4, IPPROTO_UDP, 6);
}

static void truncated_icmp4(void **state)
{
	truncated_l4(state, 4, IPPROTO_ICMP, 4);
}

static void truncated_tcp6(void **state)
{
	truncated_l4(state, 6, IPPROTO_TCP, 12);
}

static void truncated_udp6(void **state)
{
	truncated_l4(state, 6, IPPROTO_UDP, 7);
}

static void truncated_icmp6(void **state)
{
	truncated_l4(state, 6, IPPROTO_ICMPV6, 3);
}

static void no_l4_at_all4(void **state)
{
	truncated_l4(state, 4, IPPROTO_UDP, 0);
}

/* A truncated reply to a live flow fails the same way inbound. */
static void truncated_inbound_tcp4(void **state)
{
	struct pkt out, p;
	struct pkt_spec s;

	lab_open_flow(*state, 4, IPPROTO_TCP, 40301, 443, &out, T0);
	lab_reply_spec(&s, &out);
	pkt_build(&p, &s);
	cut(&p, 30);
	expect(state, &p, CFR_DROP_TRUNCATED);
}

static void tcp_doff(void **state, int family, uint8_t doff)
{
	struct pkt p;
	size_t l3 = family == 4 ? 20 : 40;

	base(&p, family, IPPROTO_TCP);
	p.data[l3 + 12] = (uint8_t)(doff << 4);
	/* Keep the checksum right so that only the data offset is wrong. */
	pkt_put16(p.data + l3 + 16, 0);
	pkt_put16(p.data + l3 + 16,
	          pkt_csum(p.data + l3, p.len - l3,
	                   pkt_pseudo_sum(family, lab_sub(family), lab_remote(family), IPPROTO_TCP,
	                                  p.len - l3)));
	expect(state, &p, CFR_DROP_BAD_L4_HEADER);
}

static void tcp4_doff_below_5(void **state)
{
	tcp_doff(state, 4, 4);
}

static void tcp4_doff_zero(void **state)
{
	tcp_doff(state, 4, 0);
}

/* 60 header bytes claimed by a 44-byte segment. */
static void tcp4_doff_beyond_packet(void **state)
{
	tcp_doff(state, 4, 15);
}

static void tcp6_doff_below_5(void **state)
{
	tcp_doff(state, 6, 3);
}

static void tcp6_doff_beyond_packet(void **state)
{
	tcp_doff(state, 6, 15);
}

static void udp_length(void **state, int family, int delta_or_abs)
{
	struct pkt p;
	size_t l3 = family == 4 ? 20 : 40;

	base(&p, family, IPPROTO_UDP);
	pkt_put16(p.data + l3 + 4,
	          (uint16_t)(delta_or_abs < 0 ? -delta_or_abs : (int)(p.len - l3) + delta_or_abs));
	pkt_fix_l4_csum(p.data, p.len);
	expect(state, &p, CFR_DROP_BAD_L4_HEADER);
}

static void udp4_length_beyond_packet(void **state)
{
	udp_length(state, 4, 1);
}

static void udp4_length_below_8(void **state)
{
	udp_length(state, 4, -7);
}

static void udp6_length_beyond_packet(void **state)
{
	udp_length(state, 6, 8);
}

/* Bounding the chain bounds the work an attacker can make per packet. */
static void ext_hdr_chain_too_long(void **state)
{
	struct pkt_spec s;
	struct pkt p;
	unsigned i;

	lab_spec(&s, 6, IPPROTO_UDP, 40302, 443);
	for (i = 0; i < 20; i++)
		s.ext[i] = PKT_EXT_DSTOPTS;
	s.n_ext = 20;
	pkt_build(&p, &s);
	expect(state, &p, CFR_DROP_EXT_HDR_LIMIT);
}

/* An extension header whose length runs past the packet. */
static void ext_hdr_beyond_packet(void **state)
{
	struct pkt_spec s;
	struct cfr_pkt r;
	struct pkt p;

	lab_spec(&s, 6, IPPROTO_UDP, 40303, 443);
	s.ext[0] = PKT_EXT_DSTOPTS;
	s.n_ext = 1;
	pkt_build(&p, &s);
	p.data[41] = 200;
	r = lab_process(*state, &p, T0);
	assert_int_equal(r.verdict, CFR_VERDICT_DROP);
	assert_true(r.reason == CFR_DROP_TRUNCATED || r.reason == CFR_DROP_BAD_IP_HEADER);
}

/* RFC 5095: a routing header with segments left would send the packet elsewhere. */
static void routing_hdr_segments_left(void **state)
{
	struct pkt_spec s;
	struct pkt p;

	lab_spec(&s, 6, IPPROTO_UDP, 40304, 443);
	s.ext[0] = PKT_EXT_ROUTING;
	s.n_ext = 1;
	s.rh_segleft = 1;
	pkt_build(&p, &s);
	expect(state, &p, CFR_DROP_ROUTING_HDR);
}

static void unsupported(void **state, int family, uint8_t proto)
{
	struct pkt_spec s;
	struct pkt p;

	lab_spec(&s, family, IPPROTO_UDP, 40305, 443);
	s.proto = proto;
	pkt_build(&p, &s);
	expect(state, &p, CFR_DROP_UNSUPPORTED_PROTO);
}

static void gre4_unsupported(void **state)
{
	unsupported(state, 4, 47);
}

static void sctp4_unsupported(void **state)
{
	unsupported(state, 4, 132);
}

static void sctp6_unsupported(void **state)
{
	unsupported(state, 6, 132);
}

static void icmp4_in_ip6_unsupported(void **state)
{
	unsupported(state, 6, IPPROTO_ICMP);
}

static void unsupported_icmp(void **state, int family, uint8_t type)
{
	struct pkt_spec s;
	struct pkt p;

	lab_spec(&s, family, IPPROTO_ICMP, 0x1234, 0);
	s.icmp_type = type;
	pkt_build(&p, &s);
	expect(state, &p, CFR_DROP_UNSUPPORTED_ICMP);
}

static void icmp4_redirect_unsupported(void **state)
{
	unsupported_icmp(state, 4, 5);
}

static void icmp4_timestamp_unsupported(void **state)
{
	unsupported_icmp(state, 4, 13);
}

static void icmp6_redirect_unsupported(void **state)
{
	unsupported_icmp(state, 6, 137);
}

static void icmp6_router_solicit_unsupported(void **state)
{
	unsupported_icmp(state, 6, 133);
}

#define T(f) cmocka_unit_test_setup_teardown(f, lab_setup, lab_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(empty_packet),
	    T(one_byte_packet),
	    T(ip4_shorter_than_header),
	    T(ip6_shorter_than_header),
	    T(version_5),
	    T(version_0),
	    T(version_15),
	    T(ihl_below_5),
	    T(ihl_zero),
	    T(ihl_beyond_length),
	    T(total_length_beyond_buffer),
	    T(total_length_below_ihl),
	    T(bad_ip4_checksum),
	    T(ip6_payload_length_beyond_buffer),
	    T(truncated_tcp4),
	    T(truncated_tcp4_19),
	    T(truncated_udp4),
	    T(truncated_icmp4),
	    T(truncated_tcp6),
	    T(truncated_udp6),
	    T(truncated_icmp6),
	    T(no_l4_at_all4),
	    T(truncated_inbound_tcp4),
	    T(tcp4_doff_below_5),
	    T(tcp4_doff_zero),
	    T(tcp4_doff_beyond_packet),
	    T(tcp6_doff_below_5),
	    T(tcp6_doff_beyond_packet),
	    T(udp4_length_beyond_packet),
	    T(udp4_length_below_8),
	    T(udp6_length_beyond_packet),
	    T(ext_hdr_chain_too_long),
	    T(ext_hdr_beyond_packet),
	    T(routing_hdr_segments_left),
	    T(gre4_unsupported),
	    T(sctp4_unsupported),
	    T(sctp6_unsupported),
	    T(icmp4_in_ip6_unsupported),
	    T(icmp4_redirect_unsupported),
	    T(icmp4_timestamp_unsupported),
	    T(icmp6_redirect_unsupported),
	    T(icmp6_router_solicit_unsupported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
