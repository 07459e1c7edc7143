/*
 * cfr-exporter: serves cfrd's counters as Prometheus metrics over HTTP
 * (GET /metrics), reading them from cfrd's control socket like cfrctl.
 *
 * A process of its own rather than an endpoint inside cfrd: cfrd holds the
 * epoch seeds and the table that joins subscribers to aliases, and after
 * setup it may not even create a socket (sandbox.c). An HTTP parser,
 * however good (libmicrohttpd here, not a hand-written one), is code that
 * anyone who reaches the port can feed; here it runs in a process that
 * holds nothing but counts, whose crash stops no packet, and which reaches
 * cfrd only through the control socket's one-line protocol, whose clients
 * cfrd already bounds (a few slots, 2 s each).
 *
 * Bounded under load: one thread, one epoll loop (MHD_run_wait); at most
 * MAX_CONNECTIONS clients, PER_IP_CONNECTIONS from one address, each gone
 * after CONNECTION_TIMEOUT_S of silence; the stats reply is cached for
 * --min-interval, so a scrape flood asks cfrd at most once per interval (a
 * stats request scans the alias table under the engine lock, which the
 * packet path waits for). Once listening it installs a seccomp filter of
 * the calls it makes; sockets it may still create are AF_UNIX only (the
 * control socket).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../cfrd/version.h"
#include "exporter.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define DEFAULT_LISTEN       "127.0.0.1:9848"
#define DEFAULT_SOCKET       "/run/cfrd.sock"
#define MAX_CONNECTIONS      64
#define PER_IP_CONNECTIONS   16
#define CONNECTION_TIMEOUT_S 5
/* A scrape request is a few hundred bytes; this also bounds the headers MHD reads. */
#define CONNECTION_MEMORY 16384

static const char usage_text[] =
    "Usage: cfr-exporter [-l ADDR:PORT] [-s SOCKET] [--min-interval MS] [--timeout MS]\n"
    "Serve cfrd's counters as Prometheus metrics at http://ADDR:PORT/metrics.\n"
    "\n"
    "  -l, --listen ADDR:PORT   address to listen on (default " DEFAULT_LISTEN
    "; [ADDR]:PORT for IPv6)\n"
    "  -s, --socket SOCKET      cfrd's control socket (default: $CFR_CONTROL, else " DEFAULT_SOCKET
    ")\n"
    "      --min-interval MS    ask cfrd at most once per MS milliseconds (default 1000)\n"
    "      --timeout MS         give up on cfrd after MS milliseconds (default 2000)\n"
    "      --seccomp yes|no     system call filter once listening (default yes)\n"
    "  -h, --help               show this help and exit\n"
    "  -V, --version            show the version and exit\n"
    "\n"
    "See cfr-exporter(8).\n";

struct exporter {
	const char *socket_path;
	unsigned min_interval_ms, timeout_ms;
	struct cfrx_self self;
	struct cfrx_buf page; /* the last rendered text */
	int64_t page_ms;      /* when it was rendered; 0: never */
	bool was_up;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Render anew if the page is older than --min-interval. */
static void refresh(struct exporter *x)
{
	int64_t now = now_ms();
	struct json_object *stats;
	struct cfrx_buf page = {0};

	if (x->page_ms != 0 && now - x->page_ms < (int64_t)x->min_interval_ms)
		return;
	x->self.control_requests++;
	stats = cfrx_control_stats(x->socket_path, x->timeout_ms);
	if (stats == NULL) {
		x->self.control_failures++;
		if (x->was_up || x->page_ms == 0)
			fprintf(stderr, "cfr-exporter: no stats from %s: %s\n", x->socket_path,
			        strerror(errno));
	} else if (!x->was_up && x->page_ms != 0) {
		fprintf(stderr, "cfr-exporter: cfrd answers again on %s\n", x->socket_path);
	}
	x->was_up = stats != NULL;
	cfrx_render(stats, &x->self, &page);
	json_object_put(stats);
	if (page.oom) {
		cfrx_buf_free(&page);
		return; /* keep the previous page */
	}
	cfrx_buf_free(&x->page);
	x->page = page;
	x->page_ms = now;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type,
                               const char *body, size_t len)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
	static const char index_page[] = "<html><head><title>cfr exporter</title></head><body>"
	                                 "<a href=\"/metrics\">metrics</a></body></html>\n";
	static const char text[] = "text/plain; charset=utf-8";
	struct exporter *x = cls;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	/* A body is never wanted: answer at once, MHD closes the connection after. */
	*upload_data_size = 0;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, "method not allowed\n", 19);
	if (strcmp(url, "/") == 0)
		return respond(conn, MHD_HTTP_OK, "text/html; charset=utf-8", index_page,
		               sizeof(index_page) - 1);
	if (strcmp(url, "/metrics") != 0)
		return respond(conn, MHD_HTTP_NOT_FOUND, text, "not found\n", 10);
	refresh(x);
	if (x->page.s == NULL)
		return respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text, "out of memory\n", 14);
	return respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", x->page.s,
	               x->page.len);
}

/* "127.0.0.1:9848" or "[::1]:9848" into <ss>; 0 or -EINVAL. */
static int parse_listen(const char *arg, struct sockaddr_storage *ss, bool *v6)
{
	char host[64];
	const char *colon = strrchr(arg, ':');
	char *end;
	unsigned long port;
	size_t hlen;

	if (colon == NULL)
		return -EINVAL;
	port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || colon[1] == '\0' || port == 0 || port > 65535)
		return -EINVAL;
	hlen = (size_t)(colon - arg);
	if (hlen >= 2 && arg[0] == '[' && arg[hlen - 1] == ']') {
		arg++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, arg, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*v6 = false;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*v6 = true;
		return 0;
	}
	return -EINVAL;
}

