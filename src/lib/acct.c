/*
 * Privacy epochs and accountability state.
 *
 * A subscriber's first flow in an epoch draws a seed from the CSPRNG; each
 * allocation attempt moves its counter, and the timeline records in which
 * seconds it moved: entries of (gap since the previous entry, length in
 * seconds, counter values drawn), each a LEB128 varint, usually 3 bytes.
 * When the timeline is full, neighbouring entries merge pairwise, so a busy
 * subscriber costs no more memory, only some precision in cfr-lookup, spread
 * evenly over the epoch.
 *
 * Two tables alternate: the current epoch's, and the ended epoch's, which
 * waits for cfr_engine_drain_records() to hand each record to the daemon for
 * sealing and then wipes it. Rotation is O(1) on the packet path.
 *
 * A full current table does not lock new subscribers out until the epoch
 * ends: a subscriber whose flows are all gone is sealed early (its record
 * goes to a small queue the daemon drains like the others) and its slot
 * serves the newcomer. If it comes back in the same epoch it gets a new
 * seed and a second record; cfr-lookup searches both.
 *
 * The write-ahead journal: a subscriber whose counter moves goes on the
 * table's dirty list (O(1), no I/O), and cfr_engine_drain_journal() hands
 * the daemon a snapshot of its record the first time, and afterwards the
 * counter values drawn since the last call with the seconds they were
 * drawn in. The daemon seals them every second, so a crash loses seconds
 * of timeline, not the epoch's seeds. The engine itself never writes.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "acct.h"
#include "cfr/internal/compiler.h"
#include "cfr/internal/varint.h"
#include "guard.h"
#include "policy.h"

/* Subscribers looked at per newcomer when searching for an idle one. */
#define IDLE_PROBES 64

int cfr_acct_init(struct cfr_engine *eng)
{
	uint32_t n = eng->cfg.max_subscribers, buckets = 1;
	unsigned t;

	eng->acct.early = calloc(CFR_EARLY_QUEUE, sizeof(*eng->acct.early));
	if (!eng->acct.early)
		return -ENOMEM;
	eng->memory += CFR_EARLY_QUEUE * sizeof(*eng->acct.early);

	while (buckets < n)
		buckets <<= 1;
	for (t = 0; t < 2; t++) {
		struct cfr_sub_table *tab = &eng->acct.subs[t];

		tab->s = calloc((size_t)n + 1, sizeof(*tab->s));
		tab->buckets = calloc(buckets, sizeof(uint32_t));
		tab->used = calloc(n, sizeof(uint32_t));
		tab->dirty = calloc(n, sizeof(uint32_t));
		if (!tab->s || !tab->buckets || !tab->used || !tab->dirty)
			return -ENOMEM;
		eng->memory += ((size_t)n + 1) * sizeof(*tab->s) + buckets * sizeof(uint32_t) +
		               2 * (size_t)n * sizeof(uint32_t);
	}
	eng->acct.sub_mask = buckets - 1;
	eng->acct.jr_gen = 1;
	return 0;
}

void cfr_acct_free(struct cfr_engine *eng)
{
	unsigned t;

	if (eng->acct.early)
		sodium_memzero(eng->acct.early, CFR_EARLY_QUEUE * sizeof(*eng->acct.early));
	free(eng->acct.early);

	for (t = 0; t < 2; t++) {
		struct cfr_sub_table *tab = &eng->acct.subs[t];

		if (tab->s)
			sodium_memzero(tab->s,
			               ((size_t)eng->cfg.max_subscribers + 1) * sizeof(*tab->s));
		free(tab->s);
		free(tab->buckets);
		free(tab->used);
		free(tab->dirty);
	}
}

static uint32_t sub_bucket(const struct cfr_engine *eng, uint8_t family, const uint8_t key[16])
{
	uint8_t in[17];
	uint64_t h;

	memcpy(in, key, 16);
	in[16] = family;
	crypto_shorthash((unsigned char *)&h, in, sizeof(in), eng->hash_key);
	return (uint32_t)h & eng->acct.sub_mask;
}

static void flush_entry(struct cfr_sub_state *s);

