/* Types of the alias pools (reconfigure.c). Functions are in pool.h. */
#ifndef CFR_POOL_T_H
#define CFR_POOL_T_H

#include <stdint.h>

#include "cfr/cfr.h"

/*
 * A pool prefix in use (reconfigure.c): active, or removed by a reload and
 * draining, its flows living out their lifetime. Flows name their slot, so
 * nothing depends on a prefix's position in the configuration, which a
 * reload may change.
 */
#define CFR_POOL_SLOTS 64 /* 16 active and 16 draining prefixes per family */
#define CFR_SLOT_NONE  0xff
enum { CFR_SLOT_FREE = 0, CFR_SLOT_ACTIVE, CFR_SLOT_DRAINING };

struct cfr_pool_slot {
	struct cfr_prefix prefix;
	uint8_t state;
	uint32_t flows; /* live flows with an alias in it */
	uint32_t *subs; /* anonymity set per alias: one per IPv4 address, one for IPv6 */
	uint32_t n_subs;
};

/* Pool prefixes in use, and those of each family inbound packets may be for. */
struct cfr_pools {
	struct cfr_pool_slot slots[CFR_POOL_SLOTS];
	struct cfr_prefix live[CFR_FAMILY__COUNT][CFR_POOL_SLOTS];
	unsigned n_live[CFR_FAMILY__COUNT];
};

#endif
