/*
 * Checksums: first that the independent checker itself is right (an RFC 1071
 * known answer, and it notices a broken checksum of every kind); then that
 * every checksum the engine writes equals a full recomputation, bit for bit,
 * over thousands of random packets in both directions, and in the RFC 1624
 * corner cases where an incremental update most easily goes wrong: a result
 * of 0x0000 (which eqn. 2 of RFC 1141 turns into 0xffff), a UDP result of
 * 0xffff (a computed zero, RFC 768), and inputs that carry those values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "lab.h"
#include "seed.h"

#define T0             1000
#define RANDOM_PACKETS 5000

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

/* xorshift64*: reproducible, and independent of the engine's CSPRNG. */
static uint32_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

static void parse_ok(const struct pkt *p, struct pkt_info *pi)
{
	assert_int_equal(pkt_parse(p->data, p->len, false, pi), 0);
}

static uint16_t l4_csum_field(const struct pkt *p)
{
	struct pkt_info pi;

	parse_ok(p, &pi);
	return pkt_get16(p->data + pi.l3_len +
	                 (pi.proto == IPPROTO_TCP   ? 16
	                  : pi.proto == IPPROTO_UDP ? 6
	                                            : 2));
}

/*
 * Build the packet <before> that the engine will turn into <after> (the same
 * packet with the other side's addresses and ports), choosing its last
 * payload word so that <target> (one of the two) gets a full checksum of
 * zero. Adding the zero-word packet's own checksum as that word makes the
 * one's complement sum 0xffff, whose complement is 0x0000.
 */
static void craft(struct pkt *before, struct pkt_spec *bs, struct pkt_spec *as, bool on_after)
{
	static uint8_t payload[32];
	struct pkt_spec *target = on_after ? as : bs;
	struct pkt t;
	unsigned i;

	for (i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)(0x31 * i + 7);
	payload[30] = payload[31] = 0;
	bs->payload = as->payload = payload;
	bs->payload_len = as->payload_len = sizeof payload;
	pkt_build(&t, target);
	pkt_put16(payload + 30, l4_csum_field(&t));
	pkt_build(before, bs);
}

/* RFC 1071 section 3 example: the sum of these words is 0xddf2. */
static void rfc1071_known_answer(void **state)
{
	static const uint8_t d[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};

	(void)state;
	assert_int_equal(pkt_csum(d, sizeof d, 0), 0xffff & ~0xddf2);
	/* an odd tail byte is padded with zero */
	assert_int_equal(pkt_csum(d, 3, 0), 0xffff & ~(0x0001 + 0xf200));
}

/* The checker must be able to fail: flip each checksum and see it reported. */
static void checker_catches_each_checksum(void **state)
{
	struct pkt p, q, err;
	struct pkt_info pi;
	struct pkt_spec s;

	(void)state;
	lab_spec(&s, 4, IPPROTO_TCP, 1, 2);
	pkt_build(&p, &s);
	assert_int_equal(pkt_verify_checksums(p.data, p.len, NULL, 0), 0);
	q = p;
	q.data[10] ^= 1;
	assert_int_equal(pkt_verify_checksums(q.data, q.len, NULL, 0), 1);
	q = p;
	q.data[20 + 16] ^= 0x80;
	assert_int_equal(pkt_verify_checksums(q.data, q.len, NULL, 0), 1);

	/* 0xffff where 0x0000 is due: equal for a summing receiver, still the RFC 1624 bug */
	lab_spec(&s, 6, IPPROTO_ICMPV6, 1, 0);
	craft(&q, &s, &s, false);
	assert_int_equal(l4_csum_field(&q), 0);
	assert_int_equal(pkt_verify_checksums(q.data, q.len, NULL, 0), 0);
	parse_ok(&q, &pi);
	pkt_put16(q.data + pi.l3_len + 2, 0xffff);
	assert_int_equal(pkt_verify_checksums(q.data, q.len, NULL, 0), 1);

	/* the quoted IPv4 header of an error */
	p.data[10] ^= 1;
	pkt_build_icmp_error(&err, 4, lab_router(4), lab_sub(4), 3, 1, 0, p.data, 28);
	assert_int_equal(pkt_verify_checksums(err.data, err.len, NULL, 0), 1);
}

