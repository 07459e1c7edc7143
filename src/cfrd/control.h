/*
 * cfrd control socket: a UNIX stream socket where a client sends one
 * command line and gets one JSON object back (see cfrctl(8)).
 */
#ifndef CFRD_CONTROL_H
#define CFRD_CONTROL_H

#include <json-c/json.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "daemon.h"

/* A handful: cfrctl and a metrics scraper, not a service for the public. */
#define CFRD_CONTROL_MAX_CLIENTS 4
/* Pollfds the control socket may need at once: listener plus clients. */
#define CFRD_CONTROL_MAX_POLLFDS (1 + CFRD_CONTROL_MAX_CLIENTS)

/* Longest command line accepted, newline excluded. */
#define CFRD_CONTROL_LINE_MAX 63

struct cfrd_control_client {
	int fd; /* -1 when the slot is free */
	uint64_t deadline_ms;
	size_t len;
	char buf[CFRD_CONTROL_LINE_MAX + 1];
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

/* What a client's bytes so far call for. */
enum cfrd_control_step {
	CFRD_CONTROL_NEED_MORE, /* no full line yet: wait */
	CFRD_CONTROL_REPLY,     /* send *reply (NULL: out of memory), then hang up */
	CFRD_CONTROL_HANG_UP,   /* the client left without a word */
};

/*
 * The protocol without the socket: <buf> holds the <len> bytes a client sent
 * so far (room for len + 1), <more> says whether it may still send. Runs
 * the command once a line is complete. Split out so the fuzz target drives
 * exactly what the daemon runs.
 */
enum cfrd_control_step cfrd_control_request(char *buf, size_t len, bool more, struct cfrd *d,
                                            uint64_t now_ms, struct json_object **reply);

#endif
