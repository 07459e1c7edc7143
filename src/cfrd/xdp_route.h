/*
 * The AF_XDP backend's decisions around the engine, with no socket and no
 * BPF: what a frame's metadata may teach about its sender, which port a
 * translated frame leaves by, the subscriber MACs replies are addressed
 * to, and the guard's egress promise kept without netfilter. io_xdp.c
 * moves the frames; this is what it asks, and what the unit test checks.
 */
#ifndef CFRD_XDP_ROUTE_H
#define CFRD_XDP_ROUTE_H

#include <linux/if_ether.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cfr/cfr.h>
#include <cfr/internal/siphash.h>

#include "../xdp/cfr_xdp.h"
#include "config.h"

/* Where cfrd_xdp_route_pick() sends a packet when not out of a port. */
#define CFRD_XDP_VIA_TUN  (-1) /* the TUN device: the kernel routes it, its guard sees it */
#define CFRD_XDP_VIA_DROP (-2) /* it would leave with a subscriber address */

/*
 * How long a subscriber MAC learned from the neighbour table is used for
 * replies without a frame confirming it, and how often a confirmation is
 * written (the entry's line is shared by every worker). A subscriber that
 * sends at least every few seconds (TCP acknowledgements do) keeps its
 * replies on the fast path; the others' go through the kernel.
 */
#define CFRD_XDP_NEIGH_FRESH_MS   5000u
#define CFRD_XDP_NEIGH_REFRESH_MS 1000u

struct cfrd_xdp_port_view {
	uint8_t mac[ETH_ALEN];
	bool inside;
	unsigned mtu; /* larger replies go through TUN: the kernel answers with Packet Too Big */
};

/* Where replies to one subscriber address go: a direct-mapped cache of the neighbour table. */
struct cfrd_xdp_neigh {
	uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d */
	uint8_t mac[ETH_ALEN];
	uint8_t port; /* index in ports[] + 1; 0 = empty */
	uint8_t pad;
	uint64_t seen_ms; /* when a frame last confirmed it */
};

/* Shared by every worker; learned and read under the engine lock. */
struct cfrd_xdp_route {
	struct cfrd_xdp_port_view ports[CFRD_XDP_MAX_PORTS];
	unsigned n_ports;
	struct cfrd_xdp_neigh *neigh;
	size_t neigh_mask;
	struct cfr_sipkey neigh_key;
	_Atomic uint64_t neigh_misses; /* read by cfrctl stats */
	/* What a packet leaving by an outside port may carry. */
	struct cfr_prefix pools[2 * CFR_MAX_POOL_PREFIXES];
	unsigned n_pools;
	struct cfr_prefix subscribers[CFR_MAX_SUBSCRIBER_PREFIXES];
	unsigned n_subscribers;
};

/* What one received frame may teach about its sender, kept from receive to route. */
struct cfrd_xdp_sender {
	uint8_t addr[16];
	uint8_t mac[ETH_ALEN];
	bool learnable;
};

/*
 * A neighbour cache sized for e's subscribers under a fresh CSPRNG key,
 * and e's pools and subscriber prefixes; the ports are the caller's to
 * fill. Returns 0 or -ENOMEM.
 */
int cfrd_xdp_route_init(struct cfrd_xdp_route *r, const struct cfr_engine_config *e);
void cfrd_xdp_route_fini(struct cfrd_xdp_route *r);

/*
 * What <pkt> may teach, from the program's header <meta> in front of its
 * frame: the neighbour table's MAC for the sender, if the frame came from
 * an inside port (<inside>), from that very MAC. Clears the header's mark,
 * so a reused buffer never vouches twice.
 */
void cfrd_xdp_sender_take(struct cfrd_xdp_sender *s, const struct cfr_pkt *pkt,
                          struct cfr_xdp_meta *meta, bool inside);

/*
 * Right after the engine, under its lock, for a packet received on port
 * <from>: learn from it if the engine accepted it, and choose its way out.
 * Only an outbound packet leaves by an outside port, only a reply by an
 * inside one (whose Ethernet header, in front of pkt->data, this fills).
 * Returns a port index in <sendable> (a bit per port), CFRD_XDP_VIA_TUN or
 * CFRD_XDP_VIA_DROP.
 */
int cfrd_xdp_route_pick(struct cfrd_xdp_route *r, unsigned from, const struct cfrd_xdp_sender *s,
                        struct cfr_pkt *pkt, uint32_t sendable, uint64_t now_ms);

/*
 * The second hop of the TUN path (the TUN device out to the port), which a
 * frame on the fast path would otherwise skip: both paths leave the same
 * TTL, so the TTL cap yields one value whichever path a packet took. The
 * program lets only TTLs above 2 through, so this never reaches 0.
 */
void cfrd_xdp_hop_decrement(uint8_t *ip);

#endif
