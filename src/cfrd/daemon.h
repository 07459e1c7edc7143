/*
 * The state of one running cfrd that the control socket reports on: the
 * engine, the packet I/O backend with its error counters, the start time.
 */
#ifndef CFRD_DAEMON_H
#define CFRD_DAEMON_H

#include <stdint.h>

#include <cfr/cfr.h>

#include "io.h"

/* The main tun (ingress 0) and one device per [line] section. */
#define CFRD_MAX_IO (1 + CFRD_MAX_LINES)

/* The quiet-pool warning (stats.c): counters at the last look. */
struct cfrd_anon_watch {
	uint64_t at_ms, created, below;
	unsigned percent, k;
};

struct cfrd {
	struct cfr_engine *engine;
	struct cfr_io io[CFRD_MAX_IO];
	unsigned n_io;
	uint64_t start_ms; /* CLOCK_MONOTONIC */
	unsigned busy_poll_us;
	struct cfrd_anon_watch anon_watch;
};

#endif
