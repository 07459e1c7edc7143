/*
 * cfrd: the Customer-Facing Relay daemon. Reads the configuration, attaches
 * to the TUN device and runs one single-threaded poll() loop: packets in
 * batches from the I/O backend through the engine and back, control socket
 * clients, SIGINT/SIGTERM through a signalfd, flow expiry on a tick.
 *
 * It never prints a subscriber address next to a destination, and it never
 * allocates on the packet path: every buffer exists before the loop starts.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <cfr/cfr.h>

#include "acct.h"
#include "config.h"
#include "control.h"
#include "daemon.h"
#include "io.h"
#include "log.h"
#include "sandbox.h"
#include "stats.h"
#include "version.h"

#define DEFAULT_CONFIG "/etc/cfrd.conf"

/* Packets per engine call: VPP's vector size, and what one wakeup usually holds. */
#define BURST 64
/* A packet slot: the backend's headroom (a virtio header), then the largest packet. */
#define PKT_SLOT_SIZE (CFRD_PKT_HEADROOM + CFRD_PKT_BUF_SIZE)
/* Bursts handled before polling again, so a busy TUN cannot starve signals or cfrctl. */
#define MAX_BURSTS_PER_WAKEUP 16
/* The engine's expiry is O(expired flows); twice a second keeps timeouts within 0.5 s. */
#define EXPIRE_INTERVAL_MS 500

/* Poll set: the signalfd, every packet device (main tun first), then the control socket. */
enum { PFD_SIGNAL, PFD_IO, PFD__COUNT = PFD_IO + CFRD_MAX_IO + CFRD_CONTROL_MAX_POLLFDS };

static const char usage_text[] =
    "Usage: cfrd [-c FILE]\n"
    "       cfrd --check-config FILE\n"
    "Customer-Facing Relay daemon: gives each subscriber flow a short-lived\n"
    "source alias from a shared pool.\n"
    "\n"
    "  -c, --config FILE        configuration file (default " DEFAULT_CONFIG ")\n"
    "      --check-config FILE  validate FILE, print 'FILE: ok' or the error, exit\n"
    "  -h, --help               show this help and exit\n"
    "  -V, --version            show the version and exit\n"
    "\n"
    "Runs in the foreground, logs to stderr, stops on SIGINT or SIGTERM.\n"
    "See cfrd(8) and cfrd.conf(5).\n";

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t now_ms(void)
{
	return now_us() / 1000;
}

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
	};

	for (size_t i = 0; i < sizeof(minimums) / sizeof(minimums[0]); i++) {
		uint32_t v = e->timeout[minimums[i].which];

		if (v < minimums[i].min_s)
			log_warn("timeouts %s = %u s is below the %u s minimum of %s",
			         minimums[i].key, v, minimums[i].min_s, minimums[i].why);
	}
}

/* SIGINT and SIGTERM become readable events, so the loop exits cleanly between bursts. */
static int open_signalfd(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/*
 * Move forwarded packets to the front, keeping their order. Entries are
 * swapped, not copied over, so every slot still owns exactly one buffer.
 */
static unsigned gather_forwarded(struct cfr_pkt *pkts, unsigned n)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++) {
		if (pkts[i].verdict != CFR_VERDICT_FORWARD)
			continue;
		if (i != k) {
			struct cfr_pkt tmp = pkts[k];

			pkts[k] = pkts[i];
			pkts[i] = tmp;
		}
		k++;
	}
	return k;
}

/*
 * Each packet goes back out of the device it came in on: the kernel routes
 * it from there, and a line device only ever sees its own line's traffic.
 */
static unsigned forward_bursts(struct cfrd *d, struct cfr_io *io, struct cfr_pkt *pkts)
{
	const struct cfr_io_backend *be = io->backend;
	unsigned total = 0;

	for (int b = 0; b < MAX_BURSTS_PER_WAKEUP; b++) {
		unsigned n = be->rx_burst(io, pkts, BURST);

		total += n;
		if (n == 0)
			return total;
		cfr_engine_process(d->engine, pkts, n, now_ms());
		be->tx_burst(io, pkts, gather_forwarded(pkts, n));
		if (n < BURST)
			return total;
	}
	return total;
}

static int drain_signal(int sfd)
{
	struct signalfd_siginfo si;

	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return 0;
	log_info("%s received, stopping", strsignal((int)si.ssi_signo));
	return 1;
}

static int event_loop(struct cfrd *d, struct cfrd_control *ctl, struct cfrd_acct *acct, int sfd,
                      struct cfr_pkt *pkts)
{
	struct pollfd pfd[PFD__COUNT];
	uint64_t last_expire = now_ms(), spin_until_us = 0;
	bool records_waiting = false;

