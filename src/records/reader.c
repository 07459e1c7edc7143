/*
 * The segment reader: cfr-lookup's side of the sealed records.
 *
 * The file is mapped read-only and walked frame by frame. Every frame is
 * authenticated before anything in it is believed; the first frame that is
 * torn or fails stops the walk with an error naming its offset, and every
 * item returned before it stays valid (a crash tears at most the tail).
 * Frames of epochs outside a complaint's window are passed over by their
 * clear lengths without decrypting, which keeps a lookup proportional to
 * the epochs it needs. In version 2 each epoch's key is opened from its
 * EPOCH frame and wiped at its EPOCH_END.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "records.h"

struct cfr_segr {
	char *path;
	const uint8_t *map;
	size_t size, off;
	struct cfr_seg_header hdr;
	uint8_t header_hash[32];
	uint8_t *key;     /* sodium_malloc: v1 the segment key, v2 the open block's key */
	uint8_t *keypair; /* sodium_malloc, v2: public then private key, to open each block's key */
	bool have_key;    /* the key opens frames now */
	uint64_t seq;     /* v1: frames in the file; v2: frames in the block */
	uint32_t blocks;  /* v2: epoch blocks begun */
	bool closed, in_epoch, skip_journal;
	uint64_t epoch, epoch_start_ms, epoch_end_ms;
	uint8_t plain[CFR_JOURNAL_MAX];
};

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

struct cfr_segr *cfr_segr_open(const char *path, struct cfr_rec_error *err)
{
	struct cfr_segr *r = calloc(1, sizeof(*r));
	struct stat st;
	int fd, hlen, error = 0;

	if (!r || !(r->path = strdup(path))) {
		cfr_rec_fail(err, "%s: %s", path, strerror(ENOMEM));
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		error = errno;
		cfr_rec_fail(err, "%s: cannot open: %s", path, strerror(error));
		goto fail;
	}
	r->size = (size_t)st.st_size;
	if (r->size > 0) {
		void *m = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, fd, 0);

		if (m == MAP_FAILED) {
			error = errno;
			cfr_rec_fail(err, "%s: cannot map: %s", path, strerror(error));
			goto fail;
		}
		r->map = m;
	}
	close(fd);
	fd = -1;
	hlen = cfr_seg_header_decode(r->map, r->size, &r->hdr);
	if (hlen <= 0) {
		error = EBADMSG;
		cfr_rec_fail(err, "%s: %s", path,
		             hlen == 0 ? "header is truncated (the daemon stopped while creating "
		                         "the segment)"
		                       : "not a cfr segment, or its header is damaged");
		goto fail;
	}
	crypto_generichash(r->header_hash, sizeof(r->header_hash), r->map, (size_t)hlen, NULL, 0);
	r->off = (size_t)hlen;
	return r;
fail:
	if (fd >= 0)
		close(fd);
	cfr_segr_close(r);
	errno = error;
	return NULL;
}

const struct cfr_seg_header *cfr_segr_header(const struct cfr_segr *r)
{
	return &r->hdr;
}

static int open_epoch_key(struct cfr_segr *r, const uint8_t *sealed)
{
	if (crypto_box_seal_open(r->key, sealed, CFR_SEG_SEALED_BYTES, r->keypair,
	                         r->keypair + CFR_KEY_BYTES) != 0)
		return -EACCES;
	r->have_key = true;
	return 0;
}

