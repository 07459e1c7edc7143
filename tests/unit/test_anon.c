/*
 * Anonymity-set accounting (issue 3, draft R6): cfr_engine_anonymity()
 * against a ground truth the test computes itself from the translated
 * packets, on pools tiny enough that aliases are shared (one IPv4 /30, or
 * two /31s; one or two IPv6 /64s). Checked after every new flow: aliases in
 * use, minimum, median, maximum and the log2 histogram per family, and
 * stats.new_flows_below_k (flows placed on an alias then shared by fewer
 * than anon_k subscribers, the new one included). An IPv6 subscriber is its
 * /64, an IPv6 alias a pool prefix. When flows expire the counts follow,
 * down to zero; an epoch rotation does not change them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lab.h"

#define T0      1000
#define UDP_S   60 /* UDP idle timeout of these engines */
#define ANON_K  3
#define MAXFLOW 256
#define MAXKEY  16
#define MAXSUB  32

/* One flow as the test saw it: who sent it and which alias it left from. */
struct seen_flow {
	int family;
	unsigned sub;   /* subscriber index (an IPv6 subscriber is its /64) */
	unsigned alias; /* index into truth.key */
	uint16_t sport;
	bool live;
};

struct truth {
	struct seen_flow flow[MAXFLOW];
	unsigned nflows;
	int key_family[MAXKEY];
	uint8_t key[MAXKEY][16]; /* IPv4: the address; IPv6: the /64, or the address */
	unsigned nkeys;
	bool v6_by_address; /* a sticky policy: each IPv6 address is its own alias */
	uint64_t below_k;
};

static struct cfr_engine *engine_pools(const char *const *pool4, unsigned n4,
                                       const char *const *pool6, unsigned n6, int policy)
{
	struct cfr_engine_config cfg;
	unsigned i;

	lab_config(&cfg);
	for (i = 0; i < n4; i++)
		assert_int_equal(cfr_prefix_parse(pool4[i], &cfg.pool4[i]), 0);
	cfg.n_pool4 = n4;
	for (i = 0; i < n6; i++)
		assert_int_equal(cfr_prefix_parse(pool6[i], &cfg.pool6[i]), 0);
	cfg.n_pool6 = n6;
	cfg.anon_k = ANON_K;
	cfg.timeout[CFR_TIMEOUT_UDP] = UDP_S;
	cfg.policy[CFR_FAMILY_V4] = (uint8_t)policy;
	cfg.policy[CFR_FAMILY_V6] = (uint8_t)policy;
	return lab_engine(&cfg);
}

/*
 * Subscriber <i>: IPv4 100.64.(i+1).2; IPv6 host <host> in the /64
 * 2001:db8:100:(i+1)::/64 (two hosts of one /64 are one subscriber).
 */
static void sub_addr(int family, unsigned i, unsigned host, uint8_t out[16])
{
	char text[64];

	if (family == 4)
		snprintf(text, sizeof text, "100.64.%u.2", i + 1);
	else
		snprintf(text, sizeof text, "2001:db8:100:%x::%x", i + 1, host + 2);
	pkt_addr(family, text, out);
}

static unsigned key_of(struct truth *t, int family, const uint8_t *alias)
{
	size_t n = family == 4 ? 4 : t->v6_by_address ? 16 : 8;
	unsigned i;

	for (i = 0; i < t->nkeys; i++)
		if (t->key_family[i] == family && memcmp(t->key[i], alias, n) == 0)
			return i;
	assert_true(t->nkeys < MAXKEY);
	t->key_family[t->nkeys] = family;
	memset(t->key[t->nkeys], 0, 16);
	memcpy(t->key[t->nkeys], alias, n);
	return t->nkeys++;
}

/* Distinct subscribers with live flows on alias <k>. */
static unsigned set_size(const struct truth *t, unsigned k)
{
	bool subs[MAXSUB] = {false};
	unsigned i, n = 0;

	for (i = 0; i < t->nflows; i++) {
		const struct seen_flow *f = &t->flow[i];

		if (f->live && f->alias == k && !subs[f->sub]) {
			subs[f->sub] = true;
			n++;
		}
	}
	return n;
}

