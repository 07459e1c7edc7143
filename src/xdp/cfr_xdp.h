/*
 * What cfrd's XDP program (cfr_xdp.bpf.c) and its AF_XDP backend
 * (src/cfrd/io_xdp.c) agree on: the maps, the roles of the interfaces and
 * the header in front of each frame redirected from an inside port. Included by
 * both the BPF object and cfrd, so only fixed-size kernel types here.
 */
#ifndef CFR_XDP_H
#define CFR_XDP_H

#include <linux/types.h>

/* Interfaces cfrd attaches to, and queues per interface (its workers, CFRD_MAX_WORKERS). */
#define CFR_XDP_MAX_PORTS  16
#define CFR_XDP_MAX_QUEUES 64

enum cfr_xdp_role {
	CFR_XDP_INSIDE = 1,  /* faces subscribers: forwardable packets go to cfrd */
	CFR_XDP_OUTSIDE = 2, /* faces the internet: packets to the alias pool go to cfrd */
};

/* ports map: ifindex -> this. */
struct cfr_xdp_port {
	__u32 role; /* enum cfr_xdp_role */
	__u32 slot; /* index in cfrd's port table; XSK map key slot * CFR_XDP_MAX_QUEUES + queue */
};

/* pools4 / pools6 and subs4 / subs6 LPM keys: the alias pool and subscriber prefixes. */
struct cfr_xdp_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct cfr_xdp_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Entries of each LPM map: as many as cfrd.conf(5) allows prefixes (CFR_MAX_*_PREFIXES). */
#define CFR_XDP_MAX_POOL_PREFIXES       16
#define CFR_XDP_MAX_SUBSCRIBER_PREFIXES 256

/*
 * In front of every frame from an inside port, pushed with
 * bpf_xdp_adjust_head() (XDP metadata, bpf_xdp_adjust_meta(), is not there
 * on every driver, and some kernels refuse the helper outright): cfrd sends
 * the frame from right after it. <neigh_mac> is what the kernel's neighbour
 * table holds for the hop back to the packet's source (the subscriber, or
 * the router it sits behind), <frame_mac> the frame's own source address,
 * which the program overwrote with the outside port's. The program only
 * hands over frames where the two agree; cfrd checks again and sends the
 * subscriber's replies to <neigh_mac>, never to an address a frame merely
 * claimed.
 */
#define CFR_XDP_META_MAGIC 0xcf5f
struct cfr_xdp_meta {
	__u8 neigh_mac[6];
	__u8 frame_mac[6];
	__u16 pad;
	__u16 magic; /* last: right before the frame */
};

#endif
