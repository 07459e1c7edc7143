/*
 * cfr-audit: measure how well an adversary at the front door can link
 * flows to subscribers, for cfr's policies and the baselines, on a
 * synthetic population driven through the real engine or on captures.
 *
 * This file is the command line and the list of table rows; it must stay
 * free of measurement logic so that the rows differ only in the engine
 * configuration they hand to drive_row().
 */
#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture.h"
#include "sim.h"

static const char usage[] =
    "usage: cfr-audit [options]\n"
    "       cfr-audit --pcap FRONTDOOR.pcap --truth FILE [--truth FILE]... [options]\n"
    "\n"
    "Measure the linkability of subscribers' flows as seen by a front door: a synthetic\n"
    "population replayed through the real engine (default), or a capture (--pcap).\n"
    "\n"
    "Population:\n"
    "  --subscribers N     subscribers (access lines) [10000]\n"
    "  --flows N           flows in the trace [1000000]\n"
    "  --hours H           simulated duration [6]\n"
    "  --remotes N         destinations, Zipf popularity [10000]\n"
    "  --top-share F       share of flows to the biggest front door [0.2]\n"
    "  --v6-share F        share of flows over IPv6 [0.4]\n"
    "  --udp-share F       share of QUIC-like UDP flows [0.25]\n"
    "  --p2p-share F       share of those from a host's peer-to-peer socket to 3478 [0]\n"
    "  --legacy-ts F       hosts with one TCP timestamp clock for all connections [0.15]\n"
    "  --windows F         hosts with TTL 128, IP ID counter, no timestamps [0.35]\n"
    "  --ttl255 F          hosts with initial TTL 255 [0.02]; the others start at 64\n"
    "  --label-host F      hosts with one IPv6 flow label for all flows [0.1]\n"
    "  --duration S        median flow duration in seconds (log-normal) [15]\n"
    "  --skew-sd PPM       hosts' clock rate error, standard deviation [50]\n"
    "  --skew-jitter MS    queueing delay per packet, exponential mean [2]\n"
    "  --diurnal           modulate arrivals with a day curve\n"
    "  --seed N            simulation seed; the same for every row [1]\n"
    "Engine:\n"
    "  --pool4 PREFIX      IPv4 alias pool [192.0.2.0/26]\n"
    "  --pool6 PREFIX      IPv6 alias pool [2001:db8:a1::/64]\n"
    "  --epoch S           privacy epoch of cfr's sticky policies [600]\n"
    "  --k N               anon_k: the engine counts new flows on aliases with fewer [8]\n"
    "  --max-flows N       engine flow table size [4194304]\n"
    "  --ttl-cap N         TTL cap of the cfr rows [the engine's default]\n"
    "  --gateways N        gateways, each an engine on its slice of the pools; line I\n"
    "                      homed on gateway I mod N [1]\n"
    "  --rows LIST         rows to run, comma-separated from:\n"
    "                      none,cgn,napt,flow,dest,sub,ttl64,ttl0,offset,noclass\n"
    "                      [all; noclass with --p2p-share]\n"
    "Adversary:\n"
    "  --window S          addr+window linker: starts at most S apart [60]\n"
    "  --ts-tol MS         tsval linker: offset tolerance [5]\n"
    "  --ts-horizon S      tsval linker: flows at most S apart [600]\n"
    "  --ts-skew PPM       tsval linker: clock drift allowed [200]\n"
    "  --skew-tol PPM      skew linker: estimated clock rates at most this far apart [0.5]\n"
    "  --skew-se PPM       skew linker: only flows estimated to this standard error [0.5]\n"
    "  --skew-samples N    skew linker: TSval samples fitted per flow, at most [7200]\n"
    "Capture mode:\n"
    "  --pcap FILE         front-door capture (Ethernet, raw IP or Linux cooked)\n"
    "  --truth FILE        subscriber-side capture or TSV (see cfr-audit(1)); repeatable\n"
    "  --truth-per-file    each --truth capture is one subscriber (else: its addresses)\n"
    "Output:\n"
    "  --markdown          Markdown table\n"
    "  --all               every linker and the engine's own counters\n"
    "  --svg FILE          write a plot\n"
    "  -h, --help          this text\n";

