/*
 * Hash flooding: a subscriber chooses its source ports (and, towards
 * servers it controls, the remote ports too), so with an unkeyed or
 * additive hash it could aim every flow at one bucket and turn each lookup
 * into a walk of the whole table. The engine hashes with SipHash under a
 * random per-process key; these tests fill the table with the tuples that
 * collide under the usual weak hashes (ports in one arithmetic progression
 * with the table size as step, remote port mirroring the source port) and
 * check that stats.longest_chain, the longest chain any lookup walked,
 * stays at what random placement gives (about 8 for 4096 flows in 4096
 * buckets), far from the flow count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "lab.h"

#define FLOWS 4096
/* Max load of 4096 random balls in 4096 bins exceeds 12 with odds ~1e-6. */
#define CHAIN_BOUND 12

static struct cfr_engine *flood_engine(void)
{
	struct cfr_engine_config cfg;

	lab_config(&cfg);
	cfg.max_flows = FLOWS;
	/* Limits off: this is about the hash table, not the per-subscriber caps. */
	memset(&cfg.limits, 0, sizeof(cfg.limits));
	/* One record per flow, as the bound assumes: no class keeps a mapping. */
	cfg.n_classes = 0;
	return lab_engine(&cfg);
}

/* One UDP flow from the lab subscriber with <sport> to the remote's <dport>. */
static void open_flow(struct cfr_engine *eng, int family, uint16_t sport, uint16_t dport)
{
	struct pkt_spec s;
	struct pkt p;
	struct cfr_pkt r;

	lab_spec(&s, family, 17, sport, dport);
	r = lab_send(eng, &s, &p, 1000);
	assert_int_equal(r.verdict, CFR_VERDICT_FORWARD);
}

static void check_bounded(struct cfr_engine *eng)
{
	const struct cfr_stats *st = cfr_engine_stats(eng);

	print_message("%u flows, longest chain walked %u\n",
	              st->flows_active[0][1] + st->flows_active[1][1], st->longest_chain);
	assert_true(st->longest_chain <= CHAIN_BOUND);
	cfr_engine_free(eng);
}

/* Source ports k * 16 (+ remote port stepping by 16): equal low bits everywhere. */
static void strided_ports4(void **state)
{
	struct cfr_engine *eng = flood_engine();

	(void)state;
	for (unsigned i = 0; i < FLOWS - 16; i++)
		open_flow(eng, 4, (uint16_t)(1024 + (i % 4000) * 16),
		          (uint16_t)(1 + (i / 4000) * 4096));
	check_bounded(eng);
}

/* sport == dport: XOR-of-ports hashes put all of these in bucket 0. */
static void mirrored_ports6(void **state)
{
	struct cfr_engine *eng = flood_engine();

	(void)state;
	for (unsigned i = 0; i < FLOWS - 16; i++)
		open_flow(eng, 6, (uint16_t)(2000 + i), (uint16_t)(2000 + i));
	check_bounded(eng);
}

/* The inbound side walks the outside index: answers to every flow, looked up. */
static void inbound_lookups_bounded(void **state)
{
	struct cfr_engine *eng = flood_engine();

	(void)state;
	for (unsigned i = 0; i < FLOWS / 2; i++) {
		struct pkt_spec s, rs;
		struct pkt p, reply;
		struct cfr_pkt r;

		lab_spec(&s, 4, 17, (uint16_t)(3000 + i), 53);
		r = lab_send(eng, &s, &p, 1000);
		assert_int_equal(r.verdict, CFR_VERDICT_FORWARD);
		lab_reply_spec(&rs, &p);
		r = lab_send(eng, &rs, &reply, 1001);
		assert_int_equal(r.verdict, CFR_VERDICT_FORWARD);
	}
	check_bounded(eng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(strided_ports4),
	    cmocka_unit_test(mirrored_ports6),
	    cmocka_unit_test(inbound_lookups_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
