/*
 * cfr-lookup's search over a records directory.
 *
 * Selection is by clear metadata first: a segment's header bounds the epochs
 * it can hold (they end before start + period and, since records are sealed
 * before the next epoch ends, began at most two epoch lengths before the
 * start), and an epoch frame gives its bounds, so the frames of an epoch
 * outside the window are skipped without being decrypted. Only the records
 * of the complaint's epochs are opened, and of those only the counter
 * values drawn inside the window are regenerated.
 *
 * An epoch that has its end frame is answered from its final records. One
 * that has none (cfrd was killed, or the epoch went on in the next segment)
 * is answered from its journal: each subscriber's last snapshot and the
 * deltas after it, with whatever final records made it to disk first.
 *
 * Anything that could hide a match (a torn tail, a segment sealed to
 * another key, an epoch whose records are incomplete) becomes a warning:
 * "no match" must never be said when the answer is really "cannot tell".
 * A journal says up to when it is complete, so an epoch cut short by a
 * crash warns only about complaints after that moment.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "search.h"

__attribute__((format(printf, 2, 3))) static int warn(struct lookup_result *res, const char *fmt,
                                                      ...)
{
	char **w = realloc(res->warnings, (res->n_warnings + 1) * sizeof(*w));
	va_list ap;
	char *s;

	if (!w)
		return -ENOMEM;
	res->warnings = w;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		va_end(ap);
		return -ENOMEM;
	}
	va_end(ap);
	res->warnings[res->n_warnings++] = s;
	return 0;
}

struct match_ctx {
	struct lookup_result *res;
	const char *segment;
	uint8_t prefix6;
	int error;
};

static void on_match(void *ctx, const struct cfr_epoch_record *rec, const struct cfr_match *m)
{
	struct match_ctx *mc = ctx;
	struct lookup_result *res = mc->res;
	struct lookup_candidate *c;
	bool seen = false;

	for (size_t i = 0; i < res->n_cand; i++) {
		const struct lookup_candidate *o = &res->cand[i];
		bool same =
		    o->family == rec->family && memcmp(o->subscriber, rec->subscriber, 16) == 0;

		/* One allocation found twice (a journal and its record in two segments). */
		if (same && o->epoch == rec->epoch && o->counter == m->counter &&
		    o->from_ms <= m->to_ms && m->from_ms <= o->to_ms)
			return;
		seen |= same;
	}
	if (res->n_cand == res->cap_cand) {
		size_t cap = res->cap_cand ? 2 * res->cap_cand : 8;
		struct lookup_candidate *n = realloc(res->cand, cap * sizeof(*n));

		if (!n) {
			mc->error = -ENOMEM;
			return;
		}
		res->cand = n;
		res->cap_cand = cap;
	}
	res->n_subscribers += !seen;
	c = &res->cand[res->n_cand++];
	*c = (struct lookup_candidate){.family = rec->family,
	                               .prefix6 = mc->prefix6,
	                               .epoch = rec->epoch,
	                               .counter = m->counter,
	                               .from_ms = m->from_ms,
	                               .to_ms = m->to_ms};
	memcpy(c->subscriber, rec->subscriber, 16);
	snprintf(c->segment, sizeof(c->segment), "%s", mc->segment);
}

/*
 * A version 2 epoch without its end (cfrd stopped, or the epoch went on in
 * the next segment): its journal, merged. Per subscriber (slot), the last
 * snapshot and the deltas after it; a final record, where one was sealed
 * before the stop, supersedes both.
 */
struct jslot {
	bool snap, final;
	struct cfr_epoch_record rec; /* the last snapshot */
};

struct jdelta {
	uint32_t slot, first, count, t_from, t_to;
};

/* Slot numbers are dense from 1; more than this is a damaged journal. */
#define JSLOT_MAX (1u << 24)

struct block {
	bool wanted, ended, continued;
	bool journal; /* the block has no end frame: its journal is read */
	uint64_t epoch, start_ms, end_ms;
	uint64_t seen;           /* final records */
	uint64_t complete_until; /* everything drawn before it is in the journal (wall ms) */
	struct jslot *slots;
	size_t n_slots;
	struct jdelta *deltas;
	size_t n_deltas, cap_deltas;
};

static void block_free(struct block *b)
{
	if (b->slots)
		sodium_memzero(b->slots, b->n_slots * sizeof(b->slots[0]));
	free(b->slots);
	free(b->deltas);
	memset(b, 0, sizeof(*b));
}

