/*
 * Control-plane stalls: how long the control thread and the records writer
 * hold cfrd's engine lock (which is how long every worker waits at most),
 * with the real engine, cfrd's own stats.c and acct glue, and the real
 * records writer, for SUBSCRIBERS subscribers with FLOWS UDP flows each.
 *
 * Measured, each over several rounds:
 *  - a burst of 64 established packets (the reference: what a worker holds);
 *  - the burst that ends an epoch by time (cfr_epoch_new inside the burst);
 *  - each hold of the writer's copy of the ended epoch's records, and of
 *    the new epoch's journal a second later (cfr_recw_collect, as acct.c's
 *    writer_step does it);
 *  - expiry as the control thread's housekeeping runs it;
 *  - `cfrctl stats` as cfrd did it before issue 13 (anonymity figures and
 *    the JSON built under the lock: "stats, all under the lock") and as it
 *    does now (cfrd_stats_snapshot() under the lock, the rest after).
 * Times are CLOCK_MONOTONIC around the code between lock and unlock.
 *
 * Usage: stall-bench SUBSCRIBERS FLOWS POOL4 RECORDS_DIR PUBKEY
 */
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/cfrd/acct.h"
#include "../../src/cfrd/daemon.h"
#include "../../src/cfrd/log.h"
#include "../../src/cfrd/reload.h"
#include "../../src/cfrd/stats.h"
#include "../../src/records/records.h"

#define BATCH   64
#define ROUNDS  5
#define EPOCH_S 60
#define WALL0   1767225600000ull

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Durations of one kind of hold, in microseconds. */
struct series {
	const char *name;
	double v[65536];
	unsigned n;
};

