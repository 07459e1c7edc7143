/*
 * Sealed record segments: what cfrd writes is what cfr-lookup reads, only
 * with the right private key; any changed byte is detected; a torn tail
 * loses only the frames it tears; no identity appears in clear; retention
 * deletes exactly the segments whose end is older than the retention.
 *
 * Write-ahead: the journal written every second answers complaints about
 * an epoch that never ended (a crash image of the file), at every cut of
 * its tail either rightly or with a warning, never wrongly or silently;
 * each epoch has a key of its own; a writer that cannot write (a file
 * size limit standing in for a full disk, the directory removed, a public
 * key others may write) is degraded, leaves the engine's state alone, and
 * catches up when it can. Version 1 segments stay readable.
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
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/records/records.h"
#include "../../src/tools/lookup/search.h"
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
			assert_true(it.end_ms > it.rec.start_ms);
			prev_end = it.end_ms - WALL0;
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

/* --- write-ahead journal ------------------------------------------------ */

/* One flow the engine translated: what the front door saw, and who it was. */
struct flow {
	int family;
	uint8_t sub[16];
	uint8_t alias[16];
	uint16_t port;
	uint64_t t; /* engine ms */
};

#define MAX_FLOWS 256

struct traffic {
	struct flow flows[MAX_FLOWS];
	unsigned n;
};

/* The allocation the engine gave: source address and port of the translated packet. */
static void translated(const struct pkt *p, uint8_t alias[16], uint16_t *port)
{
	size_t l4;

	memset(alias, 0, 16);
	if ((p->data[0] >> 4) == 4) {
		memcpy(alias, p->data + 12, 4);
		l4 = (size_t)(p->data[0] & 15) * 4;
	} else {
		memcpy(alias, p->data + 8, 16);
		l4 = 40;
	}
	*port = (uint16_t)(p->data[l4] << 8 | p->data[l4 + 1]);
}

/* A new UDP flow from subscriber <line> (IPv4 100.64.line.x, or IPv6) at engine time <t>. */
static void open_flow(struct fixture *f, struct traffic *tr, int fam, uint8_t line, uint64_t t)
{
	static uint16_t sport = 20000;
	struct flow *fl = &tr->flows[tr->n++];
	struct pkt_spec sp;
	struct pkt out;
	struct cfr_pkt r;

	assert_true(tr->n <= MAX_FLOWS);
	lab_spec(&sp, fam, IPPROTO_UDP, sport++, 443);
	if (fam == 4)
		sp.src[2] = line;
	else
		sp.src[6] = line; /* 2001:db8:100:LINE00::/56: a subscriber of its own */
	r = lab_send(f->eng, &sp, &out, t);
	lab_expect_forward(&r, CFR_DIR_OUT);
	*fl = (struct flow){.family = fam, .t = t};
	memcpy(fl->sub, sp.src, 16);
	translated(&out, fl->alias, &fl->port);
}

/* cfrd's writer thread, once a second: the journal is taken, sealed, written. */
static void tick(struct fixture *f, uint64_t t)
{
	cfr_recw_drain(f->w, f->eng, UINT32_MAX, t, WALL0 + t);
}

/* <sec> seconds of traffic from two IPv4 subscribers and one IPv6, a tick each second. */
static void run_seconds(struct fixture *f, struct traffic *tr, uint64_t t0, unsigned secs)
{
	for (unsigned sec = 0; sec < secs; sec++) {
		uint64_t t = t0 + sec * 1000ull;

		open_flow(f, tr, 4, 1, t + 10);
		if (sec % 2 == 0)
			open_flow(f, tr, 4, 2, t + 20);
		if (sec % 3 == 0)
			open_flow(f, tr, 6, 3, t + 30);
		tick(f, t + 500);
	}
}

struct answer {
	int found; /* candidates naming the flow's subscriber */
	int wrong; /* candidates naming anyone else */
	size_t warnings;
};

/* cfr-lookup's search over <dir> for the complaint about <fl>, with a tolerance of 1 s. */
static struct answer ask(struct fixture *f, const char *dir, const struct flow *fl)
{
	struct lookup_query q = {.dir = dir};
	struct lookup_result res;
	struct cfr_rec_error err;
	struct answer a = {0};
	int ret;

