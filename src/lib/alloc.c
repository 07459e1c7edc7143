/*
 * Alias choice: a uniformly random address from the pool and a uniformly
 * random port, for every new flow (endpoint-dependent mapping).
 *
 * Ports follow RFC 6056 algorithm 1 (random start, then a bounded linear
 * probe), collision-checked against the outside index. That index includes
 * the remote address and port, so one alias:port can serve many remotes at
 * once, as NAT44-ED does. The search is bounded: a full pool costs at most
 * ALLOC_RANDOM_TRIES + ALLOC_PROBE_SPAN lookups, never a scan of the range.
 */
#include <string.h>

#include "engine.h"

#define ALLOC_RANDOM_TRIES 16
#define ALLOC_PROBE_SPAN   256

static void pick_alias4(struct cfr_engine *eng, union cfr_addr *alias)
{
	uint64_t n = cfr_rng_below(eng, eng->pool4_size);
	unsigned i;

	memset(alias, 0, sizeof(*alias));
	for (i = 0; i < eng->cfg.n_pool4; i++) {
		const struct cfr_prefix *p = &eng->cfg.pool4[i];
		uint64_t size = 1ull << (32 - p->len);

		if (n < size) {
			uint32_t base = (uint32_t)p->addr[0] << 24 | (uint32_t)p->addr[1] << 16 |
			                (uint32_t)p->addr[2] << 8 | p->addr[3];
			uint32_t a = base + (uint32_t)n;

			alias->b[0] = (uint8_t)(a >> 24);
			alias->b[1] = (uint8_t)(a >> 16);
			alias->b[2] = (uint8_t)(a >> 8);
			alias->b[3] = (uint8_t)a;
			return;
		}
		n -= size;
	}
}

/*
 * Weight of an IPv6 prefix when several are configured: its size, capped so
 * that sixteen weights still add up inside 64 bits.
 */
static uint64_t pool6_weight(const struct cfr_prefix *p)
{
	unsigned bits = 128u - p->len;

	return 1ull << (bits > 58 ? 58 : bits);
}

/*
 * A random address inside the egress prefix: every bit below the prefix is
 * random, so nothing of the subscriber's own /64 survives. The all-zero
 * interface identifier (the subnet-router anycast address) is skipped.
 */
static void pick_alias6(struct cfr_engine *eng, union cfr_addr *alias)
{
	const struct cfr_prefix *p = &eng->cfg.pool6[0];
	uint64_t total = 0, n;
	unsigned i, full, rem;
	uint8_t rnd[16];
	bool zero;

	for (i = 0; i < eng->cfg.n_pool6; i++)
		total += pool6_weight(&eng->cfg.pool6[i]);
	n = cfr_rng_below(eng, total);
	for (i = 0; i < eng->cfg.n_pool6; i++) {
		if (n < pool6_weight(&eng->cfg.pool6[i])) {
			p = &eng->cfg.pool6[i];
			break;
		}
		n -= pool6_weight(&eng->cfg.pool6[i]);
	}
	full = p->len / 8;
	rem = p->len % 8;
	do {
		cfr_rng_bytes(eng, rnd, sizeof(rnd));
		memcpy(alias->b, p->addr, 16);
		for (i = full; i < 16; i++)
			alias->b[i] = rnd[i];
		if (rem)
			alias->b[full] = (uint8_t)((p->addr[full] & (0xff << (8 - rem))) |
			                           (rnd[full] & (0xff >> rem)));
		zero = true;
		for (i = 8; i < 16; i++)
			zero = zero && alias->b[i] == 0;
	} while (zero);
}

static void pick_alias(struct cfr_engine *eng, uint8_t family, union cfr_addr *alias)
{
	if (family == CFR_FAMILY_V4)
		pick_alias4(eng, alias);
	else
		pick_alias6(eng, alias);
}

static uint16_t port_at(const struct cfr_engine *eng, uint32_t offset)
{
	return (uint16_t)(eng->cfg.port_min + offset);
}

enum cfr_drop cfr_alloc_alias(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                              const uint8_t *remote, uint16_t remote_port, union cfr_addr *alias,
                              uint16_t *alias_port)
{
	uint32_t range = (uint32_t)eng->cfg.port_max - eng->cfg.port_min + 1;
	uint32_t start, i, span;

	if (family == CFR_FAMILY_V4 ? eng->cfg.n_pool4 == 0 : eng->cfg.n_pool6 == 0)
		return CFR_DROP_POOL_EXHAUSTED;

	for (i = 0; i < ALLOC_RANDOM_TRIES; i++) {
		uint16_t port = port_at(eng, (uint32_t)cfr_rng_below(eng, range));

		pick_alias(eng, family, alias);
		if (!cfr_flow_find_outside(eng, family, proto, alias->b, port, remote,
		                           remote_port)) {
			*alias_port = port;
			return CFR_DROP_NONE;
		}
	}
	/* Crowded: probe linearly from a random port on one random alias. */
	pick_alias(eng, family, alias);
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
