/*
 * cfr-audit: the synthetic population and its trace (trace.c), and the
 * replay of that trace through one engine configuration (drive.c).
 *
 * Everything random here comes from the seeded simulation PRNG, so every
 * table row replays exactly the same subscribers, hosts and flows; only the
 * engine (with its own CSPRNG) differs between rows.
 */
#ifndef CFR_AUDIT_SIM_H
#define CFR_AUDIT_SIM_H

#include "audit.h"

struct sim_params {
	uint32_t subscribers;
	uint32_t remotes;
	uint64_t flows;
	double hours;
	bool diurnal;
	double v6_share;  /* flows over IPv6 (every host is dual-stack) */
	double udp_share; /* QUIC-like UDP flows */
	double
	    p2p_share; /* of those, peer-to-peer (STUN, games): a host's one socket to port 3478 */
	double top_share;    /* flows to the biggest front door address */
	double legacy_ts;    /* hosts with one TCP timestamp clock for all connections */
	double windows;      /* hosts with TTL 128, a global IP ID counter, no timestamps */
	double ttl255;       /* hosts with initial TTL 255 (network gear, older Unix) */
	double label_host;   /* hosts with one IPv6 flow label for every flow */
	double dur_median_s; /* flow duration: log-normal */
	double dur_sigma;
	double skew_sd_ppm;    /* hosts' clock rate errors: normal, this standard deviation */
	double skew_jitter_ms; /* queueing delay of each packet: exponential, this mean */
	uint64_t seed;
};

void sim_params_defaults(struct sim_params *p);

enum host_os { OS_MODERN = 0, OS_LEGACY_TS, OS_WINDOWS };

struct host {
	uint8_t os;         /* enum host_os */
	uint8_t label_host; /* one flow label for all flows */
	uint16_t next_port; /* ephemeral ports over IPv6, sequential from a random start */
	uint16_t ip_id;     /* global counter (legacy and Windows stacks) */
	uint8_t ttl0;       /* initial TTL / hop limit: 64, 128 or 255 */
	uint8_t pad_;
	float skew;       /* clock rate error (50e-6 is 50 ppm): its TCP clocks tick at 1 + skew */
	uint32_t ts_base; /* legacy TCP clock: TSval = ts_base + (1 + skew) * t_ms */
	uint32_t label;
	uint64_t iid; /* IPv6 interface identifier */
};

struct subscriber {
	uint32_t first_host;
	uint8_t n_hosts;
	uint8_t access_hops; /* routers between host and gateway (0-3): shows in the TTL */
	uint16_t delay_ms;   /* one-way gateway to front door */
	/*
	 * The hosts share the line's IPv4 address, and the home router gives
	 * each IPv4 connection a source port of its own (sequential), so two
	 * hosts never send one tuple; over IPv6 each host has its own address
	 * and ports.
	 */
	uint16_t next_port4;
};

struct flow_spec {
	uint64_t t_ms; /* when the host sends the first packet */
	uint32_t sub, host, remote, dur_ms;
	uint8_t family, proto;
	uint8_t p2p; /* from the host's peer-to-peer socket */
};

struct trace {
	struct sim_params p;
	struct prng rng;
	struct subscriber *subs;
	struct host *hosts;
	double *sub_cdf;    /* activity: cumulative weights, for sampling */
	double *remote_cdf; /* popularity */
	double rate_per_ms; /* peak arrival rate */
	double t;           /* ms */
	uint64_t emitted;
};

#define SIM_START_MS 1000u

/* Build the population from p->seed. Returns 0 or -ENOMEM. */
int trace_init(struct trace *tr, const struct sim_params *p);
void trace_free(struct trace *tr);
/* The next flow in start-time order; false once p.flows have been emitted. */
bool trace_next(struct trace *tr, struct flow_spec *f);

/* Addresses of the model (subscribers and remotes). */
void sub_addr4(uint32_t sub, uint8_t out[4]);
void host_addr6(const struct trace *tr, uint32_t sub, uint32_t host, uint8_t out[16]);
void remote_addr(uint32_t remote, uint8_t family, uint8_t out[16]);
/* Subscriber prefixes the engine must authorise for <n> subscribers. */
unsigned sub_prefixes(uint32_t n, struct cfr_prefix *out, unsigned max);

/* --- drive.c --- */

struct drive_row {
	const char *name;
	bool translate; /* false: the front door sees the subscriber itself */
	struct cfr_engine_config cfg;
};

struct drive_opts {
	uint32_t snapshot_s;   /* cfr_engine_anonymity() every this many simulated seconds */
	uint32_t skew_samples; /* the most TSval samples of one flow the front door fits */
	/*
	 * Gateways the population is split over (docs/scale-out.md): line I is
	 * homed on gateway I mod N, whose engine owns slice I mod N of the pools.
	 */
	uint32_t gateways;
};

#define AUDIT_MAX_GATEWAYS 64

/*
 * Slice <k> of <n> of <pool>: the pool split into 2^ceil(log2 n) equal
 * prefixes, as the lab splits it (3 gateways take /28s of a /26 and leave a
 * quarter). Returns 0, or -EINVAL if the pool is too small to split.
 */
int pool_slice(const struct cfr_prefix *pool, uint32_t k, uint32_t n, struct cfr_prefix *out);

/*
 * Replay the trace of <p> through <row>, with <o>->gateways engines each on
 * its slice of <row>'s pools; fill <ov> and the anonymity/engine parts of <m>.
 */
int drive_row(const struct sim_params *p, const struct drive_row *row, const struct drive_opts *o,
              const struct pool_list *pools, struct obs_vec *ov, struct metrics *m);

#endif
