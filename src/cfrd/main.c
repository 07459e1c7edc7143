/*
 * cfrd: the Customer-Facing Relay daemon. Reads the configuration, attaches
 * its workers to the queues of the TUN devices (worker.c), gives up its
 * privileges, and then runs the control thread: control socket clients,
 * SIGINT/SIGTERM through a signalfd, flow expiry and record sealing on a
 * tick, while the workers move the packets.
 *
 * It never prints a subscriber address next to a destination, and it never
 * allocates on the packet path: every buffer exists before the loop starts.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cfr/cfr.h>

#include "acct.h"
#include "clock.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "egress_guard.h"
#include "io.h"
#include "io_xdp.h"
#include "log.h"
#include "notify.h"
#include "reload.h"
#include "sandbox.h"
#include "stats.h"
#include "version.h"
#include "worker.h"

#define DEFAULT_CONFIG "/etc/cfrd.conf"

/* The engine's expiry is O(expired flows); twice a second keeps timeouts within 0.5 s. */
#define EXPIRE_INTERVAL_MS 500

/* Poll set: the signalfd, the workers' stop eventfd, then the control socket and clients. */
enum { PFD_SIGNAL, PFD_STOP, PFD_CONTROL, PFD__COUNT = PFD_CONTROL + CFRD_CONTROL_MAX_POLLFDS };

static const char usage_text[] =
    "Usage: cfrd [-c FILE] [--takeover]\n"
    "       cfrd --check-config FILE\n"
    "       cfrd --install-guard [-c FILE]\n"
    "Customer-Facing Relay daemon: gives each subscriber flow a short-lived\n"
    "source alias from a shared pool.\n"
    "\n"
    "  -c, --config FILE        configuration file (default " DEFAULT_CONFIG ")\n"
    "      --check-config FILE  validate FILE, print 'FILE: ok' or the error, exit\n"
    "      --install-guard      install the nftables guard table for FILE and exit\n"
    "                           (as root, before a reload that changes prefixes)\n"
    "      --takeover           take the flows and the epoch of the cfrd running\n"
    "                           with this control socket, which then stops (a\n"
    "                           restart or an upgrade that keeps every flow)\n"
    "      --help-config        list the configuration keys, their values and defaults\n"
    "  -h, --help               show this help and exit\n"
    "  -V, --version            show the version and exit\n"
    "\n"
    "Runs in the foreground, logs to stderr, stops on SIGINT or SIGTERM,\n"
    "reads FILE again on SIGHUP (or cfrctl reload).\n"
    "See cfrd(8) and cfrd.conf(5).\n";

static int load_config(const char *path, struct cfrd_config *cfg)
{
	struct cfrd_config_error err;
	int ret = cfrd_config_load(path, cfg, &err);

	if (ret == 0)
		return 0;
	if (err.line > 0)
		fprintf(stderr, "%s:%d: %s\n", path, err.line, err.msg);
	else
		fprintf(stderr, "%s: %s\n", path, err.msg);
	return ret;
}

/*
 * Short timeouts are legitimate in a lab, so they are allowed, but an
 * operator should know when one breaks a NAT behaviour requirement.
 */
static void warn_short_timeouts(const struct cfr_engine_config *e)
{
	static const struct {
		enum cfr_timeout which;
		uint32_t min_s;
		const char *key, *why;
	} minimums[] = {
	    {CFR_TIMEOUT_TCP_ESTABLISHED, 7440, "tcp-established", "RFC 5382 REQ-5"},
	    {CFR_TIMEOUT_TCP_TRANSITORY, 240, "tcp-transitory", "RFC 5382 REQ-5"},
	    {CFR_TIMEOUT_UDP, 120, "udp", "RFC 4787 REQ-5"},
	    {CFR_TIMEOUT_ICMP, 60, "icmp", "RFC 5508 REQ-1"},
	    {CFR_TIMEOUT_TCP_EMBRYONIC, 240, "tcp-embryonic", "RFC 5382 REQ-5 (partially open)"},
	};

	for (size_t i = 0; i < sizeof(minimums) / sizeof(minimums[0]); i++) {
		uint32_t v = e->timeout[minimums[i].which];

		if (v < minimums[i].min_s)
			log_warn("timeouts %s = %u s is below the %u s minimum of %s",
			         minimums[i].key, v, minimums[i].min_s, minimums[i].why);
	}
}

/*
 * SIGINT and SIGTERM become readable events, so the loop exits cleanly
 * between bursts; SIGHUP, a reload, runs on the control thread like
 * `cfrctl reload`.
 */
