/*
 * In-process engine benchmark: no network, no I/O, the real libcfr.
 *
 * Fills the flow table with <flows> established TCP flows (SYN out, SYN-ACK
 * in) spread over many subscribers, then measures nanoseconds per packet
 * for established traffic in both directions, picking flows at random so
 * that large tables pay their cache misses, and the rate at which new flows
 * are created. Under callgrind (bench/engine/run --instructions) only the
 * measured loop is instrumented, which gives instructions per packet: the
 * stable figure to track across commits on a noisy machine.
 *
 * Last, the cost of a restart's handover (cfrd --takeover) at this size:
 * the engine written to a memfd and read into a new engine, as cfrd's
 * state_file.c does, which is how long forwarding stops.
 */
#include <cfr/cfr.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#include "cfr/internal/csum.h"
#include "state_file.h"

#define BATCH  32
#define SAMPLE 4096 /* prebuilt packets the measured loop cycles through */

struct flow_pkts {
	uint8_t out[80]; /* subscriber -> remote, as the subscriber sends it */
	uint8_t in[80];  /* remote -> alias, as the remote answers */
	uint32_t len;
};

static int family;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t xorshift(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A TCP segment with a timestamp option, checksums complete. */
static uint32_t build_tcp(uint8_t *b, const uint8_t *src, const uint8_t *dst, uint16_t sport,
                          uint16_t dport, uint8_t flags)
{
	uint32_t ip_len = family == 4 ? 20 : 40, alen = family == 4 ? 4 : 16, tcp_len = 32;
	uint8_t *tcp = b + ip_len;

	memset(b, 0, ip_len + tcp_len);
	if (family == 4) {
		b[0] = 0x45;
		put16(b + 2, (uint16_t)(ip_len + tcp_len));
		b[8] = 64;
		b[9] = 6;
		memcpy(b + 12, src, 4);
		memcpy(b + 16, dst, 4);
		put16(b + 10, csum_fold(csum_add(0, b, 20)));
	} else {
		b[0] = 0x60;
		put16(b + 4, (uint16_t)tcp_len);
		b[6] = 6;
		b[7] = 64;
		memcpy(b + 8, src, 16);
		memcpy(b + 24, dst, 16);
	}
	put16(tcp, sport);
	put16(tcp + 2, dport);
	tcp[12] = 8 << 4;
	tcp[13] = flags;
	put16(tcp + 14, 65535);
	tcp[20] = 1;
	tcp[21] = 1;
	tcp[22] = 8;
	tcp[23] = 10;
	put16(tcp + 24, 0x1234);
	put16(tcp + 16,
	      csum_fold(csum_add(csum_pseudo(b + (family == 4 ? 12 : 8),
	                                     b + (family == 4 ? 16 : 24), alen, 6, tcp_len),
	                         tcp, tcp_len)));
	return ip_len + tcp_len;
}

static void subscriber_addr(uint32_t i, uint8_t *a)
{
	memset(a, 0, 16);
	if (family == 4) {
		a[0] = 100;
		a[1] = (uint8_t)(64 + ((i >> 16) & 0x3f));
		a[2] = (uint8_t)(i >> 8);
		a[3] = (uint8_t)i;
	} else {
		static const uint8_t p[6] = {0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00};

		memcpy(a, p, 6);
		a[6] = (uint8_t)(i >> 8);
		a[7] = (uint8_t)i;
		a[15] = 2;
	}
}

static void remote_addr(uint32_t i, uint8_t *a)
{
	memset(a, 0, 16);
	if (family == 4) {
		a[0] = 203;
		a[1] = 0;
		a[2] = 113;
		a[3] = (uint8_t)(1 + i % 250);
	} else {
		static const uint8_t p[4] = {0x20, 0x01, 0x0d, 0xb8};

		memcpy(a, p, 4);
		a[5] = 0x0f;
		a[15] = (uint8_t)(1 + i % 250);
	}
}

static struct cfr_engine *make_engine(uint32_t max_flows, uint32_t subscribers)
{
	struct cfr_engine_config c;

	cfr_engine_config_defaults(&c);
	cfr_prefix_parse("192.0.2.0/24", &c.pool4[0]);
	c.n_pool4 = 1;
	cfr_prefix_parse("2001:db8:a1::/64", &c.pool6[0]);
	c.n_pool6 = 1;
	cfr_prefix_parse("100.64.0.0/10", &c.subscribers[0]);
	cfr_prefix_parse("2001:db8:100::/48", &c.subscribers[1]);
	c.n_subscribers = 2;
	/* One /64 per simulated line inside the /48, as in the lab. */
	c.subscriber_prefix6 = 64;
	c.max_flows = max_flows;
	c.max_subscribers = subscribers;
	/* Setup opens flows far faster than any subscriber could: no rate limit. */
	c.limits.new_flows_per_s = 0;
	c.limits.half_open_per_subscriber = 0;
	return cfr_engine_new(&c);
}

static void run_batch(struct cfr_engine *eng, uint8_t **bufs, const uint32_t *lens, unsigned n,
                      uint64_t now_ms, unsigned *dropped)
{
	struct cfr_pkt pkts[BATCH];
	unsigned i;

	for (i = 0; i < n; i++)
		pkts[i] = (struct cfr_pkt){.data = bufs[i], .len = lens[i]};
	cfr_engine_process(eng, pkts, n, now_ms);
	for (i = 0; i < n; i++)
		*dropped += pkts[i].verdict != CFR_VERDICT_FORWARD;
}

/* Open <n> flows; keep the packets of SAMPLE random ones for the measured loop. */
static double open_flows(struct cfr_engine *eng, uint32_t n, uint32_t per_sub,
                         struct flow_pkts *sample)
{
	uint8_t sub[16], remote[16], buf[BATCH][80], reply[80];
	uint8_t *bufs[BATCH];
	uint32_t lens[BATCH], i, k;
	unsigned dropped = 0;
	uint64_t t0 = now_ns();

	for (i = 0; i < n; i += BATCH) {
		unsigned m = n - i < BATCH ? n - i : BATCH;

		for (k = 0; k < m; k++) {
			uint32_t f = i + k;

			subscriber_addr(f / per_sub, sub);
			remote_addr(f, remote);
			lens[k] = build_tcp(buf[k], sub, remote, (uint16_t)(10000 + f % per_sub),
			                    443, 0x02);
			bufs[k] = buf[k];
		}
		run_batch(eng, bufs, lens, m, 1000, &dropped);
		/* Answer each SYN so the flow is established. */
		for (k = 0; k < m; k++) {
			uint32_t f = i + k, off = family == 4 ? 12 : 8, al = family == 4 ? 4 : 16;
			uint32_t tcp = family == 4 ? 20 : 40;
			uint8_t *r = reply;
			uint32_t rl = build_tcp(r, buf[k] + off + al, buf[k] + off,
			                        get16(buf[k] + tcp + 2), get16(buf[k] + tcp), 0x12);

			if (f % (n / SAMPLE ? n / SAMPLE : 1) == 0 &&
			    f / (n / SAMPLE ? n / SAMPLE : 1) < SAMPLE) {
				struct flow_pkts *s = &sample[f / (n / SAMPLE ? n / SAMPLE : 1)];

				subscriber_addr(f / per_sub, sub);
				remote_addr(f, remote);
				s->len = build_tcp(s->out, sub, remote,
				                   (uint16_t)(10000 + f % per_sub), 443, 0x10);
				build_tcp(s->in, buf[k] + off + al, buf[k] + off,
				          get16(buf[k] + tcp + 2), get16(buf[k] + tcp), 0x10);
			}
			bufs[0] = r;
			lens[0] = rl;
			run_batch(eng, bufs, lens, 1, 1000, &dropped);
		}
	}
	if (dropped) {
		fprintf(stderr, "engine-bench: %u packets dropped while opening flows\n", dropped);
		exit(1);
	}
	return (double)n * 1e9 / (double)(now_ns() - t0);
}

/* ns per packet over <rounds> batches of established traffic, both directions. */
static double measure(struct cfr_engine *eng, const struct flow_pkts *sample, unsigned samples,
                      unsigned rounds, bool instrument)
{
	static uint8_t buf[BATCH][80];
	uint8_t *bufs[BATCH];
	uint32_t lens[BATCH];
	unsigned r, k, dropped = 0;
	uint64_t t, total = 0;

	for (r = 0; r < rounds; r++) {
		for (k = 0; k < BATCH; k++) {
			const struct flow_pkts *s = &sample[xorshift() % samples];

			memcpy(buf[k], (k & 1) ? s->in : s->out, s->len);
			bufs[k] = buf[k];
			lens[k] = s->len;
		}
		if (instrument)
			CALLGRIND_START_INSTRUMENTATION;
		t = now_ns();
		run_batch(eng, bufs, lens, BATCH, 2000, &dropped);
		total += now_ns() - t;
		if (instrument)
			CALLGRIND_STOP_INSTRUMENTATION;
	}
	if (dropped) {
		fprintf(stderr, "engine-bench: %u established packets dropped\n", dropped);
		exit(1);
	}
	return (double)total / ((double)rounds * BATCH);
}

/* Resident memory of this process, in bytes (/proc/self/statm, field 2). */
static double rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (double)resident * 4096;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Write <eng> to a memfd and read it back: the two halves of a restart's pause. */
static void measure_handover(struct cfr_engine *eng)
{
	struct cfrd_state_size size = {0};
	struct cfr_engine *next = NULL;
	const char *why = "cannot make a memfd";
	uint64_t t0 = now_ns(), t1 = 0, t2 = 0;
	int fd = memfd_create("cfr-bench-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd >= 0 && cfrd_state_write(eng, fd, &size) == 0) {
		t1 = now_ns();
		next = cfrd_state_read(fd, size.image, &why);
		t2 = now_ns();
	}
	if (fd >= 0)
		close(fd);
	if (!next ||
	    memcmp(cfr_engine_stats(next)->flows_active, cfr_engine_stats(eng)->flows_active,
	           sizeof(cfr_engine_stats(eng)->flows_active)) != 0) {
		fprintf(stderr, "engine-bench: handover failed: %s\n", next ? "flows differ" : why);
		exit(1);
	}
	printf("family=IPv%d handover_write_ms=%.1f handover_read_ms=%.1f state_bytes=%llu\n",
	       family, (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6,
	       (unsigned long long)size.data);
	cfr_engine_free(next);
}

int main(int argc, char **argv)
{
	uint32_t flows = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000;
	unsigned rounds = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 20000;
	bool instrument = getenv("CFR_BENCH_CALLGRIND") != NULL;
	uint32_t per_sub = 1000, subs;
	struct flow_pkts *sample;
	struct cfr_engine *eng;
	double setup_rate, ns[5], rss_before;
	unsigned i, samples;

	family = argc > 2 ? atoi(argv[2]) : 4;
	if (sodium_init() < 0 || flows == 0 || (family != 4 && family != 6)) {
		fprintf(stderr, "usage: engine-bench FLOWS [4|6] [ROUNDS]\n");
		return 2;
	}
	subs = (flows + per_sub - 1) / per_sub;
	eng = make_engine(flows, subs + 16);
	sample = calloc(SAMPLE, sizeof(*sample));
	if (!eng || !sample) {
		perror("engine-bench");
		return 1;
	}
	rss_before = rss_bytes();
	setup_rate = open_flows(eng, flows, per_sub, sample);
	samples = flows < SAMPLE ? flows : SAMPLE;
	for (i = 0; i < 5; i++)
		ns[i] = measure(eng, sample, samples, instrument ? rounds / 5 : rounds, instrument);
	qsort(ns, 5, sizeof(ns[0]), cmp_double);
	printf("family=IPv%d flows=%u new_flows_per_s=%.0f ns_per_pkt_median=%.1f "
	       "ns_per_pkt_min=%.1f rss_bytes_per_flow=%.1f allocated_bytes_per_flow=%.1f "
	       "flows_active=%u\n",
	       family, flows, setup_rate, ns[2], ns[0], (rss_bytes() - rss_before) / (double)flows,
	       (double)cfr_engine_memory(eng) / (double)flows,
	       cfr_engine_stats(eng)->flows_active[family == 4 ? 0 : 1][CFR_PROTO_TCP]);
	if (!instrument)
		measure_handover(eng);
	cfr_engine_free(eng);
	free(sample);
	return 0;
}
