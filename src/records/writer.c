/*
 * The segment writer: cfrd's side of the sealed records.
 *
 * Each epoch gets a block of frames under a fresh key from the CSPRNG,
 * sealed to the operator's public key in the block's EPOCH frame; the key
 * lives in memory locked out of swap (sodium_mlock, once, before cfrd's
 * sandbox forbids mlock) and is wiped when the block ends, so seizing a running
 * relay opens the current epoch (whose seeds are in its memory anyway) and
 * no other. The daemon never has the private key.
 *
 * Write-ahead: once a second the engine's journal (each subscriber's
 * record when it first draws, then the counter values drawn since) is
 * sealed into a JOURNAL frame, written and fdatasync()ed; a frame that
 * holds everything drawn up to a moment says so (COMPLETE), so cfr-lookup
 * knows how far a crashed epoch can be trusted. The engine's final records
 * follow when the epoch ends, and EPOCH_END closes the block.
 *
 * The writer is cut in two so that the engine's lock is held for copies
 * only: cfr_recw_collect() copies into locked staging memory, and
 * cfr_recw_flush() seals, writes and syncs without the lock.
 *
 * Faults (a full disk, a write error, the directory or the segment gone,
 * no usable key): one report, then the writer is degraded and takes
 * nothing from the engine, which keeps the current epoch's state and the
 * ended epoch's records; every CFR_RECW_RETRY_MS it tries a new segment,
 * and once one works, the journal starts over with a snapshot of every
 * subscriber and the ended epoch is sealed: nothing is lost unless the
 * fault outlasts the next epoch's end. A failed segment is left as it is
 * (its tail may be torn, the reader says so); appending after a torn frame
 * would make every later frame unreadable.
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

/* Items copied from the engine per lock hold: about 100 microseconds of copying. */
#define STAGE_MAX 1024
/* Everything one flush can write: STAGE_MAX records of at most 216 bytes, and frames. */
#define WBUF_SIZE (512 * 1024)
/* Retention is also checked while idle, so an idle relay still forgets on time. */
#define RETENTION_CHECK_MAX_MS (3600 * 1000ull)

#define FLUSH_MAX (STAGE_MAX * (CFR_FRAME_HEAD + CFR_FRAME_PLAIN_MAX + CFR_FRAME_TAG) * 2)
_Static_assert(FLUSH_MAX <= WBUF_SIZE, "one flush fits the write buffer");

enum { STAGE_RECORD = 1, STAGE_JOURNAL = 2 };

struct stage_item {
	uint8_t what;
	struct cfr_journal_item it; /* STAGE_RECORD: it.rec */
};

struct cfr_recw {
	struct cfr_recw_config cfg;
	char *dir;
	struct cfr_seg_header hdr;
	uint8_t header_hash[32];
	char seg_name[64];
	int dirfd, fd;
	uint32_t blocks; /* epoch blocks begun in this segment */

	/* The open block: one epoch, one key. */
	uint64_t epoch, seq, block_end_ms;
	uint32_t block_records;

	/* What collect() took from the engine, for flush() to seal. */
	unsigned n_stage;
	unsigned records_left;  /* records the engine still had, at collect() */
	uint64_t engine_epoch;  /* the engine's current epoch, at collect() */
	uint64_t journal_as_of; /* engine clock: everything drawn before is staged */
	uint64_t last_journal_ms;
	size_t jlen;

	uint64_t degraded_since_ms, next_retry_ms;

	/*
	 * Reloads' configurations, each for the segments of epochs from its
	 * <from> on, oldest first. More than one can wait: two reloads in a
	 * row before any record of the epoch between them was sealed.
	 */
	struct {
		uint64_t from;
		struct cfr_engine_config cfg;
	} next[CFR_RECW_CONFIGS];
	unsigned n_next;

	int64_t wall_offset_ms; /* wall clock minus engine clock */
	uint64_t now_wall_ms, now_mono_ms, next_retention_ms, last_sync_ms;
	struct cfr_recw_stats stats;
	size_t buf_len;

	bool have_key, in_block;
	bool journal_busy;     /* a journal pass took less than there was */
	bool journal_complete; /* a pass ended at journal_as_of */
	bool restart_journal;  /* ask the engine for a snapshot of everyone */
	bool degraded, unsynced, sync_now;

