/*
 * cfr-audit: shared types of the privacy audit.
 *
 * The audit has one data model whatever the source of traffic: a flow as the
 * front door sees it (struct obs: what an adversary there can read from the
 * first packet) tagged with the subscriber it really came from (the ground
 * truth the adversary does not have). The synthetic trace (trace.c) driven
 * through the real engine (drive.c) and a pair of captures (capture.c) both
 * produce arrays of these; the adversaries (linkers.c) and the
 * anonymity-set tracker (anonset.c) only ever read them.
 */
#ifndef CFR_AUDIT_H
#define CFR_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfr/cfr.h"

/* --- simulation randomness (rng.c): reproducible, never used for secrets --- */

/* xoshiro256**: fast and good enough for a population model; seeded by --seed. */
struct prng {
	uint64_t s[4];
};

void prng_seed(struct prng *r, uint64_t seed);
uint64_t prng_u64(struct prng *r);
uint32_t prng_below(struct prng *r, uint32_t n);
double prng_unit(struct prng *r); /* (0, 1) */
double prng_exp(struct prng *r, double mean);
double prng_normal(struct prng *r);

/* 64-bit mixing hash, for grouping keys (not a secret, not a MAC). */
uint64_t mix64(uint64_t x);
uint64_t hash_bytes(const void *p, size_t n, uint64_t seed);

/* --- what the front door sees of one flow --- */

enum {
	OBS_V6 = 1 << 0,     /* IPv6 flow */
	OBS_TS = 1 << 1,     /* the first packet carried a TCP timestamp */
	OBS_UDP = 1 << 2,    /* UDP flow (else TCP) */
	OBS_LABEL = 1 << 3,  /* nonzero IPv6 flow label */
	OBS_POOLED = 1 << 4, /* source inside a known shared egress pool */
	OBS_SKEW = 1 << 5,   /* skew and skew_se hold a clock-rate estimate of the flow */
	OBS_P2P = 1 << 6,    /* peer-to-peer UDP (ground truth, not visible as such) */
};

/*
 * One flow, 48 bytes: 10 million of them take 480 MB. The keys are 64-bit
 * hashes rather than addresses: the linkers only compare them, and a
 * collision among 10^7 keys has probability about 10^-5.
 */
struct obs {
	uint64_t
	    addr; /* source address as linked: IPv4 address; IPv6 /64 (outside pools) or address */
	uint64_t unit; /* anonymity unit: IPv4 address; IPv6 /64 */
	uint32_t sub;  /* ground truth: subscriber index */
	uint32_t t_ms; /* first packet's arrival at the front door */
	uint32_t tsd;  /* TSval - t_ms (mod 2^32): constant for a host with one TCP clock */
	uint32_t label;
	uint16_t ip_id;
	uint8_t ttl;
	uint8_t flags; /* OBS_* */
	uint16_t port; /* source port as the front door sees it */
	/*
	 * The sender's TCP clock rate as the front door can estimate it by
	 * watching the whole flow (skew.c): (TSval ticks per received ms) - 1,
	 * in units of 0.001 ppm (an integer: a float would blur a rate near 2,
	 * 10^6 ppm, to 0.06 ppm), and the standard error of that estimate in ppm.
	 */
	int32_t skew;
	float skew_se;
};

struct obs_vec {
	struct obs *v;
	size_t n, cap;
};

struct obs *obs_push(struct obs_vec *ov);
void obs_free(struct obs_vec *ov);

/* --- packets (packet.c) --- */

/* Fields of a TCP or UDP packet read back after translation (or from a capture). */
struct pkt_view {
	uint8_t family; /* CFR_FAMILY_* */
	uint8_t proto;  /* 6 or 17 */
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
	uint8_t tcp_flags;
	bool has_ts;
	uint32_t tsval, tsecr;
	uint32_t seq;
	uint16_t ip_id;
	uint8_t ttl;
	uint32_t label;
	const uint8_t *payload;
	uint32_t payload_len;
};

/* What to put in a packet the simulated host or remote sends. */
struct pkt_spec {
	uint8_t family, proto;
	const uint8_t *src, *dst; /* 4 or 16 bytes */
	uint16_t sport, dport;
	uint8_t tcp_flags;
	uint32_t seq, ack;
	bool has_ts;
	uint32_t tsval, tsecr;
	uint16_t ip_id;
	uint8_t ttl;
	uint32_t label;
	uint32_t payload_len; /* zero-filled except its first 8 bytes, a flow tag */
	uint64_t payload_tag;
};

#define PKT_MAX 256

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

/* Build the packet <s> into <buf> (PKT_MAX bytes); returns its length. */
uint32_t pkt_build(uint8_t *buf, const struct pkt_spec *s);
/* Parse an IPv4/IPv6 TCP/UDP packet; false if it is anything else or malformed. */
bool pkt_parse(const uint8_t *buf, uint32_t len, struct pkt_view *v);

/* --- keys the adversary groups by (obs.c) --- */

struct pool_list {
	struct cfr_prefix p[CFR_MAX_POOL_PREFIXES * 2];
	unsigned n;
};

/* Fill the address-derived fields of <o> (addr, unit, port, OBS_V6, OBS_POOLED) from <v>'s source.
 */
void obs_from_view(struct obs *o, const struct pkt_view *v, const struct pool_list *pools);

/* --- anonymity sets (anonset.c) --- */

/*
 * Distinct subscribers with live flows on each anonymity unit, updated as
 * flows start and end, and the distribution of that number seen by each new
 * flow (its own subscriber included).
 */
struct anonset;

