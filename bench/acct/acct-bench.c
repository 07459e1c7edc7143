/*
 * Accountability benchmark: the real engine and the real segment writer
 * under a synthetic access network, measuring what docs/accountability.md
 * reports: bytes of sealed records per subscriber-epoch and per flow, and
 * how often a complaint (alias, port, time +- tolerance) matches more than
 * one subscriber.
 *
 * Subscribers fall in three activity classes (60% light, 30% medium, 10%
 * heavy: new UDP flows at 0.01, 0.1 and 1 per second, times <scale>),
 * Poisson within each second, to a few hundred remotes. Complaints are
 * sampled uniformly among the flows. Ambiguity is exact: every allocation
 * of every sealed record (read back from the segments with the private
 * key) is regenerated, and those landing on a complaint's alias and port
 * within its window are counted per distinct subscriber.
 *
 * Usage: acct-bench SUBSCRIBERS POOL4 SECONDS EPOCH_S SCALE TOLERANCE_S POLICY DIR PUBKEY KEY
 * Prints results, and a few complaints as
 * "complaint ALIAS PORT UNIX_SECONDS REMOTE SUBSCRIBER" for timing cfr-lookup.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/records/records.h"

#define WALL0      1767225600000ull /* 2026-01-01T00:00:00Z at engine time 0 */
#define BATCH      64
#define COMPLAINTS 2000
#define REMOTES    600
#define CBUCKETS   4096

struct complaint {
	uint8_t alias[16], remote[16];
	uint16_t port;
	uint32_t sub;
	uint64_t t_ms;
	uint32_t matches, other_subs[8];
	int next; /* hash chain by (alias, port) */
};

static struct complaint comp[COMPLAINTS];
static unsigned n_comp;
static int cbucket[CBUCKETS];
static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double uniform01(void)
{
	return (double)(next_rand() >> 11) / 9007199254740992.0;
}

static unsigned poisson(double lambda)
{
	double l = exp(-lambda), p = uniform01();
	unsigned k = 0;

	while (p > l) {
		k++;
		p *= uniform01();
	}
	return k;
}

static unsigned ckey(const uint8_t *alias, uint16_t port)
{
	return (alias[3] * 2654435761u ^ port * 40503u) % CBUCKETS;
}

static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void build_udp(uint8_t *b, uint32_t sub, const uint8_t *dst, uint16_t sport)
{
	uint16_t c;

	memset(b, 0, 28);
	b[0] = 0x45;
	b[3] = 28;
	b[8] = 64;
	b[9] = 17;
	b[12] = 100;
	b[13] = (uint8_t)(64 | (sub >> 16 & 63));
	b[14] = (uint8_t)(sub >> 8);
	b[15] = (uint8_t)sub;
	memcpy(b + 16, dst, 4);
	c = csum(b, 20);
	b[10] = (uint8_t)(c >> 8);
	b[11] = (uint8_t)c;
	b[20] = (uint8_t)(sport >> 8);
	b[21] = (uint8_t)sport;
	b[22] = 0x01;
	b[23] = 0xbb;
	b[25] = 8; /* UDP length; checksum 0: none, allowed over IPv4 */
}

static void remote_addr(unsigned i, uint8_t out[4])
{
	out[0] = 203;
	out[1] = 0;
	out[2] = (uint8_t)(113 - (i >> 8)); /* 203.0.113.x, 203.0.112.x, 203.0.111.x */
	out[3] = (uint8_t)(1 + i % 250);
}

struct batch {
	struct cfr_engine *eng;
	struct cfr_pkt pkts[BATCH];
	uint8_t bufs[BATCH][64], rem[BATCH][4];
	uint32_t who[BATCH];
	unsigned n;
	double p_sample;
	uint64_t flows, dropped;
};

/* Run the batch through the engine; sample complaints among the flows it opened. */
static void flush(struct batch *b, uint64_t t_ms)
{
	cfr_engine_process(b->eng, b->pkts, b->n, t_ms);
	for (unsigned i = 0; i < b->n; i++) {
		struct complaint *q = &comp[n_comp];
		unsigned h;

		if (b->pkts[i].verdict != CFR_VERDICT_FORWARD) {
			b->dropped++;
			continue;
		}
		b->flows++;
		if (n_comp == COMPLAINTS || uniform01() >= b->p_sample)
			continue;
		memset(q, 0, sizeof(*q));
		memcpy(q->alias, b->bufs[i] + 12, 4);
		q->port = (uint16_t)(b->bufs[i][20] << 8 | b->bufs[i][21]);
		memcpy(q->remote, b->rem[i], 4);
		q->sub = b->who[i];
		q->t_ms = t_ms;
		h = ckey(q->alias, q->port);
		q->next = cbucket[h];
		cbucket[h] = (int)n_comp++;
	}
	b->n = 0;
}