	memcpy(q.pk, f->pk, CFR_KEY_BYTES);
	memcpy(q.sk, f->sk, CFR_KEY_BYTES);
	q.c.family = fl->family == 4 ? CFR_FAMILY_V4 : CFR_FAMILY_V6;
	memcpy(q.c.alias, fl->alias, 16);
	q.c.port = fl->port;
	q.c.from_ms = WALL0 + fl->t - 1000;
	q.c.to_ms = WALL0 + fl->t + 1000;
	ret = lookup_search(&q, &res, &err);
	if (ret < 0)
		fail_msg("lookup: %s", err.msg);
	for (size_t i = 0; i < res.n_cand; i++) {
		/* The IPv6 identity is the /56 (the engine's default): compare that much. */
		size_t n = fl->family == 4 ? 4 : 7;

		if (memcmp(res.cand[i].subscriber, fl->sub, n) == 0)
			a.found++;
		else
			a.wrong++;
	}
	a.warnings = res.n_warnings;
	lookup_result_free(&res);
	return a;
}

/* The one segment in f->dir, copied as it is now into <dir>/<name>: what a kill -9 leaves. */
static void crash_image(struct fixture *f, char *dir, size_t size)
{
	snprintf(dir, size, "%s/crash", f->dir);
	mkdir(dir, 0700);
	load_only_segment(f);
	snprintf(f->path, sizeof(f->path), "%s/image.seg", dir);
	write_file(f->path, f->file, f->size);
}

static void remove_dir(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	while (d && (de = readdir(d)) != NULL) {
		char p[600];

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

/*
 * Twelve seconds of traffic, then the file as a kill -9 would leave it:
 * every flow is named, and only its subscriber; only complaints reaching
 * past the last checkpoint (11.5 s) come with a warning. The epoch then
 * ends normally, and its final records answer the same.
 */
static void journal_answers_after_crash(void **state)
{
	struct fixture *f = *state;
	struct traffic tr = {0};
	char crash[128];

	open_writer(f, WALL0);
	run_seconds(f, &tr, 1000, 12);
	crash_image(f, crash, sizeof(crash));
	assert_true(cfr_recw_stats(f->w)->checkpoints >= 11);
	for (unsigned i = 0; i < tr.n; i++) {
		struct answer a = ask(f, crash, &tr.flows[i]);

		assert_int_equal(a.wrong, 0);
		assert_int_equal(a.found, 1);
		if (tr.flows[i].t + 1000 + 1000 <= 1000 + 11 * 1000 + 500)
			assert_int_equal(a.warnings, 0);
	}
	/* A flow after the crash image is not in it, and the answer says "cannot tell". */
	open_flow(f, &tr, 4, 1, 13400);
	{
		struct answer a = ask(f, crash, &tr.flows[tr.n - 1]);

		assert_int_equal(a.found + a.wrong, 0);
		assert_true(a.warnings > 0);
	}
	remove_dir(crash);
	/*
	 * The epoch ends, cfrd stops cleanly: the final records supersede the
	 * journal, same answers, and no warning (a segment still open would warn
	 * about complaints reaching past its last second).
	 */
	cfr_engine_epoch_rotate(f->eng, 15000);
	assert_int_equal(cfr_recw_drain(f->w, f->eng, UINT32_MAX, 15000, WALL0 + 15000), 0);
	cfr_recw_free(f->w);
	f->w = NULL;
	for (unsigned i = 0; i < tr.n; i++) {
		struct answer a = ask(f, f->dir, &tr.flows[i]);

		assert_int_equal(a.wrong, 0);
		assert_int_equal(a.found, 1);
		assert_int_equal(a.warnings, 0);
	}
}

/*
 * Cut the crash image at every length: each complaint is either answered
 * with its subscriber alone or comes with a warning; never a wrong name,
 * never a silent "no match"; and more file never answers less.
 */
static void journal_torn_tail(void **state)
{
	struct fixture *f = *state;
	struct traffic tr = {0};
	char crash[128], cut[300];
	unsigned prev_found = 0;
	uint8_t *image;
	size_t size;

	open_writer(f, WALL0);
	run_seconds(f, &tr, 1000, 6);
	crash_image(f, crash, sizeof(crash));
	image = f->file;
	size = f->size;
	f->file = NULL;
	unlink(f->path);
	snprintf(cut, sizeof(cut), "%s/cut.seg", crash);
	for (size_t len = 0; len <= size; len++) {
		unsigned found = 0;

		write_file(cut, image, len);
		for (unsigned i = 0; i < tr.n; i++) {
			struct answer a = ask(f, crash, &tr.flows[i]);

			assert_int_equal(a.wrong, 0);
			if (a.found == 0 && a.warnings == 0)
				fail_msg("cut at %zu of %zu: flow %u missed without a warning", len,
				         size, i);
			found += a.found > 0;
		}
		assert_true(found >= prev_found);
		prev_found = found;
	}
	assert_int_equal(prev_found, tr.n);
	free(image);
	remove_dir(crash);
}

/* Each epoch's frames open with that epoch's key only; the keys differ. */
static void key_per_epoch(void **state)
{
	struct fixture *f = *state;
	struct traffic tr = {0};
	uint8_t keys[3][CFR_SEG_KEY_BYTES];
	size_t off[3];
	unsigned n = 0;
	size_t hlen, pos;
	struct cfr_seg_header h;

	open_writer(f, WALL0);
	run_seconds(f, &tr, 1000, 2);
	cfr_engine_epoch_rotate(f->eng, 4000);
	run_seconds(f, &tr, 4000, 2);
	cfr_engine_epoch_rotate(f->eng, 7000);
	run_seconds(f, &tr, 7000, 2);
	cfr_engine_epoch_rotate(f->eng, 10000);
	tick(f, 10000);
	cfr_recw_free(f->w);
	f->w = NULL;
	load_only_segment(f);
	hlen = (size_t)cfr_seg_header_decode(f->file, f->size, &h);
	assert_int_equal(h.version, 2);
	for (pos = hlen; pos + CFR_FRAME_HEAD <= f->size;) {
		size_t clen = (size_t)f->file[pos + 1] | (size_t)f->file[pos + 2] << 8;

		if (f->file[pos] == CFR_FRAME_EPOCH) {
			assert_true(n < 3);
			assert_int_equal(crypto_box_seal_open(keys[n],
			                                      f->file + pos + CFR_FRAME_HEAD,
			                                      CFR_SEG_SEALED_BYTES, f->pk, f->sk),
			                 0);
			off[n++] = pos;
		}
		pos += CFR_FRAME_HEAD + clen;
	}
	assert_int_equal(n, 3);
	assert_memory_not_equal(keys[0], keys[1], CFR_SEG_KEY_BYTES);
	assert_memory_not_equal(keys[1], keys[2], CFR_SEG_KEY_BYTES);
	/* The second frame of block 1 (a journal) opens with key 1 and not with key 0 or 2. */
	for (unsigned k = 0; k < 3; k++) {
		uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], ad[33], plain[4096];
		uint8_t hh[32];
		size_t p = off[1] + CFR_FRAME_HEAD + CFR_EPOCH_FRAME;
		size_t clen = (size_t)f->file[p + 1] | (size_t)f->file[p + 2] << 8;
		unsigned long long plen;

		crypto_generichash(hh, sizeof(hh), f->file, hlen, NULL, 0);
		memcpy(ad, hh, 32);
		ad[32] = f->file[p];
		cfr_frame_nonce(1, nonce);
		assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
		                     plain, &plen, NULL, f->file + p + CFR_FRAME_HEAD, clen, ad,
		                     sizeof(ad), nonce, keys[k]) == 0,
		                 k == 1);
	}
	sodium_memzero(keys, sizeof(keys));
}

