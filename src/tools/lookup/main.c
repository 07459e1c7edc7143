/*
 * cfr-lookup: answer an abuse complaint from cfrd's sealed records
 * (cfr-lookup(8), docs/accountability.md). Given the private key and what
 * the front door saw (alias, port, time), it names the subscriber(s) whose
 * secret per-epoch allocation sequence produced that alias and port then.
 *
 * It prints what it was asked and what it found, nothing else: it reads no
 * destination (the records have none) and lists no other subscriber.
 * Exit status: 0 a match, 1 no match, 3 no match but some record covering
 * the time could not be read, 2 a usage or fatal error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "search.h"

enum { EXIT_MATCH = 0, EXIT_NO_MATCH = 1, EXIT_USAGE = 2, EXIT_INCOMPLETE = 3 };

static const char usage_text[] =
    "Usage: cfr-lookup -k KEYFILE -d RECORDS_DIR --alias ADDRESS --port PORT\n"
    "                  --time TIME [--tolerance S] [--flow-age S] [--proto tcp|udp|icmp]\n"
    "                  [--remote ADDRESS] [--json]\n"
    "Name the subscriber who used an alias and port at a given time, from cfrd's\n"
    "sealed accountability records.\n"
    "\n"
    "  -k, --key FILE        private key (from cfr-keygen)\n"
    "  -d, --records DIR     records directory (cfrd.conf [accounting] records);\n"
    "                        repeat it for several gateways' directories\n"
    "  -a, --alias ADDRESS   the source address the front door saw (IPv4 or IPv6)\n"
    "  -p, --port PORT       the source port it saw (the identifier, for ICMP echo)\n"
    "  -t, --time TIME       when the flow began: ISO 8601 with Z or an offset\n"
    "                        (2026-03-01T14:03:12Z), or Unix seconds\n"
    "      --tolerance S     clock uncertainty either side, in seconds (default 2)\n"
    "      --flow-age S      the flow may have begun up to S seconds before TIME\n"
    "                        (for front doors that log a connection when it ends)\n"
    "      --proto PROTO     tcp, udp or icmp: recorded in the answer (allocations do\n"
    "                        not depend on it)\n"
    "  -r, --remote ADDRESS  the front door's address the flow went to; required when\n"
    "                        the pool uses the per-destination policy\n"
    "      --json            print JSON\n"
    "  -h, --help            show this help and exit\n"
    "\n"
    "Exit status: 0 match, 1 no match, 3 no match but some records covering the\n"
    "time were unreadable, 2 error. See cfr-lookup(8).\n";

/* Records directories one lookup reads: one per gateway (docs/scale-out.md). */
#define MAX_DIRS 64

struct options {
	const char *key, *alias, *remote, *time, *proto;
	const char *dirs[MAX_DIRS];
	size_t n_dirs;
	double tolerance, flow_age;
	uint16_t port;
	bool have_port, json;
};

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("cfr-lookup: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(cfr-lookup --help for usage)\n", stderr);
	return -EINVAL;
}

static int parse_addr(const char *text, uint8_t *family, uint8_t out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, text, out) == 1) {
		*family = CFR_FAMILY_V4;
		return 0;
	}
	if (inet_pton(AF_INET6, text, out) == 1) {
		*family = CFR_FAMILY_V6;
		return 0;
	}
	return -EINVAL;
}

static int parse_seconds(const char *text, double max, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(text, &end);
	return errno || end == text || *end || !isfinite(*out) || *out < 0 || *out > max ? -EINVAL
	                                                                                 : 0;
}