	uint8_t buf[WBUF_SIZE];
	/*
	 * Secrets, locked out of swap at creation and never unlocked (the
	 * sandbox forbids munlock; the pages go with the process): the open
	 * block's key, seeds in staging, the journal frame being filled.
	 */
	uint8_t key[CFR_SEG_KEY_BYTES];
	uint8_t jbuf[CFR_JOURNAL_MAX];
	struct stage_item stage[STAGE_MAX];
};

__attribute__((format(printf, 3, 4))) static void report(struct cfr_recw *w, bool error,
                                                         const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!w->cfg.report)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->cfg.report(w->cfg.report_ctx, error, msg);
}

static uint64_t to_wall(const struct cfr_recw *w, uint64_t mono_ms)
{
	return (uint64_t)((int64_t)mono_ms + w->wall_offset_ms);
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wipe_block(struct cfr_recw *w)
{
	sodium_memzero(w->key, CFR_SEG_KEY_BYTES);
	sodium_memzero(w->jbuf, CFR_JOURNAL_MAX);
	w->jlen = CFR_JOURNAL_HEAD;
	w->in_block = false;
}

/* Keep the staged final records (the engine has no other copy), drop the journal. */
static void keep_records_only(struct cfr_recw *w)
{
	unsigned n = 0;

	for (unsigned i = 0; i < w->n_stage; i++)
		if (w->stage[i].what == STAGE_RECORD)
			w->stage[n++] = w->stage[i];
	sodium_memzero(w->stage + n, (w->n_stage - n) * sizeof(w->stage[0]));
	w->n_stage = n;
	w->journal_complete = w->journal_busy = false;
}

/*
 * The one report of a fault, and the degraded state: the segment is left
 * as it is, and nothing more is taken from the engine until a new one works.
 */
static void fault(struct cfr_recw *w, const char *what, int error)
{
	report(w, true,
	       "%s/%s: %s: %s; accounting degraded: nothing is sealed until a new segment "
	       "works (tried every %u s); the engine keeps the current epoch and the records "
	       "of the last ended one until then",
	       w->dir, w->fd >= 0 ? w->seg_name : "", what, strerror(error),
	       CFR_RECW_RETRY_MS / 1000);
	w->stats.write_errors++;
	w->stats.faults++;
	w->stats.degraded = w->degraded = true;
	w->degraded_since_ms = w->now_mono_ms;
	w->next_retry_ms = w->now_mono_ms + CFR_RECW_RETRY_MS;
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	wipe_block(w);
	w->buf_len = 0;
	w->unsynced = w->sync_now = false;
	keep_records_only(w);
	w->restart_journal = true;
}

static int write_buf(struct cfr_recw *w)
{
	size_t off = 0;

	while (off < w->buf_len) {
		ssize_t n = write(w->fd, w->buf + off, w->buf_len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (size_t)n;
		w->stats.bytes_written += (uint64_t)n;
	}
	if (w->buf_len)
		w->unsynced = true;
	w->buf_len = 0;
	return 0;
}

static void append_raw(struct cfr_recw *w, uint8_t type, size_t clen)
{
	uint8_t *out = w->buf + w->buf_len;

	out[0] = type;
	out[1] = (uint8_t)clen;
	out[2] = (uint8_t)(clen >> 8);
}

/* Seal <plain> as the block's next frame (<clear> bytes go before the ciphertext). */
static void append_frame(struct cfr_recw *w, uint8_t type, const uint8_t *clear, size_t clear_len,
                         const uint8_t *plain, size_t len)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], ad[sizeof(w->header_hash) + 1];
	size_t clen = clear_len + len + CFR_FRAME_TAG;
	uint8_t *out = w->buf + w->buf_len;

	append_raw(w, type, clen);
	if (clear_len)
		memcpy(out + CFR_FRAME_HEAD, clear, clear_len);
	memcpy(ad, w->header_hash, sizeof(w->header_hash));
	ad[sizeof(w->header_hash)] = type;
	cfr_frame_nonce(w->seq++, nonce);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + CFR_FRAME_HEAD + clear_len, NULL, plain,
	                                           len, ad, sizeof(ad), NULL, nonce, w->key);
	w->buf_len += CFR_FRAME_HEAD + clen;
}

