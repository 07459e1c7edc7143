/*
 * Sealed accountability records: the segment file format, shared by the
 * writer in cfrd and the reader in cfr-lookup (docs/accountability.md).
 *
 * A segment is one append-only file: a clear header (start time, period,
 * the pool/ports/policy needed to regenerate allocations), then one block
 * of frames per epoch. Each frame is a clear 3-byte head (type, length)
 * and, but for the close frame, an XChaCha20-Poly1305 ciphertext. A block
 * opens with an EPOCH frame that carries a fresh key for that epoch alone,
 * sealed to the operator's public key with crypto_box_seal; the writer
 * wipes it when the block ends, so a seized relay opens no ended epoch.
 * Nonces are the frame's number in its block; the associated data is the
 * header's hash and the type: a reordered, altered or foreign frame fails,
 * a torn tail is found.
 *
 * Inside a block, JOURNAL frames come while the epoch runs (every second:
 * each subscriber's record when it first draws, then the counter values
 * drawn since), and the final RECORD frames and EPOCH_END when it ends.
 * A crash leaves the journal, which says up to when it is complete.
 *
 * Version 1 segments (one key per segment, records at epoch end only)
 * are still read.
 *
 * Nothing here writes a remote address or port: the engine never gives one.
 */
#ifndef CFR_RECORDS_H
#define CFR_RECORDS_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cfr/cfr.h>

#define CFR_SEG_MAGIC        "CFRSEG2\n"
#define CFR_SEG_MAGIC_V1     "CFRSEG1\n"
#define CFR_SEG_MAGIC_LEN    8
#define CFR_SEG_SUFFIX       ".seg"
#define CFR_SEG_KEY_BYTES    crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define CFR_SEG_SEALED_BYTES (crypto_box_SEALBYTES + CFR_SEG_KEY_BYTES)
#define CFR_SEG_HEADER_MAX   512
#define CFR_FRAME_HEAD       3
#define CFR_FRAME_TAG        crypto_aead_xchacha20poly1305_ietf_ABYTES
#define CFR_FRAME_PLAIN_MAX  192  /* a record, its slot number included */
#define CFR_JOURNAL_MAX      4096 /* plaintext of one journal frame */
#define CFR_KEY_BYTES        crypto_box_PUBLICKEYBYTES
/* Version 2: the EPOCH frame is the sealed epoch key, then its ciphertext. */
#define CFR_EPOCH_PLAIN   24
#define CFR_EPOCH_FRAME   (CFR_SEG_SEALED_BYTES + CFR_EPOCH_PLAIN + CFR_FRAME_TAG)
#define CFR_CLOSE_FRAME_2 4 /* clear: the number of blocks */

_Static_assert(crypto_box_PUBLICKEYBYTES == crypto_box_SECRETKEYBYTES, "X25519 key sizes");

/* Frame types, in the order a writer emits them. */
enum cfr_frame {
	CFR_FRAME_EPOCH = 1,     /* epoch key (v2), number, start, length */
	CFR_FRAME_RECORD = 2,    /* one subscriber's final record of that epoch */
	CFR_FRAME_EPOCH_END = 3, /* how many records the epoch had: it is complete */
	CFR_FRAME_CLOSE = 4,     /* the segment was closed cleanly; nothing follows */
	CFR_FRAME_JOURNAL = 5,   /* v2: snapshots and deltas while the epoch runs */
};

/* Journal frame flags. */
#define CFR_JOURNAL_COMPLETE  0x01 /* every allocation drawn before as_of is in the block */
#define CFR_JOURNAL_CONTINUED 0x02 /* the block ends; the epoch goes on in the next segment */

/* An error a person can act on: which file, where, what is wrong. */
struct cfr_rec_error {
	char msg[320];
};

__attribute__((format(printf, 2, 3))) int cfr_rec_fail(struct cfr_rec_error *err, const char *fmt,
                                                       ...);

