/*
 * Allocation seeds, from the accountability side: the PRF's allocations are
 * uniform over pool x ports, reproducible from a record's seed and timeline
 * (what cfr-lookup relies on), and unlinkable without the seed (one
 * subscriber's consecutive allocations look like two subscribers' ones);
 * and the write-ahead journal hands each subscriber's seed once, then
 * exactly the counter values drawn since, with their seconds.
 *
 * The statistical tests use fixed seeds, so they are deterministic; the
 * thresholds are the chi-square mean plus six standard deviations, which a
 * uniform source exceeds with probability below 1e-8. CFR_TEST_SEED=N
 * draws other seeds (seed.h); a failure prints the one to replay it with.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/records/records.h"
#include "lab.h"
#include "seed.h"

/* A 64-address pool and 64 ports: 4096 cells, small enough to fill. */
#define PORTS 64
#define CELLS (64 * PORTS)

static void small_config(struct cfr_engine_config *cfg, enum cfr_policy policy)
{
	lab_config(cfg);
	cfg->port_min = 1024;
	cfg->port_max = 1024 + PORTS - 1;
	cfg->policy[CFR_FAMILY_V4] = cfg->policy[CFR_FAMILY_V6] = (uint8_t)policy;
	cfg->limits = (struct cfr_limits){0};
	/* Per-flow draws for every flow: no class keeps a mapping (test_p2p has those). */
	cfg->n_classes = 0;
}

/* Allocation seed number <which> of this run: a hash of it, keyed by CFR_TEST_SEED if set. */
static void fixed_seed(uint8_t seed[CFR_SEED_BYTES], uint8_t which)
{
	uint64_t run = test_seed();
	uint8_t key[crypto_generichash_KEYBYTES_MIN] = {0};

	for (unsigned i = 0; i < 8; i++)
		key[i] = (uint8_t)(run >> (8 * i));
	crypto_generichash(seed, CFR_SEED_BYTES, &which, 1, run ? key : NULL,
	                   run ? sizeof(key) : 0);
}

/* Index of an alias in 192.0.2.0/26, or of the low 6 bits of an IPv6 alias. */
static unsigned alias_index(uint8_t family, const uint8_t *alias)
{
	return family == CFR_FAMILY_V4 ? alias[3] & 63u : alias[15] & 63u;
}

static double chi2_uniform(const uint32_t *obs, size_t cells, double total)
{
	double e = total / (double)cells, x = 0;

	for (size_t i = 0; i < cells; i++)
		x += ((double)obs[i] - e) * ((double)obs[i] - e) / e;
	return x;
}

/* The unit tests link no libm: Newton's square root, ample for a threshold. */
static double root(double v)
{
	double r = v > 1 ? v : 1;

	for (int i = 0; i < 60; i++)
		r = (r + v / r) / 2;
	return r;
}

static double chi2_limit(size_t cells)
{
	double df = (double)cells - 1;

	return df + 6 * root(2 * df);
}

static void assert_uniform(const uint32_t *obs, size_t cells, double total, const char *what)
{
	double x = chi2_uniform(obs, cells, total);

	if (x > chi2_limit(cells))
		fail_msg("%s: chi-square %.1f over %zu cells exceeds %.1f (%s)", what, x, cells,
		         chi2_limit(cells), test_seed_note());
}

static void derive_uniform(uint8_t family, enum cfr_policy policy)
{
	struct cfr_engine_config cfg;
	uint32_t *obs = calloc(CELLS, sizeof(*obs));
	uint8_t seed[CFR_SEED_BYTES], remote[16] = {203, 0, 113, 10}, alias[16];
	uint16_t port;
	const uint32_t per_seed = CELLS * 10, seeds = 10;

	assert_non_null(obs);
	small_config(&cfg, policy);
	for (uint8_t s = 0; s < seeds; s++) {
		fixed_seed(seed, s);
		for (uint32_t c = 0; c < per_seed; c++) {
			/* Sticky policies key the alias on the remote: vary it, as flows do. */
			remote[3] = (uint8_t)c;
			remote[15] = (uint8_t)c;
			remote[14] = (uint8_t)(c >> 8);
			remote[2] = (uint8_t)(c >> 8);
			cfr_derive_alias(&cfg, seed, family, c, remote, alias, &port);
			assert_true(port >= cfg.port_min && port <= cfg.port_max);
			assert_true(lab_in_pool(family == CFR_FAMILY_V4 ? 4 : 6, alias));
			if (policy == CFR_POLICY_PER_SUBSCRIBER)
				obs[port - cfg.port_min]++;
			else
				obs[alias_index(family, alias) * PORTS + (port - cfg.port_min)]++;
		}
	}
	assert_uniform(obs, policy == CFR_POLICY_PER_SUBSCRIBER ? PORTS : CELLS,
	               (double)per_seed * seeds, cfr_policy_name(policy));
	free(obs);
}