/* A UDP packet from subscriber <sub> (host <host>) port <sport> to the lab's remote. */
static void send_udp(struct cfr_engine *eng, int family, unsigned sub, unsigned host,
                     uint16_t sport, uint64_t now, struct pkt_info *out)
{
	struct pkt_spec s;
	struct pkt p;
	struct cfr_pkt r;

	memset(&s, 0, sizeof s);
	s.family = family;
	s.proto = IPPROTO_UDP;
	sub_addr(family, sub, host, s.src);
	memcpy(s.dst, lab_remote(family), 16);
	s.sport = sport;
	s.dport = 53;
	s.payload = lab_payload;
	s.payload_len = sizeof lab_payload;
	r = lab_send(eng, &s, &p, now);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_equal(pkt_parse(p.data, p.len, false, out), 0);
}

/* Open a new flow and record it, counting it below k as the engine should. */
static void new_flow(struct cfr_engine *eng, struct truth *t, int family, unsigned sub,
                     unsigned host, uint16_t sport, uint64_t now)
{
	struct pkt_info pi;
	struct seen_flow *f;
	uint64_t created = cfr_engine_stats(eng)->flows_created;

	send_udp(eng, family, sub, host, sport, now, &pi);
	assert_int_equal(cfr_engine_stats(eng)->flows_created, created + 1);
	assert_true(t->nflows < MAXFLOW && sub < MAXSUB);
	f = &t->flow[t->nflows++];
	f->family = family;
	f->sub = sub;
	f->sport = sport;
	f->alias = key_of(t, family, pi.src);
	f->live = true;
	if (set_size(t, f->alias) < ANON_K)
		t->below_k++;
}

static unsigned bucket(unsigned n)
{
	unsigned b = 0;

	while (n >>= 1)
		b++;
	return b < CFR_ANON_BUCKETS ? b : CFR_ANON_BUCKETS - 1;
}

static int cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return (x > y) - (x < y);
}

/*
 * What cfrd does (a copy under its lock, the figures after it) gives what
 * the one call gives; a buffer too small says so.
 */
static void check_two_steps(struct cfr_engine *eng, const struct cfr_anon_stats *want)
{
	uint32_t cap = cfr_engine_anon_capacity(eng), in_use;
	struct cfr_anon_copy copy = {.sizes = malloc(((size_t)cap + 1) * sizeof(uint32_t)),
	                             .cap = cap};
	struct cfr_anon_stats got;

	assert_non_null(copy.sizes);
	cfr_engine_anon_copy(eng, &copy);
	assert_false(copy.truncated);
	cfr_anon_figures(&copy, &got);
	assert_memory_equal(&got, want, sizeof(got));
	in_use = copy.n[CFR_FAMILY_V4] + copy.n[CFR_FAMILY_V6];
	if (in_use > 0 && in_use < 256) {
		/* Room for no whole chunk: the plain loop alone, in the same order. */
		struct cfr_anon_copy plain = {.sizes = malloc(in_use * sizeof(uint32_t)),
		                              .cap = in_use};

		assert_non_null(plain.sizes);
		cfr_engine_anon_copy(eng, &copy);
		cfr_engine_anon_copy(eng, &plain);
		assert_false(plain.truncated);
		assert_memory_equal(plain.n, copy.n, sizeof(copy.n));
		assert_memory_equal(plain.sizes, copy.sizes, in_use * sizeof(uint32_t));
		free(plain.sizes);
	}
	if (in_use > 1) {
		copy.cap = in_use - 1;
		cfr_engine_anon_copy(eng, &copy);
		assert_true(copy.truncated);
		assert_int_equal(copy.n[CFR_FAMILY_V4] + copy.n[CFR_FAMILY_V6], in_use - 1);
	}
	free(copy.sizes);
}

