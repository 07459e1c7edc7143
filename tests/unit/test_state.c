/*
 * Handing an engine's state to a new engine (src/lib/state.c), as a cfrd
 * restart does: flows keep their aliases and TCP timestamp offsets both
 * ways, a pool prefix a reload left draining still translates, the
 * epoch's seeds carry over (the same records come out of both), and a
 * state from another layout, or with indexes outside the tables, is
 * refused rather than used. IPv4 and IPv6.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "engine-t.h"
#include "lab.h"
#include "pkt.h"

#define T0 1000000ull

/* The state of <eng> as the daemon moves it: a header and the regions, as bytes. */
struct image {
	uint8_t *header;
	uint8_t *bytes[CFR_STATE_REGIONS_MAX];
	size_t len[CFR_STATE_REGIONS_MAX];
	unsigned n;
};

static void image_take(struct image *im, struct cfr_engine *eng)
{
	struct cfr_state_region r[CFR_STATE_REGIONS_MAX];

	im->header = malloc(cfr_engine_state_header_size());
	assert_non_null(im->header);
	cfr_engine_state_header(eng, im->header);
	im->n = cfr_engine_state_regions(eng, r);
	for (unsigned i = 0; i < im->n; i++) {
		im->bytes[i] = malloc(r[i].len);
		assert_non_null(im->bytes[i]);
		memcpy(im->bytes[i], r[i].data, r[i].len);
		im->len[i] = r[i].len;
	}
}

static void image_free(struct image *im)
{
	free(im->header);
	for (unsigned i = 0; i < im->n; i++)
		free(im->bytes[i]);
}

/* A new engine from <im>: fails the test if refused. */
static struct cfr_engine *image_give(const struct image *im)
{
	struct cfr_state_region r[CFR_STATE_REGIONS_MAX];
	const char *why = NULL;
	struct cfr_engine *eng = cfr_engine_from_state(im->header, &why);
	unsigned n;

	if (!eng)
		fail_msg("state refused: %s", why);
	n = cfr_engine_state_regions(eng, r);
	assert_int_equal(n, im->n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(r[i].len, im->len[i]);
		memcpy(r[i].data, im->bytes[i], r[i].len);
	}
	if (cfr_engine_state_check(eng, &why) != 0)
		fail_msg("state check: %s", why);
	return eng;
}

/*
 * take_scalars() (state.c) gave <next> tables of its own: no table of
 * <old>, which lives on in this process, is named anywhere in <next>. A
 * pointer added to a module's state and to the regions but not to
 * take_scalars() fails here.
 */
static void expect_own_tables(struct cfr_engine *old, const struct cfr_engine *next)
{
	struct cfr_state_region r[CFR_STATE_REGIONS_MAX];
	unsigned n = cfr_engine_state_regions(old, r);

	for (size_t off = 0; off + sizeof(void *) <= sizeof(*next); off += sizeof(void *)) {
		void *p;

		memcpy(&p, (const uint8_t *)next + off, sizeof(p));
		for (unsigned i = 0; p && i < n; i++)
			if (p == r[i].data)
				fail_msg(
				    "the new engine names the old one's region %u (offset %zu)", i,
				    off);
	}
}

static struct cfr_engine *hand_over(struct cfr_engine *eng)
{
	struct image im;
	struct cfr_engine *next;

	image_take(&im, eng);
	next = image_give(&im);
	image_free(&im);
	expect_own_tables(eng, next);
	return next;
}

/* The flow of <first> (as it left the engine) sends again: same alias and port. */
static void expect_same_alias(struct cfr_engine *eng, int family, uint8_t proto, uint16_t sport,
                              const struct pkt *first, uint64_t now)
{
	struct pkt_spec s;
	struct pkt out;
	struct pkt_info a, b;
	struct cfr_pkt r;

	lab_spec(&s, family, proto, sport, 443);
	if (proto == IPPROTO_TCP)
		s.tcp_flags = PKT_TCP_ACK;
	r = lab_send(eng, &s, &out, now);
	lab_expect_forward(&r, CFR_DIR_OUT);
	lab_expect_checksums(&out);
	assert_int_equal(pkt_parse(first->data, first->len, false, &a), 0);
	assert_int_equal(pkt_parse(out.data, out.len, false, &b), 0);
	assert_memory_equal(a.src, b.src, family == 4 ? 4 : 16);
	assert_int_equal(a.sport, b.sport);
}

static void flows_carry_over(int family)
{
	static const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP};
	struct cfr_engine *eng = lab_engine(NULL), *next;
	struct pkt first[2];
	unsigned i;

	for (i = 0; i < 2; i++)
		lab_open_flow(eng, family, protos[i], (uint16_t)(40000 + i), 443, &first[i], T0);
	next = hand_over(eng);
	assert_memory_equal(cfr_engine_stats(next)->flows_active,
	                    cfr_engine_stats(eng)->flows_active,
	                    sizeof(cfr_engine_stats(eng)->flows_active));
	cfr_engine_free(eng);
	for (i = 0; i < 2; i++) {
		lab_expect_reply(next, &first[i], (uint16_t)(40000 + i), T0 + 1000);
		expect_same_alias(next, family, protos[i], (uint16_t)(40000 + i), &first[i],
		                  T0 + 2000);
	}
	cfr_engine_free(next);
}

static void flows_carry_over4(void **state)
{
	(void)state;
	flows_carry_over(4);
}

