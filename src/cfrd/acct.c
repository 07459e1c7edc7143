/*
 * cfrd's accountability glue (see acct.h and docs/accountability.md).
 *
 * The writer thread holds the engine lock only to copy: records of the
 * ended epoch, then once a second the current epoch's journal, at most
 * STAGE_MAX items per hold. Sealing, write() and fdatasync() run after the
 * lock is released, so a slow or full disk never stalls a packet; the
 * engine keeps what the thread has not taken yet. Without [accounting] the
 * records are drained all the same on the control thread and dropped
 * unread, so no seed outlives its epoch by more than a loop iteration.
 *
 * A public key others may write is refused with one log line; cfrd runs
 * on, accounting degraded, and re-reads the file it keeps open every few
 * seconds: once its mode is fixed (chmod), sealing resumes and the current
 * epoch is caught up from the engine.
 */
#include "acct.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "daemon.h"
#include "log.h"

/* The writer thread looks at the engine this often: an ended epoch waits no longer. */
#define TICK_MS 100
/* Without a writer: about a millisecond of work per control loop iteration. */
#define RECORDS_PER_ITERATION 512
/* How long ending an epoch on request waits for the writer to take the last one's records: 3 s. */
#define SETTLE_WAIT_MS 20
#define SETTLE_TRIES   150

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

	memset(a, 0, sizeof(*a));
	a->key_fd = -1;
	pthread_mutex_init(&a->lock, NULL);
	if (cfg->acct.records[0] == '\0') {
		log_warn("no [accounting] records: allocations are not recorded and cannot be "
		         "traced to a subscriber later");
		return 0;
	}
	a->key_path = cfg->acct.public_key;
	a->key_fd = open(cfg->acct.public_key, O_RDONLY | O_CLOEXEC);
	if (a->key_fd < 0) {
		ret = -errno;
		log_error("[accounting] public-key: %s: cannot open: %s", cfg->acct.public_key,
		          strerror(errno));
		return ret;
	}
	ret = cfr_key_read_public_fd(a->key_fd, a->key_path, wcfg.public_key, &err);
	if (ret == -EPERM) {
		/* Fixable in place: run on, degraded, and keep the file to look again. */
		log_error("[accounting] public-key: %s; accounting degraded until then (cfrd "
		          "looks again every %u s)",
		          err.msg, CFR_RECW_RETRY_MS / 1000);
		wcfg.no_key = true;
	} else if (ret < 0) {
		log_error("[accounting] public-key: %s", err.msg);
		close(a->key_fd);
		a->key_fd = -1;
		return ret;
	} else {
		close(a->key_fd);
		a->key_fd = -1;
	}
	a->writer = cfr_recw_new(&wcfg, wall_ms(), &err);
	if (!a->writer) {
		ret = -errno;
		log_error("[accounting] records: %s", err.msg);
		if (a->key_fd >= 0)
			close(a->key_fd);
		a->key_fd = -1;
		return ret;
	}
	log_info("sealing records in %s: journal every %u ms, a segment every %u s, kept %u s, "
	         "fsync per %s",
	         cfg->acct.records, CFR_JOURNAL_INTERVAL_MS, cfg->acct.segment_s,
	         cfg->acct.retention_s, cfg->acct.fsync_segment ? "segment" : "second and epoch");
	return 0;
}

/* A refused public key: once its mode is right, give it to the writer. */
static void check_key(struct cfrd_acct *a, uint64_t now)
{
	uint8_t pk[CFR_KEY_BYTES];
	struct cfr_rec_error err;

	if (a->key_fd < 0 || now < a->next_key_check_ms)
		return;
	a->next_key_check_ms = now + CFR_RECW_RETRY_MS;
	if (cfr_key_read_public_fd(a->key_fd, a->key_path, pk, &err) < 0)
		return;
	cfr_recw_set_key(a->writer, pk);
	close(a->key_fd);
	a->key_fd = -1;
}

/* Hand the writer the reloads' configurations, in order, as many as it has room for. */
static void take_reconfigs(struct cfrd_acct *a)
{
	unsigned k = 0;

	while (k < a->n_reconfig &&
	       cfr_recw_reconfigure(a->writer, &a->reconfig[k], a->reconfig_from[k]) == 0)
		k++;
	a->n_reconfig -= k;
	memmove(a->reconfig, a->reconfig + k, a->n_reconfig * sizeof(a->reconfig[0]));
	memmove(a->reconfig_from, a->reconfig_from + k,
	        a->n_reconfig * sizeof(a->reconfig_from[0]));
}