static void random_addr(int family, uint8_t *a)
{
	unsigned i;

	if (family == 4) {
		pkt_addr(4, "100.64.0.0", a);
		a[1] = (uint8_t)(64 + rnd() % 64);
		a[2] = (uint8_t)rnd();
		a[3] = (uint8_t)rnd();
	} else {
		pkt_addr(6, "2001:db8:100::", a);
		for (i = 6; i < 16; i++)
			a[i] = (uint8_t)rnd();
	}
}

/*
 * Random subscribers, ports, protocols and payloads (odd lengths included),
 * out and back: every checksum the engine writes must equal a recomputation.
 */
static void random_packets_both_ways(void **state)
{
	static const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP};
	static uint8_t payload[301];
	struct pkt out, in;
	struct pkt_spec s;
	struct cfr_pkt r;
	char why[160];
	unsigned i, j;

	rng_state ^= test_seed() * 0x9e3779b97f4a7c15ULL;
	if (rng_state == 0)
		rng_state = 1;
	print_message("random packets from %s\n", test_seed_note());
	for (i = 0; i < RANDOM_PACKETS; i++) {
		int family = rnd() % 2 ? 6 : 4;

		lab_spec(&s, family, protos[rnd() % 3], (uint16_t)rnd(),
		         (uint16_t)(1 + rnd() % 65535));
		random_addr(family, s.src);
		for (j = 0; j < sizeof payload; j++)
			payload[j] = (uint8_t)rnd();
		s.payload = payload;
		s.payload_len = rnd() % sizeof payload;
		s.tcp_ts = rnd() % 2;
		s.tsval = rnd();
		s.seq = rnd();
		s.icmp_seq = (uint16_t)rnd();
		r = lab_send(*state, &s, &out, T0 + i);
		lab_expect_forward(&r, CFR_DIR_OUT);
		if (pkt_verify_checksums(out.data, out.len, why, sizeof why))
			fail_msg("packet %u out: %s", i, why);

		lab_reply_spec(&s, &out);
		s.payload = payload;
		s.payload_len = rnd() % sizeof payload;
		s.tcp_ts = rnd() % 2;
		s.tsval = rnd();
		s.tsecr = rnd();
		r = lab_send(*state, &s, &in, T0 + i);
		lab_expect_forward(&r, CFR_DIR_IN);
		if (pkt_verify_checksums(in.data, in.len, why, sizeof why))
			fail_msg("packet %u in: %s", i, why);
	}
}

/* The full checksum of a packet whose one's complement sum is 0xffff (RFC 768 for UDP). */
static uint16_t zero_result(uint8_t proto)
{
	return proto == IPPROTO_UDP ? 0xffff : 0x0000;
}

static void corner(void **state, int family, uint8_t proto, enum cfr_dir dir, bool on_after)
{
	struct pkt open, p;
	struct pkt_spec sub, ext;
	struct pkt_info t;
	struct cfr_pkt r;

	lab_open_flow(*state, family, proto, 40600, 443, &open, T0);
	parse_ok(&open, &t);
	if (dir == CFR_DIR_OUT) {
		lab_spec(&sub, family, proto, 40600, 443);
		sub.tcp_flags = PKT_TCP_ACK;
		ext = sub;
		memcpy(ext.src, t.src, 16);
		ext.sport = t.sport;
		craft(&p, &sub, &ext, on_after);
	} else {
		lab_reply_spec(&ext, &open);
		ext.tcp_flags = PKT_TCP_ACK;
		sub = ext;
		memcpy(sub.dst, lab_sub(family), 16);
		if (proto == IPPROTO_TCP || proto == IPPROTO_UDP)
			sub.dport = 40600;
		else
			sub.sport = 40600;
		craft(&p, &ext, &sub, on_after);
	}
	if (!on_after)
		assert_int_equal(l4_csum_field(&p), zero_result(t.proto));
	r = lab_process(*state, &p, T0 + 1);
	lab_expect_forward(&r, dir);
	lab_expect_checksums(&p);
	if (on_after)
		assert_int_equal(l4_csum_field(&p), zero_result(t.proto));
}

