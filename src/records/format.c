/*
 * The byte layout of a segment: the clear header and the plaintext of
 * record frames. All integers are little-endian. Pure functions, no I/O,
 * so the writer, the reader and the tests agree by construction.
 *
 * Header: magic[8] | u16 length | u64 start_ms | u32 period_s | u32 epoch_s
 *       | u16 port_min | u16 port_max | u8 policy4 | u8 policy6
 *       | u8 subscriber_prefix6 | u8 n_pool4 | u8 n_pool6
 *       | n_pool4 x (u8 len, 4 bytes) | n_pool6 x (u8 len, 16 bytes)
 *       | version 1 only: sealed segment key[80]
 * Record: version 2: LEB128 slot, then
 *         u8 family | subscriber (4 bytes, or the /prefix6 in whole bytes)
 *       | seed[32] | LEB128 counter | u8 timeline length | timeline
 * A record of a light subscriber is about 45 bytes of plaintext; it is the
 * whole cost of accountability for that subscriber in that epoch.
 * Journal items: u8 tag (1 snapshot, 2 delta) | LEB128 slot | a record
 *       without its slot (snapshot) or LEB128 counter_from, count, t_from,
 *       t_to - t_from (delta, usually 6-9 bytes).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cfr/internal/varint.h"
#include "records.h"

int cfr_rec_fail(struct cfr_rec_error *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static unsigned v6_sub_bytes(uint8_t prefix6)
{
	return (prefix6 + 7u) / 8u;
}

static size_t header_len(unsigned version, const struct cfr_engine_config *c)
{
	return 35 + (size_t)c->n_pool4 * 5 + (size_t)c->n_pool6 * 17 +
	       (version == 1 ? CFR_SEG_SEALED_BYTES : 0);
}

int cfr_seg_header_encode(const struct cfr_seg_header *h, uint8_t *out, size_t size)
{
	const struct cfr_engine_config *c = &h->cfg;
	unsigned version = h->version == 1 ? 1 : 2;
	size_t len = header_len(version, c);
	uint8_t *p = out;

	if (len > size || c->n_pool4 > CFR_MAX_POOL_PREFIXES || c->n_pool6 > CFR_MAX_POOL_PREFIXES)
		return -EINVAL;
	memcpy(p, version == 1 ? CFR_SEG_MAGIC_V1 : CFR_SEG_MAGIC, CFR_SEG_MAGIC_LEN);
	p += CFR_SEG_MAGIC_LEN;
	put_le(p, len, 2);
	put_le(p + 2, h->start_ms, 8);
	put_le(p + 10, h->period_s, 4);
	put_le(p + 14, h->epoch_s, 4);
	put_le(p + 18, c->port_min, 2);
	put_le(p + 20, c->port_max, 2);
	p[22] = c->policy[CFR_FAMILY_V4];
	p[23] = c->policy[CFR_FAMILY_V6];
	p[24] = c->subscriber_prefix6;
	p[25] = (uint8_t)c->n_pool4;
	p[26] = (uint8_t)c->n_pool6;
	p += 27;
	for (unsigned i = 0; i < c->n_pool4; i++, p += 5) {
		p[0] = c->pool4[i].len;
		memcpy(p + 1, c->pool4[i].addr, 4);
	}
	for (unsigned i = 0; i < c->n_pool6; i++, p += 17) {
		p[0] = c->pool6[i].len;
		memcpy(p + 1, c->pool6[i].addr, 16);
	}
	if (version == 1)
		memcpy(p, h->sealed_key, CFR_SEG_SEALED_BYTES);
	return (int)len;
}

static bool valid_prefix(const struct cfr_prefix *p)
{
	unsigned bits = p->family == CFR_FAMILY_V4 ? 32 : 128;
	struct cfr_prefix masked = *p;

	if (p->len > bits)
		return false;
	for (unsigned i = p->len; i < bits; i++)
		masked.addr[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
	return memcmp(masked.addr, p->addr, 16) == 0;
}

int cfr_seg_header_decode(const uint8_t *buf, size_t len, struct cfr_seg_header *h)
{
	struct cfr_engine_config *c = &h->cfg;
	const uint8_t *p;
	unsigned version;
	size_t hlen;

	if (len < CFR_SEG_MAGIC_LEN + 2)
		return 0;
	if (memcmp(buf, CFR_SEG_MAGIC, CFR_SEG_MAGIC_LEN) == 0)
		version = 2;
	else if (memcmp(buf, CFR_SEG_MAGIC_V1, CFR_SEG_MAGIC_LEN) == 0)
		version = 1;
	else
		return -EBADMSG;
	hlen = get_le(buf + CFR_SEG_MAGIC_LEN, 2);
	if (hlen < 35 + (version == 1 ? CFR_SEG_SEALED_BYTES : 0) || hlen > CFR_SEG_HEADER_MAX)
		return -EBADMSG;
	if (len < hlen)
		return 0;
	memset(h, 0, sizeof(*h));
	h->version = (uint8_t)version;
	cfr_engine_config_defaults(c);
	p = buf + CFR_SEG_MAGIC_LEN + 2;
	h->start_ms = get_le(p, 8);
	h->period_s = (uint32_t)get_le(p + 8, 4);
	h->epoch_s = (uint32_t)get_le(p + 12, 4);
	c->port_min = (uint16_t)get_le(p + 16, 2);
	c->port_max = (uint16_t)get_le(p + 18, 2);
	c->policy[CFR_FAMILY_V4] = p[20];
	c->policy[CFR_FAMILY_V6] = p[21];
	c->subscriber_prefix6 = p[22];
	c->n_pool4 = p[23];
	c->n_pool6 = p[24];
	p += 25;
	if (c->n_pool4 > CFR_MAX_POOL_PREFIXES || c->n_pool6 > CFR_MAX_POOL_PREFIXES ||
	    hlen != header_len(version, c) || c->port_min == 0 || c->port_min > c->port_max ||
	    c->policy[0] >= CFR_POLICY__COUNT || c->policy[1] >= CFR_POLICY__COUNT ||
	    c->subscriber_prefix6 == 0 || c->subscriber_prefix6 > 128 || h->period_s == 0 ||
	    h->epoch_s == 0)
		return -EBADMSG;
	for (unsigned i = 0; i < c->n_pool4; i++, p += 5) {
		c->pool4[i] = (struct cfr_prefix){.family = CFR_FAMILY_V4, .len = p[0]};
		memcpy(c->pool4[i].addr, p + 1, 4);
		if (!valid_prefix(&c->pool4[i]))
			return -EBADMSG;
	}
	for (unsigned i = 0; i < c->n_pool6; i++, p += 17) {
		c->pool6[i] = (struct cfr_prefix){.family = CFR_FAMILY_V6, .len = p[0]};
		memcpy(c->pool6[i].addr, p + 1, 16);
		if (!valid_prefix(&c->pool6[i]))
			return -EBADMSG;
	}
	if (version == 1)
		memcpy(h->sealed_key, p, CFR_SEG_SEALED_BYTES);
	return (int)hlen;
}

void cfr_frame_nonce(uint64_t seq, uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES])
{
	/* The key is fresh per epoch block (v1: per segment): its frame number is a unique nonce.
	 */
	memset(nonce, 0, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	put_le(nonce, seq, 8);
}