/*
 * What the serving loop calls (measured with strace under a scrape flood
 * and malformed requests); anything else kills the exporter, which its
 * supervisor restarts. No exec, no file opens, no new sockets but AF_UNIX.
 */
static const int allowed[] = {
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(accept4),
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(accept),
    SCMP_SYS(recvfrom),
    SCMP_SYS(sendto),
    SCMP_SYS(recvmsg),
    SCMP_SYS(sendmsg),
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(writev),
    SCMP_SYS(close),
    SCMP_SYS(shutdown),
    SCMP_SYS(setsockopt),
    SCMP_SYS(getsockopt),
    SCMP_SYS(getsockname),
    SCMP_SYS(getpeername),
    SCMP_SYS(fcntl),
    SCMP_SYS(connect),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(brk),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    SCMP_SYS(futex),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    /* json-c seeds its hash tables on first use */
    SCMP_SYS(getrandom),
};

static int install_filter(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	struct scmp_arg_cmp unix_only = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = AF_UNIX};
	struct scmp_arg_cmp no_exec = {
	    .arg = 2, .op = SCMP_CMP_MASKED_EQ, .datum_a = PROT_EXEC, .datum_b = 0};
	struct scmp_arg_cmp self = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = (scmp_datum_t)getpid()};
	int ret = 0;

	if (ctx == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(allowed) && ret == 0; i++)
		if (allowed[i] >= 0)
			ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	if (ret == 0)
		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, &unix_only);
	if (ret == 0)
		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, &no_exec);
	if (ret == 0)
		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, &no_exec);
	/* abort() signals itself; no other process may be signalled (cfrd shares the user). */
	if (ret == 0)
		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, &self);
	if (ret == 0)
		ret = seccomp_load(ctx); /* sets no_new_privs first */
	seccomp_release(ctx);
	return ret;
}

static int parse_ms(const char *opt, const char *arg, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);

	if (*end != '\0' || arg[0] == '\0' || v > max) {
		fprintf(stderr, "cfr-exporter: --%s: expected 0..%u milliseconds, not '%s'\n", opt,
		        max, arg);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"socket", required_argument, NULL, 's'},
	    {"min-interval", required_argument, NULL, 'i'},
	    {"timeout", required_argument, NULL, 't'},
	    {"seccomp", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct exporter x = {
	    .socket_path = getenv("CFR_CONTROL"), .min_interval_ms = 1000, .timeout_ms = 2000};
	const char *listen = DEFAULT_LISTEN;
	struct sockaddr_storage ss;
	struct sigaction sa = {.sa_handler = on_signal};
	struct MHD_Daemon *daemon;
	bool v6 = false, seccomp = true;
	int opt;

	while ((opt = getopt_long(argc, argv, "l:s:hV", options, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen = optarg;
			break;
		case 's':
			x.socket_path = optarg;
			break;
		case 'i':
			if (parse_ms("min-interval", optarg, 600000, &x.min_interval_ms) < 0)
				return 2;
			break;
		case 't':
			if (parse_ms("timeout", optarg, 60000, &x.timeout_ms) < 0 ||
			    x.timeout_ms == 0)
				return 2;
			break;
		case 'S':
			if (strcmp(optarg, "yes") != 0 && strcmp(optarg, "no") != 0) {
				fputs("cfr-exporter: --seccomp: expected yes or no\n", stderr);
				return 2;
			}
			seccomp = strcmp(optarg, "yes") == 0;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("cfr-exporter %s\n", CFR_VERSION);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "cfr-exporter: unexpected argument '%s'\n", argv[optind]);
		fputs(usage_text, stderr);
		return 2;
	}
	if (x.socket_path == NULL || x.socket_path[0] == '\0')
		x.socket_path = DEFAULT_SOCKET;
	if (parse_listen(listen, &ss, &v6) < 0) {
		fprintf(stderr,
		        "cfr-exporter: --listen: expected ADDR:PORT or [ADDR]:PORT, not '%s'\n",
		        listen);
		return 2;
	}
	if (geteuid() == 0)
		fputs("cfr-exporter: warning: running as root; run it as cfrd's user, which can "
		      "reach the control socket and nothing more is needed\n",
		      stderr);
	/* MHD's Date header would otherwise make glibc read /etc/localtime under the filter. */
	setenv("TZ", "UTC0", 1);
	tzset();
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* No MHD_USE_ERROR_LOG: a flood of bad requests must not become a flood of log lines. */
	daemon = MHD_start_daemon(MHD_USE_EPOLL | (v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, handle,
	                          &x, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
	                          MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)PER_IP_CONNECTIONS,
	                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
	                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
	                          MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)64,
	                          MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_END);
	if (daemon == NULL) {
		fprintf(stderr, "cfr-exporter: cannot listen on %s: %s\n", listen, strerror(errno));
		return 1;
	}
	if (seccomp && install_filter() < 0) {
		fputs(
		    "cfr-exporter: cannot install the seccomp filter (--seccomp no runs without)\n",
		    stderr);
		MHD_stop_daemon(daemon);
		return 1;
	}
	fprintf(stderr, "cfr-exporter %s: serving http://%s/metrics from %s\n", CFR_VERSION, listen,
	        x.socket_path);
	while (!stopping)
		MHD_run_wait(daemon, 1000);
	MHD_stop_daemon(daemon);
	cfrx_buf_free(&x.page);
	return 0;
}
