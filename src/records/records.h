/*
 * Sealed accountability records: the segment file format, shared by the
 * writer in cfrd and the reader in cfr-lookup (docs/accountability.md).
 *
 * A segment is one append-only file: a clear header (start time, period,
 * the pool/ports/policy needed to regenerate allocations, and a fresh
 * segment key sealed to the operator's public key with crypto_box_seal),
 * then frames. Each frame is a clear 3-byte head (type, length) and an
 * XChaCha20-Poly1305 ciphertext under the segment key, with the frame's
 * sequence number as nonce and the header's hash and the type as associated
 * data: a reordered, altered or foreign frame fails, a torn tail is found.
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

#define CFR_SEG_MAGIC        "CFRSEG1\n"
#define CFR_SEG_MAGIC_LEN    8
#define CFR_SEG_SUFFIX       ".seg"
#define CFR_SEG_KEY_BYTES    crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define CFR_SEG_SEALED_BYTES (crypto_box_SEALBYTES + CFR_SEG_KEY_BYTES)
#define CFR_SEG_HEADER_MAX   512
#define CFR_FRAME_HEAD       3
#define CFR_FRAME_TAG        crypto_aead_xchacha20poly1305_ietf_ABYTES
#define CFR_FRAME_PLAIN_MAX  192
#define CFR_KEY_BYTES        crypto_box_PUBLICKEYBYTES

_Static_assert(crypto_box_PUBLICKEYBYTES == crypto_box_SECRETKEYBYTES, "X25519 key sizes");

/* Frame types, in the order a writer emits them. */
enum cfr_frame {
	CFR_FRAME_EPOCH = 1,     /* epoch number and wall-clock bounds */
	CFR_FRAME_RECORD = 2,    /* one subscriber's record of that epoch */
	CFR_FRAME_EPOCH_END = 3, /* how many records the epoch had: it is complete */
	CFR_FRAME_CLOSE = 4,     /* the segment was closed cleanly; nothing follows */
};

/* An error a person can act on: which file, where, what is wrong. */
struct cfr_rec_error {
	char msg[320];
};

__attribute__((format(printf, 2, 3))) int cfr_rec_fail(struct cfr_rec_error *err, const char *fmt,
                                                       ...);

/* The clear, authenticated segment header. Times are wall clock (Unix ms). */
struct cfr_seg_header {
	uint64_t start_ms;
	uint32_t period_s;            /* every epoch in the segment ends before start + period */
	uint32_t epoch_s;             /* the daemon's epoch length: epochs last at most this */
	struct cfr_engine_config cfg; /* pools, ports, policies, subscriber_prefix6 only */
	uint8_t sealed_key[CFR_SEG_SEALED_BYTES];
};

/* format.c: the byte layout of headers and frame payloads. */
int cfr_seg_header_encode(const struct cfr_seg_header *h, uint8_t *out, size_t size);
/* Parse <len> bytes; returns the header's length, 0 if more bytes are needed, or -EBADMSG. */
int cfr_seg_header_decode(const uint8_t *buf, size_t len, struct cfr_seg_header *h);
void cfr_frame_nonce(uint64_t seq, uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES]);
size_t cfr_record_encode(const struct cfr_epoch_record *rec, uint8_t subscriber_prefix6,
                         uint8_t out[CFR_FRAME_PLAIN_MAX]);
int cfr_record_decode(const uint8_t *buf, size_t len, uint8_t subscriber_prefix6,
                      struct cfr_epoch_record *rec);
/* Segment start time <start_ms> as a file name "cfr-YYYYmmddTHHMMSSZ" plus "-N" if N > 0. */
void cfr_seg_name(uint64_t start_ms, unsigned n, char *out, size_t size);

/* keyfile.c: "cfr-acct-public-key BASE64" and "cfr-acct-private-key BASE64" files. */
#define CFR_PUBLIC_KEY_LABEL  "cfr-acct-public-key"
#define CFR_PRIVATE_KEY_LABEL "cfr-acct-private-key"
int cfr_key_read_public(const char *path, uint8_t pk[CFR_KEY_BYTES], struct cfr_rec_error *err);
/* Also derives <pk>. Refuses a file others can read, as ssh does. */
int cfr_key_read_private(const char *path, uint8_t sk[CFR_KEY_BYTES], uint8_t pk[CFR_KEY_BYTES],
                         struct cfr_rec_error *err);

/* writer.c: cfrd's side. */
enum cfr_fsync { CFR_FSYNC_EPOCH = 0, CFR_FSYNC_SEGMENT = 1 };

struct cfr_recw_config {
	const char *dir;
	uint8_t public_key[CFR_KEY_BYTES];
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
};

struct cfr_recw;

/*
 * Create the records directory if needed (mode 0700), apply retention, and
 * return a writer, or NULL with <err> filled and errno set.
 */
struct cfr_recw *cfr_recw_new(const struct cfr_recw_config *cfg, uint64_t now_wall_ms,
                              struct cfr_rec_error *err);

/*
 * Seal at most <max> records of the engine's ended epoch, finish the epoch
 * (count, flush, fsync) once none is left, close a segment whose period is
 * over, and apply retention when due. <now_mono_ms> is the engine clock,
 * <now_wall_ms> the wall clock read at the same moment. Returns how many
 * records still wait. Call it on every loop iteration.
 */
unsigned cfr_recw_drain(struct cfr_recw *w, struct cfr_engine *eng, unsigned max,
                        uint64_t now_mono_ms, uint64_t now_wall_ms);

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
	 * EPOCH: epoch, start_ms, end_ms (wall clock). RECORD: the whole
	 * record, its start_ms/end_ms the epoch's wall-clock bounds.
	 */
	struct cfr_epoch_record rec;
	uint32_t count; /* EPOCH_END: records the writer sealed in the epoch */
};

struct cfr_segr;

/* Open <path> and read its header; no key needed (retention, selection). */
struct cfr_segr *cfr_segr_open(const char *path, struct cfr_rec_error *err);
const struct cfr_seg_header *cfr_segr_header(const struct cfr_segr *r);
/* Open the sealed segment key. Returns 0, or -EACCES for a key that does not fit. */
int cfr_segr_unseal(struct cfr_segr *r, const uint8_t pk[CFR_KEY_BYTES],
                    const uint8_t sk[CFR_KEY_BYTES], struct cfr_rec_error *err);
/*
 * The next frame. Returns 1 with <it> filled, 0 at the end of the file, or
 * -EBADMSG when a frame is torn or fails authentication (<err> says where;
 * every item returned before it is authentic), -EIO on a read error.
 */
int cfr_segr_next(struct cfr_segr *r, struct cfr_seg_item *it, struct cfr_rec_error *err);
/* Pass over the current epoch's remaining records without decrypting them. */
int cfr_segr_skip_records(struct cfr_segr *r, struct cfr_rec_error *err);
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

#endif
