/*
 * cfrctl: talk to a running cfrd over its control socket. Subcommands come
 * from one table, like wg(8); each sends one line and gets one JSON object
 * back, printed as a short table or, with --json, as pretty JSON.
 *
 * It shows counters and the operator's own pool prefixes only. Should a
 * subcommand ever show subscriber addresses, it must hide them unless
 * explicitly asked, as `wg show` hides keys.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "../cfrd/version.h"

#define DEFAULT_SOCKET "/run/cfrd.sock"
/* A reply is a few kilobytes; anything past this is not cfrd talking. */
#define MAX_REPLY (1u << 20)
/* cfrd answers between two packet bursts; seconds of silence mean it is wedged. */
#define REPLY_TIMEOUT_S 5

struct ctx {
	const char *socket_path;
	bool json;
};

struct subcommand {
	const char *name;
	const char *args;
	int (*main)(const struct ctx *ctx, int argc, char **argv);
	const char *help;
};

static int stats_main(const struct ctx *ctx, int argc, char **argv);
static int epoch_main(const struct ctx *ctx, int argc, char **argv);
static int reload_main(const struct ctx *ctx, int argc, char **argv);
static int pools_main(const struct ctx *ctx, int argc, char **argv);

static const struct subcommand subcommands[] = {
    {"stats", "", stats_main, "show counters"},
    {"epoch", "rotate", epoch_main, "end the privacy epoch now"},
    {"reload", "", reload_main, "read the configuration file again"},
    {"pools", "", pools_main, "show the pool prefixes in use, draining ones too"},
};

static void usage(FILE *out)
{
	fputs("Usage: cfrctl [-s SOCKET] [--json] COMMAND\n"
	      "Query a running cfrd over its control socket.\n"
	      "\n"
	      "  -s, --socket SOCKET  control socket (default: $CFR_CONTROL, else " DEFAULT_SOCKET
	      ")\n"
	      "  -j, --json           print the daemon's JSON reply instead of a table\n"
	      "  -h, --help           show this help and exit\n"
	      "  -V, --version        show the version and exit\n"
	      "\n"
	      "Commands:\n",
	      out);
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(out, "  %-6s %-13s %s\n", subcommands[i].name, subcommands[i].args,
		        subcommands[i].help);
	fputs("\nSee cfrctl(8).\n", out);
}

/* Connect, send <cmd> and a newline, read the reply to EOF. Returns a buffer to free, or NULL. */
static char *request(const char *path, const char *cmd)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = REPLY_TIMEOUT_S};
	char line[64];
	char *buf = NULL;
	size_t len = 0;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "cfrctl: socket path too long: %s\n", path);
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	snprintf(line, sizeof(line), "%s\n", cmd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "cfrctl: socket: %s\n", strerror(errno));
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "cfrctl: cannot connect to %s: %s (is cfrd running?)\n", path,
		        strerror(errno));
		goto fail;
	}
	/* MSG_NOSIGNAL: a daemon that hung up is an error message, not a SIGPIPE death. */
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0) {
		fprintf(stderr, "cfrctl: cannot send to %s: %s\n", path, strerror(errno));
		goto fail;
	}
	buf = malloc(MAX_REPLY + 1);
	if (buf == NULL) {
		fprintf(stderr, "cfrctl: %s\n", strerror(ENOMEM));
		goto fail;
	}
	for (;;) {
		ssize_t got = read(fd, buf + len, MAX_REPLY - len);

		if (got == 0)
			break;
		if (got < 0) {
			fprintf(stderr, "cfrctl: no reply from %s: %s\n", path,
			        errno == EAGAIN ? "timed out" : strerror(errno));
			goto fail;
		}
		len += (size_t)got;
		if (len == MAX_REPLY) {
			fprintf(stderr, "cfrctl: reply from %s too long\n", path);
			goto fail;
		}
	}
	buf[len] = '\0';
	close(fd);
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

/* Send <cmd> and parse the reply; an {"error": ...} reply is reported and counts as failure. */
static struct json_object *query(const struct ctx *ctx, const char *cmd)
{
	struct json_object *reply, *error;
	char *text = request(ctx->socket_path, cmd);

	if (text == NULL)
		return NULL;
	reply = json_tokener_parse(text);
	free(text);
	if (reply == NULL || !json_object_is_type(reply, json_type_object)) {
		fprintf(stderr, "cfrctl: malformed reply from %s\n", ctx->socket_path);
		json_object_put(reply);
		return NULL;
	}
	if (json_object_object_get_ex(reply, "error", &error)) {
		fprintf(stderr, "cfrctl: %s\n", json_object_get_string(error));
		json_object_put(reply);
		return NULL;
	}
	return reply;
}

