/*
 * Internet checksum helpers (RFC 1071) and incremental update (RFC 1624).
 *
 * All sums are over big-endian 16-bit words read byte by byte, so the code is
 * independent of host byte order and of the alignment of packet buffers.
 */
#ifndef CFR_CSUM_H
#define CFR_CSUM_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * One's-complement sum of <len> bytes, added to <sum>; an odd tail is zero
 * padded. Summing big-endian 32-bit words and folding later gives the same
 * result as 16-bit words (2^16 = 1 modulo 0xffff) with half the additions.
 */
static inline uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	uint64_t s = sum;
	size_t i = 0;

	for (; i + 3 < len; i += 4)
		s += get32(p + i);
	if (i + 1 < len) {
		s += get16(p + i);
		i += 2;
	}
	if (i < len)
		s += (uint32_t)p[i] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint32_t)s;
}

static inline uint16_t csum_fold(uint32_t sum)
{
	/* Twice is enough for 32 bits (the first leaves at most 0x1fffe): no loop. */
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/*
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). csum_delta() sums the ~m + m'
 * terms of the even-length byte run <old> becoming <new>; csum_apply()
 * adds such a sum to the checksum stored at <field>. Deltas of several
 * fields may be added before one csum_apply(): the result is the same, bit
 * for bit, as applying them one by one. Eqn. 3 (not eqn. 2) so that a
 * checksum never turns into 0x0000 from a non-zero sum, which matters for
 * UDP where zero means "no checksum".
 */
static inline uint32_t csum_delta(const uint8_t *old, const uint8_t *new, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i < len; i += 2)
		sum += (uint16_t)~get16(old + i) + (uint32_t)get16(new + i);
	return sum;
}

static inline void csum_apply(uint8_t *field, uint32_t delta)
{
	put16(field, csum_fold((uint16_t)~get16(field) + delta));
}

static inline void csum_replace(uint8_t *field, const uint8_t *old, const uint8_t *new, size_t len)
{
	csum_apply(field, csum_delta(old, new, len));
}

/* Sum of an IPv4 or IPv6 pseudo-header for <proto> and <l4_len> bytes. */
static inline uint32_t csum_pseudo(const uint8_t *src, const uint8_t *dst, size_t addr_len,
                                   uint8_t proto, uint32_t l4_len)
{
	uint32_t sum = csum_add(0, src, addr_len);

	sum = csum_add(sum, dst, addr_len);
	sum += proto;
	sum += l4_len >> 16;
	sum += l4_len & 0xffff;
	return sum;
}

#endif