static struct jslot *block_slot(struct block *b, uint32_t slot)
{
	if (slot == 0 || slot >= JSLOT_MAX)
		return NULL;
	if (slot >= b->n_slots) {
		size_t n = b->n_slots ? b->n_slots : 64;
		struct jslot *s;

		while (n <= slot)
			n *= 2;
		s = realloc(b->slots, n * sizeof(*s));
		if (!s)
			return NULL;
		memset(s + b->n_slots, 0, (n - b->n_slots) * sizeof(*s));
		b->slots = s;
		b->n_slots = n;
	}
	return &b->slots[slot];
}

/* Take a journal frame's items: snapshots all, deltas only inside the window. */
static int block_journal(struct block *b, const struct lookup_query *q,
                         const struct cfr_seg_item *it, uint8_t prefix6)
{
	struct cfr_journal_item ji;
	size_t off = 0;
	int ret;

	if (it->flags & CFR_JOURNAL_COMPLETE && it->as_of_ms > b->complete_until)
		b->complete_until = it->as_of_ms;
	b->continued |= (it->flags & CFR_JOURNAL_CONTINUED) != 0;
	while ((ret = cfr_journal_get(it->journal, it->journal_len, &off, prefix6, &ji)) == 1) {
		struct jslot *s = block_slot(b, ji.rec.slot);

		if (!s) {
			ret = ji.rec.slot && ji.rec.slot < JSLOT_MAX ? -ENOMEM : -EBADMSG;
			break;
		}
		if (ji.kind == CFR_JOURNAL_SNAPSHOT) {
			s->snap = true;
			s->rec = ji.rec;
			s->rec.epoch = b->epoch;
			s->rec.start_ms = b->start_ms;
			s->rec.end_ms = b->end_ms;
			continue;
		}
		if (b->start_ms + (uint64_t)ji.t_from * 1000 > q->c.to_ms ||
		    b->start_ms + ((uint64_t)ji.t_to + 1) * 1000 <= q->c.from_ms)
			continue;
		if (b->n_deltas == b->cap_deltas) {
			size_t cap = b->cap_deltas ? 2 * b->cap_deltas : 64;
			struct jdelta *d = realloc(b->deltas, cap * sizeof(*d));

			if (!d) {
				ret = -ENOMEM;
				break;
			}
			b->deltas = d;
			b->cap_deltas = cap;
		}
		b->deltas[b->n_deltas++] = (struct jdelta){.slot = ji.rec.slot,
		                                           .first = ji.counter_from,
		                                           .count = ji.count,
		                                           .t_from = ji.t_from,
		                                           .t_to = ji.t_to};
	}
	sodium_memzero(&ji, sizeof(ji));
	return ret;
}

/* Match what the journal has of the subscribers the block has no final record of. */
static long block_match_journal(struct block *b, const struct cfr_engine_config *cfg,
                                const struct lookup_query *q, struct match_ctx *mc)
{
	long derived = 0, n;

	for (size_t i = 1; i < b->n_slots; i++) {
		if (!b->slots[i].snap || b->slots[i].final)
			continue;
		n = cfr_record_match(cfg, &b->slots[i].rec, &q->c, on_match, mc);
		if (n < 0)
			return n;
		derived += n;
	}
	for (size_t i = 0; i < b->n_deltas; i++) {
		const struct jdelta *d = &b->deltas[i];
		const struct jslot *s = &b->slots[d->slot];

		/* A delta before the last snapshot is in that snapshot. */
		if (!s->snap || s->final || d->first < s->rec.counter)
			continue;
		n = cfr_range_match(cfg, &s->rec, &q->c, d->first, d->count, d->t_from, d->t_to,
		                    on_match, mc);
		if (n < 0)
			return n;
		derived += n;
	}
	return derived;
}

/* A complaint this close to where a journal stops may lie past it: draws are in whole seconds. */
#define COMPLETE_MARGIN_MS 1000

/*
 * The block is over (end frame, next block, end of file, or damage). The
 * last block of a file that stops short is judged with the whole file
 * (search_frames), the others here.
 */
static int block_end(struct block *b, const struct cfr_engine_config *cfg,
                     const struct lookup_query *q, struct match_ctx *mc, const char *name,
                     bool last)
{
	struct lookup_result *res = mc->res;
	char when[32] = "?";
	int ret = 0;
	long n;

	if (!b->wanted || b->ended)
		goto out;
	n = block_match_journal(b, cfg, q, mc);
	if (n == -EDESTADDRREQ || n == -ENOMEM) {
		ret = (int)n;
		goto out;
	}
	if (n < 0)
		ret = warn(res, "%s: epoch %llu has a malformed timeline", name,
		           (unsigned long long)b->epoch);
	else
		res->allocations += (uint64_t)n;
	if (last || b->continued || q->c.to_ms + COMPLETE_MARGIN_MS <= b->complete_until)
		goto out;
	if (b->complete_until) {
		time_t t = (time_t)(b->complete_until / 1000);
		struct tm tm;

		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		ret = warn(res,
		           "%s: epoch %llu ends without its end frame (cfrd stopped): its journal "
		           "is complete up to %s only; an allocation after that may be missing",
		           name, (unsigned long long)b->epoch, when);
	} else {
		ret = warn(res,
		           "%s: epoch %llu ends without its end frame (cfrd stopped while "
		           "sealing it): some of its records may be missing",
		           name, (unsigned long long)b->epoch);
	}
out:
	block_free(b);
	return ret;
}

