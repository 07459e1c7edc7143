/*
 * cfr-audit: the synthetic population and the flows it makes.
 *
 * Subscribers are access lines with one to four dual-stack hosts. Each host
 * has an operating-system profile that decides the side signals a front
 * door can read: initial TTL (64, 128 or 255), TCP timestamps (one clock for
 * all connections on legacy stacks, a random offset per connection on
 * modern ones; either way the rate of the host's own clock), IPv4
 * identification (a global counter on some stacks) and the IPv6 flow label
 * (a per-host constant on some). Flows arrive as one Poisson process per
 * subscriber with log-normal activity (their superposition is one Poisson
 * process whose events pick a subscriber by weight), optionally modulated by
 * a day curve. Destinations follow a Zipf law with one front-door address
 * taking a fixed share: a 2026 scan found one IP fronting ~21% of the ECH
 * domains (MISSION.md).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define DIURNAL_DEPTH 0.6
#define DAY_MS        86400000.0
/* Below the engine's established-TCP timeout: the model has no keepalives. */
#define MAX_DUR_MS (2.0 * 3600e3)

void sim_params_defaults(struct sim_params *p)
{
	memset(p, 0, sizeof(*p));
	p->subscribers = 10000;
	p->remotes = 10000;
	p->flows = 1000000;
	p->hours = 6;
	p->v6_share = 0.4;
	p->udp_share = 0.25;
	p->top_share = 0.2;
	p->legacy_ts = 0.15;
	p->windows = 0.35;
	p->ttl255 = 0.02;
	p->label_host = 0.1;
	p->dur_median_s = 15;
	p->dur_sigma = 1.5;
	p->skew_sd_ppm = 50;
	p->skew_jitter_ms = 2;
	p->seed = 1;
}

/* Rate multiplier over the day: lowest at 04:00, highest at 16:00. */
static double diurnal(double t_ms)
{
	return 1.0 + DIURNAL_DEPTH * sin(2.0 * M_PI * (t_ms / DAY_MS - 10.0 / 24.0));
}

static size_t pick(const double *cdf, size_t n, double u)
{
	size_t lo = 0, hi = n - 1;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void normalise(double *cdf, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++)
		cdf[i] += cdf[i - 1];
	for (i = 0; i < n; i++)
		cdf[i] /= cdf[n - 1];
}

static void init_host(struct trace *tr, struct host *h)
{
	struct prng *r = &tr->rng;
	double u = prng_unit(r), sd = tr->p.skew_sd_ppm * 1e-6, skew = prng_normal(r) * sd;

	h->os = u < tr->p.legacy_ts                   ? OS_LEGACY_TS
	        : u < tr->p.legacy_ts + tr->p.windows ? OS_WINDOWS
	                                              : OS_MODERN;
	/* Out of the 64 hosts, so that --ttl255 is a share of all hosts. */
	u = prng_unit(r);
	h->ttl0 = h->os == OS_WINDOWS ? 128 : u * (1 - tr->p.windows) < tr->p.ttl255 ? 255 : 64;
	h->label_host = prng_unit(r) < tr->p.label_host;
	h->next_port = (uint16_t)(32768 + prng_below(r, 28232));
	h->ip_id = (uint16_t)prng_u64(r);
	/*
	 * Quartz clocks: tens of ppm (Kohno et al., remote physical device
	 * fingerprinting), cut at four standard deviations.
	 */
	h->skew = (float)(skew > 4 * sd ? 4 * sd : skew < -4 * sd ? -4 * sd : skew);
	h->ts_base = (uint32_t)prng_u64(r);
	h->label = 1 + prng_below(r, 0xfffff);
	h->iid = prng_u64(r) | 1;
}

int trace_init(struct trace *tr, const struct sim_params *p)
{
	uint32_t s, n_hosts = 0, i;
	double mean_rate = 0;

	memset(tr, 0, sizeof(*tr));
	tr->p = *p;
	prng_seed(&tr->rng, p->seed);
	tr->subs = calloc(p->subscribers, sizeof(*tr->subs));
	tr->hosts = calloc((size_t)p->subscribers * 4, sizeof(*tr->hosts));
	tr->sub_cdf = calloc(p->subscribers, sizeof(double));
	tr->remote_cdf = calloc(p->remotes, sizeof(double));
	if (!tr->subs || !tr->hosts || !tr->sub_cdf || !tr->remote_cdf) {
		trace_free(tr);
		return -ENOMEM;
	}
	for (s = 0; s < p->subscribers; s++) {
		struct subscriber *sb = &tr->subs[s];
		double u = prng_unit(&tr->rng);

		sb->first_host = n_hosts;
		sb->n_hosts = u < 0.4 ? 1 : u < 0.7 ? 2 : u < 0.9 ? 3 : 4;
		/*
		 * Hosts on the line itself (0), behind the home router (1), behind
		 * a second router or a mesh hop (2), or both (3).
		 */
		u = prng_unit(&tr->rng);
		sb->access_hops = u < 0.1 ? 0 : u < 0.7 ? 1 : u < 0.95 ? 2 : 3;
		sb->delay_ms = (uint16_t)(5 + prng_below(&tr->rng, 30));
		for (i = 0; i < sb->n_hosts; i++)
			init_host(tr, &tr->hosts[n_hosts++]);
		sb->next_port4 = tr->hosts[sb->first_host].next_port;
		/* Log-normal activity: a few heavy lines, many light ones. */
		tr->sub_cdf[s] = exp(prng_normal(&tr->rng));
	}
	normalise(tr->sub_cdf, p->subscribers);
	tr->remote_cdf[0] = p->remotes > 1 ? p->top_share : 1.0;
	{
		double h = 0;

		for (i = 1; i < p->remotes; i++)
			h += 1.0 / i;
		for (i = 1; i < p->remotes; i++)
			tr->remote_cdf[i] = (1.0 - p->top_share) / (i * h);
	}
	normalise(tr->remote_cdf, p->remotes);

	/* Peak rate such that p->flows arrive in about p->hours. */
	if (p->diurnal) {
		for (i = 0; i < 1000; i++)
			mean_rate += diurnal(SIM_START_MS + p->hours * 3600e3 * (i + 0.5) / 1000);
		mean_rate /= 1000;
	} else {
		mean_rate = 1.0;
	}
	tr->rate_per_ms = (double)p->flows / (p->hours * 3600e3) / mean_rate *
	                  (p->diurnal ? 1.0 + DIURNAL_DEPTH : 1.0);
	tr->t = SIM_START_MS;
	return 0;
}

