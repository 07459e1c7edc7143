/*
 * reconfigure.c: alias pool slots, active and draining, and a reload's
 * new configuration. Called by engine.c (classify, creation), guard.c
 * (martians) and anon.c (a slot's anonymity sets).
 */
#ifndef CFR_POOL_H
#define CFR_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine-t.h"
#include "prefix.h"

int cfr_pools_init(struct cfr_engine *eng);
void cfr_pools_free(struct cfr_engine *eng);
uint8_t cfr_pool_slot_of(const struct cfr_engine *eng, uint8_t family, const uint8_t *alias);
void cfr_pool_slot_drained(struct cfr_engine *eng, uint8_t slot);

/* Is <addr> in a pool prefix of <family> in use, active or draining? */
static inline bool cfr_in_live_pool(const struct cfr_engine *eng, uint8_t family,
                                    const uint8_t *addr)
{
	unsigned i;

	for (i = 0; i < eng->pools.n_live[family]; i++)
		if (cfr_prefix_has(&eng->pools.live[family][i], family, addr))
			return true;
	return false;
}

#endif