/* The record without its slot; <out> has room for CFR_FRAME_PLAIN_MAX - 5 bytes. */
static size_t body_encode(const struct cfr_epoch_record *rec, uint8_t subscriber_prefix6,
                          uint8_t *out)
{
	unsigned sub = rec->family == CFR_FAMILY_V4 ? 4 : v6_sub_bytes(subscriber_prefix6);
	uint16_t tl =
	    rec->timeline_len < CFR_TIMELINE_BYTES ? rec->timeline_len : CFR_TIMELINE_BYTES;
	size_t n = 0;

	out[n++] = rec->family;
	memcpy(out + n, rec->subscriber, sub);
	n += sub;
	memcpy(out + n, rec->seed, CFR_SEED_BYTES);
	n += CFR_SEED_BYTES;
	n += cfr_varint_put(out + n, rec->counter);
	out[n++] = (uint8_t)tl;
	memcpy(out + n, rec->timeline, tl);
	return n + tl;
}

/* The record without its slot at buf[*off]; *off moves past it. */
static int body_decode(const uint8_t *buf, size_t len, size_t *off, uint8_t subscriber_prefix6,
                       struct cfr_epoch_record *rec)
{
	size_t sub;
	uint8_t tl;
	int err = 0;

	if (*off >= len || buf[*off] >= CFR_FAMILY__COUNT)
		return -EBADMSG;
	rec->family = buf[(*off)++];
	sub = rec->family == CFR_FAMILY_V4 ? 4 : v6_sub_bytes(subscriber_prefix6);
	if (len - *off < sub + CFR_SEED_BYTES)
		return -EBADMSG;
	memset(rec->subscriber, 0, sizeof(rec->subscriber));
	memcpy(rec->subscriber, buf + *off, sub);
	*off += sub;
	memcpy(rec->seed, buf + *off, CFR_SEED_BYTES);
	*off += CFR_SEED_BYTES;
	rec->counter = cfr_varint_get(buf, len, off, &err);
	if (err || *off >= len)
		return -EBADMSG;
	tl = buf[(*off)++];
	if (tl > CFR_TIMELINE_BYTES || len - *off < tl)
		return -EBADMSG;
	rec->timeline_len = tl;
	memset(rec->timeline, 0, sizeof(rec->timeline));
	memcpy(rec->timeline, buf + *off, tl);
	*off += tl;
	return 0;
}

