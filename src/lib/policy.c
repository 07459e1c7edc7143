/*
 * Alias policies: how a new flow's alias address and port are derived.
 *
 * Every allocation is a keyed pseudo-random function (BLAKE2b) of the
 * subscriber's secret per-epoch seed (acct.c) and an input that depends on
 * the policy:
 *   per-flow         alias and port from (family, counter): a fresh,
 *                    uniformly distributed pair for every flow;
 *   per-destination  alias from (family, remote), port from the counter: one
 *                    alias per subscriber and remote within an epoch;
 *   per-subscriber   alias from (family), port from the counter: one alias
 *                    per subscriber per epoch (classic CGN, the baseline).
 * To anyone without the seed each policy's output is indistinguishable from
 * fresh CSPRNG draws of the same shape; with it (cfr-lookup, holding the
 * sealed records) every allocation can be regenerated. Once the seed is
 * wiped at the end of its epoch, nobody can recompute the mapping.
 */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "policy.h"
#include "prefix.h"

const char *cfr_policy_name(enum cfr_policy policy)
{
	static const char *const names[CFR_POLICY__COUNT] = {
	    [CFR_POLICY_PER_FLOW] = "per-flow",
	    [CFR_POLICY_PER_DESTINATION] = "per-destination",
	    [CFR_POLICY_PER_SUBSCRIBER] = "per-subscriber",
	};

	return (unsigned)policy < CFR_POLICY__COUNT ? names[policy] : "unknown";
}

/* An IPv4 subscriber is its address; an IPv6 subscriber its delegated /N. */
void cfr_subscriber_key(const struct cfr_engine *eng, uint8_t family, const uint8_t *addr,
                        uint8_t key[16])
{
	const struct cfr_engine_config *c = &eng->cfg;
	unsigned len = c->subscriber_prefix6, i;

	memset(key, 0, 16);
	if (family == CFR_FAMILY_V4) {
		memcpy(key, addr, 4);
		return;
	}
	/*
	 * A customer is the prefix delegated to it, not a /64 of it: with a
	 * /56 per customer, counting /64s would give one customer 256 sets of
	 * limits. Only new flows come here, so the walk costs nothing per packet.
	 */
	for (i = 0; i < c->n_subscribers; i++)
		if (c->subscriber_ident6[i] && cfr_prefix_has(&c->subscribers[i], family, addr)) {
			len = c->subscriber_ident6[i];
			break;
		}
	for (i = 0; i < len / 8; i++)
		key[i] = addr[i];
	if (len % 8)
		key[len / 8] = (uint8_t)(addr[len / 8] & (0xff << (8 - len % 8)));
}

static uint64_t get64(const uint8_t *b)
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* Weight of an IPv6 prefix: its size, capped so sixteen weights fit 64 bits. */
static uint64_t pool6_weight(const struct cfr_prefix *p)
{
	unsigned bits = 128u - p->len;

	return 1ull << (bits > 58 ? 58 : bits);
}

/*
 * Map 24 uniformly distributed bytes onto the pool: the first 8 pick the
 * address (IPv4) or the prefix (IPv6), the other 16 fill the host bits.
 * Reducing 64 bits modulo a pool of at most 2^24 addresses biases the choice
 * by less than 2^-40, far below anything observable.
 */
