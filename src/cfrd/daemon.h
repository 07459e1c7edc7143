/*
 * The state of one running cfrd that the control socket reports on: the
 * engine, the packet I/O backend with its error counters, the start time.
 */
#ifndef CFRD_DAEMON_H
#define CFRD_DAEMON_H

#include <stdint.h>

#include <cfr/cfr.h>

#include "io.h"

struct cfrd {
	struct cfr_engine *engine;
	struct cfr_io io;
	uint64_t start_ms; /* CLOCK_MONOTONIC */
};

#endif