/* The integer at <path> ("flows", "ipv4", "tcp", NULL), or 0 when absent. */
static uint64_t get_u64(struct json_object *obj, ...)
{
	va_list ap;
	const char *key;

	va_start(ap, obj);
	while (obj != NULL && (key = va_arg(ap, const char *)) != NULL) {
		if (!json_object_object_get_ex(obj, key, &obj))
			obj = NULL;
	}
	va_end(ap);
	return obj != NULL ? json_object_get_uint64(obj) : 0;
}

/* How the kernel spread the packets over cfrd's workers (one queue each). */
static void print_workers(struct json_object *r)
{
	struct json_object *io, *by_worker;

	if (!json_object_object_get_ex(r, "io", &io) ||
	    !json_object_object_get_ex(io, "packets_by_worker", &by_worker) ||
	    !json_object_is_type(by_worker, json_type_array))
		return;
	printf("workers    %zu, packets read by each:", json_object_array_length(by_worker));
	for (size_t i = 0; i < json_object_array_length(by_worker); i++)
		printf(" %" PRIu64,
		       json_object_get_uint64(json_object_array_get_idx(by_worker, i)));
	putchar('\n');
}

static void print_uptime(uint64_t s)
{
	printf("uptime:    %" PRIu64 "d %02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 "\n", s / 86400,
	       s / 3600 % 24, s / 60 % 60, s % 60);
}

