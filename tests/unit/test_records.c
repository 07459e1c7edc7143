/*
 * Sealed record segments: what cfrd writes is what cfr-lookup reads, only
 * with the right private key; any changed byte is detected; a torn tail
 * loses only the frames it tears; no identity appears in clear; retention
 * deletes exactly the segments whose end is older than the retention.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/records/records.h"
#include "lab.h"

/* 2026-01-01T00:00:00Z: wall clock of engine time 0 in these tests. */
#define WALL0 1767225600000ull

struct fixture {
	char dir[64];
	uint8_t pk[CFR_KEY_BYTES], sk[CFR_KEY_BYTES];
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct cfr_recw *w;
	struct cfr_recw_config wcfg;
	uint8_t *file;
	size_t size;
	char path[512];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cfr-test-records-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	crypto_box_keypair(f->pk, f->sk);
	lab_config(&f->cfg);
	f->cfg.limits = (struct cfr_limits){0};
	f->eng = lab_engine(&f->cfg);
	f->wcfg = (struct cfr_recw_config){
	    .dir = f->dir, .segment_s = 3600, .retention_s = 86400, .engine = &f->cfg};
	memcpy(f->wcfg.public_key, f->pk, CFR_KEY_BYTES);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct dirent *de;
	DIR *d = opendir(f->dir);

	while (d && (de = readdir(d)) != NULL) {
		char p[512];

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	cfr_recw_free(f->w);
	cfr_engine_free(f->eng);
	free(f->file);
	free(f);
	return 0;
}

static void open_writer(struct fixture *f, uint64_t wall_ms)
{
	struct cfr_rec_error err;

	f->w = cfr_recw_new(&f->wcfg, wall_ms, &err);
	if (!f->w)
		fail_msg("cfr_recw_new: %s", err.msg);
}

/* One epoch in which <n4> IPv4 subscribers and one IPv6 subscriber open <flows> flows each. */
static void run_epoch(struct fixture *f, uint64_t t0, unsigned n4, unsigned flows)
{
	for (unsigned i = 0; i < flows; i++) {
		for (unsigned s = 0; s <= n4; s++) {
			int fam = s == n4 ? 6 : 4;
			struct pkt_spec sp;
			struct pkt out;
			struct cfr_pkt r;

			/* New source ports per epoch: a flow that continues keeps its alias and
			 * draws nothing. */
			lab_spec(&sp, fam, IPPROTO_UDP, (uint16_t)(30000 + t0 / 100 + i), 443);
			if (fam == 4)
				sp.src[2] = (uint8_t)(1 + s);
			r = lab_send(f->eng, &sp, &out, t0 + i * 700 + s);
			lab_expect_forward(&r, CFR_DIR_OUT);
		}
	}
	cfr_engine_epoch_rotate(f->eng, t0 + flows * 700 + 1000);
	assert_int_equal(cfr_recw_drain(f->w, f->eng, 1000, t0 + flows * 700 + 1000,
	                                WALL0 + t0 + flows * 700 + 1000),
	                 0);
}

static void load_only_segment(struct fixture *f)
{
	struct dirent *de;
	DIR *d = opendir(f->dir);
	unsigned n = 0;
	FILE *fp;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strstr(de->d_name, CFR_SEG_SUFFIX)) {
			snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, de->d_name);
			n++;
		}
	}
	closedir(d);
	assert_int_equal(n, 1);
	fp = fopen(f->path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	f->size = (size_t)ftell(fp);
	rewind(fp);
	f->file = malloc(f->size);
	assert_int_equal(fread(f->file, 1, f->size, fp), f->size);
	fclose(fp);
}

/* A segment of two epochs with 3+1 and 2+1 subscribers, closed cleanly. */
static void make_segment(struct fixture *f)
{
	open_writer(f, WALL0);
	run_epoch(f, 1000, 3, 5);
	run_epoch(f, 20000, 2, 3);
	cfr_recw_free(f->w);
	f->w = NULL;
	load_only_segment(f);
}

