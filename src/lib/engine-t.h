/*
 * The engine's state: one structure composed of each module's state type
 * (HAProxy style: types in *-t.h, functions in the module's *.h), so a
 * module's header needs no other module's functions. Nothing here is part
 * of the public API (include/cfr/cfr.h). state.c hands the whole structure
 * and every table its members point to over to a new process: a pointer
 * added to a module's type must be listed there too (take_scalars(),
 * cfr_engine_state_regions()).
 */
#ifndef CFR_ENGINE_T_H
#define CFR_ENGINE_T_H

#include <stddef.h>
#include <stdint.h>

#include "acct-t.h"
#include "anon-t.h"
#include "cfr/cfr.h"
#include "flow-t.h"
#include "frag-t.h"
#include "guard-t.h"
#include "pool-t.h"
#include "rng-t.h"

struct cfr_engine {
	struct cfr_engine_config cfg;
	uint8_t hash_key[16]; /* SipHash-2-4 key: flow labels, fragment and subscriber tables */
	uint32_t now_s;
	uint64_t now_ms;
	struct cfr_flow_table flow;   /* flow.c */
	struct cfr_frag_table frag;   /* frag.c */
	struct cfr_pools pools;       /* reconfigure.c */
	struct cfr_acct acct;         /* acct.c */
	struct cfr_guard_table guard; /* guard.c */
	struct cfr_anon_table
	    anon;           /* anon.c: distinct subscribers per alias (pools.slots[].subs) */
	struct cfr_rng rng; /* rng.c */
	struct cfr_stats stats;
	struct cfr_offload offload; /* offload.c; never saved (state.c) */
	uint8_t map_protos;         /* mapping.c: a bit per enum cfr_proto some class maps */
	size_t memory;
};

#endif