static void add(struct series *s, double us)
{
	if (s->n < sizeof(s->v) / sizeof(s->v[0]))
		s->v[s->n++] = us;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void report(struct series *s)
{
	if (s->n == 0)
		return;
	qsort(s->v, s->n, sizeof(s->v[0]), cmp_double);
	printf("%-44s holds=%-5u median_us=%-9.1f p99_us=%-9.1f max_us=%.1f\n", s->name, s->n,
	       s->v[s->n / 2], s->v[s->n * 99 / 100], s->v[s->n - 1]);
}

static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* UDP from subscriber <sub> (100.64.0.0/10) to 203.0.113.x, source port <sport>. */
static void build_udp(uint8_t *b, uint32_t sub, uint16_t sport)
{
	uint16_t c;

	memset(b, 0, 28);
	b[0] = 0x45;
	b[3] = 28;
	b[8] = 64;
	b[9] = 17;
	b[12] = 100;
	b[13] = (uint8_t)(64 | (sub >> 16 & 63));
	b[14] = (uint8_t)(sub >> 8);
	b[15] = (uint8_t)sub;
	b[16] = 203;
	b[18] = 113;
	b[19] = (uint8_t)(1 + sub % 250);
	c = csum(b, 20);
	b[10] = (uint8_t)(c >> 8);
	b[11] = (uint8_t)c;
	b[20] = (uint8_t)(sport >> 8);
	b[21] = (uint8_t)sport;
	b[22] = 0x01;
	b[23] = 0xbb;
	b[25] = 8;
}

static struct cfr_pkt pkts[BATCH];
static uint8_t bufs[BATCH][64];

/* One burst of <n> packets under the lock, as worker.c runs it; returns the hold. */
static double burst(struct cfrd *d, unsigned n, uint64_t t_ms)
{
	double t0;

	cfrd_engine_lock(d);
	t0 = now_us();
	cfr_engine_process(d->engine, pkts, n, t_ms);
	t0 = now_us() - t0;
	cfrd_engine_unlock(d);
	return t0;
}

/* Flow <k> of every subscriber, in bursts; each hold goes to <s> if not NULL. */
static void open_flows(struct cfrd *d, uint32_t subs, unsigned k, uint64_t t_ms, struct series *s)
{
	unsigned n = 0;

	for (uint32_t sub = 1; sub <= subs; sub++) {
		build_udp(bufs[n], sub, (uint16_t)(1024 + k));
		pkts[n] = (struct cfr_pkt){.data = bufs[n], .len = 28};
		if (++n == BATCH || sub == subs) {
			double h = burst(d, n, t_ms);

			if (s != NULL && n == BATCH)
				add(s, h);
			n = 0;
		}
	}
}

/* The writer thread's loop (acct.c writer_step) until the engine has nothing left. */
static void drain(struct cfrd *d, struct cfr_recw *w, uint64_t t_ms, struct series *s)
{
	unsigned left;

	do {
		double t0;

		cfrd_engine_lock(d);
		t0 = now_us();
		left = cfr_recw_collect(w, d->engine, t_ms);
		add(s, now_us() - t0);
		cfrd_engine_unlock(d);
		cfr_recw_flush(w, t_ms, WALL0 + t_ms);
	} while (left);
}

int main(int argc, char **argv)
{
	static struct cfrd_reload reload;
	static struct cfrd_stats_snapshot snap;
	static struct series ref = {.name = "burst of 64 established packets"},
	                     fresh = {.name = "burst of 64 new flows, new in the epoch"},
	                     ended = {.name = "burst that ends the epoch (100k subscribers)"},
	                     collect = {.name = "records writer copies (epoch end, journal)"},
	                     expire = {.name = "expiry (control thread housekeeping)"},
	                     before = {.name = "stats, all under the lock (before)"},
	                     after = {.name = "stats, copy under the lock (after)"},
	                     offlock = {.name = "stats, built after the lock (after)"};
	struct cfr_engine_config *cfg = &reload.cfg.engine;
	struct cfr_recw_config wcfg = {0};
	struct cfrd_acct acct = {0};
	struct cfrd d = {.reload = &reload, .acct = &acct};
	struct cfr_rec_error err;
	uint32_t subs, flows;
	uint64_t t = 1000;

	if (argc != 6) {
		fprintf(stderr, "usage: stall-bench SUBSCRIBERS FLOWS POOL4 RECORDS_DIR PUBKEY\n");
		return 2;
	}
	subs = (uint32_t)atoi(argv[1]);
	flows = (uint32_t)atoi(argv[2]);
	if (sodium_init() < 0 || cfr_key_read_public(argv[5], wcfg.public_key, &err) < 0)
		return 1;
	cfrd_log_set_level(CFRD_LOG_ERROR);
	cfr_engine_config_defaults(cfg);
	if (cfr_prefix_parse(argv[3], &cfg->pool4[0]) < 0)
		return 2;
	cfg->n_pool4 = 1;
	cfr_prefix_parse("2001:db8:a1::/64", &cfg->pool6[0]);
	cfg->n_pool6 = 1;
	cfr_prefix_parse("100.64.0.0/10", &cfg->subscribers[0]);
	cfg->n_subscribers = 1;
	cfg->limits = (struct cfr_limits){0};
	cfg->timeout[CFR_TIMEOUT_UDP] = 3600; /* every flow lives through the whole run */
	cfg->max_subscribers = subs + 16;
	cfg->max_flows = (subs * (flows + ROUNDS + 1) + 1023) / 1024 * 1024;
	cfg->epoch_s = EPOCH_S;
	d.engine = cfr_engine_new(cfg);
	wcfg.dir = argv[4];
	wcfg.segment_s = 3600;
	wcfg.retention_s = 86400;
	wcfg.engine = cfg;
	acct.writer = d.engine ? cfr_recw_new(&wcfg, WALL0 + t, &err) : NULL;
	if (!acct.writer) {
		fprintf(stderr, "stall-bench: cannot start: %s\n", d.engine ? err.msg : "engine");
		return 1;
	}
	pthread_mutex_init(&d.engine_lock, NULL);
	pthread_mutex_init(&acct.lock, NULL);

	/* Every subscriber active, each with <flows> flows. */
	for (unsigned k = 0; k < flows; k++)
		open_flows(&d, subs, k, t, NULL);
	drain(&d, acct.writer, t, &collect);
	collect.n = 0; /* the first epoch's snapshot: counted below, round by round */

	for (unsigned r = 0; r < ROUNDS; r++) {
		/*
		 * Past the epoch's end: the first burst ends it; the writer takes
		 * the ended epoch's records (within its 100 ms tick), then
		 * everyone comes back with a new flow in the new epoch.
		 */
		t += (EPOCH_S + 1) * 1000ull;
		for (unsigned k = 0; k < BATCH; k++) {
			build_udp(bufs[k], 1 + k, (uint16_t)(30000 + r));
			pkts[k] = (struct cfr_pkt){.data = bufs[k], .len = 28};
		}
		add(&ended, burst(&d, BATCH, t));
		drain(&d, acct.writer, t, &collect);
		open_flows(&d, subs, flows + r, t, &fresh);
		drain(&d, acct.writer, t, &collect);
		/* A second later: the journal's next round. */
		drain(&d, acct.writer, t + 1000, &collect);
		for (unsigned i = 0; i < 200; i++) {
			for (unsigned k = 0; k < BATCH; k++) {
				build_udp(bufs[k], 1 + (i * BATCH + k) % subs, 1024);
				pkts[k] = (struct cfr_pkt){.data = bufs[k], .len = 28};
			}
			add(&ref, burst(&d, BATCH, t + 1000));
		}
		for (unsigned i = 0; i < 4; i++) {
			double t0;

			cfrd_engine_lock(&d);
			t0 = now_us();
			cfr_engine_expire(d.engine, t + 1000 + i * 250);
			add(&expire, now_us() - t0);
			cfrd_engine_unlock(&d);
		}
		for (unsigned i = 0; i < 4; i++) {
			struct json_object *j;
			uint32_t need;
			double t0, t1;

			/* Before: everything between lock and unlock, as dispatch() ran cmd_stats.
			 */
			cfrd_engine_lock(&d);
			t0 = now_us();
			need = cfr_engine_anon_capacity(d.engine);
			if (need > snap.anon.cap) {
				snap.anon.sizes = realloc(snap.anon.sizes, need * sizeof(uint32_t));
				snap.anon.cap = need;
			}
			cfrd_stats_snapshot(&d, &snap);
			j = cfrd_stats_build(&d, &snap, t + 1000);
			add(&before, now_us() - t0);
			cfrd_engine_unlock(&d);
			json_object_put(j);

			/* After: cfrd_stats_json()'s hold, then its work without the lock. */
			cfrd_engine_lock(&d);
			t0 = now_us();
			need = cfr_engine_anon_capacity(d.engine);
			if (need <= snap.anon.cap)
				cfrd_stats_snapshot(&d, &snap);
			t1 = now_us();
			add(&after, t1 - t0);
			cfrd_engine_unlock(&d);
			t0 = now_us();
			j = cfrd_stats_build(&d, &snap, t + 1000);
			add(&offlock, now_us() - t0);
			if (r == ROUNDS - 1 && i == 0)
				printf("# stats: %s\n", json_object_to_json_string_ext(
				                            json_object_object_get(j, "anonymity"),
				                            JSON_C_TO_STRING_PLAIN));
			json_object_put(j);
		}
	}
	printf("# stall-bench: subscribers=%u flows=%llu pool4=%s alias_slots=%u epoch_s=%u "
	       "records_sealed=%llu journal_items=%llu\n",
	       subs, (unsigned long long)cfr_engine_stats(d.engine)->flows_created, argv[3],
	       cfr_engine_anon_capacity(d.engine), EPOCH_S,
	       (unsigned long long)cfr_recw_stats(acct.writer)->records_written,
	       (unsigned long long)cfr_recw_stats(acct.writer)->journal_items);
	report(&ref);
	report(&fresh);
	report(&ended);
	report(&collect);
	report(&expire);
	report(&before);
	report(&after);
	report(&offlock);
	cfr_recw_free(acct.writer);
	cfr_engine_free(d.engine);
	free(snap.anon.sizes);
	return 0;
}