/* Every flow, asked of f->dir: its subscriber alone. */
static void expect_all_answered(struct fixture *f, const struct traffic *tr)
{
	for (unsigned i = 0; i < tr->n; i++) {
		struct answer a = ask(f, f->dir, &tr->flows[i]);

		if (a.wrong || a.found != 1)
			fail_msg("flow %u at %llu: %d right, %d wrong", i,
			         (unsigned long long)tr->flows[i].t, a.found, a.wrong);
	}
}

/*
 * A write that fails (RLIMIT_FSIZE: EFBIG, as a full disk gives ENOSPC):
 * degraded, counted, the engine keeps forwarding and keeps its state; once
 * writes work again the journal starts over in a new segment and every
 * flow, those of the outage included, is answered.
 */
static void full_disk_catches_up(void **state)
{
	struct fixture *f = *state;
	struct traffic tr = {0};
	struct rlimit old, small;
	const struct cfr_recw_stats *st;

	signal(SIGXFSZ, SIG_IGN);
	open_writer(f, WALL0);
	run_seconds(f, &tr, 1000, 3);
	getrlimit(RLIMIT_FSIZE, &old);
	small = old;
	small.rlim_cur = 1; /* not one more byte */
	setrlimit(RLIMIT_FSIZE, &small);
	run_seconds(f, &tr, 4000, 4);
	st = cfr_recw_stats(f->w);
	assert_true(st->degraded);
	assert_int_equal(st->faults, 1);
	assert_true(st->write_errors >= 1);
	setrlimit(RLIMIT_FSIZE, &old);
	/* The retry comes CFR_RECW_RETRY_MS after the fault at the latest. */
	run_seconds(f, &tr, 8000, 3);
	assert_false(st->degraded);
	assert_int_equal(st->segments_opened, 2);
	assert_true(st->degraded_ms >= 1000);
	expect_all_answered(f, &tr);
	cfr_engine_epoch_rotate(f->eng, 12000);
	cfr_recw_drain(f->w, f->eng, UINT32_MAX, 12000, WALL0 + 12000);
	expect_all_answered(f, &tr);
	assert_int_equal(cfr_engine_stats(f->eng)->records_lost, 0);
}

