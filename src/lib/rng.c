/*
 * Randomness for aliases, ports and keys. Everything comes from libsodium's
 * CSPRNG: a predictable alias or port is a privacy bug. Output is fetched in
 * blocks so that a new flow costs no system call, and each byte handed out
 * is wiped from the buffer.
 */
#include <sodium.h>
#include <string.h>

#include "engine.h"

void cfr_rng_bytes(struct cfr_engine *eng, void *out, size_t n)
{
	uint8_t *dst = out;

	while (n > 0) {
		size_t take;

		if (eng->rng_used == CFR_RNG_BUF) {
			randombytes_buf(eng->rng, sizeof(eng->rng));
			eng->rng_used = 0;
		}
		take = CFR_RNG_BUF - eng->rng_used;
		if (take > n)
			take = n;
		memcpy(dst, eng->rng + eng->rng_used, take);
		sodium_memzero(eng->rng + eng->rng_used, take);
		eng->rng_used += (uint32_t)take;
		dst += take;
		n -= take;
	}
}

/* Uniform in [0, n) by rejection, so no value is favoured (n > 0). */
uint64_t cfr_rng_below(struct cfr_engine *eng, uint64_t n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n, v;

	do
		cfr_rng_bytes(eng, &v, sizeof(v));
	while (v >= limit);
	return v % n;
}
