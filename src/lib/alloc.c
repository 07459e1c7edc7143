/*
 * Alias choice for a new flow: the address from the pool's policy (fresh
 * random per flow by default, see policy.c) and a uniformly random port
 * (endpoint-dependent mapping).
 *
 * Ports follow RFC 6056 algorithm 1 (random, then a bounded linear probe),
 * collision-checked against the outside index. That index includes the
 * remote address and port, so one alias:port can serve many remotes at
 * once, as NAT44-ED does. The search is bounded: a full pool costs at most
 * ALLOC_RANDOM_TRIES + ALLOC_PROBE_SPAN lookups, never a scan of the range.
 */
#include <string.h>

#include "engine.h"

#define ALLOC_RANDOM_TRIES 16
#define ALLOC_PROBE_SPAN   256

static void pick_alias(struct cfr_engine *eng, uint8_t family, const uint8_t *sub,
                       const uint8_t *remote, union cfr_addr *alias)
{
	uint8_t rnd[24];

	if (cfr_policy_alias(eng, family, sub, remote, alias))
		return;
	cfr_rng_bytes(eng, rnd, sizeof(rnd));
	cfr_alias_from_bytes(eng, family, rnd, alias);
}

static uint16_t port_at(const struct cfr_engine *eng, uint32_t offset)
{
	return (uint16_t)(eng->cfg.port_min + offset);
}

enum cfr_drop cfr_alloc_alias(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                              const uint8_t *sub, const uint8_t *remote, uint16_t remote_port,
                              union cfr_addr *alias, uint16_t *alias_port)
{
	uint32_t range = (uint32_t)eng->cfg.port_max - eng->cfg.port_min + 1;
	uint32_t start, i, span;

	if (family == CFR_FAMILY_V4 ? eng->cfg.n_pool4 == 0 : eng->cfg.n_pool6 == 0)
		return CFR_DROP_POOL_EXHAUSTED;

	for (i = 0; i < ALLOC_RANDOM_TRIES; i++) {
		uint16_t port = port_at(eng, (uint32_t)cfr_rng_below(eng, range));

		pick_alias(eng, family, sub, remote, alias);
		if (!cfr_flow_find_outside(eng, family, proto, alias->b, port, remote,
		                           remote_port)) {
			*alias_port = port;
			return CFR_DROP_NONE;
		}
	}
	/* Crowded: probe linearly from a random port on one alias. */
	pick_alias(eng, family, sub, remote, alias);
	start = (uint32_t)cfr_rng_below(eng, range);
	span = range < ALLOC_PROBE_SPAN ? range : ALLOC_PROBE_SPAN;
	for (i = 0; i < span; i++) {
		uint16_t port = port_at(eng, (start + i) % range);

		if (!cfr_flow_find_outside(eng, family, proto, alias->b, port, remote,
		                           remote_port)) {
			*alias_port = port;
			return CFR_DROP_NONE;
		}
	}
	return CFR_DROP_POOL_EXHAUSTED;
}