/* Regenerate every allocation of <rec>, and count it against complaints it hits. */
static uint64_t regenerate(const struct cfr_engine_config *cfg, const struct cfr_epoch_record *rec,
                           double tol_ms)
{
	uint32_t t_from = 0, t_to = 0, first = 0, count = 0, sub;
	size_t off = 0;
	uint64_t n = 0;

	sub = (uint32_t)(rec->subscriber[1] & 63) << 16 | (uint32_t)rec->subscriber[2] << 8 |
	      rec->subscriber[3];
	while (cfr_timeline_next(rec, &off, &t_from, &t_to, &first, &count) == 1) {
		uint64_t from = rec->start_ms + (uint64_t)t_from * 1000;
		uint64_t to = rec->start_ms + ((uint64_t)t_to + 1) * 1000 - 1;

		for (uint32_t c = first; c - first < count; c++, n++) {
			uint8_t alias[16];
			uint16_t port;
			const uint8_t remote[16] = {0};

			cfr_derive_alias(cfg, rec->seed, CFR_FAMILY_V4, c, remote, alias, &port);
			for (int i = cbucket[ckey(alias, port)]; i >= 0; i = comp[i].next) {
				struct complaint *q = &comp[i];
				bool dup = false;

				if (q->port != port || memcmp(q->alias, alias, 4) != 0 ||
				    (double)from > (double)q->t_ms + tol_ms ||
				    (double)to < (double)q->t_ms - tol_ms || q->sub == sub)
					continue;
				for (unsigned k = 0; k < q->matches && k < 8; k++)
					dup |= q->other_subs[k] == sub;
				if (!dup && q->matches < 8)
					q->other_subs[q->matches] = sub;
				q->matches += !dup;
			}
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	struct cfr_engine_config cfg;
	struct cfr_recw_config wcfg = {0};
	struct cfr_rec_error err;
	struct cfr_engine *eng;
	struct cfr_recw *w;
	uint8_t pk[CFR_KEY_BYTES], sk[CFR_KEY_BYTES];
	static struct batch batch;
	struct batch *b = &batch;
	uint32_t subs, seconds, tol_s;
	double scale, mean_rate = 0;
	uint8_t *klass;
	uint64_t flows = 0, dropped = 0, allocations = 0, records = 0, t_sim = 0;
	struct timespec t0, t1;

	if (argc != 11) {
		fprintf(stderr, "usage: acct-bench SUBSCRIBERS POOL4 SECONDS EPOCH_S SCALE "
		                "TOLERANCE_S POLICY DIR PUBKEY KEY\n");
		return 2;
	}
	subs = (uint32_t)atoi(argv[1]);
	seconds = (uint32_t)atoi(argv[3]);
	scale = atof(argv[5]);
	tol_s = (uint32_t)atoi(argv[6]);
	if (sodium_init() < 0 || cfr_key_read_public(argv[9], pk, &err) < 0 ||
	    cfr_key_read_private(argv[10], sk, pk, &err) < 0) {
		fprintf(stderr, "acct-bench: %s\n", err.msg);
		return 1;
	}
	cfr_engine_config_defaults(&cfg);
	cfr_prefix_parse(argv[2], &cfg.pool4[0]);
	cfg.n_pool4 = 1;
	cfr_prefix_parse("100.64.0.0/10", &cfg.subscribers[0]);
	cfg.n_subscribers = 1;
	cfg.limits = (struct cfr_limits){0};
	cfg.timeout[CFR_TIMEOUT_UDP] = 30; /* keeps the table small; allocation is unaffected */
	cfg.max_flows = 1u << 22;
	cfg.max_subscribers = subs + 16;
	cfg.epoch_s = (uint32_t)atoi(argv[4]);
	for (int p = 0; p < CFR_POLICY__COUNT; p++)
		if (strcmp(argv[7], cfr_policy_name((enum cfr_policy)p)) == 0)
			cfg.policy[0] = (uint8_t)p;
	eng = cfr_engine_new(&cfg);
	wcfg = (struct cfr_recw_config){
	    .dir = argv[8], .segment_s = 3600, .retention_s = 86400 * 365, .engine = &cfg};
	memcpy(wcfg.public_key, pk, sizeof(pk));
	w = eng ? cfr_recw_new(&wcfg, WALL0, &err) : NULL;
	if (!w) {
		fprintf(stderr, "acct-bench: cannot start: %s\n", eng ? err.msg : "engine");
		return 1;
	}
	klass = malloc(subs);
	for (uint32_t s = 0; s < subs; s++) {
		uint64_t r = next_rand() % 10;

		klass[s] = r < 6 ? 0 : r < 9 ? 1 : 2;
		mean_rate += (klass[s] == 0 ? 0.01 : klass[s] == 1 ? 0.1 : 1.0) * scale;
	}
	b->eng = eng;
	b->p_sample = (double)COMPLAINTS / (mean_rate * seconds) * 1.05;
	memset(cbucket, 0xff, sizeof(cbucket));

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t sec = 0; sec < seconds; sec++) {
		t_sim = 1000 + sec * 1000;
		for (uint32_t s = 0; s < subs; s++) {
			unsigned k = poisson((klass[s] == 0   ? 0.01
			                      : klass[s] == 1 ? 0.1
			                                      : 1.0) *
			                     scale);
			uint64_t t = t_sim + s * 1000ull / subs;

			while (k--) {
				remote_addr((unsigned)(next_rand() % REMOTES), b->rem[b->n]);
				build_udp(b->bufs[b->n], s + 1, b->rem[b->n],
				          (uint16_t)(1024 + next_rand() % 60000));
				b->pkts[b->n] = (struct cfr_pkt){.data = b->bufs[b->n], .len = 28};
				b->who[b->n++] = s + 1;
				if (b->n == BATCH)
					flush(b, t);
			}
		}
		if (b->n)
			flush(b, t_sim + 999);
		cfr_engine_expire(eng, t_sim + 999);
		cfr_recw_drain(w, eng, UINT32_MAX, t_sim + 999, WALL0 + t_sim + 999);
	}
	flows = b->flows;
	dropped = b->dropped;
	cfr_engine_epoch_rotate(eng, t_sim + 1000);
	cfr_recw_drain(w, eng, UINT32_MAX, t_sim + 1000, WALL0 + t_sim + 1000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	const struct cfr_recw_stats *st = cfr_recw_stats(w);
	uint64_t bytes = st->bytes_written, nrec = st->records_written;

	cfr_recw_free(w);
	printf("subscribers=%u pool=%s policy=%s seconds=%u epoch_s=%u scale=%.2f "
	       "mean_new_flows_per_s=%.0f\n",
	       subs, argv[2], argv[7], seconds, cfg.epoch_s, scale, mean_rate);
	printf("flows=%llu dropped=%llu records=%llu segment_bytes=%llu bytes_per_record=%.1f "
	       "bytes_per_flow=%.2f simulate_s=%.1f\n",
	       (unsigned long long)flows, (unsigned long long)dropped, (unsigned long long)nrec,
	       (unsigned long long)bytes, (double)bytes / (double)nrec,
	       (double)bytes / (double)flows,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);

	/* Read every record back with the private key and regenerate all allocations. */
	struct dirent **names;
	int nn = scandir(argv[8], &names, NULL, alphasort);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < nn; i++) {
		char path[4096];
		struct cfr_segr *r;
		struct cfr_seg_item it;

		snprintf(path, sizeof(path), "%s/%s", argv[8], names[i]->d_name);
		free(names[i]);
		if (!strstr(path, CFR_SEG_SUFFIX) || !(r = cfr_segr_open(path, &err)))
			continue;
		if (cfr_segr_unseal(r, pk, sk, &err) == 0)
			while (cfr_segr_next(r, &it, &err) == 1)
				if (it.type == CFR_FRAME_RECORD) {
					it.rec.start_ms -= WALL0;
					allocations += regenerate(&cfg, &it.rec, tol_s * 1000.0);
					records++;
				}
		cfr_segr_close(r);
	}
	free(names);
	clock_gettime(CLOCK_MONOTONIC, &t1);

	unsigned ambiguous = 0, hist[4] = {0};

	for (unsigned i = 0; i < n_comp; i++) {
		ambiguous += comp[i].matches > 0;
		hist[comp[i].matches < 3 ? comp[i].matches : 3]++;
	}
	printf("tolerance_s=%u complaints=%u ambiguous=%u (%.2f%%) other_subscribers: 0:%u 1:%u "
	       "2:%u 3+:%u\n",
	       tol_s, n_comp, ambiguous, 100.0 * ambiguous / (n_comp ? n_comp : 1), hist[0],
	       hist[1], hist[2], hist[3]);
	printf("records_read=%llu allocations_regenerated=%llu regenerate_all_s=%.2f\n",
	       (unsigned long long)records, (unsigned long long)allocations,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	/* Five complaints spread over the run, for timing cfr-lookup on each. */
	for (unsigned k = 0; k < 5 && n_comp; k++) {
		unsigned i = k * n_comp / 5 + n_comp / 10;
		char a[INET_ADDRSTRLEN], r[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, comp[i].alias, a, sizeof(a));
		inet_ntop(AF_INET, comp[i].remote, r, sizeof(r));
		printf("complaint %s %u %.3f %s 100.%u.%u.%u\n", a, comp[i].port,
		       (double)(WALL0 + comp[i].t_ms) / 1000.0, r, 64 | (comp[i].sub >> 16 & 63),
		       comp[i].sub >> 8 & 255, comp[i].sub & 255);
	}
	sodium_memzero(sk, sizeof(sk));
	cfr_engine_free(eng);
	free(klass);
	return 0;
}
