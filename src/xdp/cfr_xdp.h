/*
 * What cfrd's XDP program (cfr_xdp.bpf.c) and its AF_XDP backend
 * (src/cfrd/io_xdp.c) agree on: the maps, the roles of the interfaces and
 * the few bytes of metadata in front of each redirected frame. Included by
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

/* pools4 / pools6 LPM keys: the alias pool prefixes. */
struct cfr_xdp_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct cfr_xdp_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/*
 * Right in front of a frame from an inside port: the subscriber's own MAC
 * address, which the program overwrote with the next hop's. cfrd learns
 * where to send the subscriber's return traffic from it.
 */
#define CFR_XDP_META_MAGIC 0xcf5e
struct cfr_xdp_meta {
	__u8 src_mac[6];
	__u16 magic;
};

#endif