/* The record of <s>, in <tab> (whose epoch it belongs to), ending at <end_ms>. */
static void record_of(const struct cfr_sub_table *tab, struct cfr_sub_state *s, uint64_t end_ms,
                      struct cfr_epoch_record *rec)
{
	flush_entry(s);
	memset(rec, 0, sizeof(*rec));
	rec->epoch = tab->epoch;
	rec->start_ms = tab->start_ms;
	rec->end_ms = end_ms;
	rec->family = s->family;
	memcpy(rec->subscriber, s->key, 16);
	memcpy(rec->seed, s->seed, CFR_SEED_BYTES);
	rec->counter = s->counter;
	rec->timeline_len = s->tl_len;
	memcpy(rec->timeline, s->timeline, s->tl_len);
	rec->slot = s->slot;
}

/* Take <idx> off the dirty list of <tab>: swap with the last, O(1). */
static void dirty_remove(struct cfr_sub_table *tab, uint32_t idx)
{
	struct cfr_sub_state *s = &tab->s[idx];
	uint32_t last;

	if (!s->dirty_pos)
		return;
	last = tab->dirty[--tab->n_dirty];
	tab->dirty[s->dirty_pos - 1] = last;
	tab->s[last].dirty_pos = s->dirty_pos;
	s->dirty_pos = 0;
}

static void unlink_state(struct cfr_engine *eng, struct cfr_sub_table *tab, uint32_t idx)
{
	struct cfr_sub_state *s = &tab->s[idx];
	uint32_t *link = &tab->buckets[sub_bucket(eng, s->family, s->key)];

	while (*link && *link != idx)
		link = &tab->s[*link].next;
	if (*link)
		*link = s->next;
}

/*
 * Seal early a subscriber of the full current table whose flows are all
 * gone, and return its slot (still listed in tab->used), or 0. Bounded
 * work: IDLE_PROBES entries, from where the last search stopped.
 */
static uint32_t seal_idle(struct cfr_engine *eng, struct cfr_sub_table *tab)
{
	unsigned probes;

	for (probes = 0; probes < IDLE_PROBES && eng->acct.early_count < CFR_EARLY_QUEUE;
	     probes++) {
		uint32_t idx = tab->used[tab->cursor++ % tab->n_used];
		struct cfr_sub_state *s = &tab->s[idx];

		if (cfr_guard_has_flows(eng, s->family, s->key))
			continue;
		/*
		 * Its record claims the whole epoch, as its neighbours' will: one
		 * window per epoch in the records, and never one that ends before
		 * a complaint about this subscriber's last flow could fall.
		 */
		if (s->counter) { /* nothing drawn, nothing to attribute */
			record_of(tab, s, tab->start_ms + (uint64_t)eng->cfg.epoch_s * 1000,
			          &eng->acct.early[(eng->acct.early_head + eng->acct.early_count) %
			                           CFR_EARLY_QUEUE]);
			eng->acct.early_count++;
		}
		dirty_remove(tab, idx);
		unlink_state(eng, tab, idx);
		sodium_memzero(s, sizeof(*s));
		eng->stats.subscribers_sealed_early++;
		return idx;
	}
	return 0;
}

struct cfr_sub_state *cfr_acct_subscriber(struct cfr_engine *eng, uint8_t family,
                                          const uint8_t *addr)
{
	struct cfr_sub_table *tab = &eng->acct.subs[eng->acct.cur_subs];
	uint8_t key[16];
	uint32_t b, idx;
	struct cfr_sub_state *s;

	cfr_subscriber_key(eng, family, addr, key);
	b = sub_bucket(eng, family, key);
	for (idx = tab->buckets[b]; idx; idx = tab->s[idx].next)
		if (tab->s[idx].family == family && memcmp(tab->s[idx].key, key, 16) == 0)
			return &tab->s[idx];
	if (tab->n_used < eng->cfg.max_subscribers) {
		idx = tab->n_used + 1;
		tab->used[tab->n_used++] = idx;
	} else if ((idx = seal_idle(eng, tab)) == 0) {
		return NULL;
	}
	s = &tab->s[idx];
	memset(s, 0, sizeof(*s));
	memcpy(s->key, key, 16);
	s->family = family;
	s->in_use = 1;
	s->slot = ++tab->next_slot;
	randombytes_buf(s->seed, sizeof(s->seed));
	s->next = tab->buckets[b];
	tab->buckets[b] = idx;
	eng->stats.subscribers_active = tab->n_used;
	return s;
}

/*
 * Undo cfr_acct_subscriber() for a subscriber whose very first allocation of
 * the epoch failed: a refused flow must not hold a slot (nor leave a record)
 * until the epoch ends. Only the newest entry can be in that state.
 */