/* ISO 8601 (seconds, optional fraction, Z or ±HH:MM) or Unix seconds, to Unix ms. */
static int parse_time(const char *text, uint64_t *ms)
{
	struct tm tm = {0};
	double frac = 0, secs;
	const char *p;
	char *end;
	long off = 0;
	time_t t;

	if (strspn(text, "0123456789.") == strlen(text))
		return parse_seconds(text, 1e11, &secs) < 0 ? -EINVAL
		                                            : (*ms = (uint64_t)(secs * 1000), 0);
	p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	if (*p == '.') {
		frac = strtod(p, &end);
		p = end;
	}
	if (*p == 'Z' && p[1] == '\0') {
		off = 0;
	} else if ((*p == '+' || *p == '-') && strlen(p) >= 5) {
		int hh, mm;

		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 &&
		    sscanf(p + 1, "%2d%2d", &hh, &mm) != 2)
			return -EINVAL;
		off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
	} else {
		return -EINVAL;
	}
	t = timegm(&tm);
	if (t < 0 || t - off < 0)
		return -EINVAL;
	*ms = (uint64_t)(t - off) * 1000 + (uint64_t)(frac * 1000);
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option options[] = {
	    {"key", required_argument, NULL, 'k'},      {"records", required_argument, NULL, 'd'},
	    {"alias", required_argument, NULL, 'a'},    {"port", required_argument, NULL, 'p'},
	    {"time", required_argument, NULL, 't'},     {"tolerance", required_argument, NULL, 'T'},
	    {"flow-age", required_argument, NULL, 'A'}, {"proto", required_argument, NULL, 'P'},
	    {"remote", required_argument, NULL, 'r'},   {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
	};
	int opt;

	*o = (struct options){.tolerance = 2};
	while ((opt = getopt_long(argc, argv, "k:d:a:p:t:r:h", options, NULL)) != -1) {
		switch (opt) {
		case 'k':
			o->key = optarg;
			break;
		case 'd':
			if (o->n_dirs == MAX_DIRS)
				return usage_error("--records: at most %d directories", MAX_DIRS);
			o->dirs[o->n_dirs++] = optarg;
			break;
		case 'a':
			o->alias = optarg;
			break;
		case 'p': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*optarg == '\0' || *end || v < 0 || v > 65535)
				return usage_error("--port: not a port number: %s", optarg);
			o->port = (uint16_t)v;
			o->have_port = true;
			break;
		}
		case 't':
			o->time = optarg;
			break;
		case 'T':
			if (parse_seconds(optarg, 1e9, &o->tolerance) < 0)
				return usage_error("--tolerance: not a number of seconds: %s",
				                   optarg);
			break;
		case 'A':
			if (parse_seconds(optarg, 1e9, &o->flow_age) < 0)
				return usage_error("--flow-age: not a number of seconds: %s",
				                   optarg);
			break;
		case 'P':
			if (strcmp(optarg, "tcp") && strcmp(optarg, "udp") &&
			    strcmp(optarg, "icmp"))
				return usage_error("--proto: expected tcp, udp or icmp, not %s",
				                   optarg);
			o->proto = optarg;
			break;
		case 'r':
			o->remote = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			fputs(usage_text, stderr);
			return -EINVAL;
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->key || !o->n_dirs || !o->alias || !o->have_port || !o->time)
		return usage_error("%s",
		                   "--key, --records, --alias, --port and --time are required");
	return 0;
}

static void format_time(uint64_t ms, char *out, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char base[32] = "?";

	if (gmtime_r(&t, &tm))
		strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, size, "%s.%03uZ", base, (unsigned)(ms % 1000));
}

static void format_subscriber(const struct lookup_candidate *c, char *out, size_t size)
{
	char addr[INET6_ADDRSTRLEN] = "?";

	inet_ntop(c->family == CFR_FAMILY_V4 ? AF_INET : AF_INET6, c->subscriber, addr,
	          sizeof(addr));
	if (c->family == CFR_FAMILY_V4)
		snprintf(out, size, "%s", addr);
	else
		snprintf(out, size, "%s/%u", addr, c->prefix6);
}

