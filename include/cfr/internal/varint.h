/*
 * LEB128 varints for the accountability timelines (acct.c) and the sealed
 * record format (src/records/format.c): 7 bits per byte, low first, at most
 * five bytes for 32 bits. One copy, so the writer and the reader of a record
 * cannot disagree on the encoding.
 */
#ifndef CFR_VARINT_H
#define CFR_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Write <v> at <out> (room for 5 bytes); returns the bytes written. */
static inline size_t cfr_varint_put(uint8_t *out, uint32_t v)
{
	size_t n = 0;

	do {
		out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return n;
}

/* Bytes cfr_varint_put() writes for <v>. */
static inline size_t cfr_varint_len(uint32_t v)
{
	size_t n = 1;

	while (v > 0x7f) {
		v >>= 7;
		n++;
	}
	return n;
}

/*
 * Read one varint of buf[0..len) at *off and advance *off. A truncated or
 * over-long one, or one above 32 bits, sets *err and reads as 0, so a
 * caller can decode several and check once.
 */
static inline uint32_t cfr_varint_get(const uint8_t *buf, size_t len, size_t *off, int *err)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 35 && *off < len; shift += 7) {
		uint8_t b = buf[(*off)++];

		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			if (v > UINT32_MAX)
				break;
			return (uint32_t)v;
		}
	}
	*err = 1;
	return 0;
}

#endif