size_t cfr_record_encode(const struct cfr_epoch_record *rec, uint8_t subscriber_prefix6,
                         unsigned version, uint8_t out[CFR_FRAME_PLAIN_MAX])
{
	size_t n = 0;

	_Static_assert(5 + 1 + 16 + CFR_SEED_BYTES + 5 + 1 + CFR_TIMELINE_BYTES <=
	                   CFR_FRAME_PLAIN_MAX,
	               "a record fits a frame");
	if (version != 1)
		n = cfr_varint_put(out, rec->slot);
	return n + body_encode(rec, subscriber_prefix6, out + n);
}

int cfr_record_decode(const uint8_t *buf, size_t len, uint8_t subscriber_prefix6, unsigned version,
                      struct cfr_epoch_record *rec)
{
	size_t off = 0;
	int err = 0;

	rec->slot = 0;
	if (version != 1) {
		rec->slot = cfr_varint_get(buf, len, &off, &err);
		if (err)
			return -EBADMSG;
	}
	if (body_decode(buf, len, &off, subscriber_prefix6, rec) < 0 || off != len)
		return -EBADMSG;
	return 0;
}

enum { JOURNAL_TAG_SNAPSHOT = 1, JOURNAL_TAG_DELTA = 2 };

size_t cfr_journal_put(const struct cfr_journal_item *it, uint8_t subscriber_prefix6, uint8_t *out)
{
	size_t n = 0;

	out[n++] = it->kind == CFR_JOURNAL_SNAPSHOT ? JOURNAL_TAG_SNAPSHOT : JOURNAL_TAG_DELTA;
	n += cfr_varint_put(out + n, it->rec.slot);
	if (it->kind == CFR_JOURNAL_SNAPSHOT)
		return n + body_encode(&it->rec, subscriber_prefix6, out + n);
	n += cfr_varint_put(out + n, it->counter_from);
	n += cfr_varint_put(out + n, it->count);
	n += cfr_varint_put(out + n, it->t_from);
	n += cfr_varint_put(out + n, it->t_to - it->t_from);
	return n;
}

int cfr_journal_get(const uint8_t *buf, size_t len, size_t *off, uint8_t subscriber_prefix6,
                    struct cfr_journal_item *it)
{
	uint8_t tag;
	int err = 0;

	if (*off >= len)
		return 0;
	memset(it, 0, sizeof(*it));
	tag = buf[(*off)++];
	it->rec.slot = cfr_varint_get(buf, len, off, &err);
	if (err)
		return -EBADMSG;
	if (tag == JOURNAL_TAG_SNAPSHOT) {
		it->kind = CFR_JOURNAL_SNAPSHOT;
		if (body_decode(buf, len, off, subscriber_prefix6, &it->rec) < 0)
			return -EBADMSG;
		it->count = it->rec.counter;
		return 1;
	}
	if (tag != JOURNAL_TAG_DELTA)
		return -EBADMSG;
	it->kind = CFR_JOURNAL_DELTA;
	it->counter_from = cfr_varint_get(buf, len, off, &err);
	it->count = cfr_varint_get(buf, len, off, &err);
	it->t_from = cfr_varint_get(buf, len, off, &err);
	it->t_to = it->t_from + cfr_varint_get(buf, len, off, &err);
	if (err || it->count == 0 || it->t_to < it->t_from)
		return -EBADMSG;
	return 1;
}

void cfr_seg_name(uint64_t start_ms, unsigned n, char *out, size_t size)
{
	time_t t = (time_t)(start_ms / 1000);
	struct tm tm;
	char stamp[32] = "unknown";

	if (gmtime_r(&t, &tm))
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if (n)
		snprintf(out, size, "cfr-%s-%u" CFR_SEG_SUFFIX, stamp, n);
	else
		snprintf(out, size, "cfr-%s" CFR_SEG_SUFFIX, stamp);
}