static int open_signalfd(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

enum { SIGNAL_NONE, SIGNAL_STOP, SIGNAL_RELOAD };

static int drain_signal(int sfd)
{
	struct signalfd_siginfo si;

	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return SIGNAL_NONE;
	if (si.ssi_signo == SIGHUP) {
		log_info("%s received, reloading", strsignal((int)si.ssi_signo));
		return SIGNAL_RELOAD;
	}
	log_info("%s received, stopping", strsignal((int)si.ssi_signo));
	return SIGNAL_STOP;
}

/* Periodic engine work and a control command hold the engine lock like a burst does. */
static void engine_housekeeping(struct cfrd *d, uint64_t now, uint64_t *last_expire)
{
	if (now - *last_expire < EXPIRE_INTERVAL_MS)
		return;
	cfrd_engine_lock(d);
	cfr_engine_expire(d->engine, now);
	cfrd_anon_watch(d, now);
	if (d->xdp)
		cfrd_xdp_refresh(d->xdp);
	if (d->fastpath)
		cfrd_fastpath_epoch(d->fastpath, cfr_engine_stats(d->engine)->epoch);
	cfrd_notify_tick(d, now); /* systemd's watchdog: only while the engine lock comes free */
	cfrd_engine_unlock(d);
	*last_expire = now;
}

/*
 * The control thread: signals, cfrctl clients, expiry and sealing records,
 * while the workers move packets. It sleeps in poll() between ticks.
 */
static int control_loop(struct cfrd *d, struct cfrd_control *ctl, struct cfrd_acct *acct, int sfd)
{
	struct pollfd pfd[PFD__COUNT];
	uint64_t last_expire = cfrd_now_ms();
	bool records_waiting = false;

	for (;;) {
		unsigned n = PFD_CONTROL + cfrd_control_poll_fill(ctl, pfd + PFD_CONTROL);
		uint64_t now = cfrd_now_ms();
		bool bored = now - last_expire < EXPIRE_INTERVAL_MS && !records_waiting;
		int timeout = bored ? (int)(EXPIRE_INTERVAL_MS - (now - last_expire)) : 0;
		bool drained;

		pfd[PFD_SIGNAL] = (struct pollfd){.fd = sfd, .events = POLLIN};
		pfd[PFD_STOP] = (struct pollfd){.fd = d->stop_fd, .events = POLLIN};
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			return -errno;
		}
		if (pfd[PFD_SIGNAL].revents & POLLIN) {
			int sig = drain_signal(sfd);

			if (sig == SIGNAL_STOP)
				return 0;
			/* The outcome is logged; a signal has nobody to answer. */
			if (sig == SIGNAL_RELOAD)
				json_object_put(cfrd_reload_run(d, cfrd_now_ms()));
		}
		if (pfd[PFD_STOP].revents & POLLIN)
			return atomic_load(&d->failed) ? -EIO : 0;
		now = cfrd_now_ms();
		cfrd_control_poll_handle(ctl, pfd + PFD_CONTROL, n - PFD_CONTROL, d, now);
		if (d->handover != CFRD_HANDOVER_NONE)
			return 0;
		engine_housekeeping(d, now, &last_expire);
		/* After expiry, which may have ended the epoch; takes the engine lock to copy only.
		 */
		drained = cfrd_acct_drain(acct, d, now);
		records_waiting = drained;
	}
}

/*
 * The guard's pool sets: the configured pools, and after a takeover those
 * the engine still drains (a pool the new file removed), or their flows'
 * replies would be dropped on the way in.
 */
static int install_guard(const struct cfrd_config *cfg, const struct cfr_engine *eng)
{
	struct cfr_pool_info info[4 * CFR_MAX_POOL_PREFIXES];
	struct cfr_prefix draining[4 * CFR_MAX_POOL_PREFIXES];
	unsigned n = cfr_engine_pools(eng, info, 4 * CFR_MAX_POOL_PREFIXES), k = 0;

	for (unsigned i = 0; i < n && i < 4 * CFR_MAX_POOL_PREFIXES; i++)
		if (info[i].draining)
			draining[k++] = info[i].prefix;
	return cfrd_egress_guard_install_more(cfg, draining, k);
}

static int engine_lock_init(struct cfrd *d)
{
	pthread_mutexattr_t attr;
	int ret;

	/* Adaptive: a worker waiting for one burst (microseconds) spins before it sleeps. */
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
	ret = pthread_mutex_init(&d->engine_lock, &attr);
	pthread_mutexattr_destroy(&attr);
	return -ret;
}

