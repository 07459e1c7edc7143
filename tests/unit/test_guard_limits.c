/*
 * Starvation (issue 12): what one subscriber can take from the others.
 * Refused allocations cost the subscriber a token like admitted ones, and
 * a table of subscribers filled by sources that come and go serves a
 * genuine subscriber again as soon as their flows are gone, not at the
 * epoch's end; the subscribers it made room from are sealed, not lost. The
 * fragment table gives each subscriber a share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>

#include "lab.h"
#include "pkt.h"

#define UDP_S 2
#define T0    1000000ull

static struct cfr_pkt send_from(struct cfr_engine *eng, uint8_t line, uint16_t sport, uint64_t now)
{
	struct pkt_spec s;
	struct pkt out;

	lab_spec(&s, 4, IPPROTO_UDP, sport, 443);
	s.src[2] = line; /* 100.64.LINE.2 */
	return lab_send(eng, &s, &out, now);
}

/*
 * One alias, four ports: the fifth flow to the same remote endpoint is
 * refused after a bounded search. With a burst of 8 tokens, attempts 5 to
 * 8 are refused for want of ports and still pay; the ninth meets the rate
 * limit, so a refused subscriber cannot make the engine search for free.
 */
static void refused_attempts_cost_tokens(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct cfr_pkt r;
	uint16_t i;

	(void)state;
	lab_config(&cfg);
	assert_int_equal(cfr_prefix_parse("192.0.2.1/32", &cfg.pool4[0]), 0);
	cfg.port_min = 1024;
	cfg.port_max = 1027;
	cfg.limits.new_flows_per_s = 1;
	cfg.limits.new_flows_burst = 8;
	eng = lab_engine(&cfg);
	for (i = 0; i < 4; i++) {
		r = send_from(eng, 1, (uint16_t)(40000 + i), T0);
		lab_expect_forward(&r, CFR_DIR_OUT);
	}
	for (i = 4; i < 8; i++) {
		r = send_from(eng, 1, (uint16_t)(40000 + i), T0);
		lab_expect_drop(&r, CFR_DROP_POOL_EXHAUSTED);
	}
	r = send_from(eng, 1, 40008, T0);
	lab_expect_drop(&r, CFR_DROP_SUBSCRIBER_RATE_LIMIT);
	/* A second later one token is back: one more (refused) search. */
	r = send_from(eng, 1, 40009, T0 + 1000);
	lab_expect_drop(&r, CFR_DROP_POOL_EXHAUSTED);
	cfr_engine_free(eng);
}

static void count_record(void *ctx, const struct cfr_epoch_record *rec)
{
	unsigned *n = ctx;

	assert_true(rec->counter > 0);
	(*n)++;
}

/*
 * Four slots, four subscribers with a flow each: a fifth is refused while
 * their flows live, and admitted once they expired, in the same epoch. The
 * subscriber it displaced is sealed early: its record drains at once.
 */
static void subscriber_table_recovers(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct cfr_pkt r;
	uint64_t later = T0 + (UDP_S + 2) * 1000;
	unsigned records = 0;
	uint8_t line;

	(void)state;
	lab_config(&cfg);
	cfg.max_subscribers = 4;
	cfg.timeout[CFR_TIMEOUT_UDP] = UDP_S;
	eng = lab_engine(&cfg);
	for (line = 1; line <= 4; line++) {
		r = send_from(eng, line, 40000, T0);
		lab_expect_forward(&r, CFR_DIR_OUT);
	}
	r = send_from(eng, 5, 40000, T0 + 1);
	lab_expect_drop(&r, CFR_DROP_SUBSCRIBER_TABLE_FULL);

	cfr_engine_expire(eng, later);
	r = send_from(eng, 5, 40000, later);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_equal(cfr_engine_stats(eng)->epoch, 1);
	assert_true(cfr_engine_stats(eng)->subscribers_reclaimed >= 1);
	assert_int_equal(cfr_engine_stats(eng)->subscribers_sealed_early, 1);
	assert_int_equal(cfr_engine_drain_records(eng, count_record, &records, 100), 0);
	assert_int_equal(records, 1);

	/* The displaced subscriber comes back: it finds room the same way. */
	r = send_from(eng, 1, 40001, later + 1);
	lab_expect_forward(&r, CFR_DIR_OUT);
	cfr_engine_free(eng);
}

/* The first fragment of a 1000-byte datagram from 100.64.LINE.2 with <id>. */
static struct cfr_pkt first_fragment(struct cfr_engine *eng, uint8_t line, uint32_t id,
                                     uint64_t now)
{
	static const uint8_t payload[1000];
	struct pkt whole, frags[3];
	struct pkt_spec s;

	lab_spec(&s, 4, IPPROTO_UDP, 40100, 443);
	s.src[2] = line;
	s.payload = payload;
	s.payload_len = sizeof payload;
	pkt_build(&whole, &s);
	assert_int_equal(pkt_fragment(&whole, 400, id, frags, 3), 3);
	return lab_process(eng, &frags[0], now);
}

/*
 * One subscriber floods first fragments of one flow: it fills its own share
 * of the fragment table (64 by default) and no more, and another
 * subscriber's fragmented datagram still finds room.
 */
static void fragment_table_shared(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct cfr_pkt r;
	uint32_t id, admitted = 0;

	(void)state;
	lab_config(&cfg);
	eng = lab_engine(&cfg);
	for (id = 1; id <= 200; id++) {
		r = first_fragment(eng, 1, id, T0);
		if (r.verdict == CFR_VERDICT_FORWARD)
			admitted++;
		else
			lab_expect_drop(&r, CFR_DROP_SUBSCRIBER_FRAG_LIMIT);
	}
	assert_int_equal(admitted, cfg.limits.frags_per_subscriber);
	r = first_fragment(eng, 2, 7, T0 + 1);
	lab_expect_forward(&r, CFR_DIR_OUT);
	/* Swept after the reassembly timeout, the share is free again. */
	cfr_engine_expire(eng, T0 + 31000);
	r = first_fragment(eng, 1, 999, T0 + 31000);
	lab_expect_forward(&r, CFR_DIR_OUT);
	cfr_engine_free(eng);
}

/*
 * A subscriber whose every datagram is fragmented (a UDP sender after PMTU
 * discovery): each complete datagram gives its slot back at once, so 500
 * datagrams in a second all pass through a share of 64.
 */
static void complete_datagrams_free_their_share(void **state)
{
	static const uint8_t payload[1000];
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct pkt whole, frags[3];
	struct pkt_spec s;
	struct cfr_pkt r;
	uint32_t id, k;

	(void)state;
	lab_config(&cfg);
	eng = lab_engine(&cfg);
	lab_spec(&s, 4, IPPROTO_UDP, 40200, 443);
	s.payload = payload;
	s.payload_len = sizeof payload;
	pkt_build(&whole, &s);
	for (id = 1; id <= 500; id++) {
		assert_int_equal(pkt_fragment(&whole, 400, id, frags, 3), 3);
		for (k = 0; k < 3; k++) {
			r = lab_process(eng, &frags[k], T0 + id);
			lab_expect_forward(&r, CFR_DIR_OUT);
		}
	}
	assert_int_equal(cfr_engine_stats(eng)->frags_tracked, 0);
	cfr_engine_free(eng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(refused_attempts_cost_tokens),
	    cmocka_unit_test(subscriber_table_recovers),
	    cmocka_unit_test(fragment_table_shared),
	    cmocka_unit_test(complete_datagrams_free_their_share),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
