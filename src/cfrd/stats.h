/*
 * cfrd's counters as the JSON object `cfrctl stats` shows, and the
 * quiet-pool warning that watches them.
 */
#ifndef CFRD_STATS_H
#define CFRD_STATS_H

#include <json-c/json.h>
#include <stdint.h>

#include "daemon.h"

/* A new object the caller puts, or NULL when out of memory. */
struct json_object *cfrd_stats_json(const struct cfrd *d, uint64_t now_ms);

/*
 * Once a minute: warn when more than <percent> of the new flows went to
 * aliases shared by fewer than anonymity-k subscribers (a pool too quiet,
 * or too large, to hide anyone in).
 */
void cfrd_anon_watch(struct cfrd *d, uint64_t now_ms);

#endif