static void uniform_per_flow4(void **state)
{
	(void)state;
	derive_uniform(CFR_FAMILY_V4, CFR_POLICY_PER_FLOW);
}

static void uniform_per_flow6(void **state)
{
	(void)state;
	derive_uniform(CFR_FAMILY_V6, CFR_POLICY_PER_FLOW);
}

static void uniform_per_destination4(void **state)
{
	(void)state;
	derive_uniform(CFR_FAMILY_V4, CFR_POLICY_PER_DESTINATION);
}

static void uniform_per_subscriber_ports6(void **state)
{
	(void)state;
	derive_uniform(CFR_FAMILY_V6, CFR_POLICY_PER_SUBSCRIBER);
}

/* The allocation an engine gave: source address and port of the translated packet. */
static void translated_alias(const struct pkt *p, uint8_t alias[16], uint16_t *port)
{
	size_t l4;

	memset(alias, 0, 16);
	if ((p->data[0] >> 4) == 4) {
		memcpy(alias, p->data + 12, 4);
		l4 = (size_t)(p->data[0] & 15) * 4;
	} else {
		memcpy(alias, p->data + 8, 16);
		l4 = 40;
	}
	*port = (uint16_t)(p->data[l4] << 8 | p->data[l4 + 1]);
}

/* Allocations through the real engine (with its skip-on-collision) are uniform too. */
static void uniform_through_engine(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	uint32_t by_alias[64] = {0}, by_port[PORTS] = {0};
	const unsigned subs = 64, flows = 100;

	(void)state;
	small_config(&cfg, CFR_POLICY_PER_FLOW);
	eng = lab_engine(&cfg);
	for (unsigned i = 0; i < subs * flows; i++) {
		struct pkt_spec s;
		struct pkt out;
		struct cfr_pkt r;
		uint8_t alias[16];
		uint16_t port;

		lab_spec(&s, 4, IPPROTO_UDP, (uint16_t)(10000 + i / subs), 53);
		s.src[1] = 64;
		s.src[2] = (uint8_t)(i % subs);
		s.src[3] = 2;
		s.dst[3] = (uint8_t)(1 + i % 200);
		s.dport = (uint16_t)(1000 + i % 7);
		r = lab_send(eng, &s, &out, 1000 + i);
		lab_expect_forward(&r, CFR_DIR_OUT);
		translated_alias(&out, alias, &port);
		by_alias[alias[3] & 63]++;
		by_port[port - cfg.port_min]++;
	}
	assert_uniform(by_alias, 64, subs * flows, "engine aliases");
	assert_uniform(by_port, PORTS, subs * flows, "engine ports");
	cfr_engine_free(eng);
}

struct copied {
	struct cfr_epoch_record rec[8];
	unsigned n;
};

static void copy_record(void *ctx, const struct cfr_epoch_record *rec)
{
	struct copied *c = ctx;

	assert_true(c->n < 8);
	c->rec[c->n++] = *rec;
}

struct flow_seen {
	uint8_t family, sub[16], alias[16];
	uint16_t port;
	uint64_t t;
	unsigned matches;
};

static void count_match(void *ctx, const struct cfr_epoch_record *rec, const struct cfr_match *m)
{
	struct flow_seen *f = ctx;

	(void)m;
	assert_int_equal(rec->family, f->family);
	assert_memory_equal(rec->subscriber, f->sub, f->family == CFR_FAMILY_V4 ? 4 : 8);
	f->matches++;
}