enum row_id {
	ROW_NONE,
	ROW_CGN,
	ROW_NAPT,
	ROW_FLOW,
	ROW_DEST,
	ROW_SUB,
	ROW_TTL64,   /* cfr per-flow with the TTL cap cfr had until issue 11 */
	ROW_TTL0,    /* cfr per-flow without a TTL cap */
	ROW_OFFSET,  /* cfr per-flow, TSval offset without the per-flow rate (as until 98b372f) */
	ROW_NOCLASS, /* cfr per-flow for every flow: no endpoint-independent class (before issue 17)
	              */
	ROW__COUNT
};

static const char *const row_keys[ROW__COUNT] = {"none", "cgn",   "napt", "flow",   "dest",
                                                 "sub",  "ttl64", "ttl0", "offset", "noclass"};
static const char *const row_names[ROW__COUNT] = {
    "no translation",
    "classic CGN",
    "random NAPT",
    "cfr per-flow",
    "cfr per-destination",
    "cfr per-subscriber",
    "cfr per-flow, ttl-cap 64",
    "cfr per-flow, ttl-cap 0",
    "cfr per-flow, offset only",
    "cfr per-flow, no classes",
};

struct opts {
	struct sim_params sim;
	struct link_params link;
	struct drive_opts drive;
	const char *pool4, *pool6, *svg, *pcap;
	const char *truth[256];
	unsigned n_truth;
	bool truth_per_file;
	uint32_t epoch_s, anon_k, max_flows;
	int ttl_cap; /* -1: the engine's default */
	bool rows[ROW__COUNT];
	bool markdown, all;
};

static int parse_rows(const char *list, bool *rows)
{
	char buf[128], *tok, *save = NULL;
	unsigned i;

	if (strlen(list) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, list);
	memset(rows, 0, ROW__COUNT * sizeof(*rows));
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < ROW__COUNT; i++)
			if (strcmp(tok, row_keys[i]) == 0)
				break;
		if (i == ROW__COUNT)
			return -EINVAL;
		rows[i] = true;
	}
	return 0;
}

