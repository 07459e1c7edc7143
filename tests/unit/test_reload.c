/*
 * Reconfiguring a running engine (src/lib/reconfigure.c), as cfrd's reload
 * does: limits and timeouts change in place without touching a flow; a
 * removed pool prefix drains (its flows' packets still translate both ways,
 * new flows never use it, it is forgotten with its last flow) while the
 * anonymity counts stay consistent even though every prefix after it moved
 * up in the configuration; changes the engine cannot make are refused and
 * leave it as it was. IPv4 and IPv6.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lab.h"
#include "pkt.h"

#define T0    1000000ull
#define UDP_S 30

/* Pool prefixes: A is the lab's, B another, C a third. */
static const char *const pool4[] = {"192.0.2.0/26", "192.0.2.64/26", "192.0.2.128/26"};
static const char *const pool6[] = {"2001:db8:a1::/64", "2001:db8:a2::/64", "2001:db8:a3::/64"};

static void set_pools(struct cfr_engine_config *cfg, const char *which)
{
	unsigned i;

	cfg->n_pool4 = cfg->n_pool6 = 0;
	for (i = 0; which[i]; i++) {
		unsigned k = (unsigned)(which[i] - 'A');

		assert_int_equal(cfr_prefix_parse(pool4[k], &cfg->pool4[cfg->n_pool4++]), 0);
		assert_int_equal(cfr_prefix_parse(pool6[k], &cfg->pool6[cfg->n_pool6++]), 0);
	}
}

static void config_with(struct cfr_engine_config *cfg, const char *pools)
{
	lab_config(cfg);
	set_pools(cfg, pools);
	cfg->timeout[CFR_TIMEOUT_UDP] = UDP_S;
}

/* Which of A, B, C <addr> lies in ('?' for none). */
static char pool_of(int family, const uint8_t *addr)
{
	unsigned k;

	for (k = 0; k < 3; k++) {
		struct cfr_prefix p;

		assert_int_equal(cfr_prefix_parse(family == 4 ? pool4[k] : pool6[k], &p), 0);
		if (cfr_prefix_contains(&p, lab_fam(family), addr))
			return (char)('A' + k);
	}
	return '?';
}

/* Reconfigure <eng> to <cfg> the way cfrd does; fails the test if refused. */
static unsigned reload(struct cfr_engine *eng, const struct cfr_engine_config *cfg, uint64_t now)
{
	char why[160];
	struct cfr_reconfig *rc = cfr_reconfig_new(eng, cfg, why, sizeof why);
	unsigned changes;

	if (!rc)
		fail_msg("reload refused: %s", why);
	changes = cfr_reconfig_changes(rc);
	cfr_engine_reconfigure(eng, rc, now);
	cfr_reconfig_free(rc);
	return changes;
}

/* A reload <eng> must refuse; <why> must mention <expect>. */
static void refused(struct cfr_engine *eng, const struct cfr_engine_config *cfg, const char *expect)
{
	char why[160];
	struct cfr_reconfig *rc = cfr_reconfig_new(eng, cfg, why, sizeof why);

	if (rc) {
		cfr_reconfig_free(rc);
		fail_msg("reload accepted, expected a refusal about '%s'", expect);
	}
	assert_int_equal(errno, EINVAL);
	if (!strstr(why, expect))
		fail_msg("refused with '%s', expected it to mention '%s'", why, expect);
}

/* Send one more datagram of the flow from <sport>: it must keep <alias>:<port>. */
static void expect_same_alias(struct cfr_engine *eng, int family, uint16_t sport,
                              const struct pkt *first, uint64_t now)
{
	struct pkt out;
	struct pkt_info a, b;

	lab_open_flow(eng, family, IPPROTO_UDP, sport, 7, &out, now);
	assert_int_equal(pkt_parse(first->data, first->len, false, &a), 0);
	assert_int_equal(pkt_parse(out.data, out.len, false, &b), 0);
	assert_memory_equal(a.src, b.src, 16);
	assert_int_equal(a.sport, b.sport);
}