/* Compare the engine's view with the ground truth, family by family. */
static void check_at(struct cfr_engine *eng, const struct truth *t, const char *when, int line)
{
	struct cfr_anon_stats a;
	int family;

	cfr_engine_anonymity(eng, &a);
	check_two_steps(eng, &a);
	if (cfr_engine_stats(eng)->new_flows_below_k != t->below_k)
		fail_msg("line %d (%s): new_flows_below_k %llu, ground truth %llu", line, when,
		         (unsigned long long)cfr_engine_stats(eng)->new_flows_below_k,
		         (unsigned long long)t->below_k);
	for (family = 4; family <= 6; family += 2) {
		unsigned sizes[MAXKEY], hist[CFR_ANON_BUCKETS] = {0}, n = 0, k, f = lab_fam(family);

		for (k = 0; k < t->nkeys; k++) {
			unsigned sz;

			if (t->key_family[k] != family || (sz = set_size(t, k)) == 0)
				continue;
			sizes[n++] = sz;
			hist[bucket(sz)]++;
		}
		qsort(sizes, n, sizeof sizes[0], cmp_unsigned);
		if (a.aliases_in_use[f] != n)
			fail_msg("line %d (%s) IPv%d: aliases_in_use %u, ground truth %u", line,
			         when, family, a.aliases_in_use[f], n);
		if (n == 0) {
			assert_int_equal(a.min[f], 0);
			assert_int_equal(a.median[f], 0);
			assert_int_equal(a.max[f], 0);
		} else {
			if (a.min[f] != sizes[0] || a.max[f] != sizes[n - 1])
				fail_msg("line %d (%s) IPv%d: min/max %u/%u, ground truth %u/%u",
				         line, when, family, a.min[f], a.max[f], sizes[0],
				         sizes[n - 1]);
			/* For an even count either middle value is a fair integer median. */
			if (a.median[f] != sizes[(n - 1) / 2] && a.median[f] != sizes[n / 2])
				fail_msg("line %d (%s) IPv%d: median %u, ground truth %u..%u", line,
				         when, family, a.median[f], sizes[(n - 1) / 2],
				         sizes[n / 2]);
		}
		for (k = 0; k < CFR_ANON_BUCKETS; k++)
			if (a.histogram[f][k] != hist[k])
				fail_msg("line %d (%s) IPv%d: histogram[%u] = %u, ground truth %u",
				         line, when, family, k, a.histogram[f][k], hist[k]);
	}
}
#define check(eng, t, when) check_at((eng), (t), (when), __LINE__)

/*
 * 7 IPv4 subscribers x 6 flows on four aliases (192.0.2.0/30 or two /31s):
 * the counts match after every flow. Then subscribers 0..2 keep their flows
 * alive while the others' expire, and finally all expire: back to zero.
 */
static void ipv4_ground_truth(const char *const *pool4, unsigned n4)
{
	static const char *const pool6[1] = {"2001:db8:a1::/64"};
	struct cfr_engine *eng = engine_pools(pool4, n4, pool6, 1, CFR_POLICY_PER_FLOW);
	static struct truth t;
	unsigned s, j, i;
	uint64_t now = T0;

	memset(&t, 0, sizeof t);
	check(eng, &t, "fresh engine");
	for (j = 0; j < 6; j++) {
		for (s = 0; s < 7; s++) {
			new_flow(eng, &t, 4, s, 0, (uint16_t)(2000 + j), now += 10);
			check(eng, &t, "after a new flow");
		}
	}
	assert_true(t.nkeys <= 4);

	/* An epoch ending changes no live flow, so no count either. */
	cfr_engine_epoch_rotate(eng, now += 10);
	check(eng, &t, "after a rotation");

	/* 40 s later, subscribers 0..2 send again on every flow; the others are idle. */
	now += 40000;
	for (i = 0; i < t.nflows; i++) {
		struct pkt_info pi;

		if (t.flow[i].sub < 3)
			send_udp(eng, 4, t.flow[i].sub, 0, t.flow[i].sport, now, &pi);
	}
	cfr_engine_expire(eng, now += 30000); /* 70 s after the idle flows' last packet */
	for (i = 0; i < t.nflows; i++)
		t.flow[i].live = t.flow[i].sub < 3;
	assert_int_equal(cfr_engine_stats(eng)->flows_expired, 4 * 6);
	check(eng, &t, "after the idle subscribers' flows expired");

	cfr_engine_expire(eng, now += 2 * UDP_S * 1000);
	for (i = 0; i < t.nflows; i++)
		t.flow[i].live = false;
	assert_int_equal(cfr_engine_stats(eng)->flows_expired, 7 * 6);
	check(eng, &t, "after every flow expired");

	/* The pair table is reusable: new flows are counted from scratch. */
	for (s = 0; s < 5; s++) {
		new_flow(eng, &t, 4, s, 0, 3000, now += 10);
		check(eng, &t, "after a new flow, second round");
	}
	cfr_engine_free(eng);
}

