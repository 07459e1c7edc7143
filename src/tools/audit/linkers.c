/*
 * cfr-audit: the adversaries at the front door, and the numbers that say
 * how well they do.
 *
 * A linker decides, for a pair of flows, "same subscriber". Precision is
 * the share of the pairs it joins that really are one subscriber's, recall
 * the share of one-subscriber pairs it joins. Ten million flows make 5*10^13
 * pairs, so nothing here enumerates pairs: every linker is a grouping (count
 * C(n,2) per group) or a sliding window over a sorted order (count the
 * members inside the window), run once over all flows for "predicted" and
 * once over flows grouped by subscriber for "correct".
 *
 * Sorting is an LSD radix sort of 16-byte (hi, lo) keys that skips digits on
 * which all keys agree: a few passes over memory instead of qsort's 23
 * levels of comparisons.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

const char *const linker_names[LINK__COUNT] = {
    [LINK_ADDR] = "addr",
    [LINK_WINDOW] = "addr+window",
    [LINK_TSVAL] = "tsval",
    [LINK_LABEL] = "label",
    [LINK_ADDR_FP] = "addr+fingerprint",
    [LINK_WINDOW_FP] = "window+fp",
    [LINK_TTL] = "ttl",
    [LINK_ADDR_TTL] = "addr+ttl",
    [LINK_SKEW] = "skew",
    [LINK_ADDR_SKEW] = "addr+skew",
    [LINK_ADDR_PORT] = "addr+port",
};

struct kv {
	uint64_t hi, lo;
};

struct sorter {
	struct kv *a, *tmp;
	size_t *count; /* 65536 buckets */
	size_t n;
};

static void radix_sort(struct sorter *s)
{
	unsigned pass;

	for (pass = 0; pass < 8; pass++) {
		unsigned shift = (pass % 4) * 16;
		size_t i, sum = 0;
		bool hi = pass >= 4, skip = false;
		struct kv *t;

		memset(s->count, 0, 65536 * sizeof(*s->count));
		for (i = 0; i < s->n; i++)
			s->count[((hi ? s->a[i].hi : s->a[i].lo) >> shift) & 0xffff]++;
		for (i = 0; i < 65536; i++) {
			size_t c = s->count[i];

			skip |= c == s->n;
			s->count[i] = sum;
			sum += c;
		}
		if (skip)
			continue;
		for (i = 0; i < s->n; i++)
			s->tmp[s->count[((hi ? s->a[i].hi : s->a[i].lo) >> shift) & 0xffff]++] =
			    s->a[i];
		t = s->a;
		s->a = s->tmp;
		s->tmp = t;
	}
}

static uint64_t pairs(uint64_t n)
{
	return n * (n - (n > 0)) / 2;
}

/* Sum of C(run, 2) over runs of equal hi (and, with <with_lo>, equal lo too). */
static uint64_t group_pairs(const struct sorter *s, bool with_lo)
{
	uint64_t total = 0;
	size_t i, start = 0;

	for (i = 1; i <= s->n; i++)
		if (i == s->n || s->a[i].hi != s->a[start].hi ||
		    (with_lo && s->a[i].lo != s->a[start].lo)) {
			total += pairs(i - start);
			start = i;
		}
	return total;
}

/* Pairs with equal hi whose lo differ by at most <w>. */
static uint64_t window_pairs(const struct sorter *s, uint64_t w)
{
	uint64_t total = 0;
	size_t i, j = 0;

	for (i = 0; i < s->n; i++) {
		while (s->a[j].hi != s->a[i].hi || s->a[i].lo - s->a[j].lo > w)
			j++;
		total += i - j;
	}
	return total;
}

/*
 * TCP timestamp clock: lo holds (TSval - t) << 32 | t. Two flows share a
 * clock if their offsets differ by at most tol + skew * distance and they
 * are at most horizon apart: the drift allowance is what lets the adversary
 * follow a real quartz clock (tens of ppm) for longer than a few seconds.
 */