int cfr_segr_unseal(struct cfr_segr *r, const uint8_t pk[CFR_KEY_BYTES],
                    const uint8_t sk[CFR_KEY_BYTES], struct cfr_rec_error *err)
{
	if ((!r->key && !(r->key = sodium_malloc(CFR_SEG_KEY_BYTES))) ||
	    (!r->keypair && !(r->keypair = sodium_malloc(2 * CFR_KEY_BYTES)))) {
		cfr_rec_fail(err, "%s: %s", r->path, strerror(ENOMEM));
		return -ENOMEM;
	}
	memcpy(r->keypair, pk, CFR_KEY_BYTES);
	memcpy(r->keypair + CFR_KEY_BYTES, sk, CFR_KEY_BYTES);
	if (r->hdr.version == 1) {
		if (open_epoch_key(r, r->hdr.sealed_key) == 0)
			return 0;
	} else {
		/* Try the pair on the first block's key now, so a wrong key is named at once. */
		size_t left = r->size - r->off;

		if (left < CFR_FRAME_HEAD + CFR_EPOCH_FRAME || r->map[r->off] != CFR_FRAME_EPOCH ||
		    open_epoch_key(r, r->map + r->off + CFR_FRAME_HEAD) == 0) {
			sodium_memzero(r->key, CFR_SEG_KEY_BYTES);
			r->have_key = false;
			return 0;
		}
	}
	cfr_rec_fail(err,
	             "%s: the %s key does not open with this private key "
	             "(sealed to another key pair, or damaged)",
	             r->path, r->hdr.version == 1 ? "segment" : "first epoch's");
	return -EACCES;
}

/* Is <clen> a possible length for a frame of <type>? */
static bool frame_len_ok(const struct cfr_segr *r, uint8_t type, size_t clen)
{
	if (r->hdr.version == 1)
		return type >= CFR_FRAME_EPOCH && type <= CFR_FRAME_CLOSE &&
		       clen >= CFR_FRAME_TAG && clen <= CFR_FRAME_PLAIN_MAX + CFR_FRAME_TAG;
	switch (type) {
	case CFR_FRAME_EPOCH:
		return clen == CFR_EPOCH_FRAME;
	case CFR_FRAME_RECORD:
		return clen > CFR_FRAME_TAG && clen <= CFR_FRAME_PLAIN_MAX + CFR_FRAME_TAG;
	case CFR_FRAME_EPOCH_END:
		return clen == 12 + CFR_FRAME_TAG;
	case CFR_FRAME_CLOSE:
		return clen == CFR_CLOSE_FRAME_2;
	case CFR_FRAME_JOURNAL:
		return clen >= CFR_JOURNAL_HEAD + CFR_FRAME_TAG &&
		       clen <= CFR_JOURNAL_MAX + CFR_FRAME_TAG;
	default:
		return false;
	}
}

/* The clear head of the frame at r->off: 1 when whole, 0 at the clean end, -EBADMSG when torn. */
static int frame_head(struct cfr_segr *r, uint8_t *type, size_t *clen, struct cfr_rec_error *err)
{
	size_t left = r->size - r->off;

	if (left == 0)
		return 0;
	if (r->closed) {
		cfr_rec_fail(err, "%s: %zu bytes after the close frame at offset %zu", r->path,
		             left, r->off);
		return -EBADMSG;
	}
	if (left < CFR_FRAME_HEAD) {
		cfr_rec_fail(err, "%s: damaged tail: %zu stray bytes at offset %zu", r->path, left,
		             r->off);
		return -EBADMSG;
	}
	*type = r->map[r->off];
	*clen = (size_t)get_le(r->map + r->off + 1, 2);
	if (!frame_len_ok(r, *type, *clen)) {
		cfr_rec_fail(err, "%s: malformed frame %llu at offset %zu (damaged)", r->path,
		             (unsigned long long)r->seq, r->off);
		return -EBADMSG;
	}
	if (left < CFR_FRAME_HEAD + *clen) {
		cfr_rec_fail(err,
		             "%s: damaged tail: frame %llu at offset %zu is torn (%zu of %zu "
		             "bytes)",
		             r->path, (unsigned long long)r->seq, r->off, left,
		             CFR_FRAME_HEAD + *clen);
		return -EBADMSG;
	}
	return 1;
}

static int bad_frame(struct cfr_segr *r, const char *why, struct cfr_rec_error *err)
{
	cfr_rec_fail(err, "%s: frame %llu at offset %zu %s", r->path, (unsigned long long)r->seq,
	             r->off, why);
	return -EBADMSG;
}