static void ipv4_one_prefix(void **state)
{
	static const char *const pool4[1] = {"192.0.2.0/30"};

	(void)state;
	ipv4_ground_truth(pool4, 1);
}

static void ipv4_two_prefixes(void **state)
{
	static const char *const pool4[2] = {"192.0.2.0/31", "192.0.2.8/31"};

	(void)state;
	ipv4_ground_truth(pool4, 2);
}

/* A pool of many copy chunks: the branch-free copy and the plain one agree. */
static void ipv4_large_pool(void **state)
{
	static const char *const pool4[1] = {"198.18.0.0/20"};
	static const char *const pool6[1] = {"2001:db8:a1::/64"};
	struct cfr_engine *eng = engine_pools(pool4, 1, pool6, 1, CFR_POLICY_PER_FLOW);
	struct cfr_anon_stats a;
	struct pkt_info pi;
	uint64_t now = T0;

	(void)state;
	for (unsigned s = 0; s < 7; s++)
		for (unsigned j = 0; j < 20; j++)
			send_udp(eng, 4, s, 0, (uint16_t)(2000 + j), now += 10, &pi);
	cfr_engine_anonymity(eng, &a);
	assert_true(a.aliases_in_use[CFR_FAMILY_V4] > 20);
	assert_true(cfr_engine_anon_capacity(eng) >= 256);
	check_two_steps(eng, &a);
	cfr_engine_free(eng);
}

/*
 * IPv6 over two pool prefixes (two aliases): 6 subscribers (/64s), each
 * with two hosts and 3 flows per host. Hosts of one /64 count once. Then
 * everything expires.
 */
static void ipv6_ground_truth(void **state)
{
	static const char *const pool4[1] = {"192.0.2.0/30"};
	static const char *const pool6[2] = {"2001:db8:a1::/64", "2001:db8:a2::/64"};
	struct cfr_engine *eng = engine_pools(pool4, 1, pool6, 2, CFR_POLICY_PER_FLOW);
	static struct truth t;
	unsigned s, h, j, i;
	uint64_t now = T0;
	struct cfr_anon_stats a;

	(void)state;
	memset(&t, 0, sizeof t);
	for (j = 0; j < 3; j++)
		for (s = 0; s < 6; s++)
			for (h = 0; h < 2; h++) {
				new_flow(eng, &t, 6, s, h, (uint16_t)(2000 + j), now += 10);
				check(eng, &t, "after a new IPv6 flow");
			}
	/* 36 flows over 2 prefixes: both used, each by at most 6 subscribers. */
	cfr_engine_anonymity(eng, &a);
	assert_int_equal(a.aliases_in_use[CFR_FAMILY_V6], 2);
	assert_in_range(a.max[CFR_FAMILY_V6], 1, 6);
	assert_int_equal(a.aliases_in_use[CFR_FAMILY_V4], 0);

	cfr_engine_expire(eng, now + (UDP_S + 2) * 1000);
	for (i = 0; i < t.nflows; i++)
		t.flow[i].live = false;
	check(eng, &t, "after every IPv6 flow expired");
	cfr_engine_free(eng);
}

/*
 * Per-subscriber policy on a /30: each of 10 subscribers sits on exactly
 * one alias, so the set sizes add up to 10 whatever the draw; one /64 pool
 * prefix is shared by all 10 IPv6 subscribers (min = median = max = 10,
 * histogram bucket 3). Both families at once, counted apart.
 */
