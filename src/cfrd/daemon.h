/*
 * The state of one running cfrd: the engine and the lock that serialises
 * it, the packet workers with their device queues, the start time. The
 * control thread (main.c) and the workers (worker.c) share it.
 */
#ifndef CFRD_DAEMON_H
#define CFRD_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cfr/cfr.h>

#include "config.h"
#include "fastpath.h"
#include "handover.h"
#include "io.h"
#include "io_xdp.h"

/* The main tun (ingress 0), one device per [line] section, and an AF_XDP socket per port. */
#define CFRD_MAX_IO (1 + CFRD_MAX_LINES + CFRD_XDP_MAX_PORTS)
/* Packets per engine call: VPP's vector size, and what one wakeup usually holds. */
#define CFRD_BURST 64

/* The quiet-pool warning (stats.c): counters at the last look. */
struct cfrd_anon_watch {
	uint64_t at_ms, created, below;
	unsigned percent, k;
};

struct cfrd_acct;

struct cfrd_reload;

/* One packet thread: queue <index> of every device, and its own buffers. */
struct cfrd_worker {
	struct cfrd *d;
	unsigned index;
	pthread_t thread;
	bool running;
	/* Queue <index> of each TUN device (d->n_io of them), then its AF_XDP sockets. */
	struct cfr_io io[CFRD_MAX_IO];
	unsigned n_io;
	struct cfr_pkt pkts[CFRD_BURST];   /* each owns a slot of bufs */
	struct cfr_pkt frames[CFRD_BURST]; /* for backends with their own buffers */
	uint8_t *bufs;
	struct cfrd_xdp_worker *xdp; /* the UMEM its AF_XDP sockets share, with [xdp] ports */
};

struct cfrd {
	/*
	 * One engine for all workers, taken for one burst at a time: the
	 * translation is ~1% of a worker's time (docs/performance.md), the
	 * TUN system calls around it run in parallel. One table also keeps
	 * every subscriber's limits, epoch seed and anonymity count exact,
	 * and no alias bit has to say which worker owns a flow.
	 */
	struct cfr_engine *engine;
	pthread_mutex_t engine_lock;
	struct cfrd_worker *workers;
	unsigned n_workers;
	unsigned n_io;                  /* TUN devices; each worker has one queue of each */
	struct cfrd_xdp *xdp;           /* the AF_XDP fast path, or NULL without [xdp] ports */
	struct cfrd_fastpath *fastpath; /* the TC fast path, or NULL when it is off */
	/* A takeover's inheritance: the running cfrd's fast-path maps and links. */
	struct cfrd_fastpath_handover fastpath_inherit;
	/* An eventfd: written once to stop every worker, by main or by a failing worker. */
	int stop_fd;
	atomic_bool failed; /* a worker stopped because a device failed */
	uint64_t start_ms;  /* CLOCK_MONOTONIC */
	unsigned busy_poll_us;
	struct cfrd_anon_watch anon_watch;
	struct cfrd_reload *reload; /* the running configuration and its file (reload.h) */
	struct cfrd_acct *acct;     /* sealed records (acct.h), for stats */
	/* A new cfrd asked for the engine (handover.c): what came of it, and its connection. */
	enum cfrd_handover handover;
	int handover_fd;
};

static inline void cfrd_engine_lock(struct cfrd *d)
{
	pthread_mutex_lock(&d->engine_lock);
}

static inline void cfrd_engine_unlock(struct cfrd *d)
{
	pthread_mutex_unlock(&d->engine_lock);
}

#endif
