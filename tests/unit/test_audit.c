/*
 * cfr-audit with several gateways (src/tools/audit, --gateways): the pools
 * split into one slice per gateway as the lab splits them, and the
 * anonymity an alias's slice leaves. A small population goes through the
 * real engine once with one gateway and once with four, on the same seed:
 * the subscribers live on a flow's gateway are about a quarter of those
 * live on all of them, the slice gives away about log2 4 = 2 bits, and the
 * set on one IPv4 address does not shrink (lines per address stay).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "seed.h"
#include "sim.h"

static void slice_is(const char *pool, uint32_t k, uint32_t n, const char *want)
{
	struct cfr_prefix p, s, w;

	assert_int_equal(cfr_prefix_parse(pool, &p), 0);
	assert_int_equal(cfr_prefix_parse(want, &w), 0);
	assert_int_equal(pool_slice(&p, k, n, &s), 0);
	assert_int_equal(s.family, w.family);
	assert_int_equal(s.len, w.len);
	assert_memory_equal(s.addr, w.addr, 16);
}

static void slices(void **state)
{
	struct cfr_prefix p, s;

	(void)state;
	slice_is("192.0.2.0/26", 0, 1, "192.0.2.0/26");
	slice_is("192.0.2.0/26", 0, 2, "192.0.2.0/27");
	slice_is("192.0.2.0/26", 1, 2, "192.0.2.32/27");
	slice_is("192.0.2.0/26", 3, 4, "192.0.2.48/28");
	/* Three gateways take /28s and leave a quarter, as in the lab. */
	slice_is("192.0.2.0/26", 2, 3, "192.0.2.32/28");
	slice_is("2001:db8:a1::/64", 1, 2, "2001:db8:a1:0:8000::/65");
	slice_is("2001:db8:a1::/64", 7, 8, "2001:db8:a1:0:e000::/67");
	assert_int_equal(cfr_prefix_parse("192.0.2.1/32", &p), 0);
	assert_int_equal(pool_slice(&p, 0, 2, &s), -EINVAL);
	assert_int_equal(cfr_prefix_parse("192.0.2.0/26", &p), 0);
	assert_int_equal(pool_slice(&p, 4, 4, &s), -EINVAL);
	assert_int_equal(pool_slice(&p, 0, 0, &s), -EINVAL);
}

/* One row, cfr per-flow with the engine's defaults, over <gateways>. */
static void run(const struct sim_params *sp, uint32_t gateways, struct metrics *m)
{
	struct drive_row row = {.name = "cfr per-flow", .translate = true};
	struct drive_opts o = {.snapshot_s = 60, .skew_samples = 64, .gateways = gateways};
	struct cfr_engine_config *c = &row.cfg;
	struct pool_list pools = {.n = 2};
	struct obs_vec ov = {0};

	cfr_engine_config_defaults(c);
	assert_int_equal(cfr_prefix_parse("192.0.2.0/26", &c->pool4[0]), 0);
	assert_int_equal(cfr_prefix_parse("2001:db8:a1::/64", &c->pool6[0]), 0);
	c->n_pool4 = c->n_pool6 = 1;
	c->n_subscribers =
	    sub_prefixes(sp->subscribers, c->subscribers, CFR_MAX_SUBSCRIBER_PREFIXES);
	c->max_flows = 1u << 16;
	c->max_subscribers = 2 * sp->subscribers + 1024;
	pools.p[0] = c->pool4[0];
	pools.p[1] = c->pool6[0];
	memset(m, 0, sizeof(*m));
	assert_int_equal(drive_row(sp, &row, &o, &pools, &ov, m), 0);
	assert_int_equal(m->engine_errors, 0);
	assert_int_equal(m->gateways, gateways);
	obs_free(&ov);
}