static uint64_t tsval_pairs(const struct sorter *s, const struct link_params *lp)
{
	uint64_t total = 0,
	         maxd = lp->ts_tol_ms + (uint64_t)lp->ts_horizon_ms * lp->ts_skew_ppm / 1000000;
	size_t i, j = 0;

	for (i = 0; i < s->n; i++) {
		uint32_t di = (uint32_t)(s->a[i].lo >> 32), ti = (uint32_t)s->a[i].lo;
		size_t k;

		while (s->a[j].hi != s->a[i].hi || di - (uint32_t)(s->a[j].lo >> 32) > maxd)
			j++;
		for (k = j; k < i; k++) {
			uint32_t tk = (uint32_t)s->a[k].lo;
			uint64_t dt = ti > tk ? ti - tk : tk - ti;
			uint32_t dd = di - (uint32_t)(s->a[k].lo >> 32);

			if (dt <= lp->ts_horizon_ms &&
			    dd <= lp->ts_tol_ms + dt * lp->ts_skew_ppm / 1000000)
				total++;
		}
	}
	return total;
}

static uint64_t fingerprint(const struct obs *o)
{
	return (uint64_t)o->ttl << 8 | (o->flags & (OBS_TS | OBS_UDP));
}

/*
 * A flow enters the skew linker if the front door could estimate its clock
 * rate to within <skew_max_se_ppm>: short flows give estimates too noisy to
 * compare, and an adversary sees that in the fit's own standard error.
 */
static bool skew_usable(const struct obs *o, const struct link_params *lp)
{
	return (o->flags & OBS_SKEW) && o->skew_se <= lp->skew_max_se_ppm;
}

/* The estimate (0.001 ppm units), shifted to sort as unsigned. */
static uint64_t skew_key(const struct obs *o)
{
	return (uint64_t)((int64_t)o->skew + (1ll << 40));
}

enum keying {
	KEY_ADDR,
	KEY_ADDR_FP,
	KEY_LABEL,
	KEY_TSVAL,
	KEY_UNIT,
	KEY_TTL,
	KEY_ADDR_TTL,
	KEY_SKEW,
	KEY_ADDR_SKEW,
	KEY_ADDR_PORT
};

/*
 * Fill the sorter with one entry per flow the linker looks at. With
 * <by_sub> the subscriber is folded into hi, so the same count gives the
 * correct pairs only.
 */
static void load(struct sorter *s, const struct obs_vec *ov, const struct link_params *lp,
                 enum keying k, bool by_sub, bool timed)
{
	size_t i;

	s->n = 0;
	for (i = 0; i < ov->n; i++) {
		const struct obs *o = &ov->v[i];
		struct kv e = {0, 0};

		switch (k) {
		case KEY_ADDR:
			e.hi = o->addr;
			break;
		case KEY_ADDR_FP:
			e.hi = mix64(o->addr ^ mix64(fingerprint(o)));
			break;
		case KEY_LABEL:
			if (!(o->flags & OBS_LABEL))
				continue;
			e.hi = o->label;
			break;
		case KEY_TSVAL:
			if (!(o->flags & OBS_TS))
				continue;
			e.lo = (uint64_t)o->tsd << 32 | o->t_ms;
			break;
		case KEY_UNIT:
			e.hi = o->unit;
			e.lo = o->sub;
			break;
		case KEY_TTL:
			e.hi = o->ttl;
			break;
		case KEY_ADDR_TTL:
			e.hi = mix64(o->addr ^ mix64(0x74746c00u | o->ttl));
			break;
		case KEY_ADDR_PORT:
			e.hi =
			    mix64(o->addr ^ mix64(0x706f727400000000ull | (uint64_t)o->port << 8 |
			                          (o->flags & OBS_UDP)));
			e.lo = !!(o->flags & OBS_P2P);
			break;
		case KEY_SKEW:
		case KEY_ADDR_SKEW:
			if (!skew_usable(o, lp))
				continue;
			e.hi = k == KEY_ADDR_SKEW ? o->addr : 0;
			e.lo = skew_key(o);
			break;
		}
		if (by_sub)
			e.hi = mix64(e.hi ^ mix64((uint64_t)o->sub + 1));
		if (timed)
			e.lo = o->t_ms;
		s->a[s->n++] = e;
	}
	radix_sort(s);
}

/*
 * Pairs of a peer-to-peer flow and another flow in the same (address,
 * port) group: lo holds the P2P flag, so each group is sorted into its
 * other flows, then its peer-to-peer ones.
 */
