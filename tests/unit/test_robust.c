/*
 * Randomised robustness: valid packets of every kind the engine handles (both
 * directions, flows live) are truncated at every length and mutated at
 * random bytes, then processed. Nothing may crash or read out of bounds (run
 * the ASan build), every verdict must be consistent with its reason, the
 * counters must add up, and a forwarded packet whose checksums were right on
 * the way in must still have right checksums. The seed is fixed so that a
 * failure reproduces; CFR_TEST_SEED=N draws other inputs (seed.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "lab.h"
#include "seed.h"

#define T0        1000
#define MAX_BASES 40
#define MUTATIONS 3000

static uint64_t rng_state;

/* xorshift64*: reproducible, and independent of the engine's CSPRNG. */
static uint32_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

/*
 * The generator's start: <fixed>, or another one with CFR_TEST_SEED=N
 * (seed.h), printed with the case's output so a failure can be replayed.
 */
static uint64_t seeded(uint64_t fixed)
{
	uint64_t s = fixed ^ (test_seed() * 0x9e3779b97f4a7c15ULL);

	print_message("random inputs from %s\n", test_seed_note());
	return s != 0 ? s : fixed;
}

struct corpus {
	struct pkt p[MAX_BASES];
	unsigned n;
};

static void add(struct corpus *c, const struct pkt *p)
{
	assert_true(c->n < MAX_BASES);
	c->p[c->n++] = *p;
}

/* Open flows of every kind and collect packets that exercise each path. */
static void build_corpus(struct cfr_engine *eng, struct corpus *c)
{
	static const uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP};
	static uint8_t big[900];
	struct pkt out, p, frags[4];
	struct pkt_info t;
	struct pkt_spec s;
	struct cfr_pkt r;
	int family;
	unsigned i;

	c->n = 0;
	for (family = 4; family <= 6; family += 2) {
		for (i = 0; i < sizeof protos; i++) {
			lab_spec(&s, family, protos[i], (uint16_t)(41000 + i), 443);
			s.tcp_ts = true;
			pkt_build(&p, &s);
			add(c, &p);
			out = p;
			r = lab_process(eng, &out, T0);
			lab_expect_forward(&r, CFR_DIR_OUT);
			assert_int_equal(pkt_parse(out.data, out.len, false, &t), 0);

			lab_reply_spec(&s, &out);
			s.tcp_ts = true;
			pkt_build(&p, &s);
			add(c, &p);
			pkt_build_icmp_error(&p, family, lab_router(family), t.src,
			                     family == 4 ? 3 : 2, family == 4 ? 4 : 0, 1280,
			                     out.data, out.len);
			add(c, &p);
			pkt_build_icmp_error(&p, family, lab_router(family), t.src,
			                     family == 4 ? 11 : 3, 0, 0, out.data, t.l3_len + 8);
			add(c, &p);
		}
		/* An error the subscriber sends about an inbound packet. */
		lab_reply_spec(&s, &out);
		pkt_build(&p, &s);
		r = lab_process(eng, &p, T0);
		lab_expect_forward(&r, CFR_DIR_IN);
		assert_int_equal(pkt_parse(p.data, p.len, false, &t), 0);
		pkt_build_icmp_error(&out, family, t.dst, t.src, family == 4 ? 3 : 1, 3, 0, p.data,
		                     p.len);
		add(c, &out);

		/* Fragments, the first sent so that the later ones are known. */
		lab_spec(&s, family, IPPROTO_UDP, 41100, 443);
		s.payload = big;
		s.payload_len = sizeof big;
		pkt_build(&p, &s);
		assert_int_equal(pkt_fragment(&p, 400, 0x3333, frags, 4), 3);
		add(c, &frags[0]);
		add(c, &frags[1]);
		add(c, &frags[2]);
		r = lab_process(eng, &frags[0], T0);
		lab_expect_forward(&r, CFR_DIR_OUT);

		lab_spec(&s, family, IPPROTO_UDP, 41101, 443);
		s.ext[0] = PKT_EXT_HOPOPTS;
		s.ext[1] = PKT_EXT_DSTOPTS;
		s.n_ext = family == 6 ? 2 : 0;
		s.ip4_opt_len = family == 4 ? 12 : 0;
		pkt_build(&p, &s);
		add(c, &p);
	}
}

/* Process one (possibly broken) packet and check what can always be checked. */
static void run_one(struct cfr_engine *eng, struct pkt *p, uint64_t *processed)
{
	bool valid = pkt_verify_checksums(p->data, p->len, NULL, 0) == 0;
	struct cfr_pkt r = lab_process(eng, p, T0 + 10);
	char why[160];

	(*processed)++;
	assert_true(r.dir == CFR_DIR_OUT || r.dir == CFR_DIR_IN);
	if (r.verdict == CFR_VERDICT_DROP) {
		assert_true(r.reason != CFR_DROP_NONE && r.reason < CFR_DROP__COUNT);
		return;
	}
	assert_int_equal(r.verdict, CFR_VERDICT_FORWARD);
	assert_int_equal(r.reason, CFR_DROP_NONE);
	if (valid && pkt_verify_checksums(p->data, p->len, why, sizeof why) != 0)
		fail_msg("valid packet forwarded with a wrong checksum: %s", why);
}

static void check_counters(struct cfr_engine *eng, uint64_t processed)
{
	const struct cfr_stats *st = cfr_engine_stats(eng);
	uint64_t drops = 0;
	unsigned i;

	for (i = 0; i < CFR_DROP__COUNT; i++)
		drops += st->drops[i];
	assert_int_equal(st->drops[CFR_DROP_NONE], 0);
	assert_int_equal(st->rx[0] + st->rx[1], processed);
	assert_int_equal(st->tx[0] + st->tx[1] + drops, processed);
}