static void print_stats(struct json_object *r)
{
	struct json_object *version = NULL, *drops;
	uint64_t total;

	json_object_object_get_ex(r, "version", &version);
	printf("cfrd:      %s\n", version != NULL ? json_object_get_string(version) : "?");
	print_uptime(get_u64(r, "uptime_s", NULL));
	printf("memory:    %" PRIu64 " bytes\n\n", get_u64(r, "memory_bytes", NULL));

	printf("packets    %20s %20s\n", "rx", "tx");
	printf("  out      %20" PRIu64 " %20" PRIu64 "\n", get_u64(r, "packets", "rx", "out", NULL),
	       get_u64(r, "packets", "tx", "out", NULL));
	printf("  in       %20" PRIu64 " %20" PRIu64 "\n\n",
	       get_u64(r, "packets", "rx", "in", NULL), get_u64(r, "packets", "tx", "in", NULL));

	printf("flows      %" PRIu64 " active of %" PRIu64 ", %" PRIu64 " created, %" PRIu64
	       " expired\n",
	       get_u64(r, "flows", "active", NULL), get_u64(r, "flows", "max", NULL),
	       get_u64(r, "flows", "created", NULL), get_u64(r, "flows", "expired", NULL));
	printf("           %13s %13s %13s\n", "tcp", "udp", "icmp");
	for (int f = 0; f < 2; f++) {
		const char *fam = f == 0 ? "ipv4" : "ipv6";

		printf("  %-8s %13" PRIu64 " %13" PRIu64 " %13" PRIu64 "\n", fam,
		       get_u64(r, "flows", fam, "tcp", NULL), get_u64(r, "flows", fam, "udp", NULL),
		       get_u64(r, "flows", fam, "icmp", NULL));
	}
	printf("mappings   %" PRIu64 " created, %" PRIu64 " packets hairpinned\n",
	       get_u64(r, "flows", "mappings_created", NULL),
	       get_u64(r, "flows", "hairpinned", NULL));
	printf("fragments  %" PRIu64 " tracked\n\n", get_u64(r, "fragments_tracked", NULL));

	total = get_u64(r, "drops", "total", NULL);
	printf("drops      %" PRIu64 "\n", total);
	/* Only the reasons that happened: a list of twenty zeros hides the one that matters. */
	if (json_object_object_get_ex(r, "drops", &drops)) {
		json_object_object_foreach(drops, name, value)
		{
			uint64_t v = json_object_get_uint64(value);

			if (strcmp(name, "total") != 0 && v != 0)
				printf("  %-22s %20" PRIu64 "\n", name, v);
		}
	}
	printf("\nprivacy    epoch %" PRIu64 " (%" PRIu64 " rotations), %" PRIu64
	       " new flows on aliases shared by fewer than k subscribers\n",
	       get_u64(r, "privacy", "epoch", NULL), get_u64(r, "privacy", "epochs_rotated", NULL),
	       get_u64(r, "privacy", "new_flows_below_k", NULL));
	printf("anonymity  %13s %13s %13s %13s\n", "aliases used", "min", "median", "max");
	for (int f = 0; f < 2; f++) {
		const char *fam = f == 0 ? "ipv4" : "ipv6";

		printf("  %-8s %13" PRIu64 " %13" PRIu64 " %13" PRIu64 " %13" PRIu64 "\n", fam,
		       get_u64(r, "anonymity", fam, "aliases_in_use", NULL),
		       get_u64(r, "anonymity", fam, "min", NULL),
		       get_u64(r, "anonymity", fam, "median", NULL),
		       get_u64(r, "anonymity", fam, "max", NULL));
	}
	printf("scrubbed   tcp_timestamps %" PRIu64 ", ip_id %" PRIu64 ", ttl %" PRIu64
	       ", flow_label %" PRIu64 "\n",
	       get_u64(r, "privacy", "scrubbed", "tcp_timestamps", NULL),
	       get_u64(r, "privacy", "scrubbed", "ip_id", NULL),
	       get_u64(r, "privacy", "scrubbed", "ttl", NULL),
	       get_u64(r, "privacy", "scrubbed", "flow_label", NULL));
	printf("\nio errors  read %" PRIu64 ", write %" PRIu64 "\n",
	       get_u64(r, "io", "read_errors", NULL), get_u64(r, "io", "write_errors", NULL));
	print_workers(r);
	if (get_u64(r, "io", "fastpath", "interfaces", NULL))
		printf("fast path  %" PRIu64 " flows; packets out %" PRIu64 ", in %" PRIu64
		       "; left to cfrd: tcp flags %" PRIu64 ", ttl %" PRIu64 ", options %" PRIu64
		       ", line %" PRIu64 ", route %" PRIu64 "\n",
		       get_u64(r, "io", "fastpath", "flows", NULL),
		       get_u64(r, "io", "fastpath", "packets", "out", NULL),
		       get_u64(r, "io", "fastpath", "packets", "in", NULL),
		       get_u64(r, "io", "fastpath", "passed_tcp_flags", NULL),
		       get_u64(r, "io", "fastpath", "passed_ttl", NULL),
		       get_u64(r, "io", "fastpath", "passed_options", NULL),
		       get_u64(r, "io", "fastpath", "passed_line", NULL),
		       get_u64(r, "io", "fastpath", "passed_route", NULL));
	if (get_u64(r, "io", "xdp", "rx", NULL) || get_u64(r, "io", "xdp", "to_tun", NULL))
		printf("af_xdp     rx %" PRIu64 ", tx %" PRIu64 ", via tun %" PRIu64
		       " (no learned subscriber MAC %" PRIu64 "), tx ring full %" PRIu64
		       ", dropped %" PRIu64 ", guard %" PRIu64 "\n",
		       get_u64(r, "io", "xdp", "rx", NULL), get_u64(r, "io", "xdp", "tx", NULL),
		       get_u64(r, "io", "xdp", "to_tun", NULL),
		       get_u64(r, "io", "xdp", "neigh_misses", NULL),
		       get_u64(r, "io", "xdp", "tx_full", NULL),
		       get_u64(r, "io", "xdp", "dropped", NULL),
		       get_u64(r, "io", "xdp", "guard_drops", NULL));
}

static int stats_main(const struct ctx *ctx, int argc, char **argv)
{
	struct json_object *reply;

	(void)argv;
	if (argc != 1) {
		fputs("Usage: cfrctl [-s SOCKET] [--json] stats\n", stderr);
		return 2;
	}
	reply = query(ctx, "stats");
	if (reply == NULL)
		return 1;
	if (ctx->json)
		puts(json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PRETTY |
		                                               JSON_C_TO_STRING_SPACED));
	else
		print_stats(reply);
	json_object_put(reply);
	return 0;
}

static int epoch_main(const struct ctx *ctx, int argc, char **argv)
{
	struct json_object *reply;

	if (argc != 2 || strcmp(argv[1], "rotate") != 0) {
		fputs("Usage: cfrctl [-s SOCKET] [--json] epoch rotate\n", stderr);
		return 2;
	}
	reply = query(ctx, "epoch rotate");
	if (reply == NULL)
		return 1;
	if (ctx->json)
		puts(json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PRETTY |
		                                               JSON_C_TO_STRING_SPACED));
	else
		printf("epoch %" PRIu64 "\n", get_u64(reply, "epoch", NULL));
	json_object_put(reply);
	return 0;
}