void trace_free(struct trace *tr)
{
	free(tr->subs);
	free(tr->hosts);
	free(tr->sub_cdf);
	free(tr->remote_cdf);
	memset(tr, 0, sizeof(*tr));
}

bool trace_next(struct trace *tr, struct flow_spec *f)
{
	struct prng *r = &tr->rng;
	const struct subscriber *sb;
	double dur;

	if (tr->emitted >= tr->p.flows)
		return false;
	/* Thinning (Lewis-Shedler): draw at the peak rate, keep with rate(t)/peak. */
	do
		tr->t += prng_exp(r, 1.0 / tr->rate_per_ms);
	while (tr->p.diurnal && prng_unit(r) * (1.0 + DIURNAL_DEPTH) > diurnal(tr->t));

	f->t_ms = (uint64_t)tr->t;
	f->sub = (uint32_t)pick(tr->sub_cdf, tr->p.subscribers, prng_unit(r));
	sb = &tr->subs[f->sub];
	f->host = sb->first_host + prng_below(r, sb->n_hosts);
	f->remote = (uint32_t)pick(tr->remote_cdf, tr->p.remotes, prng_unit(r));
	f->family = prng_unit(r) < tr->p.v6_share ? CFR_FAMILY_V6 : CFR_FAMILY_V4;
	f->proto = prng_unit(r) < tr->p.udp_share ? 17 : 6;
	/* Drawn only when asked for, so that the trace is the same without. */
	f->p2p = f->proto == 17 && tr->p.p2p_share > 0 && prng_unit(r) < tr->p.p2p_share;
	dur = tr->p.dur_median_s * 1e3 * exp(tr->p.dur_sigma * prng_normal(r));
	f->dur_ms = (uint32_t)(dur < 50 ? 50 : dur > MAX_DUR_MS ? MAX_DUR_MS : dur);
	tr->emitted++;
	return true;
}

void sub_addr4(uint32_t sub, uint8_t out[4])
{
	uint32_t a = 0x64400001u + sub; /* 100.64.0.1 onwards, inside 100.64.0.0/10 */

	out[0] = (uint8_t)(a >> 24);
	out[1] = (uint8_t)(a >> 16);
	out[2] = (uint8_t)(a >> 8);
	out[3] = (uint8_t)a;
}

/*
 * Subscriber i is delegated the /56 whose bits 32-55 are 0x010000 + i
 * (2001:db8:100::/56, 2001:db8:100:100::/56, ...; RIPE-690's /56 per
 * customer, the engine's default subscriber identity), and its hosts sit in
 * the first /64 of it.
 */
void host_addr6(const struct trace *tr, uint32_t sub, uint32_t host, uint8_t out[16])
{
	uint64_t iid = tr->hosts[host].iid;
	uint32_t p = 0x010000 + sub;
	unsigned i;

	out[0] = 0x20;
	out[1] = 0x01;
	out[2] = 0x0d;
	out[3] = 0xb8;
	out[4] = (uint8_t)(p >> 16);
	out[5] = (uint8_t)(p >> 8);
	out[6] = (uint8_t)p;
	out[7] = 0;
	for (i = 0; i < 8; i++)
		out[8 + i] = (uint8_t)(iid >> (56 - 8 * i));
}

/*
 * The biggest front door gets the lab's service addresses (203.0.113.10,
 * 2001:db8:f::10); the others are spread over 198.18.0.0/15 and
 * 2001:db8:f:1::/64.
 */
void remote_addr(uint32_t remote, uint8_t family, uint8_t out[16])
{
	memset(out, 0, 16);
	if (family == CFR_FAMILY_V4) {
		uint32_t a = remote == 0 ? 0xcb00710au : 0xc6120000u + remote;

		out[0] = (uint8_t)(a >> 24);
		out[1] = (uint8_t)(a >> 16);
		out[2] = (uint8_t)(a >> 8);
		out[3] = (uint8_t)a;
		return;
	}
	out[0] = 0x20;
	out[1] = 0x01;
	out[2] = 0x0d;
	out[3] = 0xb8;
	out[5] = 0x0f;
	if (remote == 0) {
		out[15] = 0x10;
		return;
	}
	out[7] = 1;
	out[12] = (uint8_t)(remote >> 24);
	out[13] = (uint8_t)(remote >> 16);
	out[14] = (uint8_t)(remote >> 8);
	out[15] = (uint8_t)remote;
}

unsigned sub_prefixes(uint32_t n, struct cfr_prefix *out, unsigned max)
{
	unsigned k, count = 1;

	cfr_prefix_parse("100.64.0.0/10", &out[0]);
	for (k = 0; k * 65536ull < n && count < max; k++) {
		struct cfr_prefix *p = &out[count++];

		/* 65536 customers' /56s to a /40: 2001:db8:100::/40, 2001:db8:200::/40, ... */
		cfr_prefix_parse("2001:db8:100::/40", p);
		p->addr[4] = (uint8_t)(0x01 + k);
	}
	return count;
}