static int num(const char *s, double lo, double hi, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end || *out < lo || *out > hi ? -EINVAL : 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
	    {"subscribers", 1, 0, 'S'},
	    {"flows", 1, 0, 'F'},
	    {"hours", 1, 0, 'H'},
	    {"remotes", 1, 0, 'R'},
	    {"top-share", 1, 0, 'T'},
	    {"v6-share", 1, 0, '6'},
	    {"udp-share", 1, 0, 'U'},
	    {"p2p-share", 1, 0, 'Q'},
	    {"legacy-ts", 1, 0, 'L'},
	    {"windows", 1, 0, 'W'},
	    {"ttl255", 1, 0, '5'},
	    {"label-host", 1, 0, 'B'},
	    {"duration", 1, 0, 'D'},
	    {"skew-sd", 1, 0, 'x'},
	    {"skew-jitter", 1, 0, 'j'},
	    {"diurnal", 0, 0, 'd'},
	    {"seed", 1, 0, 's'},
	    {"pool4", 1, 0, '4'},
	    {"pool6", 1, 0, 'P'},
	    {"epoch", 1, 0, 'e'},
	    {"k", 1, 0, 'k'},
	    {"max-flows", 1, 0, 'M'},
	    {"ttl-cap", 1, 0, 'c'},
	    {"gateways", 1, 0, 'G'},
	    {"rows", 1, 0, 'r'},
	    {"window", 1, 0, 'w'},
	    {"ts-tol", 1, 0, 't'},
	    {"ts-horizon", 1, 0, 'z'},
	    {"ts-skew", 1, 0, 'K'},
	    {"skew-tol", 1, 0, 'o'},
	    {"skew-se", 1, 0, 'E'},
	    {"skew-samples", 1, 0, 'n'},
	    {"pcap", 1, 0, 'p'},
	    {"truth", 1, 0, 'g'},
	    {"truth-per-file", 0, 0, 'f'},
	    {"markdown", 0, 0, 'm'},
	    {"all", 0, 0, 'a'},
	    {"svg", 1, 0, 'v'},
	    {"help", 0, 0, 'h'},
	    {0, 0, 0, 0},
	};
	int c, idx = -1;
	double v;

	sim_params_defaults(&o->sim);
	/* Hosts' clocks are off by up to 4 x 50 ppm: the tsval linker allows 200. */
	o->link = (struct link_params){60000, 5, 600000, 200, 0.5, 0.5};
	o->drive.snapshot_s = 60;
	o->drive.skew_samples = 7200;
	o->drive.gateways = 1;
	o->ttl_cap = -1;
	o->pool4 = "192.0.2.0/26";
	o->pool6 = "2001:db8:a1::/64";
	o->epoch_s = 600;
	o->anon_k = 8;
	o->max_flows = 1u << 22;
	/* The row without classes only says something with peer-to-peer flows. */
	for (c = 0; c < ROW__COUNT; c++)
		o->rows[c] = c != ROW_NOCLASS;

	while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		const char *a = optarg;
		int err = 0;

		switch (c) {
		case 'S':
			/* IPv4 addresses in 100.64.0.0/10, one each. */
			err = num(a, 1, (1 << 22) - 2, &v);
			o->sim.subscribers = (uint32_t)v;
			break;
		case 'F':
			err = num(a, 1, 4e9, &v);
			o->sim.flows = (uint64_t)v;
			break;
		case 'H':
			err = num(a, 0.01, 24 * 30, &o->sim.hours);
			break;
		case 'R':
			err = num(a, 1, 131072, &v);
			o->sim.remotes = (uint32_t)v;
			break;
		case 'T':
			err = num(a, 0, 1, &o->sim.top_share);
			break;
		case '6':
			err = num(a, 0, 1, &o->sim.v6_share);
			break;
		case 'U':
			err = num(a, 0, 1, &o->sim.udp_share);
			break;
		case 'Q':
			err = num(a, 0, 1, &o->sim.p2p_share);
			o->rows[ROW_NOCLASS] = true;
			break;
		case 'L':
			err = num(a, 0, 1, &o->sim.legacy_ts);
			break;
		case 'W':
			err = num(a, 0, 1, &o->sim.windows);
			break;
		case 'B':
			err = num(a, 0, 1, &o->sim.label_host);
			break;
		case '5':
			err = num(a, 0, 1, &o->sim.ttl255);
			break;
		case 'x':
			err = num(a, 0, 1000, &o->sim.skew_sd_ppm);
			break;
		case 'j':
			err = num(a, 0, 10000, &o->sim.skew_jitter_ms);
			break;
		case 'D':
			err = num(a, 0.05, 14400, &o->sim.dur_median_s);
			break;
		case 'd':
			o->sim.diurnal = true;
			break;
		case 's':
			err = num(a, 0, 1e18, &v);
			o->sim.seed = (uint64_t)v;
			break;
		case '4':
			o->pool4 = a;
			break;
		case 'P':
			o->pool6 = a;
			break;
		case 'e':
			err = num(a, 1, 1e9, &v);
			o->epoch_s = (uint32_t)v;
			break;
		case 'k':
			err = num(a, 1, 1e9, &v);
			o->anon_k = (uint32_t)v;
			break;
		case 'M':
			err = num(a, 1024, 1 << 28, &v);
			o->max_flows = (uint32_t)v;
			break;
		case 'c':
			err = num(a, 0, 255, &v);
			o->ttl_cap = (int)v;
			break;
		case 'G':
			err = num(a, 1, AUDIT_MAX_GATEWAYS, &v);
			o->drive.gateways = (uint32_t)v;
			break;
		case 'r':
			err = parse_rows(a, o->rows);
			break;
		case 'w':
			err = num(a, 0, 86400, &v);
			o->link.window_ms = (uint32_t)(v * 1000);
			break;
		case 't':
			err = num(a, 0, 1e6, &v);
			o->link.ts_tol_ms = (uint32_t)v;
			break;
		case 'z':
			err = num(a, 0, 86400 * 30, &v);
			o->link.ts_horizon_ms = (uint32_t)(v * 1000);
			break;
		case 'K':
			err = num(a, 0, 1e4, &v);
			o->link.ts_skew_ppm = (uint32_t)v;
			break;
		case 'o':
			err = num(a, 0, 1e6, &o->link.skew_tol_ppm);
			break;
		case 'E':
			err = num(a, 0, 1e6, &o->link.skew_max_se_ppm);
			break;
		case 'n':
			err = num(a, 3, 1 << 20, &v);
			o->drive.skew_samples = (uint32_t)v;
			break;
		case 'p':
			o->pcap = a;
			break;
		case 'g':
			if (o->n_truth == sizeof(o->truth) / sizeof(o->truth[0]))
				return -E2BIG;
			o->truth[o->n_truth++] = a;
			break;
		case 'f':
			o->truth_per_file = true;
			break;
		case 'm':
			o->markdown = true;
			break;
		case 'a':
			o->all = true;
			break;
		case 'v':
			o->svg = a;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			return -EINVAL;
		}
		if (err) {
			fprintf(stderr, "cfr-audit: bad value for --%s: %s\n",
			        idx >= 0 ? longopts[idx].name : "?", a);
			return err;
		}
	}
	if (optind != argc || !o->pcap != !o->n_truth)
		return -EINVAL;
	if (o->pcap && o->drive.gateways > 1) {
		fprintf(stderr,
		        "cfr-audit: --gateways is for the synthetic population, not --pcap\n");
		return -EINVAL;
	}
	if (o->sim.legacy_ts + o->sim.windows > 1 || o->sim.ttl255 + o->sim.windows > 1) {
		fprintf(stderr, "cfr-audit: --legacy-ts or --ttl255 plus --windows exceeds 1\n");
		return -EINVAL;
	}
	return 0;
}