/* The records directory removed under the writer, then made again: caught up. */
static void directory_removed_catches_up(void **state)
{
	struct fixture *f = *state;
	struct traffic tr = {0}, before = {0};

	open_writer(f, WALL0);
	run_seconds(f, &before, 1000, 3);
	remove_dir(f->dir);
	run_seconds(f, &tr, 4000, 2);
	assert_true(cfr_recw_stats(f->w)->degraded);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	run_seconds(f, &tr, 6000, 4);
	assert_false(cfr_recw_stats(f->w)->degraded);
	/* The records of the removed segment are gone; everything since is there. */
	for (unsigned i = 0; i < before.n; i++)
		tr.flows[tr.n++] = before.flows[i];
	tr.n -= before.n;
	expect_all_answered(f, &tr);
}

/* A public key others may write is refused; a writer without a key catches up once given one. */
static void key_mode_refused(void **state)
{
	struct fixture *f = *state;
	struct traffic tr = {0};
	struct cfr_rec_error err;
	char path[128], b64[64], line[128];
	uint8_t pk[CFR_KEY_BYTES];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/acct.pub", f->dir);
	sodium_bin2base64(b64, sizeof(b64), f->pk, CFR_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL);
	snprintf(line, sizeof(line), "%s %s\n", CFR_PUBLIC_KEY_LABEL, b64);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(line, fp);
	fclose(fp);
	chmod(path, 0666);
	assert_int_equal(cfr_key_read_public(path, pk, &err), -EPERM);
	assert_non_null(strstr(err.msg, "chmod go-w"));
	chmod(path, 0644);
	assert_int_equal(cfr_key_read_public(path, pk, &err), 0);
	assert_memory_equal(pk, f->pk, CFR_KEY_BYTES);
	unlink(path);

	f->wcfg.no_key = true;
	open_writer(f, WALL0);
	run_seconds(f, &tr, 1000, 3);
	assert_true(cfr_recw_stats(f->w)->degraded);
	cfr_recw_set_key(f->w, f->pk);
	run_seconds(f, &tr, 4000, 2);
	assert_false(cfr_recw_stats(f->w)->degraded);
	expect_all_answered(f, &tr);
}

/*
 * An epoch longer than a segment: each segment ends its block with a
 * CONTINUED checkpoint and the next starts with everyone's snapshot. Every
 * flow is answered, once per allocation, without a warning; and from the
 * files as a crash leaves them, too.
 */
static void journal_continues_across_segments(void **state)
{
	struct fixture *f = *state;
	struct traffic tr = {0};
	unsigned segments = 0;
	struct dirent *de;
	DIR *d;

	f->wcfg.segment_s = 3;
	open_writer(f, WALL0);
	run_seconds(f, &tr, 1000, 10);
	d = opendir(f->dir);
	while ((de = readdir(d)) != NULL)
		segments += strstr(de->d_name, CFR_SEG_SUFFIX) != NULL;
	closedir(d);
	assert_true(segments >= 3);
	for (unsigned i = 0; i < tr.n; i++) {
		struct answer a = ask(f, f->dir, &tr.flows[i]);

		assert_int_equal(a.wrong, 0);
		assert_int_equal(a.found, 1);
		if (tr.flows[i].t + 2000 <= 10500)
			assert_int_equal(a.warnings, 0);
	}
	cfr_engine_epoch_rotate(f->eng, 12000);
	cfr_recw_drain(f->w, f->eng, UINT32_MAX, 12000, WALL0 + 12000);
	cfr_recw_free(f->w);
	f->w = NULL;
	expect_all_answered(f, &tr);
	for (unsigned i = 0; i < tr.n; i++)
		assert_int_equal(ask(f, f->dir, &tr.flows[i]).warnings, 0);
}

