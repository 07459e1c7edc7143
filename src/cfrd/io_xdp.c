/*
 * The AF_XDP backend (see io_xdp.h): load and attach the XDP program, one
 * UMEM and one socket per port for each worker, and the forwarding loop
 * that moves frames from a socket through the engine and out of a port.
 *
 * Outbound frames arrive ready to leave: the program has looked up the
 * route, written the next hop's MAC and the outside port's own as source,
 * and decremented the TTL, so cfrd only translates them and picks the
 * socket of the port whose MAC is the frame's source. Before one leaves by
 * an outside port cfrd checks what the guard's egress chain would (see
 * egress_ok()): the fast path skips netfilter, so it keeps that promise
 * itself.
 *
 * Inbound frames need the subscriber's MAC address. cfrd never takes it
 * from a frame: several subscribers may share an inside port (a bridge, a
 * switch), and one frame with a neighbour's source address would otherwise
 * redirect that neighbour's replies. The program reads it from the kernel's
 * neighbour table (the bpf_fib_lookup() that checks the reverse path also
 * returns the neighbour's MAC) and hands it over in front of the frame;
 * cfrd keeps it per subscriber address, only once the engine has accepted
 * the packet and only if the frame came from that very MAC, and only for a
 * few seconds (NEIGH_FRESH_MS), so a change in the neighbour table (an
 * operator's static binding, a host that moved) reaches the fast path
 * soon even if no frame says so. The kernel's table is the one its own
 * forwarding trusts, and the one an operator binds sources with (static
 * entries). Why not a netlink neighbour dump in cfrd: a copy that must be
 * kept in sync from inside the sandbox, for what one lookup per packet in
 * the program already gives. A reply with no fresh entry, or none on this
 * worker's queue of the port, is written into the TUN device and routed by
 * the kernel: slower, never lost.
 */
#include "io_xdp.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include "../xdp/cfr_xdp.h"
#include "cfr/internal/csum.h"
#include "cfr/internal/siphash.h"
#include "clock.h"
#include "daemon.h"
#include "egress_guard.h"
#include "forward_rules.h"
#include "log.h"

_Static_assert(CFR_XDP_MAX_PORTS == CFRD_XDP_MAX_PORTS, "one limit on ports");
_Static_assert(CFR_XDP_MAX_QUEUES == CFRD_MAX_WORKERS, "a socket per worker per port");
_Static_assert(CFR_XDP_MAX_POOL_PREFIXES == CFR_MAX_POOL_PREFIXES, "room for every pool prefix");
_Static_assert(CFR_XDP_MAX_SUBSCRIBER_PREFIXES == CFR_MAX_SUBSCRIBER_PREFIXES,
               "room for every subscriber prefix");
_Static_assert(sizeof(struct cfr_xdp_meta) % 4 == 0, "the IP header keeps its alignment behind it");

/* The compiled program, linked in by xdp_object.S. */
extern const unsigned char cfr_xdp_object[];
extern const uint64_t cfr_xdp_object_size;

/* Ring sizes per socket; a worker's UMEM has room for all its rings at once, plus a burst. */
#define RING_SIZE  512u
#define FRAME_SIZE 4096u

/*
 * How long a subscriber MAC learned from the neighbour table is used for
 * replies without a frame confirming it, and how often a confirmation is
 * written (the entry's line is shared by every worker). A subscriber that
 * sends at least every few seconds (TCP acknowledgements do) keeps its
 * replies on the fast path; the others' go through the kernel.
 */
#define NEIGH_FRESH_MS   5000u
#define NEIGH_REFRESH_MS 1000u

/* Where route() sends a packet: a socket index, or one of these. */
#define EGRESS_TUN  (-1) /* the TUN device: the kernel routes it, its guard sees it */
#define EGRESS_DROP (-2) /* would leave with a subscriber address (egress_ok()) */

struct port {
	char name[IFNAMSIZ];
	unsigned ifindex;
	unsigned n_queues;
	unsigned mtu; /* larger replies go through TUN: the kernel answers with Packet Too Big */
	bool inside;
	uint16_t ingress; /* stamped on the packets of an inside port (its [line], or 0) */
	uint8_t mac[ETH_ALEN];
	struct bpf_link *link;
};

/* Where replies to one subscriber address go: a direct-mapped cache of the neighbour table. */
struct neigh {
	uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d */
	uint8_t mac[ETH_ALEN];
	uint8_t port; /* index in ports[] + 1; 0 = empty */
	uint8_t pad;
	uint64_t seen_ms; /* when a frame last confirmed it */
};

_Static_assert(sizeof(struct neigh) == 32, "two entries per cache line");