/* The engine configuration of each row; all share pools, timeouts and table size. */
static int row_config(const struct opts *o, enum row_id id, struct drive_row *r,
                      struct pool_list *pools)
{
	struct cfr_engine_config *c = &r->cfg;
	unsigned f;

	memset(r, 0, sizeof(*r));
	r->name = row_names[id];
	r->translate = id != ROW_NONE;
	cfr_engine_config_defaults(c);
	if (cfr_prefix_parse(o->pool4, &c->pool4[0]) != 0 || c->pool4[0].family != CFR_FAMILY_V4 ||
	    cfr_prefix_parse(o->pool6, &c->pool6[0]) != 0 || c->pool6[0].family != CFR_FAMILY_V6) {
		fprintf(stderr, "cfr-audit: bad --pool4 or --pool6\n");
		return -EINVAL;
	}
	c->n_pool4 = c->n_pool6 = 1;
	if (o->drive.gateways > 1) {
		struct cfr_prefix s4, s6;

		if (pool_slice(&c->pool4[0], 0, o->drive.gateways, &s4) != 0 ||
		    pool_slice(&c->pool6[0], 0, o->drive.gateways, &s6) != 0 ||
		    s6.len > CFR_POOL6_MAX_LEN) {
			fprintf(stderr, "cfr-audit: --pool4 or --pool6 too small for %u gateways\n",
			        o->drive.gateways);
			return -EINVAL;
		}
	}
	c->n_subscribers =
	    sub_prefixes(o->sim.subscribers, c->subscribers, CFR_MAX_SUBSCRIBER_PREFIXES);
	c->max_flows = o->max_flows;
	/* Each line is two engine subscribers (its IPv4 address and its IPv6 /64). */
	c->max_subscribers = 2 * o->sim.subscribers + 1024;
	c->epoch_s = o->epoch_s;
	c->anon_k = o->anon_k;
	pools->n = 0;
	pools->p[pools->n++] = c->pool4[0];
	pools->p[pools->n++] = c->pool6[0];
	for (f = 0; f < CFR_FAMILY__COUNT; f++) {
		switch (id) {
		case ROW_CGN:
		case ROW_SUB:
			c->policy[f] = CFR_POLICY_PER_SUBSCRIBER;
			break;
		case ROW_DEST:
			c->policy[f] = CFR_POLICY_PER_DESTINATION;
			break;
		default:
			c->policy[f] = CFR_POLICY_PER_FLOW;
		}
	}
	if (o->ttl_cap >= 0)
		c->scrub.ttl_cap = (uint8_t)o->ttl_cap;
	if (id == ROW_TTL64)
		c->scrub.ttl_cap = 64;
	if (id == ROW_TTL0)
		c->scrub.ttl_cap = 0;
	/* The TCP timestamp's offset as before, without the rate of the flow's own. */
	if (id == ROW_OFFSET)
		c->scrub.tcp_timestamp_rate = false;
	/* Every flow per-flow, UDP to 3478 included: cfr before traffic classes. */
	if (id == ROW_NOCLASS)
		c->n_classes = 0;
	if (id == ROW_CGN || id == ROW_NAPT)
		memset(&c->scrub, 0, sizeof(c->scrub));
	/* Paired pooling (RFC 7857 §2.1, RFC 6888 REQ-2): one address per subscriber, kept. */
	if (id == ROW_CGN)
		c->epoch_s = UINT32_MAX;
	return 0;
}