/* The clear, authenticated segment header. Times are wall clock (Unix ms). */
struct cfr_seg_header {
	uint8_t version; /* 1 or 2 */
	uint64_t start_ms;
	uint32_t period_s;            /* every epoch in the segment ends before start + period */
	uint32_t epoch_s;             /* the daemon's epoch length: epochs last at most this */
	struct cfr_engine_config cfg; /* pools, ports, policies, subscriber_prefix6 only */
	uint8_t sealed_key[CFR_SEG_SEALED_BYTES]; /* version 1 only: the segment key */
};

/* format.c: the byte layout of headers and frame payloads. */
int cfr_seg_header_encode(const struct cfr_seg_header *h, uint8_t *out, size_t size);
/* Parse <len> bytes; returns the header's length, 0 if more bytes are needed, or -EBADMSG. */
int cfr_seg_header_decode(const uint8_t *buf, size_t len, struct cfr_seg_header *h);
void cfr_frame_nonce(uint64_t seq, uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES]);
/* A record's plaintext; <version> 2 puts its slot number first. */
size_t cfr_record_encode(const struct cfr_epoch_record *rec, uint8_t subscriber_prefix6,
                         unsigned version, uint8_t out[CFR_FRAME_PLAIN_MAX]);
int cfr_record_decode(const uint8_t *buf, size_t len, uint8_t subscriber_prefix6, unsigned version,
                      struct cfr_epoch_record *rec);
/*
 * Journal frame plaintext: u8 flags | u64 as_of (wall ms) | items. An item
 * is a tag, the slot, then a record (SNAPSHOT) or counter_from, count,
 * t_from, t_to - t_from (DELTA), all LEB128. put() returns the bytes
 * written to <out> (at most CFR_JOURNAL_ITEM_MAX).
 */
#define CFR_JOURNAL_HEAD     9
#define CFR_JOURNAL_ITEM_MAX (1 + CFR_FRAME_PLAIN_MAX)
size_t cfr_journal_put(const struct cfr_journal_item *it, uint8_t subscriber_prefix6, uint8_t *out);
/* The item at *<off>: 1 and *<off> moved on, 0 at the end, -EBADMSG. */
int cfr_journal_get(const uint8_t *buf, size_t len, size_t *off, uint8_t subscriber_prefix6,
                    struct cfr_journal_item *it);
/* Segment start time <start_ms> as a file name "cfr-YYYYmmddTHHMMSSZ" plus "-N" if N > 0. */
void cfr_seg_name(uint64_t start_ms, unsigned n, char *out, size_t size);

/* keyfile.c: "cfr-acct-public-key BASE64" and "cfr-acct-private-key BASE64" files. */
#define CFR_PUBLIC_KEY_LABEL  "cfr-acct-public-key"
#define CFR_PRIVATE_KEY_LABEL "cfr-acct-private-key"
/* Refuses (-EPERM) a public key file others may write to: whoever replaces it reads the records. */
int cfr_key_read_public(const char *path, uint8_t pk[CFR_KEY_BYTES], struct cfr_rec_error *err);
/* The same from an open file (from its start): cfrd re-reads one it refused once fixed. */
int cfr_key_read_public_fd(int fd, const char *path, uint8_t pk[CFR_KEY_BYTES],
                           struct cfr_rec_error *err);
/* Also derives <pk>. Refuses a file others can read, as ssh does. */
int cfr_key_read_private(const char *path, uint8_t sk[CFR_KEY_BYTES], uint8_t pk[CFR_KEY_BYTES],
                         struct cfr_rec_error *err);

/* writer.c: cfrd's side. */
enum cfr_fsync { CFR_FSYNC_EPOCH = 0, CFR_FSYNC_SEGMENT = 1 };

/* The journal is taken from the engine, sealed and written this often (ms). */
#define CFR_JOURNAL_INTERVAL_MS 1000
/* A writer that cannot write tries again this often (ms). */
#define CFR_RECW_RETRY_MS 2000