/* Whether a flow before the i-th already had this alias and port. */
static bool held_before(const struct flow_seen *seen, unsigned i, uint8_t family,
                        const uint8_t alias[16], uint16_t port)
{
	for (unsigned j = 0; j < i; j++)
		if (seen[j].family == family && seen[j].port == port &&
		    memcmp(seen[j].alias, alias, 16) == 0)
			return true;
	return false;
}

/*
 * Three subscribers (two IPv4, one IPv6) open flows at different times; the
 * drained records regenerate exactly the aliases and ports the engine gave,
 * in order (skipping only pairs an earlier flow held), and a complaint for
 * each flow names its subscriber only.
 */
static void reproducible(enum cfr_policy policy)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct copied got = {0};
	struct flow_seen seen[90] = {0};
	unsigned n = 0, skipped = 0;

	lab_config(&cfg);
	cfg.limits = (struct cfr_limits){0};
	cfg.policy[0] = cfg.policy[1] = (uint8_t)policy;
	eng = lab_engine(&cfg);
	for (unsigned i = 0; i < 30; i++) {
		for (int who = 0; who < 3; who++) {
			int fam = who == 2 ? 6 : 4;
			struct flow_seen *f = &seen[n++];
			struct pkt_spec s;
			struct pkt out;
			struct cfr_pkt r;

			lab_spec(&s, fam, IPPROTO_UDP, (uint16_t)(20000 + i), 443);
			if (who == 1)
				memcpy(s.src, lab_sub2(4), 16);
			f->family = fam == 4 ? CFR_FAMILY_V4 : CFR_FAMILY_V6;
			memset(f->sub, 0, 16);
			memcpy(f->sub, s.src, fam == 4 ? 4 : 8);
			/* Bursts and gaps: several flows in one second, then seconds of nothing. */
			f->t = 1000 + (uint64_t)(i / 3) * 4000 + i % 3 * 10 + (uint64_t)who;
			r = lab_send(eng, &s, &out, f->t);
			lab_expect_forward(&r, CFR_DIR_OUT);
			translated_alias(&out, f->alias, &f->port);
		}
	}
	cfr_engine_epoch_rotate(eng, 60000);
	assert_int_equal(cfr_engine_drain_records(eng, copy_record, &got, 100), 0);
	assert_int_equal(got.n, 3);
	for (unsigned k = 0; k < got.n; k++) {
		const struct cfr_epoch_record *rec = &got.rec[k];
		uint32_t c = 0;

		for (unsigned i = 0; i < n; i++) {
			uint8_t alias[16];
			uint16_t port;

			if (seen[i].family != rec->family ||
			    memcmp(seen[i].sub, rec->subscriber, 16) != 0)
				continue;
			/* A derived pair already held by an earlier flow to the same remote
			 * is skipped by the allocator, and only such a pair. */
			for (;;) {
				cfr_derive_alias(&cfg, rec->seed, rec->family, c++,
				                 lab_remote(rec->family == CFR_FAMILY_V4 ? 4 : 6),
				                 alias, &port);
				if (memcmp(alias, seen[i].alias, 16) == 0 && port == seen[i].port)
					break;
				assert_true(held_before(seen, i, rec->family, alias, port));
				skipped++;
			}
			assert_memory_equal(alias, seen[i].alias, 16);
			assert_int_equal(port, seen[i].port);
		}
		assert_int_equal(c, rec->counter);
	}
	for (unsigned i = 0; i < n; i++) {
		struct cfr_complaint q = {.family = seen[i].family,
		                          .port = seen[i].port,
		                          .have_remote = true,
		                          .from_ms = seen[i].t,
		                          .to_ms = seen[i].t};

		memcpy(q.alias, seen[i].alias, 16);
		memcpy(q.remote, lab_remote(seen[i].family == CFR_FAMILY_V4 ? 4 : 6), 16);
		for (unsigned k = 0; k < got.n; k++)
			assert_true(
			    cfr_record_match(&cfg, &got.rec[k], &q, count_match, &seen[i]) >= 0);
		/* A skipped pair is a second candidate, of the same subscriber. */
		assert_in_range(seen[i].matches, 1, 1 + skipped);
	}
	sodium_memzero(&got, sizeof(got));
	cfr_engine_free(eng);
}

static void reproducible_per_flow(void **state)
{
	(void)state;
	reproducible(CFR_POLICY_PER_FLOW);
}