static int run(const struct cfrd_config *cfg, const char *path, bool takeover)
{
	/* Static: a whole configuration, too large for the stack. */
	static struct cfrd_reload reload;
	struct cfrd d = {.stop_fd = -1, .reload = &reload, .handover_fd = -1};
	struct cfrd_sandbox sb;
	struct cfrd_control ctl;
	struct cfrd_acct acct;
	int sfd, ret;

	/* First: a user that does not exist stops cfrd before it touches the network. */
	ret = cfrd_sandbox_init(&sb, cfg);
	if (ret < 0)
		return ret;
	sfd = open_signalfd();
	if (sfd < 0) {
		log_error("cannot set up signal handling: %s", strerror(-sfd));
		return sfd;
	}
	if (sodium_init() < 0) {
		log_error("cannot initialise libsodium");
		ret = -EIO;
		goto out_signal;
	}
	d.busy_poll_us = cfg->busy_poll_us;
	d.anon_watch = (struct cfrd_anon_watch){
	    .at_ms = cfrd_now_ms(), .percent = cfg->anon_warn_percent, .k = cfg->engine.anon_k};
	/* A takeover gets the running engine, with this file's configuration applied as a reload
	 * would. */
	d.engine = takeover ? cfrd_handover_take(cfg, &d.fastpath_inherit) : NULL;
	if (d.engine)
		cfr_engine_journal_restart(d.engine); /* the new segment starts with every seed */
	else
		d.engine = cfr_engine_new(&cfg->engine);
	if (d.engine == NULL) {
		ret = -errno;
		log_error("cannot create the engine: %s", strerror(errno));
		goto out_signal;
	}
	ret = engine_lock_init(&d);
	if (ret < 0) {
		log_error("cannot create the engine lock: %s", strerror(-ret));
		goto out_engine;
	}
	/* Before the first packet: no moment where a subscriber could leave unguarded. */
	ret = install_guard(cfg, d.engine);
	if (ret < 0)
		goto out_lock;
	cfrd_reload_init(&reload, path, cfg);
	if (!cfg->egress_guard)
		log_warn("egress-guard = no: nothing stops untranslated subscriber traffic if "
		         "cfrd stops; install an equivalent guard (cfrd(8))");
	if (!cfg->source_check)
		log_info("source-check = external: an upstream device must bind every subscriber "
		         "address to its access line");
	ret = cfrd_workers_open(&d, cfg);
	if (ret < 0)
		goto out_lock;
	ret = cfrd_control_open(&ctl, cfg->control);
	if (ret < 0)
		goto out_workers;
	ret = cfrd_acct_open(&acct, cfg);
	if (ret < 0)
		goto out_control;
	d.acct = &acct;
	/* The notify socket is created now: the sandbox forbids new sockets. */
	cfrd_notify_open();
	/* Everything that needs privileges is open: give them up before any packet. */
	sb.config = path;
	ret = cfrd_sandbox_enter(&sb);
	if (ret < 0)
		goto out_acct;
	cfrd_reload_ready(&reload);

	d.start_ms = cfrd_now_ms();
	ret = cfrd_workers_start(&d);
	if (ret < 0)
		goto out_acct;
	log_info("cfrd %s running: %u worker%s, %u IPv4 and %u IPv6 pool prefixes, ports %u-%u, "
	         "%u subscriber prefixes, %zu bytes of flow state",
	         CFR_VERSION, d.n_workers, d.n_workers == 1 ? "" : "s", cfg->engine.n_pool4,
	         cfg->engine.n_pool6, cfg->engine.port_min, cfg->engine.port_max,
	         cfg->engine.n_subscribers, cfr_engine_memory(d.engine));
	cfrd_notify("READY=1\nSTATUS=forwarding: %u workers", d.n_workers);
	ret = control_loop(&d, &ctl, &acct, sfd);
	cfrd_notify("STOPPING=1");
	/* No packet moves once the workers are joined: the records sealed next are the last. */
	cfrd_workers_close(&d);

out_acct:
	if (d.handover == CFRD_HANDOVER_GIVEN)
		cfrd_acct_release(&acct);
	else
		cfrd_acct_close(&acct, d.engine, cfrd_now_ms());
out_control:
	cfrd_control_close(&ctl);
out_workers:
	cfrd_workers_close(&d);
out_lock:
	pthread_mutex_destroy(&d.engine_lock);
out_engine:
	cfr_engine_free(d.engine);
out_signal:
	close(sfd);
	/* Last: the new cfrd waits for this before it opens the devices and the socket. */
	if (d.handover_fd >= 0)
		close(d.handover_fd);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", required_argument, NULL, 'C'},
	    {"install-guard", no_argument, NULL, 'G'},
	    {"takeover", no_argument, NULL, 'T'},
	    {"help", no_argument, NULL, 'h'},
	    {"help-config", no_argument, NULL, 'K'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = DEFAULT_CONFIG;
	struct cfrd_config cfg;
	bool check_only = false, install_guard = false, takeover = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:hV", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'C':
			path = optarg;
			check_only = true;
			break;
		case 'G':
			install_guard = true;
			break;
		case 'T':
			takeover = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'K':
			cfrd_config_help(stdout);
			return 0;
		case 'V':
			printf("cfrd %s\n", CFR_VERSION);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "cfrd: unexpected argument '%s'\n", argv[optind]);
		fputs(usage_text, stderr);
		return 2;
	}
	if (load_config(path, &cfg) < 0)
		return 1;
	if (check_only) {
		printf("%s: ok\n", path);
		return 0;
	}
	if (install_guard)
		return sodium_init() < 0 ? 1 : cfrd_install_guard(path, &cfg);
	cfrd_log_set_level(cfg.log_level);
	warn_short_timeouts(&cfg.engine);
	if (run(&cfg, path, takeover) < 0)
		return 1;
	/* Everything is closed under the sandbox by now: a missing syscall would not get here. */
	log_info("stopped");
	return 0;
}