/* TSval of the TCP packet <p> (the builder's options: the timestamp after MSS and SACK-OK). */
static uint32_t tsval_of(const struct pkt *p)
{
	struct pkt_info pi;
	const uint8_t *l4;
	size_t off = 20, hl;

	assert_int_equal(pkt_parse(p->data, p->len, false, &pi), 0);
	l4 = p->data + pi.l3_len;
	hl = (size_t)(l4[12] >> 4) * 4;
	while (off + 10 <= hl && !(l4[off] == 8 && l4[off + 1] == 10))
		off += l4[off] == 1 ? 1 : l4[off + 1] ? l4[off + 1] : hl;
	if (off + 10 > hl)
		fail_msg("no timestamp option");
	return pkt_get32(l4 + off + 2);
}

static uint32_t pool_flows(const struct cfr_engine *eng, int family, char which, bool *draining)
{
	struct cfr_pool_info info[2 * CFR_MAX_POOL_PREFIXES * 2];
	unsigned n = cfr_engine_pools(eng, info, 64), i;
	struct cfr_prefix p;

	assert_int_equal(
	    cfr_prefix_parse(family == 4 ? pool4[which - 'A'] : pool6[which - 'A'], &p), 0);
	for (i = 0; i < n && i < 64; i++)
		if (info[i].prefix.family == p.family && info[i].prefix.len == p.len &&
		    memcmp(info[i].prefix.addr, p.addr, 16) == 0) {
			*draining = info[i].draining;
			return info[i].flows;
		}
	*draining = false;
	return UINT32_MAX; /* not in use */
}

/*
 * Limits and timeouts change in place: the subscriber's flows stay, the
 * new limit admits the flow the old one refused, the epoch goes on.
 */
static void limits_change_in_place(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct pkt out[3], extra;
	struct pkt_spec s;
	struct cfr_pkt r;
	uint64_t epoch;
	int family;

	(void)state;
	config_with(&cfg, "A");
	cfg.limits.flows_per_subscriber[CFR_PROTO_UDP] = 2;
	eng = lab_engine(&cfg);
	for (family = 4; family <= 6; family += 2) {
		lab_open_flow(eng, family, IPPROTO_UDP, 40000, 7, &out[0], T0);
		lab_open_flow(eng, family, IPPROTO_UDP, 40001, 7, &out[1], T0);
		lab_spec(&s, family, IPPROTO_UDP, 40002, 7);
		r = lab_send(eng, &s, &extra, T0);
		lab_expect_drop(&r, CFR_DROP_SUBSCRIBER_FLOW_LIMIT);
	}
	epoch = cfr_engine_stats(eng)->epoch;

	cfg.limits.flows_per_subscriber[CFR_PROTO_UDP] = 3;
	cfg.timeout[CFR_TIMEOUT_UDP] = 5;
	assert_int_equal(reload(eng, &cfg, T0 + 1000), CFR_CHANGE_LIMITS | CFR_CHANGE_TIMEOUTS);
	assert_int_equal(cfr_engine_stats(eng)->epoch, epoch);
	for (family = 4; family <= 6; family += 2) {
		lab_open_flow(eng, family, IPPROTO_UDP, 40000, 7, &out[0], T0 + 1000);
		lab_expect_reply(eng, &out[0], 40000, T0 + 1000);
		lab_open_flow(eng, family, IPPROTO_UDP, 40002, 7, &out[2], T0 + 1000);
		lab_spec(&s, family, IPPROTO_UDP, 40003, 7);
		r = lab_send(eng, &s, &extra, T0 + 1000);
		lab_expect_drop(&r, CFR_DROP_SUBSCRIBER_FLOW_LIMIT);
	}
	/* The shorter UDP timeout holds for the flows that were there before. */
	cfr_engine_expire(eng, T0 + 7000);
	for (family = 0; family < 2; family++)
		assert_int_equal(cfr_engine_stats(eng)->flows_active[family][CFR_PROTO_UDP], 0);
	assert_int_equal(cfr_engine_stats(eng)->flows_expired, 6);
	cfr_engine_free(eng);
}

/* A reload with nothing new changes nothing, and ends no epoch. */
static void same_config_is_no_change(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct pkt out;

	(void)state;
	config_with(&cfg, "AB");
	eng = lab_engine(&cfg);
	lab_open_flow(eng, 4, IPPROTO_UDP, 40000, 7, &out, T0);
	assert_int_equal(reload(eng, &cfg, T0), 0);
	assert_int_equal(cfr_engine_stats(eng)->epoch, 1);
	lab_expect_reply(eng, &out, 40000, T0);
	cfr_engine_free(eng);
}

