/*
 * cfrd's accountability glue (see acct.h and docs/accountability.md).
 *
 * The engine keeps an ended epoch's seeds until they are drained, and loses
 * them when the next epoch ends; draining on every loop iteration, a
 * bounded batch at a time, keeps both the seeds' lifetime and the pause in
 * packet forwarding short. Without [accounting] the records are drained
 * all the same and dropped unread, so no seed outlives its epoch by more
 * than a loop iteration.
 */
#include "acct.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include "../records/records.h"
#include "log.h"

/* About a millisecond of sealing per iteration: packets wait no longer than that. */
#define RECORDS_PER_ITERATION 512

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void report(void *ctx, bool error, const char *msg)
{
	(void)ctx;
	if (error)
		log_error("records: %s", msg);
	else
		log_info("records: %s", msg);
}

static void discard(void *ctx, const struct cfr_epoch_record *rec)
{
	(void)ctx;
	(void)rec;
}

int cfrd_acct_open(struct cfrd_acct *a, const struct cfrd_config *cfg)
{
	struct cfr_recw_config wcfg = {
	    .dir = cfg->acct.records,
	    .segment_s = cfg->acct.segment_s,
	    .retention_s = cfg->acct.retention_s,
	    .fsync = cfg->acct.fsync_segment ? CFR_FSYNC_SEGMENT : CFR_FSYNC_EPOCH,
	    .engine = &cfg->engine,
	    .report = report,
	};
	struct cfr_rec_error err;
	int ret;

	a->writer = NULL;
	if (cfg->acct.records[0] == '\0') {
		log_warn("no [accounting] records: allocations are not recorded and cannot be "
		         "traced to a subscriber later");
		return 0;
	}
	ret = cfr_key_read_public(cfg->acct.public_key, wcfg.public_key, &err);
	if (ret < 0) {
		log_error("[accounting] public-key: %s", err.msg);
		return ret;
	}
	a->writer = cfr_recw_new(&wcfg, wall_ms(), &err);
	if (!a->writer) {
		ret = -errno;
		log_error("[accounting] records: %s", err.msg);
		return ret;
	}
	log_info("sealing records in %s: a segment every %u s, kept %u s, fsync per %s",
	         cfg->acct.records, cfg->acct.segment_s, cfg->acct.retention_s,
	         cfg->acct.fsync_segment ? "segment" : "epoch");
	return 0;
}

bool cfrd_acct_drain(struct cfrd_acct *a, struct cfr_engine *eng, uint64_t now_ms)
{
	if (!a->writer)
		return cfr_engine_drain_records(eng, discard, NULL, RECORDS_PER_ITERATION) > 0;
	return cfr_recw_drain(a->writer, eng, RECORDS_PER_ITERATION, now_ms, wall_ms()) > 0;
}

static void cfrd_acct_drain_all(struct cfrd_acct *a, struct cfr_engine *eng, uint64_t now_ms)
{
	if (!a->writer)
		cfr_engine_drain_records(eng, discard, NULL, UINT_MAX);
	else
		cfr_recw_drain(a->writer, eng, UINT_MAX, now_ms, wall_ms());
}

void cfrd_acct_close(struct cfrd_acct *a, struct cfr_engine *eng, uint64_t now_ms)
{
	const struct cfr_recw_stats *s;

	/* The current epoch is sealed too: a clean stop loses no record. */
	cfr_engine_epoch_rotate(eng, now_ms);
	cfrd_acct_drain_all(a, eng, now_ms);
	if (!a->writer)
		return;
	s = cfr_recw_stats(a->writer);
	log_info("records: %llu sealed in %llu epochs (%llu bytes), %llu dropped, %llu segments "
	         "deleted by retention",
	         (unsigned long long)s->records_written, (unsigned long long)s->epochs_written,
	         (unsigned long long)s->bytes_written, (unsigned long long)s->records_dropped,
	         (unsigned long long)s->segments_deleted);
	cfr_recw_free(a->writer);
	a->writer = NULL;
}
