/*
 * The accountability timeline of an epoch record: whatever the load, every
 * allocation's counter value lies in an entry whose time range holds the
 * second it was drawn (or cfr-lookup would miss the subscriber), the counts
 * add up to the counter, the encoding stays inside its fixed size, and a
 * full timeline loses precision evenly instead of blurring the end of the
 * epoch into one range (which made complaints about it ambiguous).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "lab.h"

#define T0 1000000

struct drawn {
	uint32_t n;
	uint32_t second[4096]; /* second of the epoch each counter value was drawn */
};

struct got {
	unsigned records;
	struct cfr_epoch_record rec;
};

static void keep(void *ctx, const struct cfr_epoch_record *rec)
{
	struct got *g = ctx;

	g->records++;
	g->rec = *rec;
}

/* One subscriber opens a UDP flow at each of <n> moments given in ms since T0. */
static void run(const uint32_t *at_ms, uint32_t n, struct drawn *d, struct got *g)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	uint32_t i;

	lab_config(&cfg);
	/*
	 * A collision would consume a counter value the test cannot attribute:
	 * a /8 pool makes one among 3000 flows a one-in-250,000 event.
	 */
	assert_int_equal(cfr_prefix_parse("10.0.0.0/8", &cfg.pool4[0]), 0);
	cfg.epoch_s = 3600;
	cfg.limits.new_flows_per_s = 0;
	cfg.limits.flows_per_subscriber[CFR_PROTO_UDP] = 0;
	eng = lab_engine(&cfg);
	cfr_engine_epoch_rotate(eng, T0);
	for (i = 0; i < n; i++) {
		struct pkt out;

		lab_open_flow(eng, 4, IPPROTO_UDP, (uint16_t)(2000 + i % 60000), 53, &out,
		              T0 + at_ms[i]);
		d->second[i] = at_ms[i] / 1000;
	}
	d->n = n;
	assert_int_equal(cfr_engine_stats(eng)->flows_created, n);
	cfr_engine_epoch_rotate(eng, T0 + at_ms[n - 1] + 1000);
	memset(g, 0, sizeof(*g));
	assert_int_equal(cfr_engine_drain_records(eng, keep, g, 10), 0);
	cfr_engine_free(eng);
	assert_int_equal(g->records, 1);
}

/* Walk the timeline: every counter value covered at its second; returns the entries. */
static unsigned check_cover(const struct got *g, const struct drawn *d, uint32_t *widest)
{
	uint32_t from = 0, to = 0, first = 0, count = 0, covered = 0;
	size_t off = 0;
	unsigned entries = 0;
	int rc;

	*widest = 0;
	assert_true(g->rec.timeline_len <= CFR_TIMELINE_BYTES);
	while ((rc = cfr_timeline_next(&g->rec, &off, &from, &to, &first, &count)) == 1) {
		uint32_t c;

		entries++;
		if (to - from > *widest)
			*widest = to - from;
		for (c = first; c < first + count; c++) {
			assert_true(c < d->n);
			assert_in_range(d->second[c], from, to);
			covered++;
		}
	}
	assert_int_equal(rc, 0);
	assert_int_equal(covered, d->n);
	assert_int_equal(g->rec.counter, d->n);
	return entries;
}

/* A light user: one flow every 7 s, exact entries fit. */
static void sparse_is_exact(void **state)
{
	static struct drawn d;
	static uint32_t at[20];
	struct got g;
	uint32_t i, widest;

	(void)state;
	for (i = 0; i < 20; i++)
		at[i] = i * 7000;
	run(at, 20, &d, &g);
	assert_int_equal(check_cover(&g, &d, &widest), 20);
	assert_int_equal(widest, 0);
}

/* A busy user: 3000 flows over 50 minutes fill the timeline many times over. */
static void busy_degrades_evenly(void **state)
{
	static struct drawn d;
	static uint32_t at[3000];
	struct got g;
	uint32_t i, widest;
	unsigned entries;

	(void)state;
	for (i = 0; i < 3000; i++)
		at[i] = i * 1000; /* one flow a second */
	run(at, 3000, &d, &g);
	entries = check_cover(&g, &d, &widest);
	/*
	 * Merging the shortest neighbours keeps entries about equal: 3000 s
	 * over at least 12 entries, none wider than three times the mean.
	 */
	assert_true(entries >= 12);
	assert_true(widest <= 3 * 3000 / entries);
}

/* Bursts separated by silence: entries never span a silence they did not need. */
static void bursts_keep_their_gaps(void **state)
{
	static struct drawn d;
	static uint32_t at[400];
	struct got g;
	uint32_t i, widest;

	(void)state;
	for (i = 0; i < 400; i++)
		at[i] = (i / 100) * 600000 + (i % 100) * 10; /* 4 bursts of 1 s, 10 min apart */
	run(at, 400, &d, &g);
	check_cover(&g, &d, &widest);
	assert_true(widest <= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sparse_is_exact),
	    cmocka_unit_test(busy_degrades_evenly),
	    cmocka_unit_test(bursts_keep_their_gaps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