/* Decrypt the frame at r->off (<clen> bytes after the head, <skip> of them clear) into r->plain. */
static int open_frame(struct cfr_segr *r, uint8_t type, size_t clen, size_t skip,
                      unsigned long long *plen)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], ad[sizeof(r->header_hash) + 1];

	memcpy(ad, r->header_hash, sizeof(r->header_hash));
	ad[sizeof(r->header_hash)] = type;
	cfr_frame_nonce(r->seq, nonce);
	return crypto_aead_xchacha20poly1305_ietf_decrypt(
	    r->plain, plen, NULL, r->map + r->off + CFR_FRAME_HEAD + skip, clen - skip, ad,
	    sizeof(ad), nonce, r->key);
}

/* A version 2 frame; <it> is zeroed and has type and offset. */
static int next_v2(struct cfr_segr *r, struct cfr_seg_item *it, size_t clen,
                   struct cfr_rec_error *err)
{
	unsigned long long plen;

	switch (it->type) {
	case CFR_FRAME_EPOCH:
		r->seq = 0;
		if (open_epoch_key(r, r->map + r->off + CFR_FRAME_HEAD) < 0 ||
		    open_frame(r, it->type, clen, CFR_SEG_SEALED_BYTES, &plen) != 0)
			return bad_frame(r,
			                 "fails authentication: an epoch key this private key "
			                 "does not open, or damaged",
			                 err);
		if (plen != CFR_EPOCH_PLAIN || get_le(r->plain + 8, 4) != r->blocks)
			return bad_frame(
			    r, "is an epoch out of place (blocks removed or reordered)", err);
		r->blocks++;
		r->in_epoch = true;
		r->epoch = get_le(r->plain, 8);
		r->epoch_start_ms = get_le(r->plain + 12, 8);
		r->epoch_end_ms = r->epoch_start_ms + get_le(r->plain + 20, 4) * 1000;
		break;
	case CFR_FRAME_CLOSE:
		if (get_le(r->map + r->off + CFR_FRAME_HEAD, 4) != r->blocks)
			return bad_frame(r, "is a close frame that does not count the epochs", err);
		r->closed = true;
		break;
	default:
		if (!r->have_key)
			return bad_frame(r, "is outside an epoch", err);
		if (it->type == CFR_FRAME_JOURNAL && r->skip_journal)
			break;
		if (open_frame(r, it->type, clen, 0, &plen) != 0)
			return bad_frame(
			    r, "fails authentication: damaged, tampered with, or out of order",
			    err);
		if (it->type == CFR_FRAME_RECORD &&
		    cfr_record_decode(r->plain, (size_t)plen, r->hdr.cfg.subscriber_prefix6, 2,
		                      &it->rec) < 0)
			return bad_frame(r, "is a malformed record", err);
		if (it->type == CFR_FRAME_JOURNAL) {
			it->flags = r->plain[0];
			it->as_of_ms = get_le(r->plain + 1, 8);
			it->journal = r->plain + CFR_JOURNAL_HEAD;
			it->journal_len = (size_t)plen - CFR_JOURNAL_HEAD;
		}
		if (it->type == CFR_FRAME_EPOCH_END) {
			it->count = (uint32_t)get_le(r->plain, 4);
			it->end_ms = get_le(r->plain + 4, 8);
			r->epoch_end_ms = it->end_ms;
			r->in_epoch = false;
			/* Nothing of this epoch follows: its key goes now. */
			sodium_memzero(r->key, CFR_SEG_KEY_BYTES);
			r->have_key = false;
		}
		break;
	}
	return 0;
}

static int next_v1(struct cfr_segr *r, struct cfr_seg_item *it, size_t clen,
                   struct cfr_rec_error *err)
{
	unsigned long long plen;