void cfr_acct_forget_new(struct cfr_engine *eng, struct cfr_sub_state *s)
{
	struct cfr_sub_table *tab = &eng->acct.subs[eng->acct.cur_subs];
	uint32_t idx = tab->n_used, b;

	if (idx == 0 || s != &tab->s[idx])
		return;
	b = sub_bucket(eng, s->family, s->key);
	if (tab->buckets[b] != idx)
		return;
	tab->buckets[b] = s->next;
	dirty_remove(tab, idx);
	sodium_memzero(s, sizeof(*s));
	tab->n_used--;
	if (tab->reseed > tab->n_used)
		tab->reseed = tab->n_used;
	eng->stats.subscribers_active = tab->n_used;
}

struct tl_entry {
	uint32_t from, to, count;
};

#define TL_MAX_ENTRIES (CFR_TIMELINE_BYTES / 3 + 1)

/* Our own timeline: every entry was written by tl_put, so it decodes. */
static unsigned tl_decode(const struct cfr_sub_state *s, struct tl_entry *e)
{
	uint32_t end = 0;
	size_t off = 0;
	unsigned n = 0;
	int err = 0;

	while (off < s->tl_len && n < TL_MAX_ENTRIES) {
		e[n].from = end + cfr_varint_get(s->timeline, s->tl_len, &off, &err);
		e[n].to = e[n].from + cfr_varint_get(s->timeline, s->tl_len, &off, &err);
		e[n].count = cfr_varint_get(s->timeline, s->tl_len, &off, &err);
		end = e[n++].to;
	}
	return n;
}

static void tl_put(struct cfr_sub_state *s, uint32_t from, uint32_t to, uint32_t count)
{
	s->tl_len += cfr_varint_put(s->timeline + s->tl_len, from - s->prev_end);
	s->tl_len += cfr_varint_put(s->timeline + s->tl_len, to - from);
	s->tl_len += cfr_varint_put(s->timeline + s->tl_len, count);
	s->prev_end = to;
}

static size_t tl_encoded_len(const struct tl_entry *e, unsigned n)
{
	uint32_t end = 0;
	size_t len = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		len += cfr_varint_len(e[i].from - end) + cfr_varint_len(e[i].to - e[i].from) +
		       cfr_varint_len(e[i].count);
		end = e[i].to;
	}
	return len;
}

/*
 * A full timeline merges the neighbours whose union is the shortest, until
 * a quarter of the space is free again: precision degrades evenly over the
 * epoch (a streaming histogram). Stretching the last entry instead would
 * blur all the rest of the epoch into one range, and make complaints about
 * it ambiguous.
 */
static void tl_coarsen(struct cfr_sub_state *s)
{
	struct tl_entry e[TL_MAX_ENTRIES];
	unsigned n = tl_decode(s, e), i;

	while (n > 1 && tl_encoded_len(e, n) > CFR_TIMELINE_BYTES * 3 / 4) {
		unsigned best = 0;

		for (i = 1; i + 1 < n; i++)
			if (e[i + 1].to - e[i].from < e[best + 1].to - e[best].from)
				best = i;
		e[best].to = e[best + 1].to;
		e[best].count += e[best + 1].count;
		memmove(&e[best + 1], &e[best + 2], (n - best - 2) * sizeof(e[0]));
		n--;
	}
	s->tl_len = 0;
	s->prev_end = 0;
	for (i = 0; i < n; i++)
		tl_put(s, e[i].from, e[i].to, e[i].count);
}

static void flush_entry(struct cfr_sub_state *s)
{
	if (s->pend_count == 0)
		return;
	while (s->tl_len + cfr_varint_len(s->pend_from - s->prev_end) +
	           cfr_varint_len(s->pend_to - s->pend_from) + cfr_varint_len(s->pend_count) >
	       CFR_TIMELINE_BYTES) {
		struct tl_entry e[TL_MAX_ENTRIES];
		uint16_t before = s->tl_len;
		unsigned n, i;

		tl_coarsen(s);
		if (s->tl_len < before)
			continue;
		/* Nothing left to merge and still no room: the pending entry joins the last. */
		n = tl_decode(s, e);
		if (n == 0)
			break;
		e[n - 1].to = s->pend_to;
		e[n - 1].count += s->pend_count;
		s->tl_len = 0;
		s->prev_end = 0;
		for (i = 0; i < n; i++)
			tl_put(s, e[i].from, e[i].to, e[i].count);
		s->pend_count = 0;
		return;
	}
	tl_put(s, s->pend_from, s->pend_to, s->pend_count);
	s->pend_count = 0;
}