static void reproducible_per_destination(void **state)
{
	(void)state;
	reproducible(CFR_POLICY_PER_DESTINATION);
}

static void reproducible_per_subscriber(void **state)
{
	(void)state;
	reproducible(CFR_POLICY_PER_SUBSCRIBER);
}

/* A per-destination complaint without the remote cannot be regenerated: say so. */
static void per_destination_needs_remote(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_epoch_record rec = {
	    .family = CFR_FAMILY_V4, .counter = 1, .timeline_len = 3, .timeline = {0, 0, 1}};
	struct cfr_complaint q = {.family = CFR_FAMILY_V4, .to_ms = UINT64_MAX};

	(void)state;
	small_config(&cfg, CFR_POLICY_PER_DESTINATION);
	assert_int_equal(cfr_record_match(&cfg, &rec, &q, NULL, NULL), -EDESTADDRREQ);
}

/*
 * The front door's view of linking: the step from one allocation to the
 * next of the same subscriber (alias and port differences) has the same,
 * uniform, distribution as the step between two different subscribers'
 * allocations. Were it not so, consecutive flows could be chained.
 */
static void unlinkable_without_seed(void **state)
{
	struct cfr_engine_config cfg;
	uint32_t *same = calloc(CELLS, sizeof(*same)), *cross = calloc(CELLS, sizeof(*cross));
	uint8_t s1[CFR_SEED_BYTES], s2[CFR_SEED_BYTES];
	const uint32_t n = CELLS * 50;
	double x = 0;

	(void)state;
	assert_non_null(same);
	assert_non_null(cross);
	small_config(&cfg, CFR_POLICY_PER_FLOW);
	fixed_seed(s1, 101);
	fixed_seed(s2, 102);
	for (uint32_t c = 0; c < n; c++) {
		uint8_t a[16], b[16], o[16];
		uint16_t pa, pb, po;

		cfr_derive_alias(&cfg, s1, CFR_FAMILY_V4, c, NULL, a, &pa);
		cfr_derive_alias(&cfg, s1, CFR_FAMILY_V4, c + n, NULL, b, &pb);
		cfr_derive_alias(&cfg, s2, CFR_FAMILY_V4, c, NULL, o, &po);
		same[((b[3] - a[3]) & 63u) * PORTS + ((unsigned)(pb - pa) & (PORTS - 1))]++;
		cross[((o[3] - a[3]) & 63u) * PORTS + ((unsigned)(po - pa) & (PORTS - 1))]++;
	}
	assert_uniform(same, CELLS, n, "steps within one subscriber");
	assert_uniform(cross, CELLS, n, "steps across subscribers");
	/* Two-sample chi-square: the adversary cannot tell the two apart. */
	for (size_t i = 0; i < CELLS; i++)
		if (same[i] + cross[i])
			x += ((double)same[i] - cross[i]) * ((double)same[i] - cross[i]) /
			     ((double)same[i] + cross[i]);
	if (x > chi2_limit(CELLS))
		fail_msg("same-subscriber steps distinguishable: two-sample chi-square %.1f (%s)",
		         x, test_seed_note());
	free(same);
	free(cross);
}

/* --- the write-ahead journal ----------------------------------------------- */

struct journal_seen {
	struct cfr_journal_item it[16];
	unsigned n;
};

static void keep_item(void *ctx, const struct cfr_journal_item *it)
{
	struct journal_seen *j = ctx;

	assert_true(j->n < 16);
	j->it[j->n++] = *it;
}

/* A UDP flow from 100.64.<line>.x to port <dport>, at <t>. */
static void journal_flow(struct cfr_engine *eng, uint8_t line, uint16_t sport, uint64_t t)
{
	struct pkt_spec sp;
	struct pkt out;
	struct cfr_pkt r;

	lab_spec(&sp, 4, IPPROTO_UDP, sport, 443);
	sp.src[2] = line;
	r = lab_send(eng, &sp, &out, t);
	lab_expect_forward(&r, CFR_DIR_OUT);
}

/*
 * A subscriber's first journal item is a snapshot (its seed and record so
 * far), later ones deltas of exactly the counter values drawn since, in
 * the seconds they were drawn; nothing is handed twice; a restart brings
 * snapshots of everyone, idle or not; nothing of the new epoch comes while
 * the ended epoch's records wait.
 */
