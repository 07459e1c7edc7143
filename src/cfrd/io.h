/*
 * cfrd packet I/O backends. Each backend fills one struct cfr_io_backend
 * (plain TUN, TUN with offloads: io_tun.c) and the worker loop (worker.c)
 * drives it through these calls only. Adding a backend is its own file, its
 * extern line below, and the line in worker.c's worker_attach() that picks it
 * from the configuration; nothing else names a backend.
 *
 * The AF_XDP fast path (io_xdp.h) is not one of them: it moves frames from
 * port to port with one UMEM shared by a worker's sockets, runs the engine
 * on them itself (cfrd_xdp_forward(), under the same engine lock), and hands
 * what it cannot send to the worker's TUN queue through this interface.
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
	 * Attach to device <ifname> with <mtu>, as a queue of a multi-queue
	 * device if io->multi_queue. Logs why it failed; returns 0 or -errno
	 * (-EINVAL when the device exists with other flags).
	 */
	int (*open)(struct cfr_io *io, const char *ifname, unsigned mtu);
	/*
	 * Fill up to <n> packets: pkts[i].data points at a CFRD_PKT_BUF_SIZE
	 * buffer owned by the caller, preceded by CFRD_PKT_HEADROOM bytes the
	 * backend may use; the backend sets pkts[i].len, pkts[i].ingress
	 * (io->ingress) and pkts[i].csum_partial. Returns how many were read (0
	 * when none is waiting); never blocks.
	 */
	unsigned (*rx_burst)(struct cfr_io *io, struct cfr_pkt *pkts, unsigned n);
	/*
	 * Send <n> packets read by rx_burst of the same backend, headroom
	 * untouched. Returns how many went out; the rest are counted as errors.
	 */
	unsigned (*tx_burst)(struct cfr_io *io, const struct cfr_pkt *pkts, unsigned n);
	void (*close)(struct cfr_io *io);
};

extern const struct cfr_io_backend cfrd_io_tun;
extern const struct cfr_io_backend cfrd_io_tun_offload;

#endif
