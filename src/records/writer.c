/*
 * The segment writer: cfrd's side of the sealed records.
 *
 * Each segment gets a fresh key from the CSPRNG, sealed once to the
 * operator's public key in the header; the key lives in memory locked out
 * of swap (sodium_mlock, once, before cfrd's sandbox forbids mlock) and is
 * wiped when the segment closes. The daemon
 * never has the private key, so neither it nor a thief of its disk can open
 * a segment once its key is gone.
 *
 * Durability: frames collect in a buffer and are written when an epoch's
 * records are all sealed; with fsync = epoch they are then fdatasync()ed,
 * so a crash loses at most the epoch being sealed, never an earlier one.
 * A failed write abandons the segment (its tail may be torn, the reader
 * says so) and the next epoch starts a new one: appending after a torn
 * frame would make every later record unreadable.
 *
 * It must never write a remote address or port; the engine's records hold none.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "records.h"

/* A few hundred records per write(): syscalls stay off the per-record cost. */
#define WBUF_SIZE (64 * 1024)
/* Retention is also checked while idle, so an idle relay still forgets on time. */
#define RETENTION_CHECK_MAX_MS (3600 * 1000ull)

struct cfr_recw {
	struct cfr_recw_config cfg;
	char *dir;
	int dirfd, fd;
	struct cfr_seg_header hdr;
	uint8_t key[CFR_SEG_KEY_BYTES];
	uint8_t header_hash[32];
	uint64_t seq;
	char seg_name[64];

	bool in_epoch, dropping;
	uint64_t epoch;
	uint32_t epoch_records;

	int64_t wall_offset_ms; /* wall clock minus engine clock */
	uint64_t now_wall_ms, next_retention_ms;
	struct cfr_recw_stats stats;
	size_t buf_len;
	uint8_t buf[WBUF_SIZE];
};

__attribute__((format(printf, 3, 4))) static void report(struct cfr_recw *w, bool error,
                                                         const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	if (!w->cfg.report)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->cfg.report(w->cfg.report_ctx, error, msg);
}

static void wipe_key(struct cfr_recw *w)
{
	sodium_memzero(w->key, CFR_SEG_KEY_BYTES);
	w->buf_len = 0;
}

/* Give up on the current segment after an I/O error; the rest of the epoch is dropped. */
static void abandon_segment(struct cfr_recw *w, const char *what, int error)
{
	report(w, true,
	       "%s/%s: %s failed: %s; segment abandoned, the records of epoch %llu "
	       "are lost, the next epoch starts a new segment",
	       w->dir, w->seg_name, what, strerror(error), (unsigned long long)w->epoch);
	w->stats.write_errors++;
	close(w->fd);
	w->fd = -1;
	wipe_key(w);
	if (w->in_epoch)
		w->dropping = true;
}

static int flush(struct cfr_recw *w)
{
	size_t off = 0;

	while (off < w->buf_len) {
		ssize_t n = write(w->fd, w->buf + off, w->buf_len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int error = n < 0 ? errno : EIO;

			abandon_segment(w, "write", error);
			return -error;
		}
		off += (size_t)n;
		w->stats.bytes_written += (uint64_t)n;
	}
	w->buf_len = 0;
	return 0;
}

static int sync_segment(struct cfr_recw *w)
{
	if (flush(w) < 0)
		return -EIO;
	if (fdatasync(w->fd) < 0) {
		int error = errno;

		abandon_segment(w, "fdatasync", error);
		return -error;
	}
	return 0;
}

static int append_frame(struct cfr_recw *w, uint8_t type, const uint8_t *plain, size_t len)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], ad[sizeof(w->header_hash) + 1];
	size_t clen = len + CFR_FRAME_TAG;
	uint8_t *out;

	if (w->fd < 0)
		return -EBADF;
	if (w->buf_len + CFR_FRAME_HEAD + clen > sizeof(w->buf) && flush(w) < 0)
		return -EIO;
	out = w->buf + w->buf_len;
	out[0] = type;
	out[1] = (uint8_t)clen;
	out[2] = (uint8_t)(clen >> 8);
	memcpy(ad, w->header_hash, sizeof(w->header_hash));
	ad[sizeof(w->header_hash)] = type;
	cfr_frame_nonce(w->seq++, nonce);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + CFR_FRAME_HEAD, NULL, plain, len, ad,
	                                           sizeof(ad), NULL, nonce, w->key);
	w->buf_len += CFR_FRAME_HEAD + clen;
	return 0;
}