static uint64_t cross_pairs(struct sorter *s)
{
	uint64_t total = 0;
	size_t i, start = 0, p2p = 0;

	for (i = 0; i <= s->n; i++) {
		if (i == s->n || s->a[i].hi != s->a[start].hi) {
			total += (uint64_t)p2p * (i - start - p2p);
			start = i;
			p2p = 0;
		}
		if (i < s->n && s->a[i].lo)
			p2p++;
	}
	return total;
}

static void count_group(struct sorter *s, const struct obs_vec *ov, enum keying k,
                        struct pair_count *pc)
{
	load(s, ov, NULL, k, false, false);
	pc->predicted = group_pairs(s, false);
	load(s, ov, NULL, k, true, false);
	pc->correct = group_pairs(s, false);
}

/* Window <w> over start times (<timed>) or over the key's own lo (clock rates). */
static void count_window(struct sorter *s, const struct obs_vec *ov, const struct link_params *lp,
                         enum keying k, bool timed, uint64_t w, struct pair_count *pc)
{
	load(s, ov, lp, k, false, timed);
	pc->predicted = window_pairs(s, w);
	load(s, ov, lp, k, true, timed);
	pc->correct = window_pairs(s, w);
}

/*
 * Plug-in I(S; U) = sum n_us/N log2(N n_us / (n_u n_s)) over the sorted
 * (unit, subscriber) entries, with the Miller-Madow correction
 * (K_us - K_u - K_s + 1) / (2 N ln 2), K counting non-empty cells. With
 * many subscribers and few flows each the plug-in value is biased upwards;
 * the correction removes most of that where the alias says nothing and
 * almost nothing where the alias determines the subscriber. <raw> gets the
 * uncorrected value.
 */
static double mutual_info(const struct sorter *s, const uint64_t *n_sub, double n, uint64_t k_sub,
                          double *raw)
{
	double mi = 0;
	uint64_t k_us = 0, k_u = 0;
	size_t i = 0;

	while (i < s->n) {
		size_t end = i, j = i;

		while (end < s->n && s->a[end].hi == s->a[i].hi)
			end++;
		k_u++;
		while (j < end) {
			size_t k = j;

			while (k < end && s->a[k].lo == s->a[j].lo)
				k++;
			mi += (double)(k - j) / n *
			      log2(n * (double)(k - j) /
			           ((double)(end - i) * (double)n_sub[s->a[j].lo]));
			k_us++;
			j = k;
		}
		i = end;
	}
	*raw = mi;
	mi -= ((double)k_us - (double)k_u - (double)k_sub + 1) / (2 * n * log(2));
	return mi > 0 ? mi : 0;
}

int metrics_compute(const struct obs_vec *ov, const struct link_params *lp, uint64_t seed,
                    struct metrics *m)
{
	struct sorter s = {0};
	uint64_t *n_sub = NULL, max_sub = 0;
	double n = (double)ov->n;
	size_t i;
	int err = 0;

	for (i = 0; i < ov->n; i++)
		if (ov->v[i].sub > max_sub)
			max_sub = ov->v[i].sub;
	s.a = malloc((ov->n + 1) * sizeof(*s.a));
	s.tmp = malloc((ov->n + 1) * sizeof(*s.tmp));
	s.count = malloc(65536 * sizeof(*s.count));
	n_sub = calloc(max_sub + 1, sizeof(*n_sub));
	if (!s.a || !s.tmp || !s.count || !n_sub) {
		err = -ENOMEM;
		goto out;
	}
	m->flows = ov->n;
	m->true_pairs = 0;
	m->subscribers = 0;
	m->h_sub_bits = 0;
	for (i = 0; i < ov->n; i++)
		n_sub[ov->v[i].sub]++;
	for (i = 0; i <= max_sub; i++) {
		if (!n_sub[i])
			continue;
		m->subscribers++;
		m->true_pairs += pairs(n_sub[i]);
		m->h_sub_bits -= (double)n_sub[i] / n * log2((double)n_sub[i] / n);
	}

	{
		bool seen[256] = {false};

		m->ttl_values = 0;
		m->skew_flows = 0;
		for (i = 0; i < ov->n; i++) {
			m->ttl_values += !seen[ov->v[i].ttl];
			seen[ov->v[i].ttl] = true;
			m->skew_flows += skew_usable(&ov->v[i], lp);
		}
	}