struct cfrd_xdp {
	struct bpf_object *obj;
	int xsks_fd;
	struct port ports[CFRD_XDP_MAX_PORTS];
	unsigned n_ports;
	/* Guarded by the engine lock: learned and read inside the same critical section. */
	struct neigh *neigh;
	size_t neigh_mask;
	struct cfr_sipkey neigh_key;
	_Atomic uint64_t neigh_misses; /* written under the lock, read by cfrctl stats */
	/* What a packet leaving by an outside port may carry (egress_ok()). */
	struct cfr_prefix pools[2 * CFR_MAX_POOL_PREFIXES];
	unsigned n_pools;
	struct cfr_prefix subscribers[CFR_MAX_SUBSCRIBER_PREFIXES];
	unsigned n_subscribers;
	struct cfrd_xdp_worker *workers[CFRD_MAX_WORKERS];
	unsigned n_workers;
	int mtu_fd; /* a datagram socket for SIOCGIFMTU, kept for cfrd_xdp_refresh() */
};

struct sock {
	struct xsk_socket *xsk;
	struct xsk_ring_cons rx, comp;
	struct xsk_ring_prod tx, fill;
	unsigned port;
	unsigned tx_pending; /* reserved and filled, not yet submitted */
	_Atomic uint64_t rx_frames, tx_frames, tx_bytes, to_tun, tx_full, dropped, guard_drops;
};

struct cfrd_xdp_worker {
	struct cfrd_xdp *x;
	unsigned queue;
	uint8_t *area;
	size_t area_size;
	struct xsk_umem *umem;
	struct sock socks[CFRD_XDP_MAX_PORTS];
	unsigned n_socks;
	int sock_of_port[CFRD_XDP_MAX_PORTS]; /* -1: no socket on this worker's queue of the port */
	uint64_t *free_frames;
	unsigned n_free;
	/* One burst: the frame of each packet, and what the route step decided. */
	struct cfr_pkt pkts[CFRD_BURST];
	uint64_t frame[CFRD_BURST];
	uint8_t src[CFRD_BURST][16];
	uint8_t src_mac[CFRD_BURST][ETH_ALEN]; /* the neighbour table's, from struct cfr_xdp_meta */
	bool learnable[CFRD_BURST];
	int egress[CFRD_BURST]; /* socket index, EGRESS_TUN or EGRESS_DROP */
};

/* --- frames ----------------------------------------------------------------- */

static inline void frame_free(struct cfrd_xdp_worker *xw, uint64_t addr)
{
	xw->free_frames[xw->n_free++] = addr & ~(uint64_t)(FRAME_SIZE - 1);
}

static void reclaim_completions(struct cfrd_xdp_worker *xw, struct sock *s)
{
	uint32_t idx;
	unsigned n = xsk_ring_cons__peek(&s->comp, RING_SIZE, &idx);

	for (unsigned i = 0; i < n; i++)
		frame_free(xw, *xsk_ring_cons__comp_addr(&s->comp, idx + i));
	xsk_ring_cons__release(&s->comp, n);
}

static void refill(struct cfrd_xdp_worker *xw, struct sock *s)
{
	uint32_t idx;
	unsigned want = xsk_prod_nb_free(&s->fill, xw->n_free);

	if (want > xw->n_free)
		want = xw->n_free;
	if (want == 0 || xsk_ring_prod__reserve(&s->fill, want, &idx) != want)
		return;
	for (unsigned i = 0; i < want; i++)
		*xsk_ring_prod__fill_addr(&s->fill, idx + i) = xw->free_frames[--xw->n_free];
	xsk_ring_prod__submit(&s->fill, want);
}

/* --- learned subscriber MACs ------------------------------------------------ */

/*
 * The neighbour table's key for the source (or, <dst>, the destination)
 * address of the IPv4 or IPv6 header at <ip>: IPv4 as ::ffff:a.b.c.d.
 */
static void addr_key(uint8_t key[16], const uint8_t *ip, bool dst)
{
	if ((ip[0] >> 4) == 4) {
		static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		memcpy(key, v4mapped, 12);
		memcpy(key + 12, ip + (dst ? 16 : 12), 4);
	} else {
		memcpy(key, ip + (dst ? 24 : 8), 16);
	}
}

static struct neigh *neigh_slot(struct cfrd_xdp *x, const uint8_t key[16])
{
	return &x->neigh[cfr_siphash13(&x->neigh_key, key, 16) & x->neigh_mask];
}

/* Workers read their clocks before they take the lock: another's may be a little ahead. */
static int64_t age_ms(uint64_t now_ms, uint64_t then_ms)
{
	return (int64_t)(now_ms - then_ms);
}

/* --- the burst -------------------------------------------------------------- */

/*
 * What burst slot <k> may teach about its source, from the program's
 * header <meta> in front of the frame: the neighbour table's MAC for the
 * subscriber, if the frame came from an inside port, from that very MAC.
 * The program already passes frames that disagree to the kernel; this is
 * where cfrd, which writes the table, makes sure of it.
 */