static void alias_from_bytes(const struct cfr_engine_config *cfg, uint8_t family,
                             const uint8_t bytes[24], uint8_t alias[16])
{
	const struct cfr_prefix *p = NULL;
	uint64_t n = get64(bytes), total = 0;
	unsigned i, full, rem;

	memset(alias, 0, 16);
	if (family == CFR_FAMILY_V4) {
		for (i = 0; i < cfg->n_pool4; i++)
			total += 1ull << (32 - cfg->pool4[i].len);
		if (total == 0)
			return; /* no pool of this family: cfr_derive_alias refuses first */
		n %= total;
		for (i = 0; i < cfg->n_pool4; i++) {
			uint64_t size = 1ull << (32 - cfg->pool4[i].len);
			const uint8_t *b = cfg->pool4[i].addr;
			uint32_t a;

			if (n >= size) {
				n -= size;
				continue;
			}
			a = ((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
			     b[3]) +
			    (uint32_t)n;
			alias[0] = (uint8_t)(a >> 24);
			alias[1] = (uint8_t)(a >> 16);
			alias[2] = (uint8_t)(a >> 8);
			alias[3] = (uint8_t)a;
			return;
		}
		return;
	}
	for (i = 0; i < cfg->n_pool6; i++)
		total += pool6_weight(&cfg->pool6[i]);
	if (total == 0)
		return;
	n %= total;
	for (i = 0; i < cfg->n_pool6; i++) {
		p = &cfg->pool6[i];
		if (n < pool6_weight(p))
			break;
		n -= pool6_weight(p);
	}
	/* Every bit below the prefix is random: nothing of the subscriber's prefix survives. */
	full = p->len / 8;
	rem = p->len % 8;
	memcpy(alias, p->addr, 16);
	for (i = full; i < 16; i++)
		alias[i] = bytes[8 + i];
	if (rem)
		alias[full] = (uint8_t)((p->addr[full] & (0xff << (8 - rem))) |
		                        (bytes[8 + full] & (0xff >> rem)));
	/* Never the subnet-router anycast address (all-zero interface identifier). */
	if (get64(alias + 8) == 0)
		alias[15] = 1;
}

enum { PRF_FLOW = 'F', PRF_DESTINATION = 'D', PRF_SUBSCRIBER = 'S' };

static void prf(const uint8_t seed[CFR_SEED_BYTES], uint8_t tag, uint8_t family,
                const uint8_t *data, size_t len, uint8_t out[32])
{
	crypto_generichash_state st;
	uint8_t head[2] = {tag, family};

	crypto_generichash_init(&st, seed, CFR_SEED_BYTES, 32);
	crypto_generichash_update(&st, head, sizeof(head));
	crypto_generichash_update(&st, data, len);
	crypto_generichash_final(&st, out, 32);
}

int cfr_derive_alias(const struct cfr_engine_config *cfg, const uint8_t seed[CFR_SEED_BYTES],
                     uint8_t family, uint32_t counter, const uint8_t *remote, uint8_t alias[16],
                     uint16_t *port)
{
	uint32_t range = (uint32_t)cfg->port_max - cfg->port_min + 1;
	uint8_t ctr[4] = {(uint8_t)(counter >> 24), (uint8_t)(counter >> 16),
	                  (uint8_t)(counter >> 8), (uint8_t)counter};
	uint8_t out[32], sticky[32];

	memset(alias, 0, 16);
	*port = 0;
	if ((family == CFR_FAMILY_V4 ? cfg->n_pool4 : cfg->n_pool6) == 0 ||
	    (cfg->policy[family] == CFR_POLICY_PER_DESTINATION && remote == NULL))
		return -EINVAL;
	prf(seed, PRF_FLOW, family, ctr, sizeof(ctr), out);
	*port = (uint16_t)(cfg->port_min + get64(out + 24) % range);
	switch (cfg->policy[family]) {
	case CFR_POLICY_PER_DESTINATION:
		prf(seed, PRF_DESTINATION, family, remote, family == CFR_FAMILY_V4 ? 4 : 16,
		    sticky);
		alias_from_bytes(cfg, family, sticky, alias);
		break;
	case CFR_POLICY_PER_SUBSCRIBER:
		prf(seed, PRF_SUBSCRIBER, family, NULL, 0, sticky);
		alias_from_bytes(cfg, family, sticky, alias);
		break;
	default:
		alias_from_bytes(cfg, family, out, alias);
		break;
	}
	sodium_memzero(out, sizeof(out));
	sodium_memzero(sticky, sizeof(sticky));
	return 0;
}
