/*
 * cfrd packet I/O backends. Each backend fills one struct cfr_io_backend
 * (plain TUN, TUN with offloads: io_tun.c; AF_XDP sockets: io_xdp.c) and
 * the worker loop (worker.c) drives every queue through these calls only:
 * a burst in, the engine under its lock, the burst out. Only the worker
 * loop calls the engine. Adding a backend is its own file, its extern line
 * below, and where worker.c attaches its queues; nothing else names one.
 */
#ifndef CFRD_IO_H
#define CFRD_IO_H

#include <net/if.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cfr/cfr.h>

#include "config.h"

/*
 * Every packet buffer holds the largest IP packet (64 KiB - 1 plus room), so
 * a read can never be truncated whatever MTU the operator or a GRO path
 * produces; only the touched pages of a buffer become resident.
 */
#define CFRD_PKT_BUF_SIZE 65536u
/*
 * Bytes in front of every packet buffer that belong to the backend: the TUN
 * offload backend reads its virtio_net_hdr there, right before the IP
 * header, so one read() and one write() move header and packet together
 * (no iovec), and the header survives the engine, which only ever touches
 * data[0..len). 64 keeps the IP header of each buffer cache-line aligned.
 */
#define CFRD_PKT_HEADROOM 64u

/*
 * One queue of one device. With several workers, each worker owns one queue
 * of every device (IFF_MULTI_QUEUE); the counters are written by that worker
 * and read by the control thread, hence atomic (relaxed, once per burst or
 * per error).
 */
struct cfr_io {
	const struct cfr_io_backend *backend;
	int fd;           /* what the worker polls for POLLIN */
	uint16_t ingress; /* stamped on every packet read (cfr_pkt.ingress) */
	bool multi_queue; /* attach as one queue of a multi-queue device */
	unsigned queue;   /* which queue of the device (the worker's index) */
	char name[IFNAMSIZ];
	void *priv; /* the backend's own state of this queue (AF_XDP: its socket) */
	/*
	 * Where a packet goes that this queue cannot send itself: the
	 * worker's queue of the main TUN device (AF_XDP), or NULL.
	 */
	struct cfr_io *spill;
	_Atomic uint64_t packets_read;
	_Atomic uint64_t read_errors;
	_Atomic uint64_t write_errors;        /* failed and short writes */
	_Atomic uint64_t offload_drops;       /* virtio headers the kernel should not have sent */
	_Atomic uint64_t checksums_completed; /* partial checksums summed in software */
};

struct cfr_io_backend {
	const char *name;
	/*
	 * Bytes of headroom right before each packet that tx_burst reads as a
	 * per-packet header (0: none); all zero says "a plain packet", which
	 * is what a packet that did not come from rx_burst gets (io_xdp.c).
	 */
	unsigned tx_hdr_len;
	/*
	 * rx_burst points pkts[i].data into the backend's own memory (AF_XDP's
	 * UMEM) instead of filling the caller's buffers; tx_burst then takes
	 * back every packet of the burst, forwarded or not.
	 */
	bool own_buffers;
	/*
	 * Attach to device <ifname> with <mtu>, as a queue of a multi-queue
	 * device if io->multi_queue. Logs why it failed; returns 0 or -errno
	 * (-EINVAL when the device exists with other flags). NULL for a
	 * backend whose queues share setup (AF_XDP: io_xdp.h opens them).
	 */
	int (*open)(struct cfr_io *io, const char *ifname, unsigned mtu);
	/*
	 * Fill up to <n> packets: pkts[i].data points at a CFRD_PKT_BUF_SIZE
	 * buffer owned by the caller, preceded by CFRD_PKT_HEADROOM bytes the
	 * backend may use (unless own_buffers); the backend sets pkts[i].len,
	 * pkts[i].ingress (io->ingress) and pkts[i].csum_partial. Returns how
	 * many were read (0 when none is waiting); never blocks.
	 */
	unsigned (*rx_burst)(struct cfr_io *io, struct cfr_pkt *pkts, unsigned n);
	/*
	 * Optional: under the engine lock, right after the engine has seen
	 * the burst, choose each packet's way out from state its verdicts
	 * teach (AF_XDP: the port, and the subscriber MACs accepted packets
	 * vouch for).
	 */
	void (*route)(struct cfr_io *io, struct cfr_pkt *pkts, unsigned n, uint64_t now_ms);
	/*
	 * Send those of the <n> packets rx_burst of this queue read that the
	 * engine forwarded, headroom untouched. Returns how many went out;
	 * the rest are counted as errors or drops.
	 */
	unsigned (*tx_burst)(struct cfr_io *io, const struct cfr_pkt *pkts, unsigned n);
	/*
	 * Optional: push what a busy device left in a transmit ring. True if
	 * some is still there: the worker polls again soon, not forever.
	 */
	bool (*flush)(struct cfr_io *io);
	void (*close)(struct cfr_io *io);
};

extern const struct cfr_io_backend cfrd_io_tun;
extern const struct cfr_io_backend cfrd_io_tun_offload;
extern const struct cfr_io_backend cfrd_io_xdp;

#endif