static void per_subscriber_sets(void **state)
{
	static const char *const pool4[1] = {"192.0.2.0/30"};
	static const char *const pool6[1] = {"2001:db8:a1::/64"};
	struct cfr_engine *eng = engine_pools(pool4, 1, pool6, 1, CFR_POLICY_PER_SUBSCRIBER);
	static struct truth t;
	struct cfr_anon_stats a;
	unsigned s, j, k, sum = 0;
	uint64_t now = T0;

	(void)state;
	memset(&t, 0, sizeof t);
	t.v6_by_address = true;
	for (s = 0; s < 10; s++)
		for (j = 0; j < 3; j++) {
			new_flow(eng, &t, 4, s, 0, (uint16_t)(4000 + j), now += 10);
			new_flow(eng, &t, 6, s, 0, (uint16_t)(4000 + j), now += 10);
			check(eng, &t, "per-subscriber");
		}
	for (k = 0; k < t.nkeys; k++)
		if (t.key_family[k] == 4)
			sum += set_size(&t, k);
	assert_int_equal(sum, 10);
	/*
	 * Under a sticky policy each IPv6 address is one subscriber's own: ten
	 * sets of one, not one set of ten (the /64 they share says nothing
	 * once each subscriber keeps its address for the epoch).
	 */
	cfr_engine_anonymity(eng, &a);
	assert_int_equal(a.aliases_in_use[CFR_FAMILY_V6], 10);
	assert_int_equal(a.min[CFR_FAMILY_V6], 1);
	assert_int_equal(a.median[CFR_FAMILY_V6], 1);
	assert_int_equal(a.max[CFR_FAMILY_V6], 1);
	assert_int_equal(a.histogram[CFR_FAMILY_V6][0], 10);
	cfr_engine_free(eng);
}

/*
 * new_flows_below_k by hand on a single-address pool (192.0.2.1/32) with
 * anon_k = 3: subscriber A's first and second flows (set 1), B's first
 * (set 2) are below k; C's first (set 3) is not, nor anything after while
 * three subscribers share it. When A and B go idle and expire, C's next
 * flow is below k again.
 */
static void below_k_by_hand(void **state)
{
	static const char *const pool4[1] = {"192.0.2.1/32"};
	static const char *const pool6[1] = {"2001:db8:a1::/64"};
	struct cfr_engine *eng = engine_pools(pool4, 1, pool6, 1, CFR_POLICY_PER_FLOW);
	const struct cfr_stats *st = cfr_engine_stats(eng);
	struct pkt_info pi;
	struct cfr_anon_stats a;

	(void)state;
	send_udp(eng, 4, 0, 0, 1000, T0, &pi);
	assert_int_equal(st->new_flows_below_k, 1);
	send_udp(eng, 4, 0, 0, 1001, T0 + 1, &pi);
	assert_int_equal(st->new_flows_below_k, 2);
	send_udp(eng, 4, 1, 0, 1000, T0 + 2, &pi);
	assert_int_equal(st->new_flows_below_k, 3);
	send_udp(eng, 4, 2, 0, 1000, T0 + 3, &pi);
	assert_int_equal(st->new_flows_below_k, 3);
	send_udp(eng, 4, 1, 0, 1001, T0 + 4, &pi);
	send_udp(eng, 4, 3, 0, 1000, T0 + 5, &pi);
	assert_int_equal(st->new_flows_below_k, 3);
	/* Old packets of an existing flow are no new flow. */
	send_udp(eng, 4, 0, 0, 1000, T0 + 6, &pi);
	assert_int_equal(st->new_flows_below_k, 3);
	cfr_engine_anonymity(eng, &a);
	assert_int_equal(a.aliases_in_use[CFR_FAMILY_V4], 1);
	assert_int_equal(a.max[CFR_FAMILY_V4], 4);
	assert_int_equal(a.histogram[CFR_FAMILY_V4][2], 1);

	/* Only subscriber 2 (C) stays active: everyone else expires. */
	send_udp(eng, 4, 2, 0, 1000, T0 + 50000, &pi);
	cfr_engine_expire(eng, T0 + 70000);
	cfr_engine_anonymity(eng, &a);
	assert_int_equal(a.max[CFR_FAMILY_V4], 1);
	send_udp(eng, 4, 2, 0, 1001, T0 + 70001, &pi);
	assert_int_equal(st->new_flows_below_k, 4);
	cfr_engine_free(eng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ipv4_one_prefix),   cmocka_unit_test(ipv4_two_prefixes),
	    cmocka_unit_test(ipv6_ground_truth), cmocka_unit_test(per_subscriber_sets),
	    cmocka_unit_test(below_k_by_hand),   cmocka_unit_test(ipv4_large_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