static void print_json(const struct options *o, const struct lookup_query *q,
                       const struct lookup_result *res, const char *const *dirs, double secs)
{
	struct json_object *root = json_object_new_object(), *cands = json_object_new_array();
	struct json_object *warns = json_object_new_array(), *complaint = json_object_new_object();
	char buf[64];

	json_object_object_add(complaint, "alias", json_object_new_string(o->alias));
	json_object_object_add(complaint, "port", json_object_new_int(o->port));
	if (o->proto)
		json_object_object_add(complaint, "proto", json_object_new_string(o->proto));
	if (o->remote)
		json_object_object_add(complaint, "remote", json_object_new_string(o->remote));
	format_time(q->c.from_ms, buf, sizeof(buf));
	json_object_object_add(complaint, "from", json_object_new_string(buf));
	format_time(q->c.to_ms, buf, sizeof(buf));
	json_object_object_add(complaint, "to", json_object_new_string(buf));
	json_object_object_add(root, "complaint", complaint);
	for (size_t i = 0; i < res->n_cand; i++) {
		const struct lookup_candidate *c = &res->cand[i];
		struct json_object *j = json_object_new_object();

		format_subscriber(c, buf, sizeof(buf));
		json_object_object_add(j, "subscriber", json_object_new_string(buf));
		json_object_object_add(j, "epoch", json_object_new_uint64(c->epoch));
		json_object_object_add(j, "allocation", json_object_new_uint64(c->counter));
		format_time(c->from_ms, buf, sizeof(buf));
		json_object_object_add(j, "drawn_from", json_object_new_string(buf));
		format_time(c->to_ms, buf, sizeof(buf));
		json_object_object_add(j, "drawn_to", json_object_new_string(buf));
		json_object_object_add(j, "segment", json_object_new_string(c->segment));
		json_object_object_add(j, "records", json_object_new_string(dirs[i]));
		json_object_array_add(cands, j);
	}
	json_object_object_add(root, "subscribers", json_object_new_uint64(res->n_subscribers));
	json_object_object_add(root, "matches", cands);
	for (size_t i = 0; i < res->n_warnings; i++)
		json_object_array_add(warns, json_object_new_string(res->warnings[i]));
	json_object_object_add(root, "warnings", warns);
	json_object_object_add(root, "segments", json_object_new_uint64(res->segments_total));
	json_object_object_add(root, "segments_read", json_object_new_uint64(res->segments_read));
	json_object_object_add(root, "epochs_read", json_object_new_uint64(res->epochs_read));
	json_object_object_add(root, "records_read", json_object_new_uint64(res->records_read));
	json_object_object_add(root, "allocations_regenerated",
	                       json_object_new_uint64(res->allocations));
	json_object_object_add(root, "seconds", json_object_new_double(secs));
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	json_object_put(root);
}

static void print_text(const struct options *o, const struct lookup_query *q,
                       const struct lookup_result *res, const char *const *dirs, double secs)
{
	char from[64], to[64], sub[64];

	format_time(q->c.from_ms, from, sizeof(from));
	format_time(q->c.to_ms, to, sizeof(to));
	printf("complaint: %s port %u%s%s, flow begun in [%s, %s]\n", o->alias, o->port,
	       o->proto ? " " : "", o->proto ? o->proto : "", from, to);
	printf("searched: %u of %u segments, %u epochs, %llu records, %llu allocations "
	       "regenerated in %.3f s\n",
	       res->segments_read, res->segments_total, res->epochs_read,
	       (unsigned long long)res->records_read, (unsigned long long)res->allocations, secs);
	for (size_t i = 0; i < res->n_warnings; i++)
		fprintf(stderr, "cfr-lookup: warning: %s\n", res->warnings[i]);
	printf("%zu candidate subscriber%s\n", res->n_subscribers,
	       res->n_subscribers == 1 ? "" : "s");
	for (size_t i = 0; i < res->n_cand; i++) {
		const struct lookup_candidate *c = &res->cand[i];

		format_subscriber(c, sub, sizeof(sub));
		format_time(c->from_ms, from, sizeof(from));
		format_time(c->to_ms, to, sizeof(to));
		printf("  %s  epoch %llu, allocation %u, drawn in [%s, %s] (%s%s%s)\n", sub,
		       (unsigned long long)c->epoch, c->counter, from, to,
		       o->n_dirs > 1 ? dirs[i] : "", o->n_dirs > 1 ? "/" : "", c->segment);
	}
}

/*
 * Add <part>, the answer from the records directory <dir>, to <all>, and
 * <dir> to <dirs> once per candidate: a subscriber found in two gateways'
 * records counts once. Takes <part>'s warnings. 0 or -ENOMEM.
 */