/* One pass: copy under the engine lock, seal and write without it. */
static unsigned writer_step(struct cfrd_acct *a, struct cfrd *d)
{
	uint64_t now = cfrd_now_ms();
	unsigned left;

	check_key(a, now);
	cfrd_engine_lock(d);
	left = cfr_recw_collect(a->writer, d->engine, now);
	cfrd_engine_unlock(d);
	pthread_mutex_lock(&a->lock);
	take_reconfigs(a);
	pthread_mutex_unlock(&a->lock);
	cfr_recw_flush(a->writer, now, wall_ms());
	pthread_mutex_lock(&a->lock);
	a->stats = *cfr_recw_stats(a->writer);
	pthread_mutex_unlock(&a->lock);
	return left;
}

struct writer_arg {
	struct cfrd_acct *a;
	struct cfrd *d;
};

static struct writer_arg writer_arg;

static void *writer_main(void *arg)
{
	struct writer_arg *wa = arg;
	struct cfrd_acct *a = wa->a;
	unsigned left = 0;

	for (;;) {
		pthread_mutex_lock(&a->lock);
		if (!left && !a->stop) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += TICK_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&a->wake, &a->lock, &ts);
		}
		if (a->stop) {
			pthread_mutex_unlock(&a->lock);
			return NULL;
		}
		pthread_mutex_unlock(&a->lock);
		left = writer_step(a, wa->d);
	}
}