static void journal_snapshot_then_deltas(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct journal_seen j = {0};
	struct copied c = {0};
	uint8_t seed[CFR_SEED_BYTES];

	(void)state;
	lab_config(&cfg);
	cfg.limits = (struct cfr_limits){0};
	eng = lab_engine(&cfg);
	journal_flow(eng, 1, 30000, 1000);
	journal_flow(eng, 1, 30001, 1400);
	journal_flow(eng, 2, 30000, 1500);
	assert_int_equal(cfr_engine_drain_journal(eng, keep_item, &j, 16), 0);
	assert_int_equal(j.n, 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(j.it[i].kind, CFR_JOURNAL_SNAPSHOT);
		assert_int_equal(j.it[i].rec.counter, j.it[i].rec.subscriber[2] == 1 ? 2 : 1);
		assert_true(j.it[i].rec.slot == 1 || j.it[i].rec.slot == 2);
		assert_true(j.it[i].rec.timeline_len > 0);
	}
	memcpy(seed, j.it[0].rec.seed, sizeof(seed));
	/* Nothing new, nothing handed. */
	j.n = 0;
	assert_int_equal(cfr_engine_drain_journal(eng, keep_item, &j, 16), 0);
	assert_int_equal(j.n, 0);
	/* Two more flows of one subscriber, in seconds 2 and 3 of the epoch: one delta. */
	journal_flow(eng, 1, 30002, 3100);
	journal_flow(eng, 1, 30003, 4200);
	assert_int_equal(cfr_engine_drain_journal(eng, keep_item, &j, 16), 0);
	assert_int_equal(j.n, 1);
	assert_int_equal(j.it[0].kind, CFR_JOURNAL_DELTA);
	assert_int_equal(j.it[0].rec.slot, 1);
	assert_int_equal(j.it[0].counter_from, 2);
	assert_int_equal(j.it[0].count, 2);
	assert_int_equal(j.it[0].t_from, 2);
	assert_int_equal(j.it[0].t_to, 3);
	/* A restart: both again, as snapshots, the idle one too; the seed is the same. */
	j.n = 0;
	cfr_engine_journal_restart(eng);
	assert_int_equal(cfr_engine_drain_journal(eng, keep_item, &j, 16), 0);
	assert_int_equal(j.n, 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(j.it[i].kind, CFR_JOURNAL_SNAPSHOT);
		if (j.it[i].rec.slot == 1) {
			assert_int_equal(j.it[i].rec.counter, 4);
			assert_memory_equal(j.it[i].rec.seed, seed, sizeof(seed));
		}
	}
	/* The epoch ends with a draw pending: records first, then the new epoch's journal. */
	journal_flow(eng, 2, 30001, 5000);
	cfr_engine_epoch_rotate(eng, 6000);
	journal_flow(eng, 3, 30000, 6100);
	j.n = 0;
	assert_true(cfr_engine_drain_journal(eng, keep_item, &j, 16) > 0);
	assert_int_equal(j.n, 0);
	assert_int_equal(cfr_engine_drain_records(eng, copy_record, &c, 8), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(cfr_engine_drain_journal(eng, keep_item, &j, 16), 0);
	assert_int_equal(j.n, 1);
	assert_int_equal(j.it[0].kind, CFR_JOURNAL_SNAPSHOT);
	assert_int_equal(j.it[0].rec.epoch, 2);
	assert_int_equal(j.it[0].rec.slot, 1);
	sodium_memzero(&j, sizeof(j));
	sodium_memzero(&c, sizeof(c));
	cfr_engine_free(eng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(uniform_per_flow4),
	    cmocka_unit_test(uniform_per_flow6),
	    cmocka_unit_test(uniform_per_destination4),
	    cmocka_unit_test(uniform_per_subscriber_ports6),
	    cmocka_unit_test(uniform_through_engine),
	    cmocka_unit_test(reproducible_per_flow),
	    cmocka_unit_test(reproducible_per_destination),
	    cmocka_unit_test(reproducible_per_subscriber),
	    cmocka_unit_test(per_destination_needs_remote),
	    cmocka_unit_test(unlinkable_without_seed),
	    cmocka_unit_test(journal_snapshot_then_deltas),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