/* The counter moved once, now. */
void cfr_acct_drew(struct cfr_engine *eng, struct cfr_sub_state *s)
{
	struct cfr_sub_table *tab = &eng->acct.subs[eng->acct.cur_subs];
	uint32_t t = (uint32_t)((eng->now_ms - tab->start_ms) / 1000);

	s->counter++;
	if (!s->dirty_pos) {
		tab->dirty[tab->n_dirty++] = (uint32_t)(s - tab->s);
		s->dirty_pos = tab->n_dirty;
		s->jr_from = t;
	}
	s->jr_to = t;
	if (s->pend_count && t == s->pend_to) {
		s->pend_count++;
		return;
	}
	flush_entry(s);
	s->pend_from = s->pend_to = t;
	s->pend_count = 1;
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
	gap = cfr_varint_get(rec->timeline, len, off, &err);
	span = cfr_varint_get(rec->timeline, len, off, &err);
	n = cfr_varint_get(rec->timeline, len, off, &err);
	if (err || n == 0)
		return -EINVAL;
	*first += *count;
	*t_from = *t_to + gap;
	*t_to = *t_from + span;
	*count = n;
	return 1;
}

/* Make <tab>, whose every state is zero, ready for a new epoch. */
static void table_clear(struct cfr_engine *eng, struct cfr_sub_table *tab)
{
	memset(tab->buckets, 0, ((size_t)eng->acct.sub_mask + 1) * sizeof(uint32_t));
	tab->n_used = tab->drained = tab->cursor = 0;
	tab->n_dirty = tab->next_slot = tab->reseed = 0;
}

/* Wipe every state of <tab>, sealed or not, and make it ready for a new epoch. */
static void table_reset(struct cfr_engine *eng, struct cfr_sub_table *tab)
{
	for (uint32_t i = 0; i < tab->n_used; i++)
		sodium_memzero(&tab->s[tab->used[i]], sizeof(tab->s[0]));
	table_clear(eng, tab);
}

/* The early record at the head of the queue, if any. */
static const struct cfr_epoch_record *early_head(const struct cfr_engine *eng)
{
	return eng->acct.early_count ? &eng->acct.early[eng->acct.early_head] : NULL;
}

static void early_pop(struct cfr_engine *eng)
{
	sodium_memzero(&eng->acct.early[eng->acct.early_head], sizeof(eng->acct.early[0]));
	eng->acct.early_head = (eng->acct.early_head + 1) % CFR_EARLY_QUEUE;
	eng->acct.early_count--;
}

void cfr_epoch_new(struct cfr_engine *eng, uint64_t now_ms)
{
	struct cfr_sub_table *ended = &eng->acct.subs[eng->acct.cur_subs];
	struct cfr_sub_table *next = &eng->acct.subs[!eng->acct.cur_subs];

	const struct cfr_epoch_record *e;

	/* The table we are about to reuse should have been drained long ago. */
	if (next->n_used > next->drained) {
		eng->stats.records_lost += next->n_used - next->drained;
		table_reset(eng, next);
	} else if (next->n_used) {
		table_reset(eng, next);
	}
	/* So should its early records: epochs reach the daemon in order, or not at all. */
	while ((e = early_head(eng)) != NULL && e->epoch != ended->epoch) {
		early_pop(eng);
		eng->stats.records_lost++;
	}
	ended->end_ms = now_ms;
	eng->acct.cur_subs = (uint8_t)!eng->acct.cur_subs;
	next->epoch = ++eng->stats.epoch;
	next->start_ms = now_ms;
	eng->stats.epoch_start_ms = now_ms;
	eng->acct.epoch_start_s = eng->now_s;
	eng->stats.subscribers_active = 0;
}

void cfr_epoch_check(struct cfr_engine *eng, uint64_t now_ms)
{
	if (unlikely(eng->now_s - eng->acct.epoch_start_s >= eng->cfg.epoch_s)) {
		cfr_epoch_new(eng, now_ms);
		eng->stats.epochs_rotated++;
	}
}

/* Is the epoch that ended still waiting for cfr_engine_drain_records()? */
static bool ended_pending(const struct cfr_engine *eng)
{
	const struct cfr_sub_table *ended = &eng->acct.subs[!eng->acct.cur_subs];
	const struct cfr_epoch_record *e = early_head(eng);

	return ended->drained < ended->n_used ||
	       (e && e->epoch != eng->acct.subs[eng->acct.cur_subs].epoch);
}

/*
 * The ended epoch first (its early records, at the head of the queue, then
 * its table), then the current epoch's early records: the daemon sees
 * epoch numbers that never go back.
 */