static void four_gateways(void **state)
{
	struct sim_params sp;
	struct metrics one, four;
	double ratio, addr_ratio;

	(void)state;
	sim_params_defaults(&sp);
	sp.subscribers = 2000;
	sp.flows = 20000;
	sp.hours = 0.5;
	sp.seed = 1 + test_seed();
	run(&sp, 1, &one);
	run(&sp, 4, &four);
	/* One gateway: its set is everybody's, and the slice says nothing. */
	assert_int_equal(one.gw_median, one.all_median);
	assert_true(one.slice_bits == 0);
	/* The same trace on both: the same crowd live on all gateways. */
	assert_int_equal(four.all_median, one.all_median);
	ratio = (double)one.gw_median / four.gw_median;
	addr_ratio = (double)one.anon_median / four.anon_median;
	if (ratio < 3.4 || ratio > 4.6 || fabs(four.slice_bits - 2) > 0.15 || addr_ratio < 0.75 ||
	    addr_ratio > 1.33)
		fail_msg("gateway set median %u with one gateway, %u with four (ratio %.2f, want "
		         "about 4); slice bits %.3f (want about 2); set on a unit %u and %u; %s",
		         one.gw_median, four.gw_median, ratio, four.slice_bits, one.anon_median,
		         four.anon_median, test_seed_note());
}

/*
 * Peer-to-peer flows (issue 17): with the built-in classes a host's
 * peer-to-peer socket keeps one alias and port, so the front door joins its
 * flows (addr+port) as it would behind a classic CGN, and never to the
 * subscriber's other flows; with every flow per-flow it cannot.
 */
static void p2p_run(const struct sim_params *sp, bool classes, struct metrics *m)
{
	struct drive_row row = {.name = "cfr", .translate = true};
	struct drive_opts o = {.snapshot_s = 60, .skew_samples = 64, .gateways = 1};
	struct link_params lp = {60000, 5, 600000, 200, 0.5, 0.5};
	struct cfr_engine_config *c = &row.cfg;
	struct pool_list pools = {.n = 2};
	struct obs_vec ov = {0};

	cfr_engine_config_defaults(c);
	if (!classes)
		c->n_classes = 0;
	assert_int_equal(cfr_prefix_parse("192.0.2.0/26", &c->pool4[0]), 0);
	assert_int_equal(cfr_prefix_parse("2001:db8:a1::/64", &c->pool6[0]), 0);
	c->n_pool4 = c->n_pool6 = 1;
	c->n_subscribers =
	    sub_prefixes(sp->subscribers, c->subscribers, CFR_MAX_SUBSCRIBER_PREFIXES);
	c->max_flows = 1u << 16;
	c->max_subscribers = 2 * sp->subscribers + 1024;
	pools.p[0] = c->pool4[0];
	pools.p[1] = c->pool6[0];
	memset(m, 0, sizeof(*m));
	assert_int_equal(drive_row(sp, &row, &o, &pools, &ov, m), 0);
	assert_int_equal(m->engine_errors, 0);
	assert_int_equal(metrics_compute(&ov, &lp, sp->seed, m), 0);
	obs_free(&ov);
}

static void p2p_mappings(void **state)
{
	struct sim_params sp;
	struct metrics eim, flow;

	(void)state;
	sim_params_defaults(&sp);
	sp.subscribers = 500;
	sp.flows = 20000;
	sp.hours = 0.5;
	sp.p2p_share = 0.5;
	sp.seed = 1 + test_seed();
	p2p_run(&sp, true, &eim);
	p2p_run(&sp, false, &flow);
	assert_true(eim.p2p_flows > 1000);
	assert_int_equal(eim.p2p_flows, flow.p2p_flows);
	/* A mapping joins a socket's flows ... */
	if (eim.link[LINK_ADDR_PORT].correct < 20 * (flow.link[LINK_ADDR_PORT].correct + 1))
		fail_msg(
		    "addr+port joins %llu pairs of one subscriber with mappings, %llu without; %s",
		    (unsigned long long)eim.link[LINK_ADDR_PORT].correct,
		    (unsigned long long)flow.link[LINK_ADDR_PORT].correct, test_seed_note());
	/*
	 * ... and to the subscriber's other flows no more than by chance (a
	 * per-flow draw on an alias:port one of its mappings had earlier).
	 */
	if (eim.p2p_cross.correct > flow.p2p_cross.correct + 3)
		fail_msg("%llu pairs join a mapping to its subscriber's other flows, %llu without "
		         "mappings; %s",
		         (unsigned long long)eim.p2p_cross.correct,
		         (unsigned long long)flow.p2p_cross.correct, test_seed_note());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(slices),
	    cmocka_unit_test(four_gateways),
	    cmocka_unit_test(p2p_mappings),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