struct walk {
	unsigned epochs, records, ends, closes;
	int end;   /* what cfr_segr_next returned last: 0 or -errno */
	int stage; /* 0 opened and unsealed, -1 open failed, -2 unseal failed */
};

static struct walk walk_file(const char *path, const uint8_t *pk, const uint8_t *sk)
{
	struct walk w = {0};
	struct cfr_rec_error err;
	struct cfr_seg_item it;
	struct cfr_segr *r = cfr_segr_open(path, &err);

	if (!r) {
		w.stage = -1;
		return w;
	}
	if (cfr_segr_unseal(r, pk, sk, &err) < 0) {
		w.stage = -2;
		cfr_segr_close(r);
		return w;
	}
	while ((w.end = cfr_segr_next(r, &it, &err)) == 1) {
		w.epochs += it.type == CFR_FRAME_EPOCH;
		w.records += it.type == CFR_FRAME_RECORD;
		w.ends += it.type == CFR_FRAME_EPOCH_END;
		w.closes += it.type == CFR_FRAME_CLOSE;
	}
	cfr_segr_close(r);
	return w;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

static void round_trip(void **state)
{
	struct fixture *f = *state;
	struct cfr_rec_error err;
	struct cfr_seg_item it;
	struct cfr_segr *r;
	unsigned records = 0, ends = 0;
	uint64_t prev_end = 0;

	make_segment(f);
	r = cfr_segr_open(f->path, &err);
	assert_non_null(r);
	/* The header carries what lookup needs to regenerate allocations. */
	assert_int_equal(cfr_segr_header(r)->cfg.n_pool4, 1);
	assert_memory_equal(&cfr_segr_header(r)->cfg.pool4[0], &f->cfg.pool4[0],
	                    sizeof(struct cfr_prefix));
	assert_memory_equal(&cfr_segr_header(r)->cfg.pool6[0], &f->cfg.pool6[0],
	                    sizeof(struct cfr_prefix));
	assert_int_equal(cfr_segr_header(r)->cfg.port_min, f->cfg.port_min);
	assert_int_equal(cfr_segr_header(r)->cfg.port_max, f->cfg.port_max);
	assert_int_equal(cfr_segr_header(r)->start_ms, WALL0 + 1000 + 5 * 700 + 1000);
	assert_int_equal(cfr_segr_unseal(r, f->pk, f->sk, &err), 0);
	while (cfr_segr_next(r, &it, &err) == 1) {
		if (it.type == CFR_FRAME_EPOCH) {
			/* Engine time mapped to the wall clock. */
			assert_true(it.rec.start_ms >= WALL0 + prev_end);
			assert_true(it.rec.end_ms > it.rec.start_ms);
			prev_end = it.rec.end_ms - WALL0;
		} else if (it.type == CFR_FRAME_RECORD) {
			records++;
			/* Five flows each in the first epoch, three in the second. */
			assert_int_equal(it.rec.counter, it.rec.epoch == 1 ? 5 : 3);
			if (it.rec.family == CFR_FAMILY_V4)
				assert_int_equal(it.rec.subscriber[0], 100);
			else
				assert_memory_equal(it.rec.subscriber, lab_sub(6), 8);
		} else if (it.type == CFR_FRAME_EPOCH_END) {
			ends++;
			assert_int_equal(it.count, ends == 1 ? 4 : 3);
		}
	}
	assert_int_equal(records, 7);
	assert_int_equal(ends, 2);
	assert_true(cfr_segr_closed(r));
	cfr_segr_close(r);
}

static void wrong_key_fails(void **state)
{
	struct fixture *f = *state;
	uint8_t pk2[CFR_KEY_BYTES], sk2[CFR_KEY_BYTES];
	struct walk w;

	make_segment(f);
	crypto_box_keypair(pk2, sk2);
	w = walk_file(f->path, pk2, sk2);
	assert_int_equal(w.stage, -2);
	w = walk_file(f->path, f->pk, f->sk);
	assert_int_equal(w.stage, 0);
	assert_int_equal(w.records, 7);
}

/* Flip each bit of each byte in turn: every change is caught somewhere. */
static void tampering_detected(void **state)
{
	struct fixture *f = *state;
	char path[160];

	make_segment(f);
	snprintf(path, sizeof(path), "%s/tampered", f->dir);
	for (size_t i = 0; i < f->size; i++) {
		for (unsigned bit = 0; bit < 8; bit += 3) {
			struct walk w;

			f->file[i] ^= (uint8_t)(1u << bit);
			write_file(path, f->file, f->size);
			f->file[i] ^= (uint8_t)(1u << bit);
			w = walk_file(path, f->pk, f->sk);
			if (w.stage == 0 && w.end == 0)
				fail_msg("bit %u of byte %zu of %zu changed undetected", bit, i,
				         f->size);
		}
	}
	unlink(path);
}

/*
 * Cut the file at every length: the frames wholly before the cut are read,
 * the torn one is reported, and a cut on a frame boundary reads cleanly but
 * without the close frame.
 */
static void damaged_tail(void **state)
{
	struct fixture *f = *state;
	struct walk full;
	char path[160];
	unsigned prev_records = 0;

	make_segment(f);
	full = walk_file(f->path, f->pk, f->sk);
	assert_int_equal(full.end, 0);
	assert_int_equal(full.closes, 1);
	snprintf(path, sizeof(path), "%s/cut", f->dir);
	for (size_t len = 0; len < f->size; len++) {
		struct walk w;

		write_file(path, f->file, len);
		w = walk_file(path, f->pk, f->sk);
		if (w.stage == -1)
			continue; /* the header itself is cut */
		assert_int_equal(w.stage, 0);
		assert_int_equal(w.closes, 0);
		/* Records only ever appear, never vanish, as the cut moves on. */
		assert_true(w.records >= prev_records);
		assert_true(w.records <= full.records);
		prev_records = w.records;
		if (w.end == 0)
			continue; /* a frame boundary */
		assert_int_equal(w.end, -EBADMSG);
	}
	assert_int_equal(prev_records, full.records);
	unlink(path);
}

static bool contains(const uint8_t *hay, size_t n, const void *needle, size_t len)
{
	for (size_t i = 0; i + len <= n; i++)
		if (memcmp(hay + i, needle, len) == 0)
			return true;
	return false;
}

/* Subscriber and remote addresses appear nowhere, in binary or text form. */
static void no_identity_in_clear(void **state)
{
	struct fixture *f = *state;
	const int fams[2] = {4, 6};

	make_segment(f);
	for (int k = 0; k < 2; k++) {
		const uint8_t *addrs[4] = {lab_sub(fams[k]), lab_sub2(fams[k]),
		                           lab_remote(fams[k])};
		size_t alen = fams[k] == 4 ? 4 : 16;

		for (int a = 0; a < 3; a++) {
			char text[INET6_ADDRSTRLEN];

			assert_false(contains(f->file, f->size, addrs[a], alen));
			if (fams[k] == 6)
				assert_false(contains(f->file, f->size, addrs[a], 8));
			inet_ntop(fams[k] == 4 ? AF_INET : AF_INET6, addrs[a], text, sizeof(text));
			assert_false(contains(f->file, f->size, text, strlen(text)));
		}
	}
}

/* A segment is created per period; each is complete and readable on its own. */
static void segments_rotate(void **state)
{
	struct fixture *f = *state;
	struct dirent *de;
	DIR *d;
	unsigned n = 0, records = 0;

	f->wcfg.segment_s = 10;
	open_writer(f, WALL0);
	run_epoch(f, 1000, 1, 2);  /* segment 1 starts at ~3.4 s */
	run_epoch(f, 6000, 1, 2);  /* ~8.4 s: still segment 1 */
	run_epoch(f, 20000, 1, 2); /* ~22.4 s: segment 2 */
	run_epoch(f, 40000, 1, 2); /* ~42.4 s: segment 3 */
	cfr_recw_free(f->w);
	f->w = NULL;
	d = opendir(f->dir);
	while ((de = readdir(d)) != NULL) {
		char p[512];
		struct walk w;

		if (!strstr(de->d_name, CFR_SEG_SUFFIX))
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
		w = walk_file(p, f->pk, f->sk);
		assert_int_equal(w.end, 0);
		assert_int_equal(w.closes, 1);
		assert_int_equal(w.epochs, w.ends);
		records += w.records;
		n++;
	}
	closedir(d);
	assert_int_equal(n, 3);
	assert_int_equal(records, 8);
}

static void make_header_file(const char *dir, const char *name, uint64_t start_ms,
                             uint32_t period_s)
{
	struct cfr_seg_header h = {.start_ms = start_ms, .period_s = period_s, .epoch_s = 600};
	uint8_t buf[CFR_SEG_HEADER_MAX];
	char path[256];
	int len;

	lab_config(&h.cfg);
	len = cfr_seg_header_encode(&h, buf, sizeof(buf));
	assert_true(len > 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	write_file(path, buf, (size_t)len);
}

static bool exists(const char *dir, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/* Retention deletes exactly the segments whose start + period + retention has passed. */
static void retention_exact(void **state)
{
	struct fixture *f = *state;
	struct cfr_rec_error err = {{0}};
	const uint64_t now = WALL0 + 100000 * 1000ull;
	const uint32_t retention = 1000;
	unsigned deleted;

	/* end = start + 60 s; expired iff end + 1000 s <= now */
	make_header_file(f->dir, "a.seg", now - 1060 * 1000ull - 1, 60); /* expired */
	make_header_file(f->dir, "b.seg", now - 1060 * 1000ull, 60);     /* exactly due */
	make_header_file(f->dir, "c.seg", now - 1060 * 1000ull + 1, 60); /* 1 ms short */
	make_header_file(f->dir, "d.seg", now - 10 * 1000ull, 60);       /* recent */
	make_header_file(f->dir, "notes.txt", 0, 60);                    /* not ours */
	{
		char p[512];

		snprintf(p, sizeof(p), "%s/junk.seg", f->dir);
		write_file(p, (const uint8_t *)"not a segment", 13);
	}
	assert_int_equal(cfr_records_expire(f->dir, now, retention, &deleted, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "junk.seg"));
	assert_int_equal(deleted, 2);
	assert_false(exists(f->dir, "a.seg"));
	assert_false(exists(f->dir, "b.seg"));
	assert_true(exists(f->dir, "c.seg"));
	assert_true(exists(f->dir, "d.seg"));
	assert_true(exists(f->dir, "notes.txt"));
	assert_true(exists(f->dir, "junk.seg"));
}

/* The writer applies retention when it starts. */
static void retention_at_start(void **state)
{
	struct fixture *f = *state;

	make_header_file(f->dir, "old.seg", WALL0, 3600);
	make_header_file(f->dir, "new.seg", WALL0 + 90000 * 1000ull, 3600);
	f->wcfg.retention_s = 3600;
	open_writer(f, WALL0 + 7200 * 1000ull);
	assert_false(exists(f->dir, "old.seg"));
	assert_true(exists(f->dir, "new.seg"));
	assert_int_equal(cfr_recw_stats(f->w)->segments_deleted, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(wrong_key_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(tampering_detected, setup, teardown),
	    cmocka_unit_test_setup_teardown(damaged_tail, setup, teardown),
	    cmocka_unit_test_setup_teardown(no_identity_in_clear, setup, teardown),
	    cmocka_unit_test_setup_teardown(segments_rotate, setup, teardown),
	    cmocka_unit_test_setup_teardown(retention_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(retention_at_start, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