static void take_meta(struct cfrd_xdp_worker *xw, unsigned k, struct cfr_xdp_meta *meta,
                      bool inside)
{
	const uint8_t *ip = xw->pkts[k].data;

	/*
	 * The program wrote the mark after checking a whole header; the
	 * length is checked again all the same before the address is read.
	 * A short packet goes on to the engine, which names its drop.
	 */
	xw->learnable[k] = inside && meta->magic == CFR_XDP_META_MAGIC &&
	                   memcmp(meta->neigh_mac, meta->frame_mac, ETH_ALEN) == 0 &&
	                   xw->pkts[k].len >= ((ip[0] >> 4) == 4 ? 20u : 40u);
	if (xw->learnable[k]) {
		memcpy(xw->src_mac[k], meta->neigh_mac, ETH_ALEN);
		addr_key(xw->src[k], ip, false);
	}
	/* Whatever reuses this buffer must not find a stale mark. */
	meta->magic = 0;
}

/* Take up to a burst of frames from <s>; every frame is either in pkts[] or freed. */
static unsigned rx_frames(struct cfrd_xdp_worker *xw, struct sock *s)
{
	const struct port *port = &xw->x->ports[s->port];
	unsigned n, k = 0;
	uint32_t idx;

	n = xsk_ring_cons__peek(&s->rx, CFRD_BURST, &idx);
	for (unsigned i = 0; i < n; i++) {
		const struct xdp_desc *desc = xsk_ring_cons__rx_desc(&s->rx, idx + i);
		/* The program pushed its header in front of every frame from an inside port. */
		uint32_t skip = port->inside ? sizeof(struct cfr_xdp_meta) : 0;
		uint8_t *eth = (uint8_t *)xsk_umem__get_data(xw->area, desc->addr) + skip;

		/* Not even an IP version: nothing the engine could name. */
		if (desc->len <= skip + ETH_HLEN) {
			frame_free(xw, desc->addr);
			atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
			continue;
		}
		/* Sent from the Ethernet header on: an offset into its chunk is fine. */
		xw->frame[k] = desc->addr + skip;
		xw->pkts[k] = (struct cfr_pkt){.data = eth + ETH_HLEN,
		                               .len = desc->len - skip - ETH_HLEN,
		                               .ingress = port->ingress};
		if (port->inside)
			take_meta(xw, k, (struct cfr_xdp_meta *)eth - 1, true);
		else
			xw->learnable[k] = false;
		k++;
	}
	xsk_ring_cons__release(&s->rx, n);
	atomic_fetch_add_explicit(&s->rx_frames, n, memory_order_relaxed);
	return k;
}

static int port_by_mac(const struct cfrd_xdp *x, const uint8_t *mac)
{
	for (unsigned p = 0; p < x->n_ports; p++)
		if (memcmp(x->ports[p].mac, mac, ETH_ALEN) == 0)
			return (int)p;
	return -1;
}

static bool in_prefixes(const struct cfr_prefix *list, unsigned n, int family, const uint8_t *addr)
{
	for (unsigned i = 0; i < n; i++)
		if (cfr_prefix_contains(&list[i], family, addr))
			return true;
	return false;
}

/*
 * What the guard's egress chain (egress_guard.c) checks in the kernel, for
 * a translated packet about to leave by an outside port, which netfilter
 * never sees: its source must be an alias (every packet the engine
 * translates outbound has one; a subscriber source there would be a bug
 * naming a customer), and an ICMP error must not quote a subscriber
 * address. Returns 0 if it may leave, EGRESS_DROP if not, EGRESS_TUN if the
 * fast path cannot tell (IPv6 extension headers, which it does not walk):
 * the kernel routes it and the guard decides.
 */
static int egress_ok(const struct cfrd_xdp *x, const uint8_t *ip, uint32_t len)
{
	int family = (ip[0] >> 4) == 4 ? CFR_FAMILY_V4 : CFR_FAMILY_V6;
	uint32_t l4, src_off = family == CFR_FAMILY_V4 ? 12 : 8,
	             alen = family == CFR_FAMILY_V4 ? 4 : 16;
	bool error;

	if (!in_prefixes(x->pools, x->n_pools, family, ip + src_off))
		return EGRESS_DROP;
	if (family == CFR_FAMILY_V4) {
		/* Later fragments carry no ICMP header, for nft either. */
		l4 = (ip[0] & 0xfu) * 4u;
		error = ip[9] == 1 && ((ip[6] & 0x1f) | ip[7]) == 0 && l4 + 8 + 20 <= len &&
		        (ip[l4] == 3 || ip[l4] == 4 || ip[l4] == 5 || ip[l4] == 11 || ip[l4] == 12);
	} else {
		/* TCP, UDP, ICMPv6 and fragments (the engine drops fragmented errors). */
		if (ip[6] != 6 && ip[6] != 17 && ip[6] != 58 && ip[6] != 44)
			return EGRESS_TUN;
		l4 = 40;
		error = ip[6] == 58 && l4 + 8 + 40 <= len && ip[l4] >= 1 && ip[l4] <= 4;
	}
	if (error &&
	    (in_prefixes(x->subscribers, x->n_subscribers, family, ip + l4 + 8 + src_off) ||
	     in_prefixes(x->subscribers, x->n_subscribers, family, ip + l4 + 8 + src_off + alen)))
		return EGRESS_DROP;
	return 0;
}