#define CORNER(name, fam, proto, dir, after)                                                       \
	static void name(void **state)                                                             \
	{                                                                                          \
		corner(state, fam, proto, dir, after);                                             \
	}

/* Results that must come out as 0x0000 (TCP, ICMP) or 0xffff (UDP). */
CORNER(tcp4_out_result_zero, 4, IPPROTO_TCP, CFR_DIR_OUT, true)
CORNER(tcp4_in_result_zero, 4, IPPROTO_TCP, CFR_DIR_IN, true)
CORNER(udp4_out_result_ffff, 4, IPPROTO_UDP, CFR_DIR_OUT, true)
CORNER(udp4_in_result_ffff, 4, IPPROTO_UDP, CFR_DIR_IN, true)
CORNER(icmp4_out_result_zero, 4, IPPROTO_ICMP, CFR_DIR_OUT, true)
CORNER(icmp4_in_result_zero, 4, IPPROTO_ICMP, CFR_DIR_IN, true)
CORNER(tcp6_out_result_zero, 6, IPPROTO_TCP, CFR_DIR_OUT, true)
CORNER(tcp6_in_result_zero, 6, IPPROTO_TCP, CFR_DIR_IN, true)
CORNER(udp6_out_result_ffff, 6, IPPROTO_UDP, CFR_DIR_OUT, true)
CORNER(udp6_in_result_ffff, 6, IPPROTO_UDP, CFR_DIR_IN, true)
CORNER(icmp6_out_result_zero, 6, IPPROTO_ICMPV6, CFR_DIR_OUT, true)
CORNER(icmp6_in_result_zero, 6, IPPROTO_ICMPV6, CFR_DIR_IN, true)
/* Inputs that carry 0x0000 (TCP, ICMP) or 0xffff (UDP). */
CORNER(tcp4_out_input_zero, 4, IPPROTO_TCP, CFR_DIR_OUT, false)
CORNER(udp4_out_input_ffff, 4, IPPROTO_UDP, CFR_DIR_OUT, false)
CORNER(udp4_in_input_ffff, 4, IPPROTO_UDP, CFR_DIR_IN, false)
CORNER(icmp4_in_input_zero, 4, IPPROTO_ICMP, CFR_DIR_IN, false)
CORNER(tcp6_in_input_zero, 6, IPPROTO_TCP, CFR_DIR_IN, false)
CORNER(udp6_out_input_ffff, 6, IPPROTO_UDP, CFR_DIR_OUT, false)
CORNER(icmp6_out_input_zero, 6, IPPROTO_ICMPV6, CFR_DIR_OUT, false)

#define T(f) cmocka_unit_test_setup_teardown(f, lab_setup, lab_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rfc1071_known_answer),
	    cmocka_unit_test(checker_catches_each_checksum),
	    T(random_packets_both_ways),
	    T(tcp4_out_result_zero),
	    T(tcp4_in_result_zero),
	    T(udp4_out_result_ffff),
	    T(udp4_in_result_ffff),
	    T(icmp4_out_result_zero),
	    T(icmp4_in_result_zero),
	    T(tcp6_out_result_zero),
	    T(tcp6_in_result_zero),
	    T(udp6_out_result_ffff),
	    T(udp6_in_result_ffff),
	    T(icmp6_out_result_zero),
	    T(icmp6_in_result_zero),
	    T(tcp4_out_input_zero),
	    T(udp4_out_input_ffff),
	    T(udp4_in_input_ffff),
	    T(icmp4_in_input_zero),
	    T(tcp6_in_input_zero),
	    T(udp6_out_input_ffff),
	    T(icmp6_out_input_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