static int start_writer(struct cfrd_acct *a, struct cfrd *d)
{
	pthread_condattr_t attr;
	int ret;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	ret = pthread_cond_init(&a->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (ret)
		return -ret;
	writer_arg = (struct writer_arg){.a = a, .d = d};
	ret = pthread_create(&a->thread, NULL, writer_main, &writer_arg);
	if (ret) {
		pthread_cond_destroy(&a->wake);
		return -ret;
	}
	a->thread_started = true;
	return 0;
}

bool cfrd_acct_drain(struct cfrd_acct *a, struct cfrd *d, uint64_t now_ms)
{
	unsigned left;

	if (!a->writer) {
		cfrd_engine_lock(d);
		left = cfr_engine_drain_records(d->engine, discard, NULL, RECORDS_PER_ITERATION);
		cfrd_engine_unlock(d);
		return left > 0;
	}
	if (a->thread_started)
		return false;
	if (!a->thread_failed) {
		int ret = start_writer(a, d);

		if (ret == 0)
			return false;
		a->thread_failed = true;
		log_warn("records: cannot start the writer thread (%s): sealing on the control "
		         "thread, which waits for the disk",
		         strerror(-ret));
	}
	(void)now_ms;
	return writer_step(a, d) > 0;
}

int cfrd_acct_reconfigure(struct cfrd_acct *a, const struct cfr_engine_config *cfg,
                          uint64_t from_epoch)
{
	int ret = 0;

	if (!a->writer)
		return 0;
	pthread_mutex_lock(&a->lock);
	if (a->n_reconfig == CFR_RECW_CONFIGS) {
		ret = -ENOSPC;
	} else {
		a->reconfig[a->n_reconfig] = *cfg;
		a->reconfig_from[a->n_reconfig++] = from_epoch;
	}
	pthread_mutex_unlock(&a->lock);
	return ret;
}

static void stop_writer(struct cfrd_acct *a)
{
	if (!a->thread_started)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	pthread_cond_destroy(&a->wake);
	a->thread_started = false;
}

void cfrd_acct_close(struct cfrd_acct *a, struct cfr_engine *eng, uint64_t now_ms)
{
	const struct cfr_recw_stats *s;

	stop_writer(a);
	/* The current epoch is sealed too: a clean stop loses no record. No packet moves now. */
	cfr_engine_epoch_rotate(eng, now_ms);
	if (!a->writer) {
		cfr_engine_drain_records(eng, discard, NULL, UINT_MAX);
		return;
	}
	take_reconfigs(a);
	cfr_recw_drain(a->writer, eng, UINT_MAX, now_ms, wall_ms());
	s = cfr_recw_stats(a->writer);
	log_info("records: %llu sealed in %llu epochs (%llu bytes, %llu journal items), %llu "
	         "dropped, %llu segments deleted by retention%s",
	         (unsigned long long)s->records_written, (unsigned long long)s->epochs_written,
	         (unsigned long long)s->bytes_written, (unsigned long long)s->journal_items,
	         (unsigned long long)s->records_dropped, (unsigned long long)s->segments_deleted,
	         s->degraded ? "; accounting was degraded at the end: the last epoch is lost" : "");
	cfr_recw_free(a->writer);
	a->writer = NULL;
	if (a->key_fd >= 0)
		close(a->key_fd);
	a->key_fd = -1;
	pthread_mutex_destroy(&a->lock);
}

bool cfrd_acct_lock_settled(struct cfrd *d)
{
	bool writer = d->acct != NULL && d->acct->writer != NULL;

	for (unsigned tries = 0; !writer || tries < SETTLE_TRIES; tries++) {
		cfrd_engine_lock(d);
		if (cfr_engine_drain_records(d->engine, discard, NULL,
		                             writer ? 0 : RECORDS_PER_ITERATION) == 0)
			return true;
		cfrd_engine_unlock(d);
		if (writer)
			poll(NULL, 0, SETTLE_WAIT_MS);
	}
	return false;
}

void cfrd_acct_pause(struct cfrd_acct *a, struct cfrd *d)
{
	uint64_t now = cfrd_now_ms();

	stop_writer(a);
	if (!a->writer)
		return;
	/* Every draw so far goes into this segment's journal, in case the new cfrd fails. */
	cfr_recw_journal_now(a->writer);
	cfr_recw_drain(a->writer, d->engine, UINT_MAX, now, wall_ms());
}

void cfrd_acct_release(struct cfrd_acct *a)
{
	if (!a->writer)
		return;
	log_info("records: the epoch goes on in the new cfrd; this segment ends with its journal");
	cfr_recw_free(a->writer);
	a->writer = NULL;
	if (a->key_fd >= 0)
		close(a->key_fd);
	a->key_fd = -1;
	pthread_mutex_destroy(&a->lock);
}

static void add_u64(struct json_object *obj, const char *key, uint64_t value)
{
	json_object_object_add(obj, key, json_object_new_uint64(value));
}

struct json_object *cfrd_acct_json(struct cfrd_acct *a, const struct cfr_stats *s, uint64_t now_ms,
                                   uint64_t start_ms)
{
	struct json_object *obj = json_object_new_object();
	struct cfr_recw_stats w = {0};
	uint64_t since;

	if (obj == NULL || a == NULL)
		return obj;
	if (a->writer) {
		pthread_mutex_lock(&a->lock);
		w = a->thread_started ? a->stats : *cfr_recw_stats(a->writer);
		pthread_mutex_unlock(&a->lock);
	}
	json_object_object_add(obj, "enabled", json_object_new_boolean(a->writer != NULL));
	/* Alert on this: nothing is being sealed right now (cfrd's log says why). */
	add_u64(obj, "degraded", w.degraded);
	add_u64(obj, "faults", w.faults);
	add_u64(obj, "degraded_s", w.degraded_ms / 1000);
	add_u64(obj, "records_sealed", w.records_written);
	add_u64(obj, "records_lost", s->records_lost + w.records_dropped);
	add_u64(obj, "epochs_sealed", w.epochs_written);
	add_u64(obj, "journal_items", w.journal_items);
	add_u64(obj, "checkpoints", w.checkpoints);
	add_u64(obj, "bytes_written", w.bytes_written);
	add_u64(obj, "write_errors", w.write_errors);
	add_u64(obj, "segments_opened", w.segments_opened);
	add_u64(obj, "segments_deleted", w.segments_deleted);
	/*
	 * Seconds since a write to the records last succeeded: a checkpoint
	 * goes out every second, so more than a few means records are not
	 * being written (a stuck disk that fails nothing shows here too).
	 */
	since = w.last_write_ms ? w.last_write_ms : start_ms;
	add_u64(obj, "write_lag_s", a->writer && now_ms > since ? (now_ms - since) / 1000 : 0);
	return obj;
}
