/*
 * sd_notify(3) without libsystemd. The protocol is one datagram of
 * "KEY=VALUE" lines to the AF_UNIX socket named in $NOTIFY_SOCKET, and
 * systemd documents it as stable for exactly this use. libsystemd's
 * sd_notify() creates a new socket for every message, which cfrd's seccomp
 * filter refuses once the sandbox is up (sandbox.c lists no socket()), and
 * it would link a compression and crypto stack into a daemon that parses
 * packets from the internet. So the socket is created and connected once,
 * before the sandbox, and every later message is a send() on it.
 *
 * The process has one service manager, so the state is a singleton, as
 * the log is.
 */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

/* STATUS at most this often: a line for systemctl status, not a metrics feed. */
#define STATUS_INTERVAL_MS 5000

static struct {
	int fd;
	uint64_t watchdog_ms; /* ping interval: half of WatchdogSec, 0 = none */
	uint64_t pinged_ms, status_ms, flows;
} n = {.fd = -1};

/* $WATCHDOG_USEC, if it is meant for this process ($WATCHDOG_PID absent or ours). */
static uint64_t watchdog_interval_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long us;
	char *end;

	if (usec == NULL)
		return 0;
	if (pid != NULL && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	errno = 0;
	us = strtoull(usec, &end, 10);
	if (errno != 0 || *end != '\0' || us == 0)
		return 0;
	return us / 2000 > 0 ? us / 2000 : 1;
}

int cfrd_notify_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t len;
	int fd, ret;

	if (path == NULL || path[0] == '\0')
		return 0;
	len = strlen(path);
	/* '@': an abstract socket, whose name starts with a NUL byte. */
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sun.sun_path)) {
		log_warn("NOTIFY_SOCKET %s: not a socket path, not notifying", path);
		return -EINVAL;
	}
	memcpy(sun.sun_path, path, len);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun,
	            (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
		ret = -errno;
		log_warn("cannot connect to NOTIFY_SOCKET %s: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	n.fd = fd;
	n.watchdog_ms = watchdog_interval_ms();
	return 0;
}

void cfrd_notify(const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	int len;

	if (n.fd < 0)
		return;
	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if ((size_t)len >= sizeof(msg))
		len = sizeof(msg) - 1;
	/* A full queue means systemd is busy; the next tick says it again. */
	if (send(n.fd, msg, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("sd_notify: %s", strerror(errno));
}

void cfrd_notify_tick(const struct cfrd *d, uint64_t now_ms)
{
	const struct cfr_stats *s;
	uint64_t flows = 0, v4 = 0;

	if (n.fd < 0)
		return;
	if (n.watchdog_ms && now_ms - n.pinged_ms >= n.watchdog_ms) {
		cfrd_notify("WATCHDOG=1");
		n.pinged_ms = now_ms;
	}
	if (now_ms - n.status_ms < STATUS_INTERVAL_MS)
		return;
	s = cfr_engine_stats(d->engine);
	for (int p = 0; p < CFR_PROTO__COUNT; p++) {
		v4 += s->flows_active[CFR_FAMILY_V4][p];
		flows += s->flows_active[CFR_FAMILY_V4][p] + s->flows_active[CFR_FAMILY_V6][p];
	}
	n.status_ms = now_ms;
	if (flows == n.flows)
		return;
	n.flows = flows;
	/* Counts only, like every cfrd output: no address ever goes to the journal this way. */
	cfrd_notify("STATUS=forwarding: %llu flows (%llu IPv4, %llu IPv6), epoch %llu",
	            (unsigned long long)flows, (unsigned long long)v4,
	            (unsigned long long)(flows - v4), (unsigned long long)s->epoch);
}