	if (open_frame(r, it->type, clen, 0, &plen) != 0)
		return bad_frame(r, "fails authentication: damaged, tampered with, or out of order",
		                 err);
	switch (it->type) {
	case CFR_FRAME_EPOCH:
		if (plen != 24)
			return bad_frame(r, "is a malformed epoch frame", err);
		r->in_epoch = true;
		r->epoch = get_le(r->plain, 8);
		r->epoch_start_ms = get_le(r->plain + 8, 8);
		r->epoch_end_ms = get_le(r->plain + 16, 8);
		break;
	case CFR_FRAME_RECORD:
		if (!r->in_epoch ||
		    cfr_record_decode(r->plain, (size_t)plen, r->hdr.cfg.subscriber_prefix6, 1,
		                      &it->rec) < 0)
			return bad_frame(r, "is a malformed record", err);
		break;
	case CFR_FRAME_EPOCH_END:
		if (!r->in_epoch || plen != 4)
			return bad_frame(r, "is a malformed epoch end", err);
		it->count = (uint32_t)get_le(r->plain, 4);
		it->end_ms = r->epoch_end_ms;
		r->in_epoch = false;
		break;
	default:
		if (plen != 0)
			return bad_frame(r, "is a malformed close frame", err);
		r->closed = true;
		break;
	}
	return 0;
}

int cfr_segr_next(struct cfr_segr *r, struct cfr_seg_item *it, struct cfr_rec_error *err)
{
	size_t clen;
	uint8_t type;
	int ret;

	if (!r->keypair) {
		cfr_rec_fail(err, "%s: segment key not unsealed", r->path);
		return -ENOKEY;
	}
	ret = frame_head(r, &type, &clen, err);
	if (ret <= 0)
		return ret;
	memset(it, 0, sizeof(*it));
	it->type = type;
	it->offset = r->off;
	ret = r->hdr.version == 1 ? next_v1(r, it, clen, err) : next_v2(r, it, clen, err);
	if (ret < 0) {
		sodium_memzero(r->plain, sizeof(r->plain));
		memset(it, 0, sizeof(*it));
		return ret;
	}
	it->rec.epoch = r->epoch;
	it->rec.start_ms = r->epoch_start_ms;
	it->rec.end_ms = r->epoch_end_ms;
	r->off += CFR_FRAME_HEAD + clen;
	r->seq++;
	return 1;
}

int cfr_segr_skip_records(struct cfr_segr *r, struct cfr_rec_error *err)
{
	for (;;) {
		size_t clen;
		uint8_t type;
		int ret = frame_head(r, &type, &clen, err);

		if (ret <= 0)
			return ret;
		/* Version 2 passes the whole block; version 1 stops at its end frame. */
		if (type == CFR_FRAME_EPOCH || type == CFR_FRAME_CLOSE ||
		    (r->hdr.version == 1 && type != CFR_FRAME_RECORD))
			return 0;
		if (type == CFR_FRAME_EPOCH_END) {
			sodium_memzero(r->key, CFR_SEG_KEY_BYTES);
			r->have_key = false;
			r->in_epoch = false;
		}
		r->off += CFR_FRAME_HEAD + clen;
		r->seq++;
	}
}

bool cfr_segr_block_ends(const struct cfr_segr *r)
{
	size_t off = r->off;

	if (r->hdr.version == 1)
		return true;
	while (r->size - off >= CFR_FRAME_HEAD) {
		uint8_t type = r->map[off];
		size_t clen = (size_t)get_le(r->map + off + 1, 2);

		if (type == CFR_FRAME_EPOCH_END)
			return true;
		if (type == CFR_FRAME_EPOCH || type == CFR_FRAME_CLOSE ||
		    !frame_len_ok(r, type, clen))
			return false;
		off += CFR_FRAME_HEAD + clen;
	}
	return false;
}

void cfr_segr_skip_journal(struct cfr_segr *r, bool skip)
{
	r->skip_journal = skip;
}

bool cfr_segr_closed(const struct cfr_segr *r)
{
	return r->closed;
}

void cfr_segr_close(struct cfr_segr *r)
{
	if (!r)
		return;
	if (r->map)
		munmap((void *)(uintptr_t)r->map, r->size);
	if (r->key)
		sodium_free(r->key);
	if (r->keypair)
		sodium_free(r->keypair);
	sodium_memzero(r->plain, sizeof(r->plain));
	free(r->path);
	free(r);
}
