/*
 * cfrd's AF_XDP backend ([xdp] in cfrd.conf(5)): the XDP program
 * (src/xdp/cfr_xdp.bpf.c) hands cfrd the frames it can translate and send
 * straight out of another port, bypassing the kernel's stack and the TUN
 * device; everything else still takes the TUN path. Each worker owns one
 * UMEM shared by its sockets (queue <worker index> of every port), so a frame
 * received on one port is sent from another without a copy in cfrd. Each
 * socket is a queue of the backend cfrd_io_xdp (io.h), which the worker
 * loop drives like any other; what is here sets them up.
 *
 * The fast path skips netfilter. It must never send a subscriber's replies
 * to a MAC address a frame claimed (only the kernel's neighbour table says
 * where a subscriber is), never let a subscriber address out of an outside
 * port, and never start unnoticed past forward rules an operator wrote.
 */
#ifndef CFRD_IO_XDP_H
#define CFRD_IO_XDP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cfr/cfr.h>

#include "config.h"
#include "io.h"

struct cfrd_xdp;
struct cfrd_xdp_worker;

/* Summed over every socket of every worker, for cfrctl stats. */
struct cfrd_xdp_stats {
	uint64_t rx;           /* frames cfrd took from the XDP program */
	uint64_t tx;           /* frames sent out of a port */
	uint64_t tx_bytes;     /* their IP bytes */
	uint64_t to_tun;       /* translated but sent through the TUN device instead */
	uint64_t tx_full;      /* dropped: a transmit ring stayed full */
	uint64_t dropped;      /* dropped by the engine */
	uint64_t neigh_misses; /* replies with no fresh subscriber MAC (these go to_tun) */
	uint64_t guard_drops;  /* dropped: would have left with a subscriber address */
};

/*
 * Refuse (-EPERM) if the namespace's forward hooks hold rules cfrd did not
 * write, which the fast path would skip, unless [xdp] ignore-forward-rules
 * says so; then load the XDP program, attach it to every [xdp] port (links:
 * it detaches when cfrd exits, however it exits) and fill its maps. Logs
 * why it failed.
 */
int cfrd_xdp_open(struct cfrd_xdp **xp, const struct cfrd_config *cfg);
void cfrd_xdp_close(struct cfrd_xdp *x);

/* Read the ports' MTUs again (once a second, from the control thread). */
void cfrd_xdp_refresh(struct cfrd_xdp *x);

/*
 * Worker <queue>'s UMEM and its sockets on queue <queue> of every port that
 * has one, as queues of cfrd_io_xdp in ios[0..*n_ios) (room for
 * CFRD_XDP_MAX_PORTS), each spilling into <spill>: the worker's queue of
 * the main TUN device, where the kernel routes what no port of this
 * worker's can send. Close the queues before the worker.
 */
int cfrd_xdp_worker_open(struct cfrd_xdp *x, unsigned queue, struct cfr_io *spill,
                         struct cfr_io *ios, unsigned *n_ios, struct cfrd_xdp_worker **xwp);
void cfrd_xdp_worker_close(struct cfrd_xdp_worker *xw);

void cfrd_xdp_stats(const struct cfrd_xdp *x, struct cfrd_xdp_stats *st);

/* Frames one worker's sockets received: its share of the fast path's load. */
uint64_t cfrd_xdp_worker_received(const struct cfrd_xdp_worker *xw);

#endif
