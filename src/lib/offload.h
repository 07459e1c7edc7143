/* The engine's calls into an offload (offload.c; the offload itself is in cfr.h). */
#ifndef CFR_OFFLOAD_H
#define CFR_OFFLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine-t.h"

/* When the offload last carried a packet of flow <idx> (engine seconds), or 0. */
uint32_t cfr_offload_last_seen(struct cfr_engine *eng, uint32_t idx);

/* Flow <idx> is about to end: the offload forgets it. */
void cfr_offload_removed(struct cfr_engine *eng, uint32_t idx);

#endif