static void run_retention(struct cfr_recw *w)
{
	struct cfr_rec_error err = {{0}};
	unsigned deleted = 0;

	if (cfr_records_expire(w->dir, w->now_wall_ms, w->cfg.retention_s, &deleted, &err) < 0 &&
	    !w->degraded)
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

/* Create a segment and write its header; on failure nothing is left behind. */
static int open_segment(struct cfr_recw *w, const char **what)
{
	uint8_t header[CFR_SEG_HEADER_MAX];
	int hlen, ret;

	w->hdr.start_ms = w->now_wall_ms;
	for (unsigned n = 0; n < 100; n++) {
		cfr_seg_name(w->hdr.start_ms, n, w->seg_name, sizeof(w->seg_name));
		w->fd = openat(w->dirfd, w->seg_name,
		               O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
		if (w->fd >= 0 || errno != EEXIST)
			break;
	}
	if (w->fd < 0) {
		*what = "cannot create a segment";
		return -errno;
	}
	hlen = cfr_seg_header_encode(&w->hdr, header, sizeof(header));
	crypto_generichash(w->header_hash, sizeof(w->header_hash), header, (size_t)hlen, NULL, 0);
	memcpy(w->buf, header, (size_t)hlen);
	w->buf_len = (size_t)hlen;
	w->blocks = 0;
	/* The header and the new name must survive a crash, or the synced frames vanish too. */
	ret = write_buf(w);
	if (ret == 0 && w->cfg.fsync == CFR_FSYNC_EPOCH && fdatasync(w->fd) < 0)
		ret = -errno;
	if (ret < 0) {
		*what = "cannot write a segment header";
		unlinkat(w->dirfd, w->seg_name, 0);
		close(w->fd);
		w->fd = -1;
		w->buf_len = 0;
		return ret;
	}
	if (fsync(w->dirfd) < 0)
		report(w, true, "%s: fsync of the directory failed: %s", w->dir, strerror(errno));
	w->unsynced = false;
	w->stats.segments_opened++;
	run_retention(w);
	return 0;
}

/* The close frame counts the blocks: a reader sees a segment cut at a block boundary. */
static void close_segment(struct cfr_recw *w)
{
	int ret;

	append_raw(w, CFR_FRAME_CLOSE, CFR_CLOSE_FRAME_2);
	put_le(w->buf + w->buf_len + CFR_FRAME_HEAD, w->blocks, 4);
	w->buf_len += CFR_FRAME_HEAD + CFR_CLOSE_FRAME_2;
	ret = write_buf(w);
	if (ret == 0 && fdatasync(w->fd) < 0)
		ret = -errno;
	if (ret < 0) {
		fault(w, "closing the segment", -ret);
		return;
	}
	close(w->fd);
	w->fd = -1;
	w->unsynced = false;
}

static void begin_block(struct cfr_recw *w, uint64_t epoch, uint64_t start_ms)
{
	uint8_t sealed[CFR_SEG_SEALED_BYTES], plain[CFR_EPOCH_PLAIN];

	w->in_block = true;
	w->epoch = epoch;
	w->seq = 0;
	w->block_records = 0;
	w->block_end_ms = 0;
	w->jlen = CFR_JOURNAL_HEAD;
	crypto_aead_xchacha20poly1305_ietf_keygen(w->key);
	crypto_box_seal(sealed, w->key, CFR_SEG_KEY_BYTES, w->cfg.public_key);
	put_le(plain, epoch, 8);
	put_le(plain + 8, w->blocks++, 4);
	put_le(plain + 12, to_wall(w, start_ms), 8);
	put_le(plain + 20, w->hdr.epoch_s, 4);
	append_frame(w, CFR_FRAME_EPOCH, sealed, sizeof(sealed), plain, sizeof(plain));
}

/*
 * A journal frame of what is in jbuf. Its time is when the pass that took
 * the items from the engine began: with COMPLETE, the frame claims every
 * allocation drawn before it, and a draw after the copy (during a slow
 * write) must not be claimed.
 */
static void emit_journal(struct cfr_recw *w, uint8_t flags)
{
	if (w->jlen == CFR_JOURNAL_HEAD && !flags)
		return;
	w->jbuf[0] = flags;
	put_le(w->jbuf + 1, to_wall(w, w->journal_as_of), 8);
	append_frame(w, CFR_FRAME_JOURNAL, NULL, 0, w->jbuf, w->jlen);
	sodium_memzero(w->jbuf, w->jlen);
	w->jlen = CFR_JOURNAL_HEAD;
	if (flags & CFR_JOURNAL_COMPLETE)
		w->stats.checkpoints++;
}

/*
 * End the open block. With <complete>, its final records are all in:
 * EPOCH_END says how many and when the epoch ended. Either way its key
 * is wiped now.
 */
static void end_block(struct cfr_recw *w, bool complete)
{
	uint8_t plain[12];

	emit_journal(w, 0);
	if (complete && w->block_records) {
		put_le(plain, w->block_records, 4);
		put_le(plain + 4, to_wall(w, w->block_end_ms), 8);
		append_frame(w, CFR_FRAME_EPOCH_END, NULL, 0, plain, sizeof(plain));
		w->stats.epochs_written++;
		w->sync_now = w->cfg.fsync == CFR_FSYNC_EPOCH;
	}
	wipe_block(w);
}

static void add_record(struct cfr_recw *w, const struct cfr_epoch_record *rec)
{
	uint8_t plain[CFR_FRAME_PLAIN_MAX];
	size_t len = cfr_record_encode(rec, w->hdr.cfg.subscriber_prefix6, 2, plain);

	append_frame(w, CFR_FRAME_RECORD, NULL, 0, plain, len);
	sodium_memzero(plain, sizeof(plain));
	w->block_records++;
	w->block_end_ms = rec->end_ms;
	w->stats.records_written++;
}

static void add_journal(struct cfr_recw *w, const struct cfr_journal_item *it)
{
	if (w->jlen + CFR_JOURNAL_ITEM_MAX > CFR_JOURNAL_MAX)
		emit_journal(w, 0);
	w->jlen += cfr_journal_put(it, w->hdr.cfg.subscriber_prefix6, w->jbuf + w->jlen);
	w->stats.journal_items++;
}

/* What the segment header says of the engine's configuration. */
static void set_config(struct cfr_recw *w, const struct cfr_engine_config *cfg)
{
	w->hdr.epoch_s = cfg->epoch_s;
	w->hdr.cfg = *cfg;
	/* Records hold a subscriber's identity in the longest length any prefix uses. */
	w->hdr.cfg.subscriber_prefix6 = cfr_config_ident6_max(cfg);
}

/* Seal the staged items into the write buffer, epoch by epoch. */
static int seal_stage(struct cfr_recw *w)
{
	const char *what = NULL;
	int ret;

	for (unsigned i = 0; i < w->n_stage; i++) {
		struct stage_item *s = &w->stage[i];
		uint64_t epoch = s->it.rec.epoch;

		if (w->in_block && epoch != w->epoch) {
			/* cannot happen: the engine hands epochs in order */
			if (epoch < w->epoch) {
				w->stats.records_dropped += s->what == STAGE_RECORD;
				continue;
			}
			/* Records of a later epoch: the open one has had all of its own. */
			end_block(w, true);
		}
		if (!w->in_block && w->n_next > 0 && epoch >= w->next[0].from) {
			/* The newest configuration this epoch is under (epochs without records were
			 * skipped). */
			unsigned k = 0;

			while (k + 1 < w->n_next && epoch >= w->next[k + 1].from)
				k++;
			/* A segment header holds one configuration: a new one starts here. */
			if (w->fd >= 0) {
				close_segment(w);
				if (w->degraded)
					return -EIO;
			}
			set_config(w, &w->next[k].cfg);
			w->n_next -= k + 1;
			memmove(w->next, w->next + k + 1, w->n_next * sizeof(w->next[0]));
		}
		if (!w->in_block) {
			if (w->fd < 0 && (ret = open_segment(w, &what)) < 0) {
				fault(w, what, -ret);
				return ret;
			}
			begin_block(w, epoch, s->it.rec.start_ms);
		}
		if (s->what == STAGE_RECORD)
			add_record(w, &s->it.rec);
		else
			add_journal(w, &s->it);
	}
	return 0;
}

/* Did the directory or the segment disappear under us? Writes would go nowhere. */
static int check_files(struct cfr_recw *w, const char **what)
{
	struct stat st;

	if (fstat(w->dirfd, &st) == 0 && st.st_nlink == 0) {
		*what = "the records directory was removed";
		return -ENOENT;
	}
	if (w->fd >= 0 && fstat(w->fd, &st) == 0 && st.st_nlink == 0) {
		*what = "the segment was removed";
		return -ENOENT;
	}
	return 0;
}

/* Degraded: is there a directory, can a segment be made? Then the engine's backlog comes. */
static void try_recover(struct cfr_recw *w)
{
	const char *what;
	struct stat st;

	if (w->now_mono_ms < w->next_retry_ms || !w->have_key)
		return;
	w->next_retry_ms = w->now_mono_ms + CFR_RECW_RETRY_MS;
	if (fstat(w->dirfd, &st) < 0 || st.st_nlink == 0) {
		/* Only a directory the sandbox still lets cfrd into: see cfrd(8). */
		int fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0)
			return;
		close(w->dirfd);
		w->dirfd = fd;
	}
	if (open_segment(w, &what) < 0)
		return;
	w->stats.degraded_ms += w->now_mono_ms - w->degraded_since_ms;
	w->stats.degraded = w->degraded = false;
	report(w, false,
	       "%s/%s: writing again after %llu s degraded; the current epoch starts over "
	       "from the engine's state",
	       w->dir, w->seg_name,
	       (unsigned long long)((w->now_mono_ms - w->degraded_since_ms) / 1000));
}

static void stage_record(void *ctx, const struct cfr_epoch_record *rec)
{
	struct cfr_recw *w = ctx;
	struct stage_item *s = &w->stage[w->n_stage++];

	s->what = STAGE_RECORD;
	memset(&s->it, 0, sizeof(s->it));
	s->it.rec = *rec;
}

static void stage_journal(void *ctx, const struct cfr_journal_item *it)
{
	struct cfr_recw *w = ctx;
	struct stage_item *s = &w->stage[w->n_stage++];

	s->what = STAGE_JOURNAL;
	s->it = *it;
}

unsigned cfr_recw_collect(struct cfr_recw *w, struct cfr_engine *eng, uint64_t now_mono_ms)
{
	unsigned left, jleft;

	w->engine_epoch = cfr_engine_stats(eng)->epoch;
	if (w->degraded)
		return 0;
	if (w->restart_journal) {
		cfr_engine_journal_restart(eng);
		w->restart_journal = false;
		w->journal_busy = true;
	}
	left = cfr_engine_drain_records(eng, stage_record, w, STAGE_MAX - w->n_stage);
	w->records_left = left;
	if (left ||
	    (!w->journal_busy && now_mono_ms - w->last_journal_ms < CFR_JOURNAL_INTERVAL_MS))
		return left;
	if (!w->journal_busy)
		w->last_journal_ms = now_mono_ms;
	/* The engine lock is held: nothing is drawn between this and the copy. */
	w->journal_as_of = now_mono_ms;
	jleft = cfr_engine_drain_journal(eng, stage_journal, w, STAGE_MAX - w->n_stage);
	w->journal_busy = jleft > 0;
	if (!jleft)
		w->journal_complete = true;
	return jleft;
}

void cfr_recw_flush(struct cfr_recw *w, uint64_t now_mono_ms, uint64_t now_wall_ms)
{
	bool journal_tick = w->journal_complete;
	const char *what = "write";
	int ret;

	w->now_mono_ms = now_mono_ms;
	w->now_wall_ms = now_wall_ms;
	w->wall_offset_ms = (int64_t)now_wall_ms - (int64_t)now_mono_ms;
	if (w->degraded)
		try_recover(w);
	if (w->degraded) {
		w->stats.degraded_ms += now_mono_ms - w->degraded_since_ms;
		w->degraded_since_ms = now_mono_ms;
		return;
	}
	/* A segment whose period is over takes no new block. */
	if (w->fd >= 0 && !w->in_block &&
	    now_wall_ms >= w->hdr.start_ms + (uint64_t)w->cfg.segment_s * 1000) {
		close_segment(w);
		if (w->degraded)
			return;
	}
	if (seal_stage(w) < 0)
		return;
	/* A checkpoint (an empty one too, as a heartbeat) for the current epoch only. */
	if (w->journal_complete && w->in_block && w->epoch == w->engine_epoch)
		emit_journal(w, CFR_JOURNAL_COMPLETE);
	else
		emit_journal(w, 0);
	w->journal_complete = false;
	if (w->in_block && w->epoch < w->engine_epoch && w->records_left == 0)
		end_block(w, true);
	if (w->fd >= 0 && now_wall_ms >= w->hdr.start_ms + (uint64_t)w->cfg.segment_s * 1000) {
		if (w->in_block && w->epoch == w->engine_epoch) {
			/* The epoch goes on in the next segment: everyone's snapshot first. */
			emit_journal(w, CFR_JOURNAL_CONTINUED |
			                    (journal_tick ? CFR_JOURNAL_COMPLETE : 0));
			wipe_block(w);
			w->restart_journal = true;
		}
		if (!w->in_block) {
			close_segment(w);
			if (w->degraded)
				return;
		}
	}
	if (w->fd >= 0) {
		uint64_t before = w->stats.bytes_written;

		ret = write_buf(w);
		/* The write lag operators alert on: written, whatever the sync does after. */
		if (ret == 0 && w->stats.bytes_written != before)
			w->stats.last_write_ms = now_mono_ms;
		if (ret == 0 && journal_tick)
			ret = check_files(w, &what);
		if (ret == 0 && w->unsynced && w->cfg.fsync == CFR_FSYNC_EPOCH &&
		    (w->sync_now || now_mono_ms - w->last_sync_ms >= CFR_JOURNAL_INTERVAL_MS)) {
			what = "fdatasync";
			ret = fdatasync(w->fd) < 0 ? -errno : 0;
			w->last_sync_ms = now_mono_ms;
			w->unsynced = w->sync_now = false;
		}
		if (ret < 0) {
			fault(w, what, -ret);
			return;
		}
	}
	sodium_memzero(w->stage, w->n_stage * sizeof(w->stage[0]));
	w->n_stage = 0;
	if (now_wall_ms >= w->next_retention_ms)
		run_retention(w);
}

unsigned cfr_recw_drain(struct cfr_recw *w, struct cfr_engine *eng, unsigned max,
                        uint64_t now_mono_ms, uint64_t now_wall_ms)
{
	unsigned taken = 0, left;

	do {
		left = cfr_recw_collect(w, eng, now_mono_ms);
		taken += w->n_stage;
		cfr_recw_flush(w, now_mono_ms, now_wall_ms);
	} while (left && taken < max && !w->degraded);
	return left;
}

void cfr_recw_journal_now(struct cfr_recw *w)
{
	w->last_journal_ms = 0;
}

int cfr_recw_reconfigure(struct cfr_recw *w, const struct cfr_engine_config *cfg,
                         uint64_t from_epoch)
{
	if (w->n_next == CFR_RECW_CONFIGS)
		return -ENOSPC;
	w->next[w->n_next].cfg = *cfg;
	w->next[w->n_next].from = from_epoch;
	w->n_next++;
	return 0;
}

void cfr_recw_set_key(struct cfr_recw *w, const uint8_t pk[CFR_KEY_BYTES])
{
	memcpy(w->cfg.public_key, pk, CFR_KEY_BYTES);
	w->have_key = true;
	w->next_retry_ms = 0;
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
	sodium_mlock(w->jbuf, sizeof(w->jbuf));
	sodium_mlock(w->stage, sizeof(w->stage));
	if (!w->dir) {
		cfr_rec_fail(err, "records: %s", strerror(ENOMEM));
		goto fail;
	}
	wipe_block(w);
	w->cfg = *cfg;
	w->cfg.dir = w->dir;
	w->have_key = !cfg->no_key;
	w->hdr.version = 2;
	w->hdr.period_s = cfg->segment_s;
	set_config(w, cfg->engine);
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
	if (!w->have_key) {
		/* The caller said why, once; this is the state it leaves us in. */
		w->stats.faults++;
		w->stats.degraded = w->degraded = true;
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
	if (!w->degraded) {
		seal_stage(w);
		/* cfrd ended the epoch before: a block still open has had its records. */
		if (w->in_block)
			end_block(w, w->epoch < w->engine_epoch);
		if (w->fd >= 0)
			close_segment(w);
	}
	if (w->fd >= 0)
		close(w->fd);
	if (w->dirfd >= 0)
		close(w->dirfd);
	/* No munlock: the sandbox forbids it, and the pages go with the process anyway. */
	sodium_memzero(w->key, sizeof(w->key));
	sodium_memzero(w->jbuf, sizeof(w->jbuf));
	sodium_memzero(w->stage, sizeof(w->stage));
	free(w->dir);
	free(w);
}

const struct cfr_recw_stats *cfr_recw_stats(const struct cfr_recw *w)
{
	return &w->stats;
}