static void run_retention(struct cfr_recw *w)
{
	struct cfr_rec_error err = {{0}};
	unsigned deleted = 0;

	if (cfr_records_expire(w->dir, w->now_wall_ms, w->cfg.retention_s, &deleted, &err) < 0)
		report(w, true, "retention: %s", err.msg);
	if (deleted)
		report(w, false, "retention: deleted %u segment%s older than %u s", deleted,
		       deleted == 1 ? "" : "s", w->cfg.retention_s);
	w->stats.segments_deleted += deleted;
	w->next_retention_ms =
	    w->now_wall_ms + ((uint64_t)w->cfg.segment_s * 1000 < RETENTION_CHECK_MAX_MS
	                          ? (uint64_t)w->cfg.segment_s * 1000
	                          : RETENTION_CHECK_MAX_MS);
}

static int open_segment(struct cfr_recw *w)
{
	uint8_t header[CFR_SEG_HEADER_MAX];
	int hlen;

	w->hdr.start_ms = w->now_wall_ms;
	for (unsigned n = 0; n < 100; n++) {
		cfr_seg_name(w->hdr.start_ms, n, w->seg_name, sizeof(w->seg_name));
		w->fd = openat(w->dirfd, w->seg_name,
		               O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
		if (w->fd >= 0 || errno != EEXIST)
			break;
	}
	if (w->fd < 0) {
		int error = errno;

		report(w, true,
		       "%s/%s: cannot create segment: %s; the records of epoch %llu are lost",
		       w->dir, w->seg_name, strerror(error), (unsigned long long)w->epoch);
		w->stats.write_errors++;
		return -error;
	}
	crypto_aead_xchacha20poly1305_ietf_keygen(w->key);
	crypto_box_seal(w->hdr.sealed_key, w->key, CFR_SEG_KEY_BYTES, w->cfg.public_key);
	hlen = cfr_seg_header_encode(&w->hdr, header, sizeof(header));
	crypto_generichash(w->header_hash, sizeof(w->header_hash), header, (size_t)hlen, NULL, 0);
	memcpy(w->buf, header, (size_t)hlen);
	w->buf_len = (size_t)hlen;
	w->seq = 0;
	w->stats.segments_opened++;
	/* The new name must survive a crash too, or its synced records vanish with it. */
	if (flush(w) < 0)
		return -EIO;
	if (fsync(w->dirfd) < 0)
		report(w, true, "%s: fsync of the directory failed: %s", w->dir, strerror(errno));
	run_retention(w);
	return 0;
}

static void close_segment(struct cfr_recw *w)
{
	if (append_frame(w, CFR_FRAME_CLOSE, NULL, 0) < 0 || sync_segment(w) < 0)
		return;
	close(w->fd);
	w->fd = -1;
	wipe_key(w);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void begin_epoch(struct cfr_recw *w, const struct cfr_epoch_record *rec)
{
	uint8_t plain[24];

	w->in_epoch = true;
	w->dropping = false;
	w->epoch = rec->epoch;
	w->epoch_records = 0;
	/* Whole epochs per segment, so one fsync covers an epoch and selection stays simple. */
	if (w->fd >= 0 && w->now_wall_ms >= w->hdr.start_ms + (uint64_t)w->cfg.segment_s * 1000)
		close_segment(w);
	if (w->fd < 0 && open_segment(w) < 0) {
		w->dropping = true;
		return;
	}
	put_u64(plain, rec->epoch);
	put_u64(plain + 8, (uint64_t)((int64_t)rec->start_ms + w->wall_offset_ms));
	put_u64(plain + 16, (uint64_t)((int64_t)rec->end_ms + w->wall_offset_ms));
	if (append_frame(w, CFR_FRAME_EPOCH, plain, sizeof(plain)) < 0)
		w->dropping = true;
}

static void finish_epoch(struct cfr_recw *w)
{
	uint8_t count[4] = {(uint8_t)w->epoch_records, (uint8_t)(w->epoch_records >> 8),
	                    (uint8_t)(w->epoch_records >> 16), (uint8_t)(w->epoch_records >> 24)};

	w->in_epoch = false;
	if (w->dropping)
		return;
	if (append_frame(w, CFR_FRAME_EPOCH_END, count, sizeof(count)) < 0)
		return;
	if (w->cfg.fsync == CFR_FSYNC_EPOCH ? sync_segment(w) < 0 : flush(w) < 0)
		return;
	w->stats.epochs_written++;
}

/* cfr_record_fn: one record of the ended epoch, seed and all; sealed or dropped here. */
static void on_record(void *ctx, const struct cfr_epoch_record *rec)
{
	struct cfr_recw *w = ctx;
	uint8_t plain[CFR_FRAME_PLAIN_MAX];
	size_t len;

	if (!w->in_epoch || rec->epoch != w->epoch) {
		if (w->in_epoch)
			finish_epoch(w);
		begin_epoch(w, rec);
	}
	if (w->dropping) {
		w->stats.records_dropped++;
		return;
	}
	len = cfr_record_encode(rec, w->hdr.cfg.subscriber_prefix6, plain);
	if (append_frame(w, CFR_FRAME_RECORD, plain, len) < 0) {
		w->stats.records_dropped++;
	} else {
		w->epoch_records++;
		w->stats.records_written++;
	}
	sodium_memzero(plain, sizeof(plain));
}

unsigned cfr_recw_drain(struct cfr_recw *w, struct cfr_engine *eng, unsigned max,
                        uint64_t now_mono_ms, uint64_t now_wall_ms)
{
	unsigned left;

	w->now_wall_ms = now_wall_ms;
	w->wall_offset_ms = (int64_t)now_wall_ms - (int64_t)now_mono_ms;
	left = cfr_engine_drain_records(eng, on_record, w, max);
	if (left == 0 && w->in_epoch)
		finish_epoch(w);
	if (!w->in_epoch && w->fd >= 0 &&
	    now_wall_ms >= w->hdr.start_ms + (uint64_t)w->cfg.segment_s * 1000) {
		close_segment(w);
		run_retention(w);
	}
	if (now_wall_ms >= w->next_retention_ms)
		run_retention(w);
	return left;
}

struct cfr_recw *cfr_recw_new(const struct cfr_recw_config *cfg, uint64_t now_wall_ms,
                              struct cfr_rec_error *err)
{
	struct cfr_recw *w;
	int error = ENOMEM;

	if (cfg->segment_s == 0 || cfg->retention_s == 0 || !cfg->engine) {
		cfr_rec_fail(err, "records: segment and retention must be positive");
		errno = EINVAL;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		cfr_rec_fail(err, "records: %s", strerror(ENOMEM));
		errno = ENOMEM;
		return NULL;
	}
	w->dirfd = w->fd = -1;
	w->dir = strdup(cfg->dir);
	/* Best effort: a key that cannot be locked is still wiped on time. */
	sodium_mlock(w->key, sizeof(w->key));
	if (!w->dir) {
		cfr_rec_fail(err, "records: %s", strerror(ENOMEM));
		goto fail;
	}
	w->cfg = *cfg;
	w->cfg.dir = w->dir;
	w->hdr.period_s = cfg->segment_s;
	w->hdr.epoch_s = cfg->engine->epoch_s;
	w->hdr.cfg = *cfg->engine;
	/* Records hold a subscriber's identity in the longest length any prefix uses. */
	w->hdr.cfg.subscriber_prefix6 = cfr_config_ident6_max(cfg->engine);
	w->now_wall_ms = now_wall_ms;
	if (mkdir(w->dir, 0700) < 0 && errno != EEXIST) {
		error = errno;
		cfr_rec_fail(err, "%s: cannot create the records directory: %s", w->dir,
		             strerror(error));
		goto fail;
	}
	w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dirfd < 0) {
		error = errno;
		cfr_rec_fail(err, "%s: cannot open the records directory: %s", w->dir,
		             strerror(error));
		goto fail;
	}
	run_retention(w);
	return w;
fail:
	free(w->dir);
	free(w);
	errno = error;
	return NULL;
}

void cfr_recw_free(struct cfr_recw *w)
{
	if (!w)
		return;
	if (w->in_epoch)
		finish_epoch(w);
	if (w->fd >= 0)
		close_segment(w);
	if (w->fd >= 0)
		close(w->fd);
	close(w->dirfd);
	/* No munlock: the sandbox forbids it, and the pages go with the process anyway. */
	sodium_memzero(w->key, sizeof(w->key));
	free(w->dir);
	free(w);
}

const struct cfr_recw_stats *cfr_recw_stats(const struct cfr_recw *w)
{
	return &w->stats;
}