struct cfr_recw_config {
	const char *dir;
	uint8_t public_key[CFR_KEY_BYTES];
	bool no_key; /* start without a usable public key: degraded until cfr_recw_set_key() */
	uint32_t segment_s, retention_s;
	enum cfr_fsync fsync;
	const struct cfr_engine_config *engine;
	/* Where problems go (cfrd's log); may be NULL. */
	void (*report)(void *ctx, bool error, const char *msg);
	void *report_ctx;
};

struct cfr_recw_stats {
	uint64_t records_written, records_dropped, epochs_written, bytes_written;
	uint64_t segments_opened, segments_deleted, write_errors;
	uint64_t journal_items, checkpoints;
	uint64_t faults;        /* times the writer became degraded */
	uint64_t degraded_ms;   /* time spent degraded, the current spell included */
	uint64_t last_write_ms; /* engine clock of the last write that succeeded (0: none) */
	bool degraded;          /* nothing is sealed now: see the log for why */
};

struct cfr_recw;

/*
 * Create the records directory if needed (mode 0700), apply retention, and
 * return a writer, or NULL with <err> filled and errno set. Call it before
 * a sandbox forbids mlock: its key and staging memory are locked.
 */
struct cfr_recw *cfr_recw_new(const struct cfr_recw_config *cfg, uint64_t now_wall_ms,
                              struct cfr_rec_error *err);

/*
 * Under the engine's lock, and nothing slow: copy what the engine has for
 * the records into the writer's (locked) staging memory: records of the
 * ended epoch first, then, once a second, the journal. <now_mono_ms> is the
 * engine clock. Returns how much still waits in the engine (call again
 * soon when it is not 0). Takes nothing while the writer is degraded: the
 * engine keeps it, so the writer catches up when it can write again.
 */
unsigned cfr_recw_collect(struct cfr_recw *w, struct cfr_engine *eng, uint64_t now_mono_ms);

/*
 * Without the engine's lock: seal what was collected, write it, fdatasync
 * at most once a second, end epochs, rotate segments, apply retention, and
 * while degraded, try to recover every CFR_RECW_RETRY_MS. <now_wall_ms> is
 * the wall clock read with <now_mono_ms>.
 */
void cfr_recw_flush(struct cfr_recw *w, uint64_t now_mono_ms, uint64_t now_wall_ms);

/*
 * Both of the above until at most <max> records and journal items were
 * taken or none wait; single-threaded callers (tests, benchmarks). Returns
 * how many still wait.
 */
unsigned cfr_recw_drain(struct cfr_recw *w, struct cfr_engine *eng, unsigned max,
                        uint64_t now_mono_ms, uint64_t now_wall_ms);

/* Take the journal on the next collect, whatever the interval says (a handover). */
void cfr_recw_journal_now(struct cfr_recw *w);

/*
 * A reload changed what allocations derive from (pools, ports, policies,
 * epoch length): the blocks of epochs from <from_epoch> on go to segments
 * whose header says <cfg>. Call it before the engine ends the epoch.
 * Up to CFR_RECW_CONFIGS wait for their epoch's first record; -ENOSPC beyond.
 */
#define CFR_RECW_CONFIGS 8
int cfr_recw_reconfigure(struct cfr_recw *w, const struct cfr_engine_config *cfg,
                         uint64_t from_epoch);

/* The operator's public key, for a writer that started without one. */
void cfr_recw_set_key(struct cfr_recw *w, const uint8_t pk[CFR_KEY_BYTES]);

/* Close the segment cleanly (close frame, fsync), wipe the key, free <w>. */
void cfr_recw_free(struct cfr_recw *w);
const struct cfr_recw_stats *cfr_recw_stats(const struct cfr_recw *w);

/* retention.c: delete every segment in <dir> whose end is <retention_s> old. */
int cfr_records_expire(const char *dir, uint64_t now_wall_ms, uint32_t retention_s,
                       unsigned *deleted, struct cfr_rec_error *err);

