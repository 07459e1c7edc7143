/*
 * An engine's state in a file, for a restart's handover (handover.c): the
 * header at the start, then each table of cfr_engine_state_regions() on
 * pages of its own. Untouched tables are mostly zero pages: only chunks
 * with data are written and the rest stay holes, which the reader skips
 * with SEEK_DATA, so a large, lightly used table costs what it holds. The
 * file is a memfd: the state holds the epoch's secrets and must never
 * reach a disk.
 */
#include "state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Holes and data are tracked per page; a run of data is written in one call. */
#define CHUNK 4096u

struct layout {
	struct cfr_state_region r[CFR_STATE_REGIONS_MAX];
	uint64_t off[CFR_STATE_REGIONS_MAX];
	unsigned n;
	uint64_t size;
};

static uint64_t round_chunk(uint64_t n)
{
	return (n + CHUNK - 1) & ~(uint64_t)(CHUNK - 1);
}

/* Where each region lies in the memfd: after the header, each on a page of its own. */
static void layout_of(struct cfr_engine *eng, struct layout *l)
{
	uint64_t off = round_chunk(cfr_engine_state_header_size());

	l->n = cfr_engine_state_regions(eng, l->r);
	for (unsigned i = 0; i < l->n; i++) {
		l->off[i] = off;
		off = round_chunk(off + l->r[i].len);
	}
	l->size = off;
}

/* All <len> bytes at <off>, written from <p> (<out>) or read into it; -EIO on a short file. */
static int transfer_all(int fd, uint8_t *p, size_t len, uint64_t off, bool out)
{
	while (len > 0) {
		ssize_t n = out ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

/* A region's chunks that hold data, in runs; zero chunks stay holes. */
static int write_region(int fd, const struct cfr_state_region *r, uint64_t off, uint64_t *data)
{
	uint8_t *p = r->data;
	size_t at = 0;

	while (at < r->len) {
		size_t run = 0;
		int ret;

		while (at + run < r->len) {
			size_t n = r->len - at - run < CHUNK ? r->len - at - run : CHUNK;

			if (all_zero(p + at + run, n))
				break;
			run += n;
		}
		if (run > 0) {
			ret = transfer_all(fd, p + at, run, off + at, true);
			if (ret < 0)
				return ret;
			*data += run;
			at += run;
		} else {
			at += CHUNK;
		}
	}
	return 0;
}

int cfrd_state_write(struct cfr_engine *eng, int fd, struct cfrd_state_size *size)
{
	size_t hsize = cfr_engine_state_header_size();
	uint8_t *hdr = malloc(hsize);
	struct layout l;
	int ret;

	if (!hdr)
		return -ENOMEM;
	cfr_engine_state_header(eng, hdr);
	ret = transfer_all(fd, hdr, hsize, 0, true);
	size->data = hsize;
	sodium_memzero(hdr, hsize);
	free(hdr);
	layout_of(eng, &l);
	for (unsigned i = 0; ret == 0 && i < l.n; i++)
		ret = write_region(fd, &l.r[i], l.off[i], &size->data);
	if (ret == 0 &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		ret = -errno;
	size->image = l.size;
	return ret;
}

/* Read what the region has of data; holes stay the zeros the new engine has. */
static int read_region(int fd, const struct cfr_state_region *r, uint64_t off, uint64_t size)
{
	uint64_t pos = off, end = off + r->len < size ? off + r->len : size;

	while (pos < end) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA), hole;
		int ret;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno;
		if ((uint64_t)data >= end)
			return 0;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if ((uint64_t)hole > end)
			hole = (off_t)end;
		ret = transfer_all(fd, (uint8_t *)r->data + ((uint64_t)data - off),
		                   (size_t)(hole - data), (uint64_t)data, false);
		if (ret < 0)
			return ret;
		pos = (uint64_t)hole;
	}
	return 0;
}

struct cfr_engine *cfrd_state_read(int memfd, uint64_t size, const char **why)
{
	size_t hsize = cfr_engine_state_header_size();
	uint8_t *hdr = malloc(hsize);
	struct cfr_engine *eng = NULL;
	struct layout l;
	int ret = 0;

	*why = "out of memory";
	if (!hdr)
		return NULL;
	*why = "the state is shorter than its header";
	if (size >= hsize && transfer_all(memfd, hdr, hsize, 0, false) == 0)
		eng = cfr_engine_from_state(hdr, why);
	sodium_memzero(hdr, hsize);
	free(hdr);
	if (!eng)
		return NULL;
	layout_of(eng, &l);
	if (l.size != size) {
		*why = "the state's size is not what its header says";
		ret = -EINVAL;
	}
	for (unsigned i = 0; ret == 0 && i < l.n; i++) {
		ret = read_region(memfd, &l.r[i], l.off[i], size);
		if (ret < 0)
			*why = "cannot read the state";
	}
	if (ret == 0)
		ret = cfr_engine_state_check(eng, why);
	if (ret < 0) {
		cfr_engine_free(eng);
		return NULL;
	}
	return eng;
}