	progress("linkers", 0, 5);
	count_group(&s, ov, KEY_ADDR, &m->link[LINK_ADDR]);
	count_group(&s, ov, KEY_ADDR_FP, &m->link[LINK_ADDR_FP]);
	count_group(&s, ov, KEY_LABEL, &m->link[LINK_LABEL]);
	progress("linkers", 1, 5);
	count_window(&s, ov, lp, KEY_ADDR, true, lp->window_ms, &m->link[LINK_WINDOW]);
	count_window(&s, ov, lp, KEY_ADDR_FP, true, lp->window_ms, &m->link[LINK_WINDOW_FP]);
	progress("linkers", 2, 5);
	load(&s, ov, lp, KEY_TSVAL, false, false);
	m->link[LINK_TSVAL].predicted = tsval_pairs(&s, lp);
	load(&s, ov, lp, KEY_TSVAL, true, false);
	m->link[LINK_TSVAL].correct = tsval_pairs(&s, lp);
	progress("linkers", 3, 5);
	count_group(&s, ov, KEY_TTL, &m->link[LINK_TTL]);
	count_group(&s, ov, KEY_ADDR_TTL, &m->link[LINK_ADDR_TTL]);
	count_group(&s, ov, KEY_ADDR_PORT, &m->link[LINK_ADDR_PORT]);
	m->p2p_flows = 0;
	for (i = 0; i < ov->n; i++)
		m->p2p_flows += !!(ov->v[i].flags & OBS_P2P);
	load(&s, ov, lp, KEY_ADDR_PORT, false, false);
	m->p2p_cross.predicted = cross_pairs(&s);
	load(&s, ov, lp, KEY_ADDR_PORT, true, false);
	m->p2p_cross.correct = cross_pairs(&s);
	count_window(&s, ov, lp, KEY_SKEW, false, (uint64_t)(lp->skew_tol_ppm * 1000),
	             &m->link[LINK_SKEW]);
	count_window(&s, ov, lp, KEY_ADDR_SKEW, false, (uint64_t)(lp->skew_tol_ppm * 1000),
	             &m->link[LINK_ADDR_SKEW]);
	count_window(&s, ov, lp, KEY_SKEW, false, UINT64_MAX, &m->skew_all);
	progress("linkers", 4, 5);

	load(&s, ov, lp, KEY_UNIT, false, false);
	m->mi_bits = mutual_info(&s, n_sub, n, m->subscribers, &m->mi_raw_bits);
	{
		struct prng r;
		double ignored;

		/*
		 * Same units, same subscribers, dependence destroyed: what the
		 * plug-in estimate shows where there is nothing to find.
		 */
		prng_seed(&r, seed ^ 0x73687566ull);
		for (i = s.n; i > 1; i--) {
			size_t j = prng_below(&r, (uint32_t)i);
			uint64_t t = s.a[i - 1].hi;

			s.a[i - 1].hi = s.a[j].hi;
			s.a[j].hi = t;
		}
		radix_sort(&s);
		m->mi_floor_bits = mutual_info(&s, n_sub, n, m->subscribers, &ignored);
	}
	progress_done();
out:
	free(s.a);
	free(s.tmp);
	free(s.count);
	free(n_sub);
	return err;
}

double precision(const struct metrics *m, enum linker l)
{
	return m->link[l].predicted ? (double)m->link[l].correct / m->link[l].predicted : NAN;
}

double recall(const struct metrics *m, enum linker l)
{
	return m->true_pairs ? (double)m->link[l].correct / m->true_pairs : NAN;
}

double chance(const struct metrics *m)
{
	return m->flows > 1 ? (double)m->true_pairs / (double)pairs(m->flows) : NAN;
}

double skew_chance(const struct metrics *m)
{
	return m->skew_all.predicted ? (double)m->skew_all.correct / m->skew_all.predicted : NAN;
}

enum linker best_linker(const struct metrics *m)
{
	enum linker best = LINK_ADDR;
	double best_f1 = -1;
	unsigned l;

	for (l = 0; l < LINK__COUNT; l++) {
		double p = precision(m, l), r = recall(m, l);
		double f1 = isnan(p) || p + r == 0 ? 0 : 2 * p * r / (p + r);

		/*
		 * One that joins every pair (the TTL once all TTLs are one) has
		 * recall 1 at chance precision: an F1 of twice chance that says
		 * nothing about anyone.
		 */
		if (m->link[l].predicted == pairs(m->flows))
			continue;

		if (f1 > best_f1) {
			best_f1 = f1;
			best = l;
		}
	}
	return best;
}
