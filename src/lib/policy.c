/*
 * Alias policies and privacy epochs.
 *
 * per-flow draws every alias fresh from the CSPRNG. per-destination and
 * per-subscriber derive it from a keyed hash (BLAKE2b) of the subscriber
 * (and the remote) under the current epoch's key, so the choice is stable
 * inside an epoch without any per-subscriber state, and unrecoverable once
 * the key is wiped at the end of the epoch: past mappings cannot be
 * recomputed from a memory dump taken later.
 */
#include <sodium.h>
#include <string.h>

#include "engine.h"

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
	unsigned len = eng->cfg.subscriber_prefix6, i;

	memset(key, 0, 16);
	if (family == CFR_FAMILY_V4) {
		memcpy(key, addr, 4);
		return;
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
void cfr_alias_from_bytes(const struct cfr_engine *eng, uint8_t family, const uint8_t bytes[24],
                          union cfr_addr *alias)
{
	uint64_t n = get64(bytes);
	const struct cfr_prefix *p = NULL;
	unsigned i, full, rem;

	memset(alias, 0, sizeof(*alias));
	if (family == CFR_FAMILY_V4) {
		n %= eng->pool4_size;
		for (i = 0; i < eng->cfg.n_pool4; i++) {
			uint64_t size = 1ull << (32 - eng->cfg.pool4[i].len);

			if (n < size) {
				const uint8_t *b = eng->cfg.pool4[i].addr;
				uint32_t a = ((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
				              (uint32_t)b[2] << 8 | b[3]) +
				             (uint32_t)n;

				alias->b[0] = (uint8_t)(a >> 24);
				alias->b[1] = (uint8_t)(a >> 16);
				alias->b[2] = (uint8_t)(a >> 8);
				alias->b[3] = (uint8_t)a;
				return;
			}
			n -= size;
		}
		return;
	}
	{
		uint64_t total = 0;

		for (i = 0; i < eng->cfg.n_pool6; i++)
			total += pool6_weight(&eng->cfg.pool6[i]);
		n %= total;
	}
	for (i = 0; i < eng->cfg.n_pool6; i++) {
		p = &eng->cfg.pool6[i];
		if (n < pool6_weight(p))
			break;
		n -= pool6_weight(p);
	}
	/*
	 * Every bit below the prefix is random, so nothing of the subscriber's
	 * own prefix survives upstream.
	 */
	full = p->len / 8;
	rem = p->len % 8;
	memcpy(alias->b, p->addr, 16);
	for (i = full; i < 16; i++)
		alias->b[i] = bytes[8 + i];
	if (rem)
		alias->b[full] = (uint8_t)((p->addr[full] & (0xff << (8 - rem))) |
		                           (bytes[8 + full] & (0xff >> rem)));
	/* Never the subnet-router anycast address (all-zero interface identifier). */
	if (get64(alias->b + 8) == 0 && p->len <= 127)
		alias->b[15] = 1;
}

/*
 * The alias a sticky policy assigns, or false for per-flow (choose at
 * random). The hash input is tagged with the policy so the two sticky
 * policies never produce related aliases.
 */
bool cfr_policy_alias(struct cfr_engine *eng, uint8_t family, const uint8_t *sub,
                      const uint8_t *remote, union cfr_addr *alias)
{
	uint8_t policy = eng->cfg.policy[family], in[34], out[24];
	size_t len = 18;

	if (policy == CFR_POLICY_PER_FLOW)
		return false;
	memset(in, 0, sizeof(in));
	in[0] = policy;
	in[1] = family;
	cfr_subscriber_key(eng, family, sub, in + 2);
	if (policy == CFR_POLICY_PER_DESTINATION) {
		memcpy(in + 18, remote, family == CFR_FAMILY_V4 ? 4 : 16);
		len = sizeof(in);
	}
	crypto_generichash(out, sizeof(out), in, len, eng->epoch_key, sizeof(eng->epoch_key));
	cfr_alias_from_bytes(eng, family, out, alias);
	sodium_memzero(out, sizeof(out));
	return true;
}

void cfr_epoch_new(struct cfr_engine *eng)
{
	/* Overwritten in place: the old key exists nowhere once this returns. */
	randombytes_buf(eng->epoch_key, sizeof(eng->epoch_key));
	eng->epoch_start_s = eng->now_s;
	eng->stats.epoch++;
}

void cfr_epoch_check(struct cfr_engine *eng)
{
	if (unlikely(eng->now_s - eng->epoch_start_s >= eng->cfg.epoch_s)) {
		cfr_epoch_new(eng);
		eng->stats.epochs_rotated++;
	}
}