static double since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int run_sim(const struct opts *o, struct row *rows, unsigned *n)
{
	unsigned id;

	*n = 0;
	for (id = 0; id < ROW__COUNT; id++) {
		struct drive_row dr;
		struct pool_list pools;
		struct obs_vec ov = {0};
		struct row *r = &rows[*n];
		struct timespec t0;
		int err;

		if (!o->rows[id])
			continue;
		if ((err = row_config(o, id, &dr, &pools)) != 0)
			return err;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		memset(r, 0, sizeof(*r));
		snprintf(r->name, sizeof(r->name), "%s", dr.name);
		fprintf(stderr, "cfr-audit: %s\n", dr.name);
		err = drive_row(&o->sim, &dr, &o->drive, &pools, &ov, &r->m);
		if (!err)
			err = metrics_compute(&ov, &o->link, o->sim.seed, &r->m);
		obs_free(&ov);
		if (err) {
			fprintf(stderr, "cfr-audit: %s: %s\n", dr.name, strerror(-err));
			return err;
		}
		r->seconds = since(&t0);
		fprintf(stderr, "cfr-audit: %s done in %.1f s\n", dr.name, r->seconds);
		(*n)++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct row rows[ROW__COUNT];
	struct opts o;
	unsigned n = 0;
	int err;

	memset(&o, 0, sizeof(o));
	if (parse_opts(argc, argv, &o) != 0) {
		fputs(usage, stderr);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "cfr-audit: libsodium failed to initialise\n");
		return 1;
	}
	if (o.pcap) {
		struct drive_row dr;
		struct pool_list pools;

		err = row_config(&o, ROW_FLOW, &dr, &pools);
		if (!err)
			err = capture_run(o.pcap, o.truth, o.n_truth, o.truth_per_file, &pools,
			                  &o.link, o.sim.seed, rows, &n);
	} else {
		err = run_sim(&o, rows, &n);
	}
	if (err)
		return 1;
	report_text(rows, n, o.markdown, o.all);
	if (!o.pcap) {
		struct cfr_engine_config def;

		cfr_engine_config_defaults(&def);
		printf("ttl-cap of the cfr rows: %d (the engine's default: %u)\n",
		       o.ttl_cap >= 0 ? o.ttl_cap : def.scrub.ttl_cap, def.scrub.ttl_cap);
		printf("TSval rate per flow (tcp-timestamp-rate) of the cfr rows: %s, but off in "
		       "\"%s\"\n",
		       def.scrub.tcp_timestamp_rate ? "on, the engine's default" : "off",
		       row_names[ROW_OFFSET]);
		if (o.drive.gateways > 1) {
			struct cfr_prefix p4, p6, s4, s6;

			cfr_prefix_parse(o.pool4, &p4);
			cfr_prefix_parse(o.pool6, &p6);
			pool_slice(&p4, 0, o.drive.gateways, &s4);
			pool_slice(&p6, 0, o.drive.gateways, &s6);
			printf(
			    "gateways: %u, each an engine on a /%u of the IPv4 pool and a /%u of "
			    "the IPv6 pool, line I on gateway I mod %u; gw set: subscribers live "
			    "on "
			    "the new flow's gateway, which its alias's slice names; all gws: live "
			    "on "
			    "any; slice bits: mean log2 of all gws over gw set\n",
			    o.drive.gateways, s4.len, s6.len, o.drive.gateways);
		}
	}
	if (o.svg && report_svg(o.svg, rows, n) != 0) {
		fprintf(stderr, "cfr-audit: %s: %s\n", o.svg, strerror(errno));
		return 1;
	}
	return 0;
}