static void flows_carry_over6(void **state)
{
	(void)state;
	flows_carry_over(6);
}

/* A prefix removed by a reload drains on in the new engine: its slot moved with it. */
static void draining_pool_carries_over(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng = lab_engine(NULL), *next;
	struct cfr_reconfig *rc;
	struct pkt first4, first6;
	char why[160];

	(void)state;
	lab_open_flow(eng, 4, IPPROTO_UDP, 40100, 53, &first4, T0);
	lab_open_flow(eng, 6, IPPROTO_UDP, 40100, 53, &first6, T0);
	lab_config(&cfg);
	assert_int_equal(cfr_prefix_parse("192.0.2.64/26", &cfg.pool4[0]), 0);
	assert_int_equal(cfr_prefix_parse("2001:db8:a2::/64", &cfg.pool6[0]), 0);
	rc = cfr_reconfig_new(eng, &cfg, why, sizeof(why));
	if (!rc)
		fail_msg("reload refused: %s", why);
	cfr_engine_reconfigure(eng, rc, T0 + 10);
	cfr_reconfig_free(rc);

	next = hand_over(eng);
	cfr_engine_free(eng);
	lab_expect_reply(next, &first4, 40100, T0 + 1000);
	lab_expect_reply(next, &first6, 40100, T0 + 1000);
	cfr_engine_free(next);
}

struct seeds {
	uint8_t seed[4][CFR_SEED_BYTES];
	uint32_t counter[4];
	unsigned n;
};

static void keep_seed(void *ctx, const struct cfr_epoch_record *rec)
{
	struct seeds *s = ctx;

	assert_true(s->n < 4);
	memcpy(s->seed[s->n], rec->seed, CFR_SEED_BYTES);
	s->counter[s->n++] = rec->counter;
}

/* The epoch's secrets carry over: both engines seal the same records. */
static void epoch_secrets_carry_over(void **state)
{
	struct cfr_engine *eng = lab_engine(NULL), *next;
	struct seeds a = {0}, b = {0};
	struct pkt out;

	(void)state;
	lab_open_flow(eng, 4, IPPROTO_UDP, 40200, 53, &out, T0);
	lab_open_flow(eng, 6, IPPROTO_UDP, 40200, 53, &out, T0);
	next = hand_over(eng);
	cfr_engine_epoch_rotate(eng, T0 + 5000);
	cfr_engine_epoch_rotate(next, T0 + 5000);
	cfr_engine_drain_records(eng, keep_seed, &a, 4);
	cfr_engine_drain_records(next, keep_seed, &b, 4);
	assert_int_equal(a.n, 2);
	assert_int_equal(b.n, 2);
	assert_memory_equal(&a, &b, sizeof(a));
	cfr_engine_free(eng);
	cfr_engine_free(next);
}

static void damaged_states_refused(void **state)
{
	struct cfr_engine *eng = lab_engine(NULL), *next;
	struct image im;
	const char *why = NULL;
	struct pkt out;

	(void)state;
	lab_open_flow(eng, 4, IPPROTO_TCP, 40300, 443, &out, T0);
	image_take(&im, eng);

	im.header[0] ^= 0xff; /* the magic */
	assert_null(cfr_engine_from_state(im.header, &why));
	assert_non_null(why);
	im.header[0] ^= 0xff;

	im.header[12] ^= 1; /* the engine structure's size, first of the layout */
	why = NULL;
	assert_null(cfr_engine_from_state(im.header, &why));
	assert_non_null(strstr(why, "layout"));
	im.header[12] ^= 1;

	next = image_give(&im);
	next->flow.next_fresh = next->cfg.max_flows + 2;
	assert_int_not_equal(cfr_engine_state_check(next, &why), 0);
	assert_non_null(strstr(why, "outside"));
	cfr_engine_free(next);
	image_free(&im);
	cfr_engine_free(eng);
}

/*
 * A UDP mapping counts its peers (they keep it while an offload carries
 * them); the count is derived, so a table from a cfrd that kept none (all
 * zero) gets it again when taken over.
 */
static void peer_counts_recounted(void **state)
{
	struct cfr_engine *eng = lab_engine(NULL), *next;
	const char *why = NULL;
	struct pkt_spec s;
	struct pkt out;
	struct cfr_pkt r;
	uint32_t m = 0;

	(void)state;
	lab_spec(&s, 4, IPPROTO_UDP, 40400, 3478); /* the built-in endpoint-independent class */
	r = lab_send(eng, &s, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	for (uint32_t idx = 1; idx < eng->flow.next_fresh; idx++)
		if (eng->flow.flows[idx].in_use & CFR_FLOW_MAPPING)
			m = idx;
	assert_int_not_equal(m, 0);
	assert_int_equal(eng->flow.flows[m].peers, 1);
	next = hand_over(eng);
	assert_int_equal(next->flow.flows[m].peers, 1);
	next->flow.flows[m].peers = 0;
	assert_int_equal(cfr_engine_state_check(next, &why), 0);
	assert_int_equal(next->flow.flows[m].peers, 1);
	cfr_engine_free(next);
	cfr_engine_free(eng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(flows_carry_over4),
	    cmocka_unit_test(flows_carry_over6),
	    cmocka_unit_test(draining_pool_carries_over),
	    cmocka_unit_test(epoch_secrets_carry_over),
	    cmocka_unit_test(damaged_states_refused),
	    cmocka_unit_test(peer_counts_recounted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
