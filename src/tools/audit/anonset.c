/*
 * cfr-audit: anonymity sets from the ground truth.
 *
 * For each anonymity unit (what the front door can group flows by: an IPv4
 * alias, an IPv6 /64) keep the number of live flows of every subscriber on
 * it and the number of distinct subscribers. A new flow records that number
 * (itself included): its anonymity set at the moment it appears. Live means
 * first packet to last packet, as the front door sees the flow; the engine's
 * own count (cfr_engine_anonymity) also keeps closed flows until they
 * expire, so it reads higher.
 *
 * Two open-addressing tables with linear probing and backward-shift
 * deletion (no tombstones, so a table that churns for hours stays short).
 */
#include <stdlib.h>
#include <string.h>

#include "audit.h"

#define HIST_MAX (1u << 20)

struct u64map {
	uint64_t *keys; /* 0: empty */
	uint32_t *vals;
	size_t mask, used;
};

struct anonset {
	struct u64map pairs; /* (unit, subscriber) -> live flows */
	struct u64map units; /* unit -> distinct subscribers with live flows */
	uint64_t *hist;      /* set sizes seen by new flows */
	uint64_t flows;
};

static int map_init(struct u64map *m, size_t size)
{
	m->keys = calloc(size, sizeof(*m->keys));
	m->vals = calloc(size, sizeof(*m->vals));
	m->mask = size - 1;
	m->used = 0;
	return m->keys && m->vals ? 0 : -1;
}

static void map_free(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
}

static uint64_t nonzero(uint64_t k)
{
	return k ? k : 1;
}

/* Slot of <key>, or of the empty slot where it would go. */
static size_t map_slot(const struct u64map *m, uint64_t key)
{
	size_t i = mix64(key) & m->mask;

	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & m->mask;
	return i;
}

static int map_grow(struct u64map *m)
{
	struct u64map n;
	size_t i;

	if (map_init(&n, (m->mask + 1) * 2) != 0) {
		map_free(&n);
		return -1;
	}
	for (i = 0; i <= m->mask; i++) {
		if (m->keys[i]) {
			size_t j = map_slot(&n, m->keys[i]);

			n.keys[j] = m->keys[i];
			n.vals[j] = m->vals[i];
			n.used++;
		}
	}
	map_free(m);
	*m = n;
	return 0;
}

static uint32_t map_get(const struct u64map *m, uint64_t key)
{
	size_t i = map_slot(m, key);

	return m->keys[i] ? m->vals[i] : 0;
}

/* Add <delta> to the value of <key>; returns the new value. Keys at zero are removed. */
static uint32_t map_add(struct u64map *m, uint64_t key, int delta)
{
	size_t i, j;
	uint32_t v;

	if (m->used * 2 >= m->mask && map_grow(m) != 0)
		abort(); /* out of memory in a measurement tool: nothing sensible to report */
	i = map_slot(m, key);
	if (!m->keys[i]) {
		if (delta <= 0)
			return 0;
		m->keys[i] = key;
		m->vals[i] = 0;
		m->used++;
	}
	v = m->vals[i] = (uint32_t)((int64_t)m->vals[i] + delta);
	if (v)
		return v;
	/* Backward-shift deletion: pull later members of the run into the hole. */
	m->keys[i] = 0;
	m->used--;
	for (j = (i + 1) & m->mask; m->keys[j]; j = (j + 1) & m->mask) {
		size_t home = mix64(m->keys[j]) & m->mask;

		if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			m->keys[j] = 0;
			i = j;
		}
	}
	return 0;
}

struct anonset *anonset_new(void)
{
	struct anonset *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->hist = calloc(HIST_MAX + 1, sizeof(*a->hist));
	if (!a->hist || map_init(&a->pairs, 1 << 16) != 0 || map_init(&a->units, 1 << 12) != 0) {
		anonset_free(a);
		return NULL;
	}
	return a;
}

void anonset_free(struct anonset *a)
{
	if (!a)
		return;
	map_free(&a->pairs);
	map_free(&a->units);
	free(a->hist);
	free(a);
}

static uint64_t pair_key(uint64_t unit, uint32_t sub)
{
	return nonzero(mix64(unit ^ mix64(sub)));
}

uint32_t anonset_start(struct anonset *a, uint64_t unit, uint32_t sub)
{
	uint64_t u = nonzero(unit);
	uint32_t size;

	if (map_add(&a->pairs, pair_key(unit, sub), 1) == 1)
		size = map_add(&a->units, u, 1);
	else
		size = map_get(&a->units, u);
	a->hist[size < HIST_MAX ? size : HIST_MAX]++;
	a->flows++;
	return size;
}

void anonset_end(struct anonset *a, uint64_t unit, uint32_t sub)
{
	if (map_add(&a->pairs, pair_key(unit, sub), -1) == 0)
		map_add(&a->units, nonzero(unit), -1);
}

uint32_t anonset_quantile(const struct anonset *a, double q)
{
	uint64_t want = (uint64_t)(q * (double)a->flows), seen = 0;
	uint32_t s;

	if (a->flows == 0)
		return 0;
	for (s = 0; s <= HIST_MAX; s++) {
		seen += a->hist[s];
		if (seen > want)
			return s;
	}
	return HIST_MAX;
}

uint64_t anonset_flows(const struct anonset *a)
{
	return a->flows;
}
