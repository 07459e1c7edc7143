/*
 * Privacy epochs and accountability state.
 *
 * A subscriber's first flow in an epoch draws a seed from the CSPRNG; each
 * allocation attempt moves its counter, and the timeline records in which
 * seconds it moved: entries of (gap since the previous entry, length in
 * seconds, counter values drawn), each a LEB128 varint, usually 3 bytes.
 * When the 64-byte timeline is full the last entry is stretched instead of
 * a new one started, so a busy subscriber costs no more memory, only some
 * precision in cfr-lookup.
 *
 * Two tables alternate: the current epoch's, and the ended epoch's, which
 * waits for cfr_engine_drain_records() to hand each record to the daemon for
 * sealing and then wipes it. Rotation is O(1) on the packet path.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define VARINT_MAX 5
#define ENTRY_MAX  (3 * VARINT_MAX)

int cfr_acct_init(struct cfr_engine *eng)
{
	uint32_t n = eng->cfg.max_subscribers, buckets = 1;
	unsigned t;

	while (buckets < n)
		buckets <<= 1;
	for (t = 0; t < 2; t++) {
		struct cfr_sub_table *tab = &eng->subs[t];

		tab->s = calloc((size_t)n + 1, sizeof(*tab->s));
		tab->buckets = calloc(buckets, sizeof(uint32_t));
		tab->used = calloc(n, sizeof(uint32_t));
		if (!tab->s || !tab->buckets || !tab->used)
			return -ENOMEM;
		eng->memory += ((size_t)n + 1) * sizeof(*tab->s) + buckets * sizeof(uint32_t) +
		               n * sizeof(uint32_t);
	}
	eng->sub_mask = buckets - 1;
	return 0;
}

void cfr_acct_free(struct cfr_engine *eng)
{
	unsigned t;

	for (t = 0; t < 2; t++) {
		struct cfr_sub_table *tab = &eng->subs[t];

		if (tab->s)
			sodium_memzero(tab->s,
			               ((size_t)eng->cfg.max_subscribers + 1) * sizeof(*tab->s));
		free(tab->s);
		free(tab->buckets);
		free(tab->used);
	}
}

static uint32_t sub_bucket(const struct cfr_engine *eng, uint8_t family, const uint8_t key[16])
{
	uint8_t in[17];
	uint64_t h;

	memcpy(in, key, 16);
	in[16] = family;
	crypto_shorthash((unsigned char *)&h, in, sizeof(in), eng->hash_key);
	return (uint32_t)h & eng->sub_mask;
}

struct cfr_sub_state *cfr_acct_subscriber(struct cfr_engine *eng, uint8_t family,
                                          const uint8_t *addr)
{
	struct cfr_sub_table *tab = &eng->subs[eng->cur_subs];
	uint8_t key[16];
	uint32_t b, idx;
	struct cfr_sub_state *s;

	cfr_subscriber_key(eng, family, addr, key);
	b = sub_bucket(eng, family, key);
	for (idx = tab->buckets[b]; idx; idx = tab->s[idx].next)
		if (tab->s[idx].family == family && memcmp(tab->s[idx].key, key, 16) == 0)
			return &tab->s[idx];
	if (tab->n_used == eng->cfg.max_subscribers)
		return NULL;
	idx = tab->n_used + 1;
	tab->used[tab->n_used++] = idx;
	s = &tab->s[idx];
	memset(s, 0, sizeof(*s));
	memcpy(s->key, key, 16);
	s->family = family;
	s->in_use = 1;
	randombytes_buf(s->seed, sizeof(s->seed));
	s->next = tab->buckets[b];
	tab->buckets[b] = idx;
	eng->stats.subscribers_active = tab->n_used;
	return s;
}

static size_t put_varint(uint8_t *out, uint32_t v)
{
	size_t n = 0;

	do {
		out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return n;
}

static void flush_entry(struct cfr_sub_state *s)
{
	if (s->pend_count == 0)
		return;
	s->tl_len += put_varint(s->timeline + s->tl_len, s->pend_from - s->prev_end);
	s->tl_len += put_varint(s->timeline + s->tl_len, s->pend_to - s->pend_from);
	s->tl_len += put_varint(s->timeline + s->tl_len, s->pend_count);
	s->prev_end = s->pend_to;
	s->pend_count = 0;
}

/* The counter moved once, now. */
void cfr_acct_drew(struct cfr_engine *eng, struct cfr_sub_state *s)
{
	uint32_t t = (uint32_t)((eng->now_ms - eng->subs[eng->cur_subs].start_ms) / 1000);

	s->counter++;
	if (s->pend_count && t == s->pend_to) {
		s->pend_count++;
		return;
	}
	/* A full timeline stretches its last entry rather than grow. */
	if (s->pend_count && s->tl_len + 2 * ENTRY_MAX > CFR_TIMELINE_BYTES) {
		s->pend_to = t;
		s->pend_count++;
		return;
	}
	flush_entry(s);
	s->pend_from = s->pend_to = t;
	s->pend_count = 1;
}

