/*
 * SipHash-1-3 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012, with one compression and three finalisation rounds) for the flow
 * indexes.
 *
 * Why not libsodium's crypto_shorthash (SipHash-2-4): the inside or outside
 * tuple is hashed for every packet, and 2-4 costs 8 rounds for an IPv4 key
 * and 14 for an IPv6 one where 1-3 costs 5 and 8. 1-3 is what Rust's
 * HashMap and CPython's str hash use against hash flooding: an attacker
 * who sees no hash output cannot aim keys at one bucket without the key.
 * Outputs that leave the engine (the IPv6 flow label) keep SipHash-2-4.
 *
 * Inline, so that each caller's fixed key length compiles to straight-line
 * code. Words are read little-endian byte by byte, which compilers turn into
 * plain loads: the result does not depend on host byte order or alignment.
 */
#ifndef CFR_SIPHASH_H
#define CFR_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* A 128-bit key as the two little-endian words of its 16 bytes. */
struct cfr_sipkey {
	uint64_t k0, k1;
};

static inline uint64_t cfr_sip_le64(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
	       (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
	       (uint64_t)p[7] << 56;
}

static inline struct cfr_sipkey cfr_sipkey_from(const uint8_t bytes[16])
{
	return (struct cfr_sipkey){cfr_sip_le64(bytes), cfr_sip_le64(bytes + 8)};
}

static inline uint64_t cfr_sip_rotl(uint64_t x, unsigned b)
{
	return x << b | x >> (64 - b);
}

#define CFR_SIPROUND(v0, v1, v2, v3)                                                               \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = cfr_sip_rotl(v1, 13);                                                         \
		v1 ^= v0;                                                                          \
		v0 = cfr_sip_rotl(v0, 32);                                                         \
		v2 += v3;                                                                          \
		v3 = cfr_sip_rotl(v3, 16);                                                         \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = cfr_sip_rotl(v3, 21);                                                         \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = cfr_sip_rotl(v1, 17);                                                         \
		v1 ^= v2;                                                                          \
		v2 = cfr_sip_rotl(v2, 32);                                                         \
	} while (0)

/* SipHash-1-3 of <in>[0..<len>) under <key>. */
static inline uint64_t cfr_siphash13(const struct cfr_sipkey *key, const void *in, size_t len)
{
	const uint8_t *p = in, *end = p + (len & ~(size_t)7);
	uint64_t v0 = key->k0 ^ 0x736f6d6570736575ull;
	uint64_t v1 = key->k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = key->k0 ^ 0x6c7967656e657261ull;
	uint64_t v3 = key->k1 ^ 0x7465646279746573ull;
	uint64_t m, b = (uint64_t)len << 56;

	for (; p != end; p += 8) {
		m = cfr_sip_le64(p);
		v3 ^= m;
		CFR_SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	/* The last 0-7 bytes, under the length byte; a constant <len> folds the switch. */
	switch (len & 7) {
	case 7:
		b |= (uint64_t)p[6] << 48;
		/* fall through */
	case 6:
		b |= (uint64_t)p[5] << 40;
		/* fall through */
	case 5:
		b |= (uint64_t)p[4] << 32;
		/* fall through */
	case 4:
		b |= (uint64_t)p[3] << 24;
		/* fall through */
	case 3:
		b |= (uint64_t)p[2] << 16;
		/* fall through */
	case 2:
		b |= (uint64_t)p[1] << 8;
		/* fall through */
	case 1:
		b |= (uint64_t)p[0];
		break;
	default:
		break;
	}
	v3 ^= b;
	CFR_SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	CFR_SIPROUND(v0, v1, v2, v3);
	CFR_SIPROUND(v0, v1, v2, v3);
	CFR_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

#undef CFR_SIPROUND

#endif
