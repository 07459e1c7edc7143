/* Render cfrd's counters as the JSON object `cfrctl stats` shows. */
#ifndef CFRD_STATS_H
#define CFRD_STATS_H

#include <json-c/json.h>
#include <stdint.h>

#include "daemon.h"

/* A new object the caller puts, or NULL when out of memory. */
struct json_object *cfrd_stats_json(const struct cfrd *d, uint64_t now_ms);

#endif