/*
 * A reload that changes the ports ends the epoch; the writer puts the new
 * epoch in a segment whose header has the new ports, and both epochs'
 * flows are answered.
 */
static void reload_new_segment_with(void **state, bool pools)
{
	struct fixture *f = *state;
	struct traffic tr = {0};
	struct cfr_engine_config cfg2 = f->cfg;
	struct cfr_reconfig *rc;
	char why[256];
	unsigned segments = 0, before;
	struct dirent *de;
	DIR *d;

	open_writer(f, WALL0);
	run_seconds(f, &tr, 1000, 3);
	if (pools) {
		assert_int_equal(cfr_prefix_parse("192.0.2.64/26", &cfg2.pool4[0]), 0);
	} else {
		cfg2.port_min = 40000;
		cfg2.port_max = 40999;
	}
	rc = cfr_reconfig_new(f->eng, &cfg2, why, sizeof(why));
	if (!rc)
		fail_msg("reconfig: %s", why);
	assert_true(cfr_reconfig_changes(rc) & (pools ? CFR_CHANGE_POOLS : CFR_CHANGE_PORTS));
	/* As cfrd does: the writer hears of it before the engine ends the epoch. */
	cfr_recw_reconfigure(f->w, &cfg2, cfr_engine_stats(f->eng)->epoch + 1);
	cfr_engine_reconfigure(f->eng, rc, 4000);
	cfr_reconfig_free(rc);
	before = tr.n;
	run_seconds(f, &tr, 4000, 3);
	for (unsigned i = before; i < tr.n && !pools; i++)
		assert_true(tr.flows[i].port >= 40000 && tr.flows[i].port <= 40999);
	cfr_engine_epoch_rotate(f->eng, 8000);
	cfr_recw_drain(f->w, f->eng, UINT32_MAX, 8000, WALL0 + 8000);
	cfr_recw_free(f->w);
	f->w = NULL;
	d = opendir(f->dir);
	while ((de = readdir(d)) != NULL)
		segments += strstr(de->d_name, CFR_SEG_SUFFIX) != NULL;
	closedir(d);
	assert_int_equal(segments, 2);
	expect_all_answered(f, &tr);
}

static void reload_new_segment(void **state)
{
	reload_new_segment_with(state, false);
}

static void reload_new_pool(void **state)
{
	reload_new_segment_with(state, true);
}

/* Reconfigure the engine and the writer as cfrd's reload does: the writer first. */
static void reload_ports(struct fixture *f, uint16_t port_min, uint64_t t)
{
	struct cfr_engine_config cfg = f->cfg;
	struct cfr_reconfig *rc;
	char why[256];

	cfg.port_min = port_min;
	cfg.port_max = (uint16_t)(port_min + 999);
	rc = cfr_reconfig_new(f->eng, &cfg, why, sizeof(why));
	if (!rc)
		fail_msg("reconfig: %s", why);
	assert_int_equal(cfr_recw_reconfigure(f->w, &cfg, cfr_engine_stats(f->eng)->epoch + 1), 0);
	cfr_engine_reconfigure(f->eng, rc, t);
	cfr_reconfig_free(rc);
	f->cfg = cfg;
}

/*
 * Two reloads before the writer sealed anything of the epoch between them:
 * that epoch's records still go to a segment naming its own configuration,
 * not the second reload's (a writer that kept only the latest change put
 * them under the configuration before both).
 */
static void reloads_in_a_row(void **state)
{
	struct fixture *f = *state;
	struct traffic tr = {0};

	open_writer(f, WALL0);
	run_seconds(f, &tr, 1000, 2);
	reload_ports(f, 40000, 3000);
	open_flow(f, &tr, 4, 1, 3100);
	open_flow(f, &tr, 6, 3, 3200);
	reload_ports(f, 41000, 3500);
	run_seconds(f, &tr, 4000, 2);
	cfr_engine_epoch_rotate(f->eng, 7000);
	cfr_recw_drain(f->w, f->eng, UINT32_MAX, 7000, WALL0 + 7000);
	cfr_recw_free(f->w);
	f->w = NULL;
	expect_all_answered(f, &tr);
}

struct v1_file {
	uint8_t buf[8192];
	size_t len;
	uint8_t key[CFR_SEG_KEY_BYTES], header_hash[32];
	uint64_t seq;
	unsigned records;
	uint8_t prefix6;
};