static int merge_result(struct lookup_result *all, struct lookup_result *part, const char *dir,
                        const char ***dirs)
{
	size_t n = all->n_cand + part->n_cand, w = all->n_warnings + part->n_warnings;
	struct lookup_candidate *cand = realloc(all->cand, (n ? n : 1) * sizeof(*cand));
	const char **d;
	char **warn;

	if (!cand)
		return -ENOMEM;
	all->cand = cand;
	all->cap_cand = n;
	d = realloc(*dirs, (n ? n : 1) * sizeof(*d));
	if (!d)
		return -ENOMEM;
	*dirs = d;
	warn = realloc(all->warnings, (w ? w : 1) * sizeof(*warn));
	if (!warn)
		return -ENOMEM;
	all->warnings = warn;
	for (size_t i = 0; i < part->n_cand; i++) {
		const struct lookup_candidate *c = &part->cand[i];
		bool seen = false;

		for (size_t j = 0; j < all->n_cand && !seen; j++)
			seen = all->cand[j].family == c->family &&
			       memcmp(all->cand[j].subscriber, c->subscriber, 16) == 0;
		all->n_subscribers += !seen;
		d[all->n_cand] = dir;
		all->cand[all->n_cand++] = *c;
	}
	for (size_t i = 0; i < part->n_warnings; i++)
		all->warnings[all->n_warnings++] = part->warnings[i];
	part->n_warnings = 0;
	all->segments_total += part->segments_total;
	all->segments_read += part->segments_read;
	all->epochs_read += part->epochs_read;
	all->records_read += part->records_read;
	all->allocations += part->allocations;
	return 0;
}

int main(int argc, char **argv)
{
	struct lookup_query q = {0};
	struct lookup_result res = {0}, part;
	struct cfr_rec_error err;
	const char **dirs = NULL;
	struct timespec t0, t1;
	struct options o;
	uint64_t t_ms, tol_ms, age_ms;
	uint8_t rfam;
	int ret;

	if (parse_options(argc, argv, &o) < 0)
		return EXIT_USAGE;
	if (parse_addr(o.alias, &q.c.family, q.c.alias) < 0)
		return usage_error("--alias: not an IPv4 or IPv6 address: %s", o.alias), EXIT_USAGE;
	if (o.remote) {
		if (parse_addr(o.remote, &rfam, q.c.remote) < 0 || rfam != q.c.family)
			return usage_error("--remote: not an address of the alias's family: %s",
			                   o.remote),
			       EXIT_USAGE;
		q.c.have_remote = true;
	}
	if (parse_time(o.time, &t_ms) < 0)
		return usage_error("--time: expected ISO 8601 with Z or an offset "
		                   "(2026-03-01T14:03:12Z) or Unix seconds, not %s",
		                   o.time),
		       EXIT_USAGE;
	tol_ms = (uint64_t)(o.tolerance * 1000);
	age_ms = (uint64_t)(o.flow_age * 1000);
	q.c.port = o.port;
	q.c.from_ms = t_ms > tol_ms + age_ms ? t_ms - tol_ms - age_ms : 0;
	q.c.to_ms = t_ms + tol_ms;
	if (sodium_init() < 0) {
		fputs("cfr-lookup: cannot initialise libsodium\n", stderr);
		return EXIT_USAGE;
	}
	if (cfr_key_read_private(o.key, q.sk, q.pk, &err) < 0) {
		fprintf(stderr, "cfr-lookup: %s\n", err.msg);
		return EXIT_USAGE;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = 0;
	for (size_t i = 0; i < o.n_dirs && ret == 0; i++) {
		q.dir = o.dirs[i];
		ret = lookup_search(&q, &part, &err);
		if (ret == 0 && merge_result(&res, &part, o.dirs[i], &dirs) < 0) {
			ret = -ENOMEM;
			snprintf(err.msg, sizeof(err.msg), "out of memory");
		}
		lookup_result_free(&part);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	sodium_memzero(q.sk, sizeof(q.sk));
	if (ret < 0) {
		fprintf(stderr, "cfr-lookup: %s\n", err.msg);
		lookup_result_free(&res);
		free(dirs);
		return EXIT_USAGE;
	}
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	if (o.json)
		print_json(&o, &q, &res, dirs, secs);
	else
		print_text(&o, &q, &res, dirs, secs);
	ret = res.n_cand ? EXIT_MATCH : res.n_warnings ? EXIT_INCOMPLETE : EXIT_NO_MATCH;
	lookup_result_free(&res);
	free(dirs);
	return ret;
}