/* reader.c: cfr-lookup's side. */
struct cfr_seg_item {
	uint8_t type;    /* enum cfr_frame */
	uint64_t offset; /* of the frame in the file */
	/*
	 * EPOCH: epoch, start_ms, end_ms (wall clock; in version 2 the end is
	 * start + the epoch's length until EPOCH_END says). RECORD: the whole
	 * record, its start_ms/end_ms the epoch's wall-clock bounds.
	 */
	struct cfr_epoch_record rec;
	uint32_t count;    /* EPOCH_END: records the writer sealed in the epoch */
	uint64_t end_ms;   /* EPOCH_END (v2): when the epoch ended */
	uint8_t flags;     /* JOURNAL: CFR_JOURNAL_* */
	uint64_t as_of_ms; /* JOURNAL: when it was taken (wall clock) */
	/* JOURNAL: the plaintext items (cfr_journal_get), valid until the next call */
	const uint8_t *journal;
	size_t journal_len;
};

struct cfr_segr;

/* Open <path> and read its header; no key needed (retention, selection). */
struct cfr_segr *cfr_segr_open(const char *path, struct cfr_rec_error *err);
const struct cfr_seg_header *cfr_segr_header(const struct cfr_segr *r);
/*
 * Give the private key: version 1 opens the segment key, version 2 keeps
 * the pair to open each epoch's key and tries it on the first. Returns 0,
 * or -EACCES for a key that does not fit.
 */
int cfr_segr_unseal(struct cfr_segr *r, const uint8_t pk[CFR_KEY_BYTES],
                    const uint8_t sk[CFR_KEY_BYTES], struct cfr_rec_error *err);
/*
 * The next frame. Returns 1 with <it> filled, 0 at the end of the file, or
 * -EBADMSG when a frame is torn or fails authentication (<err> says where;
 * every item returned before it is authentic), -EIO on a read error.
 */
int cfr_segr_next(struct cfr_segr *r, struct cfr_seg_item *it, struct cfr_rec_error *err);
/* Pass over the current epoch's remaining frames without decrypting them. */
int cfr_segr_skip_records(struct cfr_segr *r, struct cfr_rec_error *err);
/*
 * Does the current block reach its EPOCH_END frame? A look at the clear
 * frame heads only: the frame itself is authenticated when it is read.
 */
bool cfr_segr_block_ends(const struct cfr_segr *r);
/* Pass over JOURNAL frames without decrypting them (they return no items). */
void cfr_segr_skip_journal(struct cfr_segr *r, bool skip);
/* Did the file end with a valid close frame? */
bool cfr_segr_closed(const struct cfr_segr *r);
void cfr_segr_close(struct cfr_segr *r);

/* match.c: regenerate a record's allocations and compare with a complaint. */
struct cfr_complaint {
	uint8_t family;
	uint8_t alias[16];
	uint16_t port;
	bool have_remote;
	uint8_t remote[16];
	uint64_t from_ms, to_ms; /* wall clock: the flow began in [from, to] */
};

struct cfr_match {
	uint32_t counter;        /* the allocation that matched */
	uint64_t from_ms, to_ms; /* when it was drawn (wall clock, 1 s resolution) */
};

/*
 * For every counter value <rec> (start_ms/end_ms on the wall clock) drew
 * in the complaint's window, regenerate its allocation under <cfg> and call
 * <fn> for each that equals the complaint. Returns the number of
 * allocations regenerated, -EDESTADDRREQ if the policy needs the remote and
 * the complaint has none, or -EINVAL for a malformed timeline.
 */
typedef void (*cfr_match_fn)(void *ctx, const struct cfr_epoch_record *rec,
                             const struct cfr_match *m);
long cfr_record_match(const struct cfr_engine_config *cfg, const struct cfr_epoch_record *rec,
                      const struct cfr_complaint *c, cfr_match_fn fn, void *ctx);
/* The same for counters [first, first + count) drawn in seconds [t_from, t_to] of the epoch. */
long cfr_range_match(const struct cfr_engine_config *cfg, const struct cfr_epoch_record *rec,
                     const struct cfr_complaint *c, uint32_t first, uint32_t count, uint32_t t_from,
                     uint32_t t_to, cfr_match_fn fn, void *ctx);

#endif