/*
 * Pool A removed, B added: A's flows go on, both directions, with their
 * aliases; a hundred new flows all land in B; A is listed as draining
 * with its flows, still ours (an outside packet from it is spoofed),
 * and forgotten once they expire; the epoch ended at the reload.
 */
static void removed_pool_drains(int family)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct pkt first, out;
	struct pkt_info pi;
	struct pkt_spec s;
	struct cfr_pkt r;
	bool draining;
	uint16_t i;

	config_with(&cfg, "A");
	eng = lab_engine(&cfg);
	lab_open_flow(eng, family, IPPROTO_UDP, 40000, 7, &first, T0);
	assert_int_equal(pkt_parse(first.data, first.len, false, &pi), 0);
	assert_int_equal(pool_of(family, pi.src), 'A');

	set_pools(&cfg, "B");
	assert_int_equal(reload(eng, &cfg, T0 + 1000), CFR_CHANGE_POOLS);
	assert_int_equal(cfr_engine_stats(eng)->epoch, 2);
	assert_int_equal(pool_flows(eng, family, 'A', &draining), 1);
	assert_true(draining);
	assert_int_equal(pool_flows(eng, family, 'B', &draining), 0);
	assert_false(draining);

	for (i = 0; i < 100; i++) {
		lab_open_flow(eng, family, IPPROTO_UDP, (uint16_t)(41000 + i), 7, &out, T0 + 2000);
		assert_int_equal(pkt_parse(out.data, out.len, false, &pi), 0);
		assert_int_equal(pool_of(family, pi.src), 'B');
	}
	assert_int_equal(pool_flows(eng, family, 'B', &draining), 100);
	/* The old flow, some seconds on: same alias out, translated in. */
	expect_same_alias(eng, family, 40000, &first, T0 + 20000);
	lab_expect_reply(eng, &first, 40000, T0 + 20000);

	/* A packet from outside claiming an address of the draining pool. */
	lab_spec(&s, family, IPPROTO_UDP, 7, 40000);
	assert_int_equal(pkt_parse(first.data, first.len, false, &pi), 0);
	memcpy(s.src, pi.src, 16);
	memcpy(s.dst, pi.src, 16);
	r = lab_send(eng, &s, &out, T0 + 20000);
	lab_expect_drop(&r, CFR_DROP_SPOOFED_SOURCE);

	/* The new flows expire first, then the old one: A is forgotten with it. */
	cfr_engine_expire(eng, T0 + 2000 + (UDP_S + 2) * 1000);
	assert_int_equal(pool_flows(eng, family, 'A', &draining), 1);
	assert_int_equal(pool_flows(eng, family, 'B', &draining), 0);
	cfr_engine_expire(eng, T0 + 20000 + (UDP_S + 2) * 1000);
	assert_int_equal(pool_flows(eng, family, 'A', &draining), UINT32_MAX);

	/* Its aliases are strangers now: a packet to one is not taken for inbound. */
	lab_reply_spec(&s, &first);
	r = lab_send(eng, &s, &out, T0 + 60000);
	assert_int_equal(r.verdict, CFR_VERDICT_DROP);
	assert_int_equal(r.dir, CFR_DIR_OUT);
	cfr_engine_free(eng);
}

static void removed_pool_drains4(void **state)
{
	(void)state;
	removed_pool_drains(4);
}

static void removed_pool_drains6(void **state)
{
	(void)state;
	removed_pool_drains(6);
}

/*
 * Anonymity counts survive the shift of positions: with pools A, B and C
 * and flows on each, removing A moves B and C up in the configuration.
 * Every count must still come back to zero as the flows end, and what
 * cfr_engine_anonymity() reports must match the live flows throughout.
 */