/*
 * A version 2 segment that was not closed (cfrd stopped, or still runs) or
 * is damaged: everything before <until> is in what was read, so only a
 * complaint after it, and before the next segment began, may have lost its
 * allocation.
 */
static int stopped(const struct lookup_query *q, struct lookup_result *res, const char *name,
                   uint64_t until, uint64_t next_start, const char *damage)
{
	char when[32] = "?";
	time_t t = (time_t)(until / 1000);
	struct tm tm;

	if (q->c.to_ms + COMPLETE_MARGIN_MS <= until || q->c.from_ms >= next_start)
		return 0;
	if (gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (damage)
		return warn(res, "%s; what comes before is complete up to %s only", damage, when);
	return warn(res,
	            "%s: not closed (cfrd stopped, or is writing it): complete up to %s; an "
	            "allocation after that may be missing",
	            name, when);
}

/* Walk one segment's frames, opening only the epochs that overlap the window. */
static int search_frames(const struct lookup_query *q, struct cfr_segr *r, const char *name,
                         uint64_t next_start, struct lookup_result *res)
{
	const struct cfr_seg_header *h = cfr_segr_header(r);
	struct match_ctx mc = {.res = res, .segment = name, .prefix6 = h->cfg.subscriber_prefix6};
	struct cfr_rec_error err;
	struct cfr_seg_item it;
	struct block b = {0};
	bool open_epoch = false;
	uint64_t until = h->start_ms; /* the latest moment this file is known complete for */
	int ret;

	while ((ret = cfr_segr_next(r, &it, &err)) == 1) {
		switch (it.type) {
		case CFR_FRAME_EPOCH:
			if (open_epoch)
				ret = block_end(&b, &h->cfg, q, &mc, name, false);
			if (ret < 0)
				break;
			open_epoch = true;
			b.epoch = it.rec.epoch;
			b.start_ms = it.rec.start_ms;
			b.end_ms = it.rec.end_ms;
			if (b.start_ms > until)
				until = b.start_ms;
			/* A draw in second k may land up to 1 s after the recorded end. */
			b.wanted =
			    it.rec.start_ms <= q->c.to_ms && it.rec.end_ms + 1000 >= q->c.from_ms;
			if (!b.wanted) {
				ret = cfr_segr_skip_records(r, &err);
				if (ret < 0)
					goto damaged;
				break;
			}
			/* An epoch that reached its end has all its records: no journal needed. */
			b.journal = !cfr_segr_block_ends(r);
			cfr_segr_skip_journal(r, !b.journal);
			res->epochs_read++;
			break;
		case CFR_FRAME_JOURNAL:
			if (it.as_of_ms > until && (it.flags & CFR_JOURNAL_COMPLETE))
				until = it.as_of_ms;
			if (b.wanted && it.journal) {
				ret = block_journal(&b, q, &it, h->cfg.subscriber_prefix6);
				if (ret == -EBADMSG)
					ret = warn(res,
					           "%s: a journal frame of epoch %llu is malformed",
					           name, (unsigned long long)b.epoch);
			}
			break;
		case CFR_FRAME_RECORD: {
			long n = cfr_record_match(&h->cfg, &it.rec, &q->c, on_match, &mc);
			struct jslot *s = b.journal ? block_slot(&b, it.rec.slot) : NULL;

			sodium_memzero(it.rec.seed, sizeof(it.rec.seed));
			if (s)
				s->final = true;
			if (n == -EDESTADDRREQ) {
				ret = -EDESTADDRREQ;
				break;
			}
			if (n < 0)
				ret =
				    warn(res, "%s: a record of epoch %llu has a malformed timeline",
				         name, (unsigned long long)b.epoch);
			else
				res->allocations += (uint64_t)n;
			res->records_read++;
			b.seen++;
			break;
		}
		case CFR_FRAME_EPOCH_END:
			if (it.end_ms > until)
				until = it.end_ms;
			if (b.wanted && it.count != b.seen)
				ret = warn(res, "%s: epoch %llu has %llu records, %u expected",
				           name, (unsigned long long)b.epoch,
				           (unsigned long long)b.seen, it.count);
			b.ended = true;
			if (ret >= 0)
				ret = block_end(&b, &h->cfg, q, &mc, name, false);
			open_epoch = false;
			break;
		default:
			break;
		}
		if (ret < 0 || mc.error < 0) {
			block_free(&b);
			return ret < 0 ? ret : mc.error;
		}
	}
	if (ret < 0)
		goto damaged;
	if (open_epoch)
		ret = block_end(&b, &h->cfg, q, &mc, name, h->version != 1);
	if (ret < 0 || mc.error < 0)
		return ret < 0 ? ret : mc.error;
	if (h->version != 1 && !cfr_segr_closed(r))
		return stopped(q, res, name, until, next_start, NULL);
	return 0;
damaged:
	if (h->version == 1) {
		block_free(&b);
		return warn(res, "%s", err.msg);
	}
	ret = open_epoch ? block_end(&b, &h->cfg, q, &mc, name, true) : 0;
	block_free(&b);
	return ret < 0 ? ret : stopped(q, res, name, until, next_start, err.msg);
}

static int search_segment(const struct lookup_query *q, const char *name, uint64_t next_start,
                          struct lookup_result *res)
{
	struct cfr_rec_error err;
	const struct cfr_seg_header *h;
	struct cfr_segr *r;
	char path[4096];
	int ret;

	snprintf(path, sizeof(path), "%s/%s", q->dir, name);
	r = cfr_segr_open(path, &err);
	if (!r)
		return warn(res, "%s", err.msg);
	h = cfr_segr_header(r);
	res->segments_total++;
	/* Version 2 writes the journal up to a second or so past the period. */
	if (h->start_ms + (uint64_t)h->period_s * 1000 + (h->version == 1 ? 0 : 5000) <
	        q->c.from_ms ||
	    h->start_ms > q->c.to_ms + 2ull * h->epoch_s * 1000) {
		cfr_segr_close(r);
		return 0;
	}
	ret = cfr_segr_unseal(r, q->pk, q->sk, &err);
	if (ret == 0) {
		res->segments_read++;
		ret = search_frames(q, r, name, next_start, res);
	} else {
		ret = warn(res, "%s", err.msg);
	}
	cfr_segr_close(r);
	return ret;
}

/* When the segment <name> began (its header), or "never" if it has none. */
static uint64_t segment_start(const struct lookup_query *q, const char *name)
{
	struct cfr_rec_error err;
	uint64_t start = UINT64_MAX;
	char path[4096];
	struct cfr_segr *r;

	snprintf(path, sizeof(path), "%s/%s", q->dir, name);
	r = cfr_segr_open(path, &err);
	if (r)
		start = cfr_segr_header(r)->start_ms;
	cfr_segr_close(r);
	return start;
}

/* The first segment to begin after <start>: where a crashed one's gap ends. */
static uint64_t next_start(const uint64_t *starts, int n, uint64_t start)
{
	uint64_t next = UINT64_MAX;

	for (int i = 0; i < n; i++)
		if (starts[i] > start && starts[i] < next)
			next = starts[i];
	return next;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_segment(const struct dirent *de)
{
	size_t len = strlen(de->d_name), slen = strlen(CFR_SEG_SUFFIX);

	return len > slen && de->d_name[0] != '.' &&
	       strcmp(de->d_name + len - slen, CFR_SEG_SUFFIX) == 0;
}

int lookup_search(const struct lookup_query *q, struct lookup_result *res,
                  struct cfr_rec_error *err)
{
	struct dirent **names;
	uint64_t *starts;
	int n, ret = 0;

	memset(res, 0, sizeof(*res));
	n = scandir(q->dir, &names, is_segment, by_name);
	if (n < 0) {
		ret = -errno;
		cfr_rec_fail(err, "%s: cannot read the records directory: %s", q->dir,
		             strerror(errno));
		return ret;
	}
	starts = calloc((size_t)n + 1, sizeof(*starts));
	if (!starts)
		ret = -ENOMEM;
	for (int i = 0; i < n && ret == 0; i++)
		starts[i] = segment_start(q, names[i]->d_name);
	for (int i = 0; i < n; i++) {
		if (ret == 0)
			ret = search_segment(q, names[i]->d_name, next_start(starts, n, starts[i]),
			                     res);
		free(names[i]);
	}
	free(names);
	free(starts);
	if (ret == -EDESTADDRREQ)
		cfr_rec_fail(err,
		             "%s: the %s pool uses the per-destination policy: give the remote "
		             "address (the front door's, from the complaint) with --remote",
		             q->dir, q->c.family == CFR_FAMILY_V4 ? "IPv4" : "IPv6");
	else if (ret < 0)
		cfr_rec_fail(err, "%s: %s", q->dir, strerror(-ret));
	return ret;
}

void lookup_result_free(struct lookup_result *res)
{
	for (size_t i = 0; i < res->n_warnings; i++)
		free(res->warnings[i]);
	free(res->warnings);
	free(res->cand);
}
