/*
 * cfr-lookup's search over a records directory.
 *
 * Selection is by clear metadata first: a segment's header bounds the epochs
 * it can hold (they end before start + period and, since records are sealed
 * before the next epoch ends, began at most two epoch lengths before the
 * start), and an epoch frame gives its bounds, so the records of an epoch
 * outside the window are skipped without being decrypted. Only the records
 * of the complaint's epochs are opened, and of those only the counter
 * values drawn inside the window are regenerated.
 *
 * Anything that could hide a match (a torn tail, a segment sealed to
 * another key, an epoch whose records are incomplete) becomes a warning:
 * "no match" must never be said when the answer is really "cannot tell".
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	for (size_t i = 0; i < res->n_cand; i++)
		seen |= res->cand[i].family == rec->family &&
		        memcmp(res->cand[i].subscriber, rec->subscriber, 16) == 0;
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

/* Walk one segment's frames, opening only the epochs that overlap the window. */
static int search_frames(const struct lookup_query *q, struct cfr_segr *r, const char *name,
                         struct lookup_result *res)
{
	const struct cfr_seg_header *h = cfr_segr_header(r);
	struct match_ctx mc = {.res = res, .segment = name, .prefix6 = h->cfg.subscriber_prefix6};
	struct cfr_rec_error err;
	struct cfr_seg_item it;
	bool open_epoch = false, wanted = false;
	uint64_t epoch = 0, seen = 0;
	int ret;

	while ((ret = cfr_segr_next(r, &it, &err)) == 1) {
		switch (it.type) {
		case CFR_FRAME_EPOCH:
			if (open_epoch && wanted)
				ret = warn(res,
				           "%s: epoch %llu has no end frame: some of its records "
				           "may be missing",
				           name, (unsigned long long)epoch);
			open_epoch = true;
			epoch = it.rec.epoch;
			seen = 0;
			/* A draw in second k may land up to 1 s after the recorded end. */
			wanted =
			    it.rec.start_ms <= q->c.to_ms && it.rec.end_ms + 1000 >= q->c.from_ms;
			if (!wanted) {
				ret = cfr_segr_skip_records(r, &err);
				if (ret < 0)
					goto damaged;
				break;
			}
			res->epochs_read++;
			break;
		case CFR_FRAME_RECORD: {
			long n = cfr_record_match(&h->cfg, &it.rec, &q->c, on_match, &mc);

			sodium_memzero(it.rec.seed, sizeof(it.rec.seed));
			if (n == -EDESTADDRREQ)
				return -EDESTADDRREQ;
			if (n < 0)
				ret =
				    warn(res, "%s: a record of epoch %llu has a malformed timeline",
				         name, (unsigned long long)epoch);
			else
				res->allocations += (uint64_t)n;
			res->records_read++;
			seen++;
			break;
		}
		case CFR_FRAME_EPOCH_END:
			if (wanted && it.count != seen)
				ret = warn(res, "%s: epoch %llu has %llu records, %u expected",
				           name, (unsigned long long)epoch,
				           (unsigned long long)seen, it.count);
			open_epoch = false;
			break;
		default:
			break;
		}
		if (ret < 0 || mc.error < 0)
			return ret < 0 ? ret : mc.error;
	}
	if (ret < 0)
		goto damaged;
	if (open_epoch && wanted)
		return warn(res,
		            "%s: epoch %llu ends without its end frame (cfrd stopped while "
		            "sealing it): some of its records may be missing",
		            name, (unsigned long long)epoch);
	return 0;
damaged:
	return warn(res, "%s", err.msg);
}

static int search_segment(const struct lookup_query *q, const char *name, struct lookup_result *res)
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
	if (h->start_ms + (uint64_t)h->period_s * 1000 < q->c.from_ms ||
	    h->start_ms > q->c.to_ms + 2ull * h->epoch_s * 1000) {
		cfr_segr_close(r);
		return 0;
	}
	ret = cfr_segr_unseal(r, q->pk, q->sk, &err);
	if (ret == 0) {
		res->segments_read++;
		ret = search_frames(q, r, name, res);
	} else {
		ret = warn(res, "%s", err.msg);
	}
	cfr_segr_close(r);
	return ret;
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
	int n, ret = 0;

	memset(res, 0, sizeof(*res));
	n = scandir(q->dir, &names, is_segment, by_name);
	if (n < 0) {
		ret = -errno;
		cfr_rec_fail(err, "%s: cannot read the records directory: %s", q->dir,
		             strerror(errno));
		return ret;
	}
	for (int i = 0; i < n; i++) {
		if (ret == 0)
			ret = search_segment(q, names[i]->d_name, res);
		free(names[i]);
	}
	free(names);
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