static uint32_t get_varint(const uint8_t *buf, size_t len, size_t *off, int *err)
{
	uint32_t v = 0;
	unsigned shift;

	for (shift = 0; shift < 35; shift += 7) {
		if (*off >= len) {
			*err = 1;
			return 0;
		}
		v |= (uint32_t)(buf[*off] & 0x7f) << shift;
		if (!(buf[(*off)++] & 0x80))
			return v;
	}
	*err = 1;
	return 0;
}

int cfr_timeline_next(const struct cfr_epoch_record *rec, size_t *off, uint32_t *t_from,
                      uint32_t *t_to, uint32_t *first, uint32_t *count)
{
	size_t len =
	    rec->timeline_len < CFR_TIMELINE_BYTES ? rec->timeline_len : CFR_TIMELINE_BYTES;
	uint32_t gap, span, n;
	int err = 0;

	if (*off >= len)
		return 0;
	gap = get_varint(rec->timeline, len, off, &err);
	span = get_varint(rec->timeline, len, off, &err);
	n = get_varint(rec->timeline, len, off, &err);
	if (err || n == 0)
		return -EINVAL;
	*first += *count;
	*t_from = *t_to + gap;
	*t_to = *t_from + span;
	*count = n;
	return 1;
}

/* Wipe every state of <tab>, sealed or not, and make it ready for a new epoch. */
static void table_reset(struct cfr_engine *eng, struct cfr_sub_table *tab)
{
	uint32_t i;

	for (i = 0; i < tab->n_used; i++)
		sodium_memzero(&tab->s[tab->used[i]], sizeof(tab->s[0]));
	memset(tab->buckets, 0, ((size_t)eng->sub_mask + 1) * sizeof(uint32_t));
	tab->n_used = tab->drained = 0;
}

void cfr_epoch_new(struct cfr_engine *eng, uint64_t now_ms)
{
	struct cfr_sub_table *ended = &eng->subs[eng->cur_subs];
	struct cfr_sub_table *next = &eng->subs[!eng->cur_subs];

	/* The table we are about to reuse should have been drained long ago. */
	if (next->n_used > next->drained) {
		eng->stats.records_lost += next->n_used - next->drained;
		table_reset(eng, next);
	} else if (next->n_used) {
		table_reset(eng, next);
	}
	ended->end_ms = now_ms;
	eng->cur_subs = (uint8_t)!eng->cur_subs;
	next->epoch = ++eng->stats.epoch;
	next->start_ms = now_ms;
	eng->epoch_start_s = eng->now_s;
	eng->stats.subscribers_active = 0;
}

void cfr_epoch_check(struct cfr_engine *eng, uint64_t now_ms)
{
	if (unlikely(eng->now_s - eng->epoch_start_s >= eng->cfg.epoch_s)) {
		cfr_epoch_new(eng, now_ms);
		eng->stats.epochs_rotated++;
	}
}

unsigned cfr_engine_drain_records(struct cfr_engine *eng, cfr_record_fn fn, void *ctx, unsigned max)
{
	struct cfr_sub_table *tab = &eng->subs[!eng->cur_subs];
	struct cfr_epoch_record rec;
	unsigned done = 0;

	while (tab->drained < tab->n_used && done < max) {
		struct cfr_sub_state *s = &tab->s[tab->used[tab->drained++]];

		flush_entry(s);
		memset(&rec, 0, sizeof(rec));
		rec.epoch = tab->epoch;
		rec.start_ms = tab->start_ms;
		rec.end_ms = tab->end_ms;
		rec.family = s->family;
		memcpy(rec.subscriber, s->key, 16);
		memcpy(rec.seed, s->seed, CFR_SEED_BYTES);
		rec.counter = s->counter;
		rec.timeline_len = s->tl_len;
		memcpy(rec.timeline, s->timeline, s->tl_len);
		fn(ctx, &rec);
		sodium_memzero(&rec, sizeof(rec));
		sodium_memzero(s, sizeof(*s));
		eng->stats.records_sealed++;
		done++;
	}
	if (tab->drained == tab->n_used && tab->n_used)
		table_reset(eng, tab);
	return tab->n_used - tab->drained;
}
