/*
 * cfrd's packet workers: one thread per queue of the multi-queue TUN
 * devices, each moving bursts from its queues through the shared engine
 * and back.
 */
#ifndef CFRD_WORKER_H
#define CFRD_WORKER_H

#include "config.h"
#include "daemon.h"

/*
 * Decide the number of workers, allocate their buffers and attach each to
 * its queue of every device (this needs CAP_NET_ADMIN: before the
 * sandbox). Logs why it failed; returns 0 or -errno.
 */
int cfrd_workers_open(struct cfrd *d, const struct cfrd_config *cfg);

/* Start the threads (after the sandbox). Returns 0 or -errno, with none left running. */
int cfrd_workers_start(struct cfrd *d);

/* Ask every worker to stop (from any thread); cfrd_workers_close() waits for them. */
void cfrd_workers_signal_stop(struct cfrd *d);

/* Stop and join the threads, close the queues, free the buffers. */
void cfrd_workers_close(struct cfrd *d);

#endif