struct anonset *anonset_new(void);
void anonset_free(struct anonset *a);
/* A flow of <sub> starts on <unit>; returns the set size it sees. */
uint32_t anonset_start(struct anonset *a, uint64_t unit, uint32_t sub);
void anonset_end(struct anonset *a, uint64_t unit, uint32_t sub);
/* Quantile <q> (0..1) of the set sizes seen by new flows. */
uint32_t anonset_quantile(const struct anonset *a, double q);
uint64_t anonset_flows(const struct anonset *a);

/* --- adversaries and metrics (linkers.c) --- */

enum linker {
	LINK_ADDR = 0, /* same source address */
	LINK_WINDOW,   /* same source address, starts within the window */
	LINK_TSVAL,    /* one TCP timestamp clock (TSval - t constant, drift allowed) */
	LINK_LABEL,    /* same nonzero IPv6 flow label */
	LINK_ADDR_FP,  /* same address and same fingerprint (TTL, timestamps on/off) */
	LINK_WINDOW_FP,
	LINK_TTL,       /* same TTL / hop limit: the OS default and the hops before the gateway */
	LINK_ADDR_TTL,  /* same address and same TTL */
	LINK_SKEW,      /* TCP clock rates within a tolerance (Kohno et al.) */
	LINK_ADDR_SKEW, /* same address and clock rates within the tolerance */
	LINK_ADDR_PORT, /* same address and source port: one mapping (issue 17) */
	LINK__COUNT
};

extern const char *const linker_names[LINK__COUNT];

struct link_params {
	uint32_t window_ms;     /* LINK_WINDOW */
	uint32_t ts_tol_ms;     /* LINK_TSVAL: |delta (TSval - t)| allowed at zero distance */
	uint32_t ts_horizon_ms; /* LINK_TSVAL: flows further apart are not compared */
	uint32_t ts_skew_ppm;   /* LINK_TSVAL: clock drift allowed per unit of distance */
	double skew_tol_ppm;    /* LINK_SKEW: estimated rates at most this far apart */
	double skew_max_se_ppm; /* LINK_SKEW: flows whose estimate is less certain are left out */
};

struct pair_count {
	uint64_t predicted, correct; /* pairs the linker joins, and of those, same subscriber */
};

struct metrics {
	uint64_t flows, subscribers;
	uint64_t true_pairs; /* pairs of flows of one subscriber */
	struct pair_count link[LINK__COUNT];
	double mi_bits;       /* I(subscriber; anonymity unit), Miller-Madow corrected */
	double mi_raw_bits;   /* plug-in estimate */
	double mi_floor_bits; /* the same estimate with units shuffled over flows: no dependence */
	double h_sub_bits;    /* H(subscriber) over flows: the most MI can be */
	unsigned ttl_values;  /* distinct TTLs / hop limits the front door sees */
	uint64_t skew_flows;  /* flows with a clock-rate estimate good enough for LINK_SKEW */
	struct pair_count skew_all; /* every pair of those flows: chance for LINK_SKEW */
	uint32_t anon_p5, anon_median;
	/*
	 * Peer-to-peer flows (sim_params.p2p_share), and the pairs of one of them
	 * and another flow (TLS, QUIC) that share a source address and port: a
	 * front door joining a subscriber's mapping to its other traffic.
	 */
	uint64_t p2p_flows;
	struct pair_count p2p_cross;
	/*
	 * With several gateways (drive_opts.gateways): the distinct subscribers
	 * with live flows on the new flow's gateway, which its alias's slice
	 * names, and on all gateways, which is all an alias says with one; and
	 * the mean over new flows of log2 of the second over the first, the
	 * bits the slice gives away.
	 */
	uint32_t gateways;
	uint32_t gw_p5, gw_median, all_median;
	double slice_bits;
	/* From the engine itself (zero for rows without one). */
	bool has_engine;
	double below_k_share; /* new flows the engine counted on aliases with < k subscribers */
	double engine_median; /* mean over snapshots of cfr_engine_anonymity()'s IPv4 median */
	uint64_t engine_errors;
};

/* Count every linker's pairs over <ov> and the mutual information. Returns 0 or -ENOMEM. */
int metrics_compute(const struct obs_vec *ov, const struct link_params *lp, uint64_t seed,
                    struct metrics *m);
double precision(const struct metrics *m, enum linker l); /* NaN when nothing is linked */
double recall(const struct metrics *m, enum linker l);
/* Precision of a linker that joins pairs at random: the share of one-subscriber pairs. */
double chance(const struct metrics *m);
/*
 * The same among the flows the skew linker looks at, which is higher: only
 * long TCP flows of hosts with timestamps qualify, and fewer subscribers
 * have those.
 */
double skew_chance(const struct metrics *m);
/*
 * The linker with the best F1 score, of those that do not join every pair:
 * the strongest single adversary of this row.
 */
enum linker best_linker(const struct metrics *m);

/* --- clock skew as the front door measures it (skew.c) --- */

/*
 * Least-squares line through (receive time, TSval) samples of one flow: the
 * slope is the sender's TCP clock rate in ticks per ms of the front door's
 * clock. Samples are added one by one, relative to the first.
 */
struct skew_fit {
	double sx, sy, sxx, sxy, syy;
	uint32_t n;
};

void skew_fit_add(struct skew_fit *f, double t_ms, double ticks);
/* Rate error in ppm and its standard error; false with fewer than 3 samples. */
bool skew_fit_result(const struct skew_fit *f, double *skew_ppm, double *se_ppm);

/* --- output (report.c) --- */

struct row {
	char name[48];
	struct metrics m;
	double seconds;
};

void report_text(const struct row *rows, unsigned n, bool markdown, bool all);
int report_svg(const char *path, const struct row *rows, unsigned n);

/* Progress line on stderr, at most once a second. */
void progress(const char *what, uint64_t done, uint64_t total);
void progress_done(void);

#endif