/* Print <reply> as pretty JSON; true if the caller wants that instead of its table. */
static bool print_json(const struct ctx *ctx, struct json_object *reply)
{
	if (ctx->json)
		puts(json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PRETTY |
		                                               JSON_C_TO_STRING_SPACED));
	return ctx->json;
}

static int reload_main(const struct ctx *ctx, int argc, char **argv)
{
	struct json_object *reply, *changed = NULL, *warnings = NULL, *ended = NULL, *path = NULL;
	uint64_t draining;

	(void)argv;
	if (argc != 1) {
		fputs("Usage: cfrctl [-s SOCKET] [--json] reload\n", stderr);
		return 2;
	}
	/* A refusal comes back as {"error": "reload refused: FILE:LINE: ..."}, printed by query. */
	reply = query(ctx, "reload");
	if (reply == NULL)
		return 1;
	if (print_json(ctx, reply)) {
		json_object_put(reply);
		return 0;
	}
	json_object_object_get_ex(reply, "reloaded", &path);
	json_object_object_get_ex(reply, "changed", &changed);
	json_object_object_get_ex(reply, "epoch_ended", &ended);
	json_object_object_get_ex(reply, "warnings", &warnings);
	printf("reloaded %s: ", path != NULL ? json_object_get_string(path) : "?");
	if (changed == NULL || json_object_array_length(changed) == 0)
		fputs("nothing changed", stdout);
	for (size_t i = 0; changed != NULL && i < json_object_array_length(changed); i++)
		printf("%s%s", i ? ", " : "",
		       json_object_get_string(json_object_array_get_idx(changed, i)));
	if (ended != NULL && json_object_get_boolean(ended))
		printf("; privacy epoch ended (now %" PRIu64 ")", get_u64(reply, "epoch", NULL));
	draining = get_u64(reply, "pools_draining", NULL);
	if (draining)
		printf("; %" PRIu64 " pool prefix%s draining", draining, draining == 1 ? "" : "es");
	putchar('\n');
	for (size_t i = 0; warnings != NULL && i < json_object_array_length(warnings); i++)
		printf("warning: %s\n",
		       json_object_get_string(json_object_array_get_idx(warnings, i)));
	json_object_put(reply);
	return 0;
}

static int pools_main(const struct ctx *ctx, int argc, char **argv)
{
	static const char *const families[] = {"ipv4", "ipv6"};
	struct json_object *reply, *list, *v;

	(void)argv;
	if (argc != 1) {
		fputs("Usage: cfrctl [-s SOCKET] [--json] pools\n", stderr);
		return 2;
	}
	reply = query(ctx, "pools");
	if (reply == NULL)
		return 1;
	if (print_json(ctx, reply)) {
		json_object_put(reply);
		return 0;
	}
	printf("%-44s %-9s %10s\n", "pool", "state", "flows");
	for (size_t f = 0; f < 2; f++) {
		if (!json_object_object_get_ex(reply, families[f], &list) ||
		    !json_object_is_type(list, json_type_array))
			continue;
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			struct json_object *item = json_object_array_get_idx(list, i);
			const char *prefix = "?", *state = "?";

			if (json_object_object_get_ex(item, "prefix", &v))
				prefix = json_object_get_string(v);
			if (json_object_object_get_ex(item, "state", &v))
				state = json_object_get_string(v);
			printf("%-44s %-9s %10" PRIu64 "\n", prefix, state,
			       get_u64(item, "flows", NULL));
		}
	}
	json_object_put(reply);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct ctx ctx = {.socket_path = getenv("CFR_CONTROL")};
	int opt;

	/* '+': options end at the subcommand, whose own arguments are its business. */
	while ((opt = getopt_long(argc, argv, "+s:jhV", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			ctx.socket_path = optarg;
			break;
		case 'j':
			ctx.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("cfrctl %s\n", CFR_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (ctx.socket_path == NULL || ctx.socket_path[0] == '\0')
		ctx.socket_path = DEFAULT_SOCKET;
	if (optind == argc) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
		if (strcmp(argv[optind], subcommands[i].name) == 0)
			return subcommands[i].main(&ctx, argc - optind, argv + optind);
	}
	fprintf(stderr, "cfrctl: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return 2;
}
