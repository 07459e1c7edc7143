/*
 * The segment reader: cfr-lookup's side of the sealed records.
 *
 * The file is mapped read-only and walked frame by frame. Every frame is
 * authenticated before anything in it is believed; the first frame that is
 * torn or fails stops the walk with an error naming its offset, and every
 * item returned before it stays valid (a crash tears at most the tail).
 * Record frames of epochs outside a complaint's window are passed over by
 * their clear lengths without decrypting, which keeps a lookup proportional
 * to the epochs it needs.
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
	uint8_t *key; /* sodium_malloc; NULL until unsealed */
	uint64_t seq;
	bool closed, in_epoch;
	uint64_t epoch, epoch_start_ms, epoch_end_ms;
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

int cfr_segr_unseal(struct cfr_segr *r, const uint8_t pk[CFR_KEY_BYTES],
                    const uint8_t sk[CFR_KEY_BYTES], struct cfr_rec_error *err)
{
	if (!r->key && !(r->key = sodium_malloc(CFR_SEG_KEY_BYTES))) {
		cfr_rec_fail(err, "%s: %s", r->path, strerror(ENOMEM));
		return -ENOMEM;
	}
	if (crypto_box_seal_open(r->key, r->hdr.sealed_key, CFR_SEG_SEALED_BYTES, pk, sk) != 0) {
		cfr_rec_fail(err,
		             "%s: the segment key does not open with this private key "
		             "(sealed to another key pair, or the header is damaged)",
		             r->path);
		return -EACCES;
	}
	return 0;
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
	if (*type < CFR_FRAME_EPOCH || *type > CFR_FRAME_CLOSE || *clen < CFR_FRAME_TAG ||
	    *clen > CFR_FRAME_PLAIN_MAX + CFR_FRAME_TAG) {
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

int cfr_segr_next(struct cfr_segr *r, struct cfr_seg_item *it, struct cfr_rec_error *err)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], ad[sizeof(r->header_hash) + 1];
	uint8_t plain[CFR_FRAME_PLAIN_MAX];
	unsigned long long plen;
	size_t clen;
	uint8_t type;
	int ret;

	if (!r->key) {
		cfr_rec_fail(err, "%s: segment key not unsealed", r->path);
		return -ENOKEY;
	}
	ret = frame_head(r, &type, &clen, err);
	if (ret <= 0)
		return ret;
	memcpy(ad, r->header_hash, sizeof(r->header_hash));
	ad[sizeof(r->header_hash)] = type;
	cfr_frame_nonce(r->seq, nonce);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL,
	                                               r->map + r->off + CFR_FRAME_HEAD, clen, ad,
	                                               sizeof(ad), nonce, r->key) != 0)
		return bad_frame(r, "fails authentication: damaged, tampered with, or out of order",
		                 err);
	memset(it, 0, sizeof(*it));
	it->type = type;
	it->offset = r->off;
	switch (type) {
	case CFR_FRAME_EPOCH:
		if (plen != 24)
			return bad_frame(r, "is a malformed epoch frame", err);
		r->in_epoch = true;
		r->epoch = get_le(plain, 8);
		r->epoch_start_ms = get_le(plain + 8, 8);
		r->epoch_end_ms = get_le(plain + 16, 8);
		break;
	case CFR_FRAME_RECORD:
		if (!r->in_epoch ||
		    cfr_record_decode(plain, (size_t)plen, r->hdr.cfg.subscriber_prefix6,
		                      &it->rec) < 0) {
			sodium_memzero(plain, sizeof(plain));
			return bad_frame(r, "is a malformed record", err);
		}
		break;
	case CFR_FRAME_EPOCH_END:
		if (!r->in_epoch || plen != 4)
			return bad_frame(r, "is a malformed epoch end", err);
		it->count = (uint32_t)get_le(plain, 4);
		r->in_epoch = false;
		break;
	default:
		if (plen != 0)
			return bad_frame(r, "is a malformed close frame", err);
		r->closed = true;
		break;
	}
	sodium_memzero(plain, sizeof(plain));
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

		if (ret <= 0 || type != CFR_FRAME_RECORD)
			return ret < 0 ? ret : 0;
		r->off += CFR_FRAME_HEAD + clen;
		r->seq++;
	}
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
	free(r->path);
	free(r);
}
