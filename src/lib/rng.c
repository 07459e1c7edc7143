/*
 * Randomness for aliases, ports and keys. Everything comes from libsodium's
 * CSPRNG: a predictable alias or port is a privacy bug. Output is fetched in
 * blocks so that a new flow costs no system call, and each byte handed out
 * is wiped from the buffer.
 */
#include <sodium.h>

#include "rng.h"

void cfr_rng_bytes(struct cfr_engine *eng, void *out, size_t n)
{
	uint8_t *dst = out;

	while (n > 0) {
		size_t take, i;
		uint8_t *src;

		if (eng->rng.used == CFR_RNG_BUF) {
			randombytes_buf(eng->rng.buf, sizeof(eng->rng.buf));
			eng->rng.used = 0;
		}
		take = CFR_RNG_BUF - eng->rng.used;
		if (take > n)
			take = n;
		/*
		 * Requests are a few bytes (an IPv4 ID per packet): a loop, not two
		 * library calls. The wipe needs no sodium_memzero(): the buffer
		 * lives on in *eng and is read again, so no store can be elided.
		 */
		src = eng->rng.buf + eng->rng.used;
		for (i = 0; i < take; i++) {
			dst[i] = src[i];
			src[i] = 0;
		}
		eng->rng.used += (uint32_t)take;
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
