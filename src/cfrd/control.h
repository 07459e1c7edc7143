/*
 * cfrd control socket: a UNIX stream socket where a client sends one
 * command line and gets one JSON object back (see cfrctl(8)).
 */
#ifndef CFRD_CONTROL_H
#define CFRD_CONTROL_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "daemon.h"

/* A handful: cfrctl and a metrics scraper, not a service for the public. */
#define CFRD_CONTROL_MAX_CLIENTS 4
/* Pollfds the control socket may need at once: listener plus clients. */
#define CFRD_CONTROL_MAX_POLLFDS (1 + CFRD_CONTROL_MAX_CLIENTS)

struct cfrd_control_client {
	int fd; /* -1 when the slot is free */
	uint64_t deadline_ms;
	size_t len;
	char buf[64]; /* longest command line accepted */
};

struct cfrd_control {
	int listen_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct cfrd_control_client clients[CFRD_CONTROL_MAX_CLIENTS];
};

/* Bind and listen on <path> (mode 0600). Logs why it failed; returns 0 or -errno. */
int cfrd_control_open(struct cfrd_control *ctl, const char *path);
/* Close every descriptor and remove the socket file. */
void cfrd_control_close(struct cfrd_control *ctl);

/* Fill <pfd> with what to poll; returns how many (at most CFRD_CONTROL_MAX_POLLFDS). */
unsigned cfrd_control_poll_fill(const struct cfrd_control *ctl, struct pollfd *pfd);
/*
 * Serve what poll() reported on the <n> entries cfrd_control_poll_fill()
 * gave, then drop clients older than their deadline. Never blocks.
 */
void cfrd_control_poll_handle(struct cfrd_control *ctl, const struct pollfd *pfd, unsigned n,
                              struct cfrd *d, uint64_t now_ms);

#endif