static uint64_t baseline(struct cfr_engine *eng)
{
	const struct cfr_stats *st = cfr_engine_stats(eng);

	return st->rx[0] + st->rx[1];
}

/* Make the IP header's length agree with a cut packet; false if no header is left. */
static bool set_ip_len(struct pkt *p)
{
	if (p->len >= 20 && p->data[0] >> 4 == 4) {
		pkt_put16(p->data + 2, (uint16_t)p->len);
		pkt_fix_ip4_csum(p->data);
		return true;
	}
	if (p->len >= 40 && p->data[0] >> 4 == 6) {
		pkt_put16(p->data + 4, (uint16_t)(p->len - 40));
		return true;
	}
	return false;
}

static void truncate_every_length(void **state)
{
	static struct corpus c;
	struct pkt p;
	uint64_t processed;
	unsigned i;
	uint32_t len;

	build_corpus(*state, &c);
	processed = baseline(*state);
	for (i = 0; i < c.n; i++) {
		for (len = 0; len < c.p[i].len; len++) {
			p = c.p[i];
			p.len = len;
			run_one(*state, &p, &processed);
			/*
			 * Again with the IP length made to agree, so that the cut
			 * reaches the extension header and transport parsers.
			 */
			if (!set_ip_len(&p))
				continue;
			run_one(*state, &p, &processed);
		}
	}
	check_counters(*state, processed);
}

static void mutate_random_bytes(void **state)
{
	static struct corpus c;
	struct pkt p;
	uint64_t processed;
	unsigned i, k, m, n;

	rng_state = seeded(0x9e3779b97f4a7c15ULL);
	build_corpus(*state, &c);
	processed = baseline(*state);
	for (i = 0; i < c.n; i++) {
		for (k = 0; k < MUTATIONS; k++) {
			p = c.p[i];
			n = 1 + rnd() % 4;
			for (m = 0; m < n; m++) {
				/* Mostly headers: that is where the parsers are. */
				uint32_t at =
				    rnd() % 4 ? rnd() % (p.len < 96 ? p.len : 96) : rnd() % p.len;

				p.data[at] = (uint8_t)rnd();
			}
			if (rnd() % 8 == 0)
				p.len = rnd() % (p.len + 1);
			run_one(*state, &p, &processed);
		}
	}
	check_counters(*state, processed);
}

/*
 * Mutations that keep every checksum right reach deeper than random bytes
 * (which mostly die at the IPv4 header checksum): edit a header field, then
 * repair the checksums the way a careful attacker would.
 */
static void mutate_with_valid_checksums(void **state)
{
	static struct corpus c;
	struct pkt p;
	struct pkt_info pi;
	uint64_t processed;
	unsigned i, k;

	rng_state = seeded(0x0123456789abcdefULL);
	build_corpus(*state, &c);
	processed = baseline(*state);
	for (i = 0; i < c.n; i++) {
		for (k = 0; k < MUTATIONS / 3; k++) {
			p = c.p[i];
			if (pkt_parse(p.data, p.len, false, &pi))
				continue;
			p.data[pi.l3_len + rnd() % (pi.l4_len < 64 ? pi.l4_len : 64)] =
			    (uint8_t)rnd();
			if (pi.family == 4 && rnd() % 2)
				p.data[1 + rnd() % 19] = (uint8_t)rnd();
			if (pi.family == 4)
				pkt_fix_ip4_csum(p.data);
			if (!pkt_parse(p.data, p.len, false, &pi) && !pi.frag &&
			    (pi.proto == IPPROTO_TCP || pi.proto == IPPROTO_UDP ||
			     pi.proto == (pi.family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6)) &&
			    pi.l4_len >= 8)
				pkt_fix_l4_csum(p.data, p.len);
			run_one(*state, &p, &processed);
		}
	}
	check_counters(*state, processed);
}

/* A batch mixing good and broken packets: each gets its own verdict. */
static void mixed_batch(void **state)
{
	struct pkt good1, good2, bad;
	struct pkt_spec s;
	struct cfr_pkt b[4];
	uint8_t one = 0x45;

	lab_spec(&s, 4, IPPROTO_UDP, 41200, 53);
	pkt_build(&good1, &s);
	lab_spec(&s, 6, IPPROTO_TCP, 41201, 443);
	pkt_build(&good2, &s);
	lab_spec(&s, 4, IPPROTO_UDP, 41202, 53);
	pkt_build(&bad, &s);
	bad.data[10] ^= 0xff;
	b[0] = (struct cfr_pkt){.data = good1.data, .len = good1.len};
	b[1] = (struct cfr_pkt){.data = &one, .len = 1};
	b[2] = (struct cfr_pkt){.data = good2.data, .len = good2.len};
	b[3] = (struct cfr_pkt){.data = bad.data, .len = bad.len};
	cfr_engine_process(*state, b, 4, T0);
	lab_expect_forward(&b[0], CFR_DIR_OUT);
	lab_expect_drop(&b[1], CFR_DROP_TRUNCATED);
	lab_expect_forward(&b[2], CFR_DIR_OUT);
	lab_expect_drop(&b[3], CFR_DROP_BAD_IP_CHECKSUM);
	lab_expect_checksums(&good1);
	lab_expect_checksums(&good2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, lab_setup, lab_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(truncate_every_length),
	    T(mutate_random_bytes),
	    T(mutate_with_valid_checksums),
	    T(mixed_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
