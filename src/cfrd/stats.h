/*
 * cfrd's counters as the JSON object `cfrctl stats` shows, and the
 * quiet-pool warning that watches them.
 */
#ifndef CFRD_STATS_H
#define CFRD_STATS_H

#include <json-c/json.h>
#include <stdint.h>

#include "daemon.h"

/* Pool prefixes a snapshot holds: configured and draining ones of both families. */
#define CFRD_STATS_POOLS (4 * CFR_MAX_POOL_PREFIXES)

/* What `stats` copies from the engine under its lock; the rest needs no lock. */
struct cfrd_stats_snapshot {
	struct cfr_stats engine;
	struct cfr_anon_copy anon; /* .sizes and .cap: the caller's buffer */
	size_t memory;
	struct cfr_pool_info pools[CFRD_STATS_POOLS];
	unsigned n_pools;
};

/*
 * The `stats` reply, a new object the caller puts, or NULL when out of
 * memory. Takes the engine lock itself, for cfrd_stats_snapshot() only.
 */
struct json_object *cfrd_stats_json(struct cfrd *d, uint64_t now_ms);

/*
 * Under the engine lock, copies and nothing else (no allocation, no sort):
 * <snap>->anon must have room for cfr_engine_anon_capacity() entries, or
 * the anonymity figures are those of a part (anon.truncated).
 */
void cfrd_stats_snapshot(const struct cfrd *d, struct cfrd_stats_snapshot *snap);

/* Without the lock: the reply built from <snap> (whose set sizes it sorts). */
struct json_object *cfrd_stats_build(const struct cfrd *d, struct cfrd_stats_snapshot *snap,
                                     uint64_t now_ms);

/*
 * Once a minute: warn when more than <percent> of the new flows went to
 * aliases shared by fewer than anonymity-k subscribers (a pool too quiet,
 * or too large, to hide anyone in).
 */
void cfrd_anon_watch(struct cfrd *d, uint64_t now_ms);

#endif