/* A frame the version 1 way: the segment key, the frame's number in the file as nonce. */
static void v1_frame(struct v1_file *v, uint8_t type, const uint8_t *plain, size_t plen)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], ad[33];
	size_t clen = plen + CFR_FRAME_TAG;

	v->buf[v->len] = type;
	v->buf[v->len + 1] = (uint8_t)clen;
	v->buf[v->len + 2] = (uint8_t)(clen >> 8);
	memcpy(ad, v->header_hash, 32);
	ad[32] = type;
	cfr_frame_nonce(v->seq++, nonce);
	crypto_aead_xchacha20poly1305_ietf_encrypt(v->buf + v->len + CFR_FRAME_HEAD, NULL, plain,
	                                           plen, ad, sizeof(ad), NULL, nonce, v->key);
	v->len += CFR_FRAME_HEAD + clen;
}

static void v1_record(void *ctx, const struct cfr_epoch_record *rec)
{
	struct v1_file *v = ctx;
	uint8_t plain[CFR_FRAME_PLAIN_MAX];

	v1_frame(v, CFR_FRAME_RECORD, plain, cfr_record_encode(rec, v->prefix6, 1, plain));
	v->records++;
}

static void put64(uint8_t *p, uint64_t x)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(x >> (8 * i));
}

/* A version 1 segment (one key for the segment, records at epoch end) is still answered. */
static void version1_readable(void **state)
{
	struct fixture *f = *state;
	struct traffic tr = {0};
	struct cfr_seg_header h = {.version = 1, .period_s = 3600, .epoch_s = 600};
	struct v1_file *v = calloc(1, sizeof(*v));
	uint8_t ep[24], end[4];
	char path[128];
	int hlen;

	assert_non_null(v);
	open_flow(f, &tr, 4, 1, 1000);
	open_flow(f, &tr, 4, 2, 2000);
	open_flow(f, &tr, 6, 3, 2500);
	cfr_engine_epoch_rotate(f->eng, 5000);
	h.start_ms = WALL0 + 5000;
	h.cfg = f->cfg;
	h.cfg.subscriber_prefix6 = v->prefix6 = cfr_config_ident6_max(&f->cfg);
	crypto_aead_xchacha20poly1305_ietf_keygen(v->key);
	crypto_box_seal(h.sealed_key, v->key, sizeof(v->key), f->pk);
	hlen = cfr_seg_header_encode(&h, v->buf, sizeof(v->buf));
	assert_true(hlen > 0);
	assert_memory_equal(v->buf, CFR_SEG_MAGIC_V1, CFR_SEG_MAGIC_LEN);
	crypto_generichash(v->header_hash, 32, v->buf, (size_t)hlen, NULL, 0);
	v->len = (size_t)hlen;
	put64(ep, 1);
	put64(ep + 8, WALL0 + 1000); /* the engine's epoch began with its first packet */
	put64(ep + 16, WALL0 + 5000);
	v1_frame(v, CFR_FRAME_EPOCH, ep, sizeof(ep));
	assert_int_equal(cfr_engine_drain_records(f->eng, v1_record, v, 100), 0);
	end[0] = (uint8_t)v->records;
	end[1] = end[2] = end[3] = 0;
	v1_frame(v, CFR_FRAME_EPOCH_END, end, sizeof(end));
	v1_frame(v, CFR_FRAME_CLOSE, NULL, 0);
	snprintf(path, sizeof(path), "%s/old.seg", f->dir);
	write_file(path, v->buf, v->len);
	sodium_memzero(v, sizeof(*v));
	free(v);
	assert_int_equal(walk_file(path, f->pk, f->sk).records, 3);
	for (unsigned i = 0; i < tr.n; i++) {
		struct answer a = ask(f, f->dir, &tr.flows[i]);

		assert_int_equal(a.wrong, 0);
		assert_int_equal(a.found, 1);
		assert_int_equal(a.warnings, 0);
	}
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
	    cmocka_unit_test_setup_teardown(journal_answers_after_crash, setup, teardown),
	    cmocka_unit_test_setup_teardown(journal_torn_tail, setup, teardown),
	    cmocka_unit_test_setup_teardown(key_per_epoch, setup, teardown),
	    cmocka_unit_test_setup_teardown(full_disk_catches_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(directory_removed_catches_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(key_mode_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(journal_continues_across_segments, setup, teardown),
	    cmocka_unit_test_setup_teardown(reload_new_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(reload_new_pool, setup, teardown),
	    cmocka_unit_test_setup_teardown(reloads_in_a_row, setup, teardown),
	    cmocka_unit_test_setup_teardown(version1_readable, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