/*
 * Under the engine lock, right after the engine: learn from accepted
 * outbound packets, and choose every forwarded packet's way out. Only an
 * outbound packet leaves by an outside port, only a reply by an inside one.
 */
static void route(struct cfrd_xdp_worker *xw, const struct sock *from, unsigned n, uint64_t now_ms)
{
	struct cfrd_xdp *x = xw->x;

	for (unsigned k = 0; k < n; k++) {
		uint8_t *eth = xw->pkts[k].data - ETH_HLEN;
		int p, verdict;

		xw->egress[k] = EGRESS_TUN;
		if (xw->pkts[k].verdict != CFR_VERDICT_FORWARD)
			continue;
		if (xw->pkts[k].dir == CFR_DIR_OUT) {
			if (xw->learnable[k]) {
				struct neigh *e = neigh_slot(x, xw->src[k]);
				struct neigh learned = {.port = (uint8_t)(from->port + 1),
				                        .seen_ms = now_ms};

				memcpy(learned.addr, xw->src[k], 16);
				memcpy(learned.mac, xw->src_mac[k], ETH_ALEN);
				/* A line every worker shares: written if changed or aging. */
				if (memcmp(e, &learned, offsetof(struct neigh, seen_ms)) != 0 ||
				    age_ms(now_ms, e->seen_ms) >= NEIGH_REFRESH_MS)
					*e = learned;
			}
			p = port_by_mac(x, eth + ETH_ALEN);
			if (p < 0 || x->ports[p].inside)
				continue;
			verdict = egress_ok(x, xw->pkts[k].data, xw->pkts[k].len);
			if (verdict != 0) {
				xw->egress[k] = verdict;
				continue;
			}
		} else {
			uint8_t key[16];
			struct neigh *e;

			addr_key(key, xw->pkts[k].data, true);
			e = neigh_slot(x, key);
			if (e->port == 0 || memcmp(e->addr, key, 16) != 0 ||
			    age_ms(now_ms, e->seen_ms) >= NEIGH_FRESH_MS) {
				atomic_fetch_add_explicit(&x->neigh_misses, 1,
				                          memory_order_relaxed);
				continue;
			}
			p = e->port - 1;
			if (!x->ports[p].inside ||
			    xw->pkts[k].len > __atomic_load_n(&x->ports[p].mtu, __ATOMIC_RELAXED))
				continue;
			memcpy(eth, e->mac, ETH_ALEN);
			memcpy(eth + ETH_ALEN, x->ports[p].mac, ETH_ALEN);
		}
		if (xw->sock_of_port[p] >= 0)
			xw->egress[k] = xw->sock_of_port[p];
	}
}

/* Frames in the transmit ring that the kernel has not taken yet. */
static unsigned tx_queued(struct sock *s)
{
	return RING_SIZE - xsk_prod_nb_free(&s->tx, RING_SIZE);
}

/*
 * Submit what the burst queued and have the kernel send it. A copy-mode
 * socket sends at most 32 frames per call and leaves the rest (all of them
 * while the device is busy) in the ring until the next call, so call again
 * while the ring empties: no frame may wait for later traffic to push it.
 */
