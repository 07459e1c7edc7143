/*
 * Counters: rx and tx per direction and drops per reason are counted exactly,
 * once per packet, and the drop-reason names and texts exist for every
 * reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "lab.h"

#define T0 1000

static void fresh_engine_counts_nothing(void **state)
{
	const struct cfr_stats *st = cfr_engine_stats(*state);
	struct cfr_engine_config cfg;
	unsigned i;

	lab_config(&cfg);
	assert_int_equal(st->rx[0] + st->rx[1] + st->tx[0] + st->tx[1], 0);
	for (i = 0; i < CFR_DROP__COUNT; i++)
		assert_int_equal(st->drops[i], 0);
	assert_int_equal(st->flows_created, 0);
	assert_int_equal(st->max_flows, cfg.max_flows);
}

static void counts_exact(void **state)
{
	const struct cfr_stats *st = cfr_engine_stats(*state);
	struct pkt out, p;
	struct pkt_spec s;
	struct cfr_pkt r;
	unsigned i;

	/* 3 forwarded out, 2 forwarded in (UDP to 443: per-flow, only that port answers) */
	lab_open_flow(*state, 4, IPPROTO_UDP, 40500, 443, &out, T0);
	lab_open_flow(*state, 6, IPPROTO_TCP, 40501, 443, &p, T0);
	lab_spec(&s, 4, IPPROTO_UDP, 40500, 443);
	r = lab_send(*state, &s, &p, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	lab_reply_spec(&s, &out);
	for (i = 0; i < 2; i++) {
		r = lab_send(*state, &s, &p, T0);
		lab_expect_forward(&r, CFR_DIR_IN);
	}
	/* 2 NO_FLOW in, 1 UNAUTHORISED_SOURCE out, 1 TRUNCATED (counted out) */
	s.sport = 1;
	for (i = 0; i < 2; i++) {
		r = lab_send(*state, &s, &p, T0);
		lab_expect_drop(&r, CFR_DROP_NO_FLOW);
	}
	lab_spec(&s, 4, IPPROTO_UDP, 40502, 53);
	pkt_addr(4, "10.0.0.1", s.src);
	r = lab_send(*state, &s, &p, T0);
	lab_expect_drop(&r, CFR_DROP_UNAUTHORISED_SOURCE);
	p.len = 3;
	r = lab_process(*state, &p, T0);
	lab_expect_drop(&r, CFR_DROP_TRUNCATED);

	assert_int_equal(st->tx[CFR_DIR_OUT], 3);
	assert_int_equal(st->tx[CFR_DIR_IN], 2);
	assert_int_equal(st->rx[0] + st->rx[1], 9);
	assert_int_equal(st->rx[CFR_DIR_IN], 4);
	assert_int_equal(st->drops[CFR_DROP_NO_FLOW], 2);
	assert_int_equal(st->drops[CFR_DROP_UNAUTHORISED_SOURCE], 1);
	assert_int_equal(st->drops[CFR_DROP_TRUNCATED], 1);
	assert_int_equal(st->flows_created, 2);
	assert_int_equal(st->flows_active[CFR_FAMILY_V4][CFR_PROTO_UDP], 1);
	assert_int_equal(st->flows_active[CFR_FAMILY_V6][CFR_PROTO_TCP], 1);
}

/* Bytes as read and as written, per packet; a drop adds to the read ones only. */
static void bytes_counted(void **state)
{
	const struct cfr_stats *st = cfr_engine_stats(*state);
	struct pkt p;
	struct pkt_spec s;
	struct cfr_pkt r;
	uint32_t len, sent;

	lab_spec(&s, 4, IPPROTO_UDP, 40510, 53);
	pkt_build(&p, &s);
	len = p.len;
	r = lab_process(*state, &p, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_equal(st->rx_bytes[CFR_DIR_OUT], len);
	assert_int_equal(st->tx_bytes[CFR_DIR_OUT], r.len);
	sent = r.len;
	p.len = 3;
	r = lab_process(*state, &p, T0);
	lab_expect_drop(&r, CFR_DROP_TRUNCATED);
	assert_int_equal(st->rx_bytes[CFR_DIR_OUT] + st->rx_bytes[CFR_DIR_IN], len + 3);
	assert_int_equal(st->tx_bytes[CFR_DIR_OUT] + st->tx_bytes[CFR_DIR_IN], sent);
	assert_int_equal(st->tx_bytes[CFR_DIR_IN], 0);
}

/*
 * A hairpin comes from a subscriber: it is reported as outbound, and must be
 * counted on the side it is reported on, or rx[] and the packet disagree.
 */
static void hairpin_counted_outbound(void **state)
{
	const struct cfr_stats *st = cfr_engine_stats(*state);
	struct pkt_spec s;
	struct cfr_pkt r;
	struct pkt p;

	lab_spec(&s, 6, IPPROTO_UDP, 40503, 53);
	pkt_addr(6, "2001:db8:a1::1", s.dst);
	r = lab_send(*state, &s, &p, T0);
	lab_expect_drop(&r, CFR_DROP_HAIRPIN);
	assert_int_equal(r.dir, CFR_DIR_OUT);
	assert_int_equal(st->drops[CFR_DROP_HAIRPIN], 1);
	assert_int_equal(st->rx[CFR_DIR_OUT], 1);
	assert_int_equal(st->rx[CFR_DIR_IN], 0);
}

/* Fragments tracked are counted while the datagram is in flight. */
static void frags_tracked(void **state)
{
	static uint8_t big[1000];
	struct pkt whole, frags[3];
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, 4, IPPROTO_UDP, 40504, 53);
	s.payload = big;
	s.payload_len = sizeof big;
	pkt_build(&whole, &s);
	assert_int_equal(pkt_fragment(&whole, 400, 9, frags, 3), 3);
	r = lab_process(*state, &frags[0], T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_true(cfr_engine_stats(*state)->frags_tracked >= 1);
}

static void every_reason_named(void **state)
{
	unsigned i, j;

	(void)state;
	for (i = 1; i < CFR_DROP__COUNT; i++) {
		assert_non_null(cfr_drop_name(i));
		assert_non_null(cfr_drop_text(i));
		assert_true(strlen(cfr_drop_name(i)) > 0);
		for (j = 1; j < i; j++)
			assert_string_not_equal(cfr_drop_name(i), cfr_drop_name(j));
	}
	assert_string_equal(cfr_drop_name(CFR_DROP_NO_FLOW), "no_flow");
	assert_string_equal(cfr_drop_name(CFR_DROP_TABLE_FULL), "table_full");
}

static void memory_reported(void **state)
{
	assert_true(cfr_engine_memory(*state) > 0);
}

/* An invalid configuration is refused with EINVAL, not half-built. */
static void bad_config_refused(void **state)
{
	struct cfr_engine_config cfg;

	(void)state;
	lab_config(&cfg);
	cfg.port_min = 2000;
	cfg.port_max = 1000;
	errno = 0;
	assert_null(cfr_engine_new(&cfg));
	assert_int_equal(errno, EINVAL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, lab_setup, lab_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(fresh_engine_counts_nothing), T(counts_exact),
	    T(hairpin_counted_outbound),    T(frags_tracked),
	    T(every_reason_named),          T(memory_reported),
	    T(bad_config_refused),          T(bytes_counted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
