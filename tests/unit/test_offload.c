/*
 * Partial checksums (cfr_pkt.csum_partial), as a TUN device with offloads
 * hands them over: the TCP/UDP checksum field holds only the folded
 * pseudo-header sum, and the kernel or NIC sums the rest later. The engine
 * must leave such a field as the pseudo-header sum of the rewritten
 * addresses, whatever it changed in the ports or options, so that once the
 * rest is summed the checksum verifies by full recomputation. Protocols
 * without offload support are refused rather than forwarded wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <string.h>

#include "lab.h"

#define T0 5000

static size_t csum_field_off(const struct pkt_info *pi)
{
	return pi->l3_len + (pi->proto == IPPROTO_TCP ? 16 : 6);
}

/* What the sender's stack does before handing a packet to an offloading device. */
static void make_partial(struct pkt *p)
{
	struct pkt_info pi;
	uint16_t sum;

	assert_int_equal(pkt_parse(p->data, p->len, false, &pi), 0);
	sum = (uint16_t)~pkt_csum(
	    NULL, 0,
	    pkt_pseudo_sum(pi.family, pi.src, pi.dst, pi.proto, (uint32_t)(p->len - pi.l3_len)));
	pkt_put16(p->data + csum_field_off(&pi), sum);
}

/*
 * What the device does on the way out: sum from the transport header on,
 * the partial sum in the field included, and store the complement.
 */
static void complete(struct pkt *p)
{
	struct pkt_info pi;

	assert_int_equal(pkt_parse(p->data, p->len, false, &pi), 0);
	pkt_put16(p->data + csum_field_off(&pi),
	          pkt_csum(p->data + pi.l3_len, p->len - pi.l3_len, 0));
}

static struct cfr_pkt process_partial(struct cfr_engine *eng, struct pkt *p, uint64_t now)
{
	struct cfr_pkt r = {.data = p->data, .len = p->len, .csum_partial = 1};

	cfr_engine_process(eng, &r, 1, now);
	return r;
}

/* Out with a partial checksum, answer with a partial one, both complete fine. */
static void round_trip(void **state, int family, uint8_t proto)
{
	struct pkt_spec s;
	struct pkt out, back;
	struct pkt_info pi;
	struct cfr_pkt r;
	char why[128];

	lab_spec(&s, family, proto, 40000, 443);
	s.tcp_ts = proto == IPPROTO_TCP;
	s.tsval = 123456;
	pkt_build(&out, &s);
	make_partial(&out);
	r = process_partial(*state, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_equal(pkt_parse(out.data, out.len, false, &pi), 0);
	assert_true(lab_in_pool(family, pi.src));
	/* The field is still a partial sum: it must match the new pseudo-header. */
	assert_int_equal(pkt_get16(out.data + csum_field_off(&pi)),
	                 (uint16_t)~pkt_csum(NULL, 0,
	                                     pkt_pseudo_sum(family, pi.src, pi.dst, proto,
	                                                    (uint32_t)(out.len - pi.l3_len))));
	complete(&out);
	assert_int_equal(pkt_verify_checksums(out.data, out.len, why, sizeof(why)), 0);

	lab_reply_spec(&s, &out);
	pkt_build(&back, &s);
	make_partial(&back);
	r = process_partial(*state, &back, T0 + 10);
	lab_expect_forward(&r, CFR_DIR_IN);
	complete(&back);
	assert_int_equal(pkt_verify_checksums(back.data, back.len, why, sizeof(why)), 0);
	assert_int_equal(pkt_parse(back.data, back.len, false, &pi), 0);
	assert_memory_equal(pi.dst, lab_sub(family), family == 4 ? 4 : 16);
	assert_int_equal(pi.dport, 40000);
}

static void tcp4_partial(void **state)
{
	round_trip(state, 4, IPPROTO_TCP);
}

static void tcp6_partial(void **state)
{
	round_trip(state, 6, IPPROTO_TCP);
}

static void udp4_partial(void **state)
{
	round_trip(state, 4, IPPROTO_UDP);
}

static void udp6_partial(void **state)
{
	round_trip(state, 6, IPPROTO_UDP);
}

/* ICMP has no offload here: a partial flag on it is refused, not mistranslated. */
static void icmp_partial_refused(void **state)
{
	struct pkt_spec s;
	struct pkt p;
	struct cfr_pkt r;

	lab_spec(&s, 4, IPPROTO_ICMP, 7, 0);
	pkt_build(&p, &s);
	r = process_partial(*state, &p, T0);
	lab_expect_drop(&r, CFR_DROP_PARTIAL_CHECKSUM);
}

#define T(f) cmocka_unit_test_setup_teardown(f, lab_setup, lab_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(tcp4_partial), T(tcp6_partial),         T(udp4_partial),
	    T(udp6_partial), T(icmp_partial_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