static void kick(struct sock *s)
{
	unsigned queued;

	if (s->tx_pending) {
		xsk_ring_prod__submit(&s->tx, s->tx_pending);
		atomic_fetch_add_explicit(&s->tx_frames, s->tx_pending, memory_order_relaxed);
		s->tx_pending = 0;
	}
	while ((queued = tx_queued(s)) > 0) {
		if (sendto(xsk_socket__fd(s->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 &&
		    errno != EAGAIN && errno != EBUSY && errno != ENOBUFS)
			return;
		if (tx_queued(s) == queued)
			return; /* the device is busy: cfrd_xdp_flush() comes back */
	}
}

bool cfrd_xdp_flush(struct cfrd_xdp_worker *xw)
{
	bool left = false;

	for (unsigned i = 0; i < xw->n_socks; i++) {
		kick(&xw->socks[i]);
		left |= tx_queued(&xw->socks[i]) > 0;
	}
	return left;
}

/*
 * The second hop of the TUN path (cfr0 out to the port), which a frame on
 * the fast path would otherwise skip: both paths leave the same TTL, so the
 * TTL cap yields one value whichever path a packet took. The program let
 * only TTLs above 2 through, so this never reaches 0.
 */
static void hop_decrement(uint8_t *ip)
{
	if ((ip[0] >> 4) == 4) {
		uint8_t word[2] = {(uint8_t)(ip[8] - 1), ip[9]};

		csum_replace(ip + 10, ip + 8, word, 2);
		ip[8] = word[0];
	} else {
		ip[7]--;
	}
}

static bool tx_one(struct cfrd_xdp_worker *xw, struct sock *s, uint64_t addr, uint32_t len)
{
	uint32_t idx;

	if (xsk_ring_prod__reserve(&s->tx, 1, &idx) != 1) {
		kick(s);
		reclaim_completions(xw, s);
		if (xsk_ring_prod__reserve(&s->tx, 1, &idx) != 1)
			return false;
	}
	*xsk_ring_prod__tx_desc(&s->tx, idx) = (struct xdp_desc){.addr = addr, .len = len};
	s->tx_pending++;
	return true;
}

static void tx_frames(struct cfrd_xdp_worker *xw, struct sock *from, unsigned n, struct cfr_io *tun)
{
	for (unsigned k = 0; k < n; k++) {
		struct cfr_pkt *pkt = &xw->pkts[k];

		if (pkt->verdict != CFR_VERDICT_FORWARD) {
			atomic_fetch_add_explicit(&from->dropped, 1, memory_order_relaxed);
		} else if (xw->egress[k] == EGRESS_DROP) {
			atomic_fetch_add_explicit(&from->guard_drops, 1, memory_order_relaxed);
		} else if (xw->egress[k] >= 0) {
			struct sock *s = &xw->socks[xw->egress[k]];

			hop_decrement(pkt->data);
			if (tx_one(xw, s, xw->frame[k], pkt->len + ETH_HLEN)) {
				/* This worker's own socket: the add is never contended. */
				atomic_fetch_add_explicit(&s->tx_bytes, pkt->len,
				                          memory_order_relaxed);
				continue;
			}
			atomic_fetch_add_explicit(&s->tx_full, 1, memory_order_relaxed);
		} else {
			/* No offloads to describe: a zeroed backend header (virtio), where the MACs
			 * were. */
			memset(pkt->data - tun->backend->tx_hdr_len, 0, tun->backend->tx_hdr_len);
			pkt->csum_partial = 0;
			tun->backend->tx_burst(tun, pkt, 1);
			atomic_fetch_add_explicit(&from->to_tun, 1, memory_order_relaxed);
		}
		frame_free(xw, xw->frame[k]);
	}
	for (unsigned i = 0; i < xw->n_socks; i++)
		kick(&xw->socks[i]);
}

unsigned cfrd_xdp_forward(struct cfrd *d, struct cfrd_xdp_worker *xw, unsigned sock,
                          struct cfr_io *tun)
{
	struct sock *s = &xw->socks[sock];
	unsigned total = 0, n;

	do {
		for (unsigned i = 0; i < xw->n_socks; i++)
			reclaim_completions(xw, &xw->socks[i]);
		n = rx_frames(xw, s);
		total += n;
		if (n) {
			uint64_t now_ms = cfrd_now_ms();

			cfrd_engine_lock(d);
			cfr_engine_process(d->engine, xw->pkts, n, now_ms);
			route(xw, s, n, now_ms);
			cfrd_engine_unlock(d);
			tx_frames(xw, s, n, tun);
		}
		for (unsigned i = 0; i < xw->n_socks; i++)
			refill(xw, &xw->socks[i]);
	} while (n == CFRD_BURST && total < 16 * CFRD_BURST);
	if (xsk_ring_prod__needs_wakeup(&s->fill))
		recvfrom(xsk_socket__fd(s->xsk), NULL, 0, MSG_DONTWAIT, NULL, NULL);
	return total;
}

/*
 * The fast path's packets skip netfilter: an operator's forward rules
 * would silently stop applying to most subscriber traffic. So cfrd does
 * not start past them unless told to (ignore-forward-rules); its own guard
 * table is the exception, because the fast path keeps its promises itself.
 */
static int check_forward_rules(const struct cfrd_config *cfg)
{
	char what[160];
	int ret = cfrd_forward_rules_count(what, sizeof(what));

	if (ret < 0)
		log_error("[xdp]: cannot read the nftables ruleset");
	if (ret > 0 && cfg->xdp_ignore_forward_rules) {
		log_warn("[xdp]: %d forwarding rule%s (first in %s) will not see fast-path packets "
		         "(ignore-forward-rules = yes)",
		         ret, ret == 1 ? "" : "s", what);
		return 0;
	}
	if (ret > 0) {
		log_error("[xdp]: %d forwarding rule%s (first in %s) would not see fast-path "
		          "packets: remove them, run without [xdp], or set [xdp] "
		          "ignore-forward-rules = yes (cfrd(8), AF_XDP)",
		          ret, ret == 1 ? "" : "s", what);
		return -EPERM;
	}
	if (ret < 0 && cfg->xdp_ignore_forward_rules)
		return 0;
	if (ret < 0)
		log_error(
		    "[xdp]: cannot tell whether forwarding rules exist that fast-path "
		    "packets would skip; set [xdp] ignore-forward-rules = yes to start anyway");
	return ret;
}

/* --- setup ------------------------------------------------------------------ */

/* libbpf explains its failures on stderr; cfrd says what failed in its own line instead. */
static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

static int port_info(struct port *p)
{
	char path[64 + IFNAMSIZ];
	struct ifreq ifr = {0};
	struct dirent *de;
	unsigned mtu = 1500;
	DIR *dir;
	int fd, ret = 0;

	p->ifindex = if_nametoindex(p->name);
	if (p->ifindex == 0) {
		ret = -errno;
		log_error("[xdp] port %s: %s", p->name, strerror(errno));
		return ret;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", p->name);
	if (fd >= 0 && ioctl(fd, SIOCGIFMTU, &ifr) == 0)
		mtu = (unsigned)ifr.ifr_mtu;
	if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr) < 0 || ifr.ifr_hwaddr.sa_family != 1) {
		ret = fd < 0 || errno == 0 ? -EINVAL : -errno;
		log_error("[xdp] port %s: not an Ethernet interface", p->name);
	}
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		return ret;
	memcpy(p->mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	p->mtu = mtu;
	snprintf(path, sizeof(path), "/sys/class/net/%s/queues", p->name);
	dir = opendir(path);
	p->n_queues = 0;
	while (dir && (de = readdir(dir)) != NULL)
		p->n_queues += strncmp(de->d_name, "rx-", 3) == 0;
	if (dir)
		closedir(dir);
	if (p->n_queues == 0)
		p->n_queues = 1;
	return 0;
}

static int map_fd(struct cfrd_xdp *x, const char *name)
{
	return bpf_object__find_map_fd_by_name(x->obj, name);
}

/* The prefixes of <family> in <list> into the LPM maps <fd4> / <fd6>. */
static int fill_lpm(int fd4, int fd6, const struct cfr_prefix *list, unsigned n)
{
	uint8_t one = 1;

	for (unsigned i = 0; i < n; i++) {
		struct cfr_xdp_lpm4 k4 = {.prefixlen = list[i].len};
		struct cfr_xdp_lpm6 k6 = {.prefixlen = list[i].len};
		int ret;

		memcpy(k4.addr, list[i].addr, 4);
		memcpy(k6.addr, list[i].addr, 16);
		ret = list[i].family == CFR_FAMILY_V4
		          ? bpf_map_update_elem(fd4, &k4, &one, BPF_ANY)
		          : bpf_map_update_elem(fd6, &k6, &one, BPF_ANY);
		if (ret < 0)
			return -errno;
	}
	return 0;
}

/* The pools (packets to them come in by outside ports) and the subscribers (theirs by inside). */
static int fill_prefixes(struct cfrd_xdp *x, const struct cfr_engine_config *e)
{
	int ret = fill_lpm(map_fd(x, "pools4"), map_fd(x, "pools6"), e->pool4, e->n_pool4);

	if (ret == 0)
		ret = fill_lpm(map_fd(x, "pools4"), map_fd(x, "pools6"), e->pool6, e->n_pool6);
	if (ret == 0)
		ret = fill_lpm(map_fd(x, "subs4"), map_fd(x, "subs6"), e->subscribers,
		               e->n_subscribers);
	memcpy(x->pools, e->pool4, e->n_pool4 * sizeof(*e->pool4));
	memcpy(x->pools + e->n_pool4, e->pool6, e->n_pool6 * sizeof(*e->pool6));
	x->n_pools = e->n_pool4 + e->n_pool6;
	memcpy(x->subscribers, e->subscribers, e->n_subscribers * sizeof(*e->subscribers));
	x->n_subscribers = e->n_subscribers;
	return ret;
}

/*
 * Attach the program to <ifindex>. A port stays busy while the cfrd before
 * this one is still dying (a SIGKILL is not instant, and its link goes with
 * its last descriptor), so a busy port is tried again for up to 2 s before
 * it counts as held by another program.
 */
static struct bpf_link *attach_xdp(struct bpf_program *prog, unsigned ifindex)
{
	const struct timespec step = {.tv_nsec = 100 * 1000 * 1000};
	struct bpf_link *link = NULL;

	for (int tries = 0; tries < 20; tries++) {
		link = bpf_program__attach_xdp(prog, (int)ifindex);
		if (link != NULL || errno != EBUSY)
			break;
		nanosleep(&step, NULL);
	}
	return link;
}

static int attach_ports(struct cfrd_xdp *x, const struct cfrd_config *cfg)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(x->obj, "cfr_xdp");
	int ports_fd = map_fd(x, "ports");

	for (unsigned i = 0; i < cfg->n_xdp_ports; i++) {
		struct port *p = &x->ports[i];
		struct cfr_xdp_port v = {
		    .role = cfg->xdp_ports[i].inside ? CFR_XDP_INSIDE : CFR_XDP_OUTSIDE, .slot = i};
		int ret;

		snprintf(p->name, sizeof(p->name), "%s", cfg->xdp_ports[i].name);
		p->inside = cfg->xdp_ports[i].inside;
		p->ingress = cfg->xdp_ports[i].ingress;
		ret = port_info(p);
		if (ret < 0)
			return ret;
		x->n_ports = i + 1;
		if (bpf_map_update_elem(ports_fd, &p->ifindex, &v, BPF_ANY) < 0) {
			ret = -errno;
			log_error("[xdp] port %s: cannot configure the program: %s", p->name,
			          strerror(-ret));
			return ret;
		}
		p->link = attach_xdp(prog, p->ifindex);
		if (p->link == NULL) {
			ret = -errno;
			log_error("[xdp] port %s: cannot attach the XDP program: %s", p->name,
			          strerror(-ret));
			return ret;
		}
	}
	return 0;
}

int cfrd_xdp_open(struct cfrd_xdp **xp, const struct cfrd_config *cfg)
{
	struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
	struct cfrd_xdp *x;
	uint8_t key[16];
	size_t size = 1;
	int ret;

	ret = check_forward_rules(cfg);
	if (ret < 0)
		return ret;
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -ENOMEM;
	x->mtu_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	while (size < cfg->engine.max_subscribers)
		size <<= 1;
	x->neigh = calloc(size, sizeof(*x->neigh));
	x->neigh_mask = size - 1;
	randombytes_buf(key, sizeof(key));
	x->neigh_key = cfr_sipkey_from(key);
	sodium_memzero(key, sizeof(key));
	if (x->neigh == NULL) {
		cfrd_xdp_close(x);
		log_error("[xdp]: cannot allocate the neighbour table: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	/* UMEMs are locked memory; root without this limit fails on larger ones. */
	setrlimit(RLIMIT_MEMLOCK, &unlimited);
	libbpf_set_print(libbpf_quiet);
	x->obj = bpf_object__open_mem(cfr_xdp_object, (size_t)cfr_xdp_object_size, NULL);
	if (x->obj == NULL || bpf_object__load(x->obj) < 0) {
		ret = -errno;
		log_error("[xdp]: cannot load the XDP program: %s", strerror(-ret));
		cfrd_xdp_close(x);
		return ret;
	}
	x->xsks_fd = map_fd(x, "xsks");
	ret = fill_prefixes(x, &cfg->engine);
	if (ret < 0)
		log_error("[xdp]: cannot configure the pool and subscriber prefixes: %s",
		          strerror(-ret));
	else
		ret = attach_ports(x, cfg);
	if (ret < 0) {
		cfrd_xdp_close(x);
		return ret;
	}
	*xp = x;
	return 0;
}

void cfrd_xdp_close(struct cfrd_xdp *x)
{
	if (x == NULL)
		return;
	for (unsigned i = 0; i < x->n_ports; i++)
		bpf_link__destroy(x->ports[i].link);
	bpf_object__close(x->obj);
	free(x->neigh);
	if (x->mtu_fd >= 0)
		close(x->mtu_fd);
	free(x);
}

/*
 * An access line's MTU may change while cfrd runs (a PPPoE session comes
 * back with another): read every port's again, so that a reply too big for
 * its line goes through TUN, where the kernel sends the remote a Packet Too
 * Big in alias form, instead of being sent into a line that drops it.
 */
void cfrd_xdp_refresh(struct cfrd_xdp *x)
{
	for (unsigned i = 0; i < x->n_ports && x->mtu_fd >= 0; i++) {
		struct ifreq ifr = {0};

		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", x->ports[i].name);
		if (ioctl(x->mtu_fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0)
			__atomic_store_n(&x->ports[i].mtu, (unsigned)ifr.ifr_mtu, __ATOMIC_RELAXED);
	}
}

static int sock_open(struct cfrd_xdp_worker *xw, unsigned port)
{
	const struct xsk_socket_config sc = {
	    .rx_size = RING_SIZE,
	    .tx_size = RING_SIZE,
	    .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
	    .bind_flags = XDP_USE_NEED_WAKEUP,
	};
	struct cfrd_xdp *x = xw->x;
	struct sock *s = &xw->socks[xw->n_socks];
	uint32_t key = port * CFR_XDP_MAX_QUEUES + xw->queue;
	int ret, fd;

	s->port = port;
	/* The first socket takes the fill and completion rings made with the UMEM. */
	if (xw->n_socks == 0)
		ret = xsk_socket__create(&s->xsk, x->ports[port].name, xw->queue, xw->umem, &s->rx,
		                         &s->tx, &sc);
	else
		ret = xsk_socket__create_shared(&s->xsk, x->ports[port].name, xw->queue, xw->umem,
		                                &s->rx, &s->tx, &s->fill, &s->comp, &sc);
	if (ret < 0) {
		log_error("[xdp] port %s queue %u: cannot open an AF_XDP socket: %s",
		          x->ports[port].name, xw->queue, strerror(-ret));
		return ret;
	}
	fd = xsk_socket__fd(s->xsk);
	if (bpf_map_update_elem(x->xsks_fd, &key, &fd, BPF_ANY) < 0) {
		ret = -errno;
		log_error("[xdp] port %s queue %u: cannot register the socket: %s",
		          x->ports[port].name, xw->queue, strerror(-ret));
		xsk_socket__delete(s->xsk);
		return ret;
	}
	xw->sock_of_port[port] = (int)xw->n_socks++;
	return 0;
}

int cfrd_xdp_worker_open(struct cfrd_xdp *x, unsigned queue, struct cfrd_xdp_worker **xwp)
{
	const struct xsk_umem_config uc = {
	    .fill_size = RING_SIZE,
	    .comp_size = RING_SIZE,
	    .frame_size = FRAME_SIZE,
	};
	struct cfrd_xdp_worker *xw;
	unsigned n_ports = 0, n_frames;
	int ret;

	for (unsigned p = 0; p < x->n_ports; p++)
		n_ports += queue < x->ports[p].n_queues;
	xw = calloc(1, sizeof(*xw));
	if (xw == NULL)
		return -ENOMEM;
	xw->x = x;
	xw->queue = queue;
	for (unsigned p = 0; p < CFRD_XDP_MAX_PORTS; p++)
		xw->sock_of_port[p] = -1;
	*xwp = xw;
	x->workers[x->n_workers++] = xw;
	if (n_ports == 0)
		return 0;
	/* Fill, receive, transmit and completion rings all full at once, and a burst in hand. */
	n_frames = n_ports * 4 * RING_SIZE + CFRD_BURST;
	xw->area_size = (size_t)n_frames * FRAME_SIZE;
	xw->area =
	    mmap(NULL, xw->area_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	xw->free_frames = calloc(n_frames, sizeof(*xw->free_frames));
	if (xw->area == MAP_FAILED || xw->free_frames == NULL) {
		xw->area = xw->area == MAP_FAILED ? NULL : xw->area;
		log_error("[xdp]: cannot allocate %zu bytes of frames: %s", xw->area_size,
		          strerror(ENOMEM));
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n_frames; i++)
		frame_free(xw, (uint64_t)i * FRAME_SIZE);
	ret = xsk_umem__create(&xw->umem, xw->area, xw->area_size, &xw->socks[0].fill,
	                       &xw->socks[0].comp, &uc);
	if (ret < 0) {
		log_error("[xdp]: cannot register %zu bytes of frames: %s", xw->area_size,
		          strerror(-ret));
		return ret;
	}
	for (unsigned p = 0; p < x->n_ports; p++) {
		if (queue >= x->ports[p].n_queues)
			continue;
		ret = sock_open(xw, p);
		if (ret < 0)
			return ret;
		refill(xw, &xw->socks[xw->n_socks - 1]);
	}
	return 0;
}

void cfrd_xdp_worker_close(struct cfrd_xdp_worker *xw)
{
	if (xw == NULL)
		return;
	for (unsigned i = 0; i < xw->n_socks; i++)
		xsk_socket__delete(xw->socks[i].xsk);
	if (xw->umem)
		xsk_umem__delete(xw->umem);
	if (xw->area)
		munmap(xw->area, xw->area_size);
	free(xw->free_frames);
	free(xw);
}

unsigned cfrd_xdp_worker_fds(const struct cfrd_xdp_worker *xw, int *fds, unsigned max)
{
	unsigned n = xw->n_socks < max ? xw->n_socks : max;

	for (unsigned i = 0; i < n; i++)
		fds[i] = xsk_socket__fd(xw->socks[i].xsk);
	return n;
}

uint64_t cfrd_xdp_worker_received(const struct cfrd_xdp_worker *xw)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < xw->n_socks; i++)
		n += atomic_load_explicit(&xw->socks[i].rx_frames, memory_order_relaxed);
	return n;
}

void cfrd_xdp_stats(const struct cfrd_xdp *x, struct cfrd_xdp_stats *st)
{
	*st = (struct cfrd_xdp_stats){
	    .neigh_misses = atomic_load_explicit(&x->neigh_misses, memory_order_relaxed)};
	for (unsigned w = 0; w < x->n_workers; w++) {
		const struct cfrd_xdp_worker *xw = x->workers[w];

		for (unsigned i = 0; i < xw->n_socks; i++) {
			const struct sock *s = &xw->socks[i];

			st->rx += atomic_load_explicit(&s->rx_frames, memory_order_relaxed);
			st->tx += atomic_load_explicit(&s->tx_frames, memory_order_relaxed);
			st->tx_bytes += atomic_load_explicit(&s->tx_bytes, memory_order_relaxed);
			st->to_tun += atomic_load_explicit(&s->to_tun, memory_order_relaxed);
			st->tx_full += atomic_load_explicit(&s->tx_full, memory_order_relaxed);
			st->dropped += atomic_load_explicit(&s->dropped, memory_order_relaxed);
			st->guard_drops +=
			    atomic_load_explicit(&s->guard_drops, memory_order_relaxed);
		}
	}
}