static void anonymity_counts_follow(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_anon_stats as;
	struct cfr_engine *eng;
	struct pkt out;
	unsigned fam;
	uint16_t i;

	(void)state;
	config_with(&cfg, "ABC");
	eng = lab_engine(&cfg);
	for (i = 0; i < 60; i++) {
		lab_open_flow(eng, 4, IPPROTO_UDP, (uint16_t)(40000 + i), 7, &out, T0);
		lab_open_flow(eng, 6, IPPROTO_UDP, (uint16_t)(40000 + i), 7, &out, T0);
	}
	cfr_engine_anonymity(eng, &as);
	/* One subscriber: every alias in use is shared by exactly it. */
	assert_int_equal(as.max[CFR_FAMILY_V4], 1);
	assert_int_equal(as.aliases_in_use[CFR_FAMILY_V6], 3);

	set_pools(&cfg, "BC");
	reload(eng, &cfg, T0 + 1000);
	for (i = 0; i < 30; i++) {
		lab_open_flow(eng, 4, IPPROTO_UDP, (uint16_t)(42000 + i), 7, &out, T0 + 5000);
		lab_open_flow(eng, 6, IPPROTO_UDP, (uint16_t)(42000 + i), 7, &out, T0 + 5000);
	}
	cfr_engine_anonymity(eng, &as);
	assert_int_equal(as.max[CFR_FAMILY_V4], 1);
	assert_int_equal(as.aliases_in_use[CFR_FAMILY_V6], 3); /* A drains, B and C */
	assert_true(as.aliases_in_use[CFR_FAMILY_V4] >= 3);

	cfr_engine_expire(eng, T0 + (UDP_S + 2) * 1000);
	cfr_engine_anonymity(eng, &as);
	assert_int_equal(as.aliases_in_use[CFR_FAMILY_V6], 2); /* A gone with its flows */
	cfr_engine_expire(eng, T0 + 5000 + (UDP_S + 2) * 1000);
	cfr_engine_anonymity(eng, &as);
	for (fam = 0; fam < CFR_FAMILY__COUNT; fam++) {
		assert_int_equal(as.aliases_in_use[fam], 0);
		assert_int_equal(cfr_engine_stats(eng)->flows_active[fam][CFR_PROTO_UDP], 0);
	}
	cfr_engine_free(eng);
}

/* A prefix re-added while it drains takes new flows again, its old ones counted on. */
static void readded_pool_comes_back(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct pkt first, out;
	struct pkt_info pi;
	bool draining, seen_a = false;
	uint16_t i;

	(void)state;
	config_with(&cfg, "A");
	eng = lab_engine(&cfg);
	lab_open_flow(eng, 4, IPPROTO_UDP, 40000, 7, &first, T0);
	set_pools(&cfg, "B");
	reload(eng, &cfg, T0);
	set_pools(&cfg, "BA");
	reload(eng, &cfg, T0);
	assert_int_equal(pool_flows(eng, 4, 'A', &draining), 1);
	assert_false(draining);
	for (i = 0; i < 64 && !seen_a; i++) {
		lab_open_flow(eng, 4, IPPROTO_UDP, (uint16_t)(41000 + i), 7, &out, T0);
		assert_int_equal(pkt_parse(out.data, out.len, false, &pi), 0);
		seen_a = pool_of(4, pi.src) == 'A';
	}
	assert_true(seen_a);
	lab_expect_reply(eng, &first, 40000, T0);
	cfr_engine_expire(eng, T0 + (UDP_S + 2) * 1000);
	assert_int_equal(pool_flows(eng, 4, 'A', &draining), 0);
	assert_false(draining);
	cfr_engine_free(eng);
}

/*
 * What the engine cannot change is refused, and a refused reload leaves
 * everything as it was: the flow still translates, the configuration
 * still admits what it admitted.
 */