	for (;;) {
		unsigned ctl_first = PFD_IO + d->n_io;
		unsigned n = ctl_first + cfrd_control_poll_fill(ctl, pfd + ctl_first);
		uint64_t now = now_ms();
		/*
		 * Busy-poll for a moment after traffic: waking from a sleeping
		 * poll() costs tens of microseconds on each packet of a
		 * request/response exchange, more than the whole translation.
		 */
		bool spinning = spin_until_us && now_us() < spin_until_us;
		int timeout = now - last_expire >= EXPIRE_INTERVAL_MS || records_waiting || spinning
		                  ? 0
		                  : (int)(EXPIRE_INTERVAL_MS - (now - last_expire));

		pfd[PFD_SIGNAL] = (struct pollfd){.fd = sfd, .events = POLLIN};
		for (unsigned i = 0; i < d->n_io; i++)
			pfd[PFD_IO + i] = (struct pollfd){.fd = d->io[i].fd, .events = POLLIN};
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			return -errno;
		}
		if ((pfd[PFD_SIGNAL].revents & POLLIN) && drain_signal(sfd))
			return 0;
		for (unsigned i = 0; i < d->n_io; i++) {
			if (pfd[PFD_IO + i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
				log_error("%s device %s failed (deleted?), stopping",
				          d->io[i].backend->name, d->io[i].name);
				return -EIO;
			}
			if ((pfd[PFD_IO + i].revents & POLLIN) &&
			    forward_bursts(d, &d->io[i], pkts) && d->busy_poll_us)
				spin_until_us = now_us() + d->busy_poll_us;
		}
		now = now_ms();
		cfrd_control_poll_handle(ctl, pfd + ctl_first, n - ctl_first, d, now);
		if (now - last_expire >= EXPIRE_INTERVAL_MS) {
			cfr_engine_expire(d->engine, now);
			cfrd_anon_watch(d, now);
			last_expire = now;
		}
		/* After expiry, which may have ended the epoch: its seeds are sealed at once. */
		records_waiting = cfrd_acct_drain(acct, d->engine, now);
	}
}

/* Attach the main tun as ingress 0 and each [line]'s device as ingress i + 1. */
static int open_devices(struct cfrd *d, const struct cfrd_config *cfg)
{
	for (unsigned i = 0; i <= cfg->n_lines; i++) {
		struct cfr_io *io = &d->io[i];
		const char *name = i == 0 ? cfg->tun : cfg->lines[i - 1].tun;
		int ret;

		*io = (struct cfr_io){.backend = cfg->offload ? &cfrd_io_tun_offload : &cfrd_io_tun,
		                      .fd = -1,
		                      .ingress = (uint16_t)i};
		snprintf(io->name, sizeof(io->name), "%s", name);
		ret = io->backend->open(io, name, cfg->mtu);
		if (ret < 0)
			return ret;
		d->n_io = i + 1;
	}
	return 0;
}

static void close_devices(struct cfrd *d)
{
	for (unsigned i = 0; i < d->n_io; i++)
		d->io[i].backend->close(&d->io[i]);
	d->n_io = 0;
}

static int run(const struct cfrd_config *cfg)
{
	struct cfrd d = {.n_io = 0};
	struct cfrd_control ctl;
	struct cfrd_acct acct;
	struct cfr_pkt pkts[BURST];
	uint8_t *bufs;
	int sfd, ret;

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
	    .at_ms = now_ms(), .percent = cfg->anon_warn_percent, .k = cfg->engine.anon_k};
	d.engine = cfr_engine_new(&cfg->engine);
	if (d.engine == NULL) {
		ret = -errno;
		log_error("cannot create the engine: %s", strerror(errno));
		goto out_signal;
	}
	bufs = aligned_alloc(64, (size_t)BURST * PKT_SLOT_SIZE);
	if (bufs == NULL) {
		ret = -ENOMEM;
		log_error("cannot allocate packet buffers: %s", strerror(ENOMEM));
		goto out_engine;
	}
	for (unsigned i = 0; i < BURST; i++)
		pkts[i] =
		    (struct cfr_pkt){.data = bufs + (size_t)i * PKT_SLOT_SIZE + CFRD_PKT_HEADROOM};
	ret = open_devices(&d, cfg);
	if (ret < 0)
		goto out_io;
	ret = cfrd_control_open(&ctl, cfg->control);
	if (ret < 0)
		goto out_io;
	ret = cfrd_acct_open(&acct, cfg);
	if (ret < 0)
		goto out_control;
	/* Everything that needs privileges is open: give them up before any packet. */
	ret = cfrd_sandbox_enter(cfg->seccomp);
	if (ret < 0)
		goto out_acct;

	d.start_ms = now_ms();
	log_info("cfrd %s running: %u IPv4 and %u IPv6 pool prefixes, ports %u-%u, "
	         "%u subscriber prefixes, %zu bytes of flow state",
	         CFR_VERSION, cfg->engine.n_pool4, cfg->engine.n_pool6, cfg->engine.port_min,
	         cfg->engine.port_max, cfg->engine.n_subscribers, cfr_engine_memory(d.engine));
	ret = event_loop(&d, &ctl, &acct, sfd, pkts);

out_acct:
	cfrd_acct_close(&acct, d.engine, now_ms());
out_control:
	cfrd_control_close(&ctl);
out_io:
	close_devices(&d);
	free(bufs);
out_engine:
	cfr_engine_free(d.engine);
out_signal:
	close(sfd);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", required_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = DEFAULT_CONFIG;
	struct cfrd_config cfg;
	bool check_only = false;
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
		case 'h':
			fputs(usage_text, stdout);
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
	cfrd_log_set_level(cfg.log_level);
	warn_short_timeouts(&cfg.engine);
	return run(&cfg) < 0 ? 1 : 0;
}
