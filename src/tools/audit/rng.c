/*
 * cfr-audit: the simulation's PRNG and grouping hashes.
 *
 * Reproducibility matters more than unpredictability here: the same --seed
 * must give every table row the same population. Nothing in this file may
 * feed the engine, which draws its aliases, ports and keys from libsodium.
 */
#include <math.h>
#include <string.h>

#include "audit.h"

/* splitmix64's finaliser: a bijective mixer, also used to seed xoshiro. */
uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t hash_bytes(const void *p, size_t n, uint64_t seed)
{
	const uint8_t *b = p;
	uint64_t h = mix64(seed ^ n);
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, b + i, 8);
		h = mix64(h ^ w);
	}
	if (i < n) {
		uint64_t w = 0;

		memcpy(&w, b + i, n - i);
		h = mix64(h ^ w);
	}
	return h;
}

void prng_seed(struct prng *r, uint64_t seed)
{
	unsigned i;

	for (i = 0; i < 4; i++)
		r->s[i] = seed = mix64(seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t prng_u64(struct prng *r)
{
	uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

/* Lemire's multiply-shift: bias below 2^-32, invisible in a population model. */
uint32_t prng_below(struct prng *r, uint32_t n)
{
	return (uint32_t)(((prng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

double prng_unit(struct prng *r)
{
	return ((double)(prng_u64(r) >> 11) + 0.5) * 0x1p-53;
}

double prng_exp(struct prng *r, double mean)
{
	return -mean * log(prng_unit(r));
}

double prng_normal(struct prng *r)
{
	return sqrt(-2.0 * log(prng_unit(r))) * cos(2.0 * M_PI * prng_unit(r));
}