unsigned cfr_engine_drain_records(struct cfr_engine *eng, cfr_record_fn fn, void *ctx, unsigned max)
{
	struct cfr_sub_table *tab = &eng->acct.subs[!eng->acct.cur_subs];
	uint64_t current = eng->acct.subs[eng->acct.cur_subs].epoch;
	const struct cfr_epoch_record *e;
	struct cfr_epoch_record rec;
	unsigned done = 0;

	while ((e = early_head(eng)) != NULL && e->epoch != current && done < max) {
		fn(ctx, e);
		early_pop(eng);
		eng->stats.records_sealed++;
		done++;
	}
	while (tab->drained < tab->n_used && done < max) {
		struct cfr_sub_state *s = &tab->s[tab->used[tab->drained++]];

		record_of(tab, s, tab->end_ms, &rec);
		fn(ctx, &rec);
		sodium_memzero(&rec, sizeof(rec));
		sodium_memzero(s, sizeof(*s));
		eng->stats.records_sealed++;
		done++;
	}
	/*
	 * Each state was wiped as its record left: wiping them all again here
	 * held the daemon's lock 3 ms for 100,000 subscribers (bench/stall).
	 */
	if (tab->drained == tab->n_used && tab->n_used)
		table_clear(eng, tab);
	while (!ended_pending(eng) && eng->acct.early_count && done < max) {
		fn(ctx, early_head(eng));
		early_pop(eng);
		eng->stats.records_sealed++;
		done++;
	}
	return tab->n_used - tab->drained + eng->acct.early_count;
}

/* A subscriber's record so far, for the journal; its state is not touched. */
static void journal_snapshot(struct cfr_engine *eng, struct cfr_sub_table *tab,
                             struct cfr_sub_state *s, struct cfr_journal_item *it)
{
	struct cfr_sub_state copy = *s;

	memset(it, 0, sizeof(*it));
	it->kind = CFR_JOURNAL_SNAPSHOT;
	record_of(tab, &copy, 0, &it->rec); /* flushes the copy's pending entry */
	sodium_memzero(&copy, sizeof(copy));
	it->count = s->counter;
	s->jr_gen = eng->acct.jr_gen;
	s->jr_counter = s->counter;
}

static void journal_delta(struct cfr_sub_table *tab, struct cfr_sub_state *s,
                          struct cfr_journal_item *it)
{
	memset(it, 0, sizeof(*it));
	it->kind = CFR_JOURNAL_DELTA;
	it->rec.epoch = tab->epoch;
	it->rec.start_ms = tab->start_ms;
	it->rec.family = s->family;
	it->rec.slot = s->slot;
	it->counter_from = s->jr_counter;
	it->count = s->counter - s->jr_counter;
	it->t_from = s->jr_from;
	it->t_to = s->jr_to;
	s->jr_counter = s->counter;
}

unsigned cfr_engine_drain_journal(struct cfr_engine *eng, cfr_journal_fn fn, void *ctx,
                                  unsigned max)
{
	struct cfr_sub_table *tab = &eng->acct.subs[eng->acct.cur_subs];
	struct cfr_journal_item it;
	unsigned done = 0;

	if (ended_pending(eng))
		return tab->n_used - tab->reseed + tab->n_dirty + 1;
	/* After a restart: every subscriber once, whether it moved or not. */
	while (tab->reseed < tab->n_used && done < max) {
		struct cfr_sub_state *s = &tab->s[tab->used[tab->reseed++]];

		if (s->counter == 0 || s->jr_gen == eng->acct.jr_gen)
			continue;
		dirty_remove(tab, (uint32_t)(s - tab->s));
		journal_snapshot(eng, tab, s, &it);
		fn(ctx, &it);
		done++;
	}
	while (tab->n_dirty && done < max) {
		uint32_t idx = tab->dirty[tab->n_dirty - 1];
		struct cfr_sub_state *s = &tab->s[idx];

		dirty_remove(tab, idx);
		if (s->jr_gen != eng->acct.jr_gen)
			journal_snapshot(eng, tab, s, &it);
		else
			journal_delta(tab, s, &it);
		fn(ctx, &it);
		done++;
	}
	sodium_memzero(&it, sizeof(it));
	return tab->n_used - tab->reseed + tab->n_dirty;
}

void cfr_engine_journal_restart(struct cfr_engine *eng)
{
	eng->acct.jr_gen++;
	eng->acct.subs[eng->acct.cur_subs].reseed = 0;
}