static void invalid_changes_refused(void **state)
{
	struct cfr_engine_config cfg, bad;
	struct cfr_engine *eng;
	struct pkt first;
	bool draining;
	unsigned i;

	(void)state;
	config_with(&cfg, "A");
	eng = lab_engine(&cfg);
	lab_open_flow(eng, 4, IPPROTO_UDP, 40000, 7, &first, T0);
	lab_expect_reply(eng, &first, 40000, T0);

	bad = cfg;
	bad.max_flows = cfg.max_flows * 2;
	refused(eng, &bad, "max_flows");
	bad = cfg;
	bad.max_frags = 128;
	refused(eng, &bad, "max_frags");
	bad = cfg;
	bad.max_subscribers = 64;
	refused(eng, &bad, "max_subscribers");
	bad = cfg;
	bad.subscriber_prefix6 = 56;
	refused(eng, &bad, "identity");
	bad = cfg;
	bad.port_min = 2000;
	bad.port_max = 1999;
	refused(eng, &bad, "invalid");
	bad = cfg;
	bad.n_pool4 = bad.n_pool6 = 0;
	refused(eng, &bad, "invalid");
	/* Nothing changed: the same configuration is no change, the flow goes on. */
	assert_int_equal(reload(eng, &cfg, T0), 0);
	lab_expect_reply(eng, &first, 40000, T0);

	/* A subscriber prefix over a pool prefix that still drains. */
	set_pools(&cfg, "B");
	reload(eng, &cfg, T0);
	bad = cfg;
	assert_int_equal(cfr_prefix_parse("192.0.2.0/24", &bad.subscribers[bad.n_subscribers++]),
	                 0);
	refused(eng, &bad, "drain");

	/*
	 * Draining prefixes hold their slots (64 for both families): three
	 * rounds of sixteen one-address prefixes, each given flows on all of
	 * them (200 flows: a prefix left out has odds of 2e-6), leave 48
	 * draining or active; a fourth round finds no room.
	 */
	for (i = 0; i < 4; i++) {
		bad = cfg;
		bad.n_pool4 = 0;
		for (unsigned k = 0; k < CFR_MAX_POOL_PREFIXES; k++) {
			char text[32];

			snprintf(text, sizeof text, "10.%u.%u.1/32", i, k);
			assert_int_equal(cfr_prefix_parse(text, &bad.pool4[bad.n_pool4++]), 0);
		}
		if (i == 3)
			break;
		reload(eng, &bad, T0);
		for (unsigned k = 0; k < 200; k++)
			lab_open_flow(eng, 4, IPPROTO_UDP, (uint16_t)(41000 + 200 * i + k), 7,
			              &first, T0);
	}
	refused(eng, &bad, "draining");

	lab_expect_reply(eng, &first, (uint16_t)(41000 + 599), T0);
	assert_int_equal(pool_flows(eng, 4, 'A', &draining), 1);
	assert_true(draining);
	cfr_engine_free(eng);
}

/*
 * TCP timestamp modulation is a property of a flow: turned off by a
 * reload, a connection that had it keeps its offset (a TSval that jumps
 * back fails PAWS); a new connection has none.
 */
static void timestamps_keep_per_flow(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct pkt_spec s;
	struct pkt out;
	struct cfr_pkt r;
	uint32_t tsval;

	(void)state;
	config_with(&cfg, "A");
	eng = lab_engine(&cfg);
	lab_spec(&s, 4, IPPROTO_TCP, 40000, 443);
	s.tcp_ts = true;
	s.tsval = 1000;
	r = lab_send(eng, &s, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	tsval = tsval_of(&out);
	assert_int_not_equal(tsval, 1000);

	cfg.scrub.tcp_timestamps = false;
	assert_int_equal(reload(eng, &cfg, T0), CFR_CHANGE_SCRUB);
	s.tsval = 1001;
	s.tcp_flags = PKT_TCP_ACK;
	r = lab_send(eng, &s, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_equal(tsval_of(&out), tsval + 1);

	lab_spec(&s, 4, IPPROTO_TCP, 40001, 443);
	s.tcp_ts = true;
	s.tsval = 5000;
	r = lab_send(eng, &s, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_equal(tsval_of(&out), 5000);
	cfr_engine_free(eng);
}

/* A subscriber prefix bound to another line by a reload is held to it at once. */
static void line_binding_changes(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct pkt_spec s;
	struct pkt out;
	struct cfr_pkt r;

	(void)state;
	config_with(&cfg, "A");
	cfg.subscriber_ingress[0] = 1;
	eng = lab_engine(&cfg);
	lab_spec(&s, 4, IPPROTO_UDP, 40000, 7);
	pkt_build(&out, &s);
	r = (struct cfr_pkt){.data = out.data, .len = out.len, .ingress = 1};
	cfr_engine_process(eng, &r, 1, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);

	cfg.subscriber_ingress[0] = 2;
	assert_int_equal(reload(eng, &cfg, T0), CFR_CHANGE_SUBSCRIBERS);
	pkt_build(&out, &s);
	r = (struct cfr_pkt){.data = out.data, .len = out.len, .ingress = 1};
	cfr_engine_process(eng, &r, 1, T0);
	lab_expect_drop(&r, CFR_DROP_INGRESS_MISMATCH);
	cfr_engine_free(eng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(limits_change_in_place),  cmocka_unit_test(same_config_is_no_change),
	    cmocka_unit_test(removed_pool_drains4),    cmocka_unit_test(removed_pool_drains6),
	    cmocka_unit_test(anonymity_counts_follow), cmocka_unit_test(readded_pool_comes_back),
	    cmocka_unit_test(invalid_changes_refused), cmocka_unit_test(timestamps_keep_per_flow),
	    cmocka_unit_test(line_binding_changes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
