/*
 * The AF_XDP backend's decisions (see xdp_route.h).
 *
 * Outbound frames arrive ready to leave: the program has looked up the
 * route, written the next hop's MAC and the outside port's own as source,
 * and decremented the TTL, so cfrd only picks the port whose MAC is the
 * frame's source. Before one leaves by an outside port cfrd checks what the
 * guard's egress chain would (egress_ok()): the fast path skips netfilter,
 * so it keeps that promise itself.
 *
 * Inbound frames need the subscriber's MAC address. cfrd never takes it
 * from a frame: several subscribers may share an inside port (a bridge, a
 * switch), and one frame with a neighbour's source address would otherwise
 * redirect that neighbour's replies. The program reads it from the kernel's
 * neighbour table (the bpf_fib_lookup() that checks the reverse path also
 * returns the neighbour's MAC) and hands it over in front of the frame;
 * cfrd keeps it per subscriber address, only once the engine has accepted
 * the packet and only if the frame came from that very MAC, and only for a
 * few seconds (CFRD_XDP_NEIGH_FRESH_MS), so a change in the neighbour table
 * (an operator's static binding, a host that moved) reaches the fast path
 * soon even if no frame says so. The kernel's table is the one its own
 * forwarding trusts, and the one an operator binds sources with (static
 * entries). Why not a netlink neighbour dump in cfrd: a copy that must be
 * kept in sync from inside the sandbox, for what one lookup per packet in
 * the program already gives. A reply with no fresh entry, or none on this
 * worker's queue of the port, goes through the TUN device and is routed by
 * the kernel: slower, never lost.
 */
#include "xdp_route.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cfr/internal/csum.h"

_Static_assert(sizeof(struct cfrd_xdp_neigh) == 32, "two entries per cache line");
_Static_assert(CFRD_XDP_MAX_PORTS <= 32, "a bit per port in a sendable mask");

int cfrd_xdp_route_init(struct cfrd_xdp_route *r, const struct cfr_engine_config *e)
{
	uint8_t key[16];
	size_t size = 1;

	while (size < e->max_subscribers)
		size <<= 1;
	r->neigh = calloc(size, sizeof(*r->neigh));
	if (r->neigh == NULL)
		return -ENOMEM;
	r->neigh_mask = size - 1;
	randombytes_buf(key, sizeof(key));
	r->neigh_key = cfr_sipkey_from(key);
	sodium_memzero(key, sizeof(key));
	memcpy(r->pools, e->pool4, e->n_pool4 * sizeof(*e->pool4));
	memcpy(r->pools + e->n_pool4, e->pool6, e->n_pool6 * sizeof(*e->pool6));
	r->n_pools = e->n_pool4 + e->n_pool6;
	memcpy(r->subscribers, e->subscribers, e->n_subscribers * sizeof(*e->subscribers));
	r->n_subscribers = e->n_subscribers;
	return 0;
}

void cfrd_xdp_route_fini(struct cfrd_xdp_route *r)
{
	free(r->neigh);
	r->neigh = NULL;
}

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

static struct cfrd_xdp_neigh *neigh_slot(struct cfrd_xdp_route *r, const uint8_t key[16])
{
	return &r->neigh[cfr_siphash13(&r->neigh_key, key, 16) & r->neigh_mask];
}

/* Workers read their clocks before they take the lock: another's may be a little ahead. */
static int64_t age_ms(uint64_t now_ms, uint64_t then_ms)
{
	return (int64_t)(now_ms - then_ms);
}

void cfrd_xdp_sender_take(struct cfrd_xdp_sender *s, const struct cfr_pkt *pkt,
                          struct cfr_xdp_meta *meta, bool inside)
{
	/*
	 * The program wrote the mark after checking a whole header; the
	 * length is checked again all the same before the address is read.
	 * A short packet goes on to the engine, which names its drop.
	 */
	s->learnable = inside && meta->magic == CFR_XDP_META_MAGIC &&
	               memcmp(meta->neigh_mac, meta->frame_mac, ETH_ALEN) == 0 &&
	               pkt->len >= ((pkt->data[0] >> 4) == 4 ? 20u : 40u);
	if (s->learnable) {
		memcpy(s->mac, meta->neigh_mac, ETH_ALEN);
		addr_key(s->addr, pkt->data, false);
	}
	meta->magic = 0;
}

static int port_by_mac(const struct cfrd_xdp_route *r, const uint8_t *mac)
{
	for (unsigned p = 0; p < r->n_ports; p++)
		if (memcmp(r->ports[p].mac, mac, ETH_ALEN) == 0)
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
 * address. Returns 0 if it may leave, CFRD_XDP_VIA_DROP if not,
 * CFRD_XDP_VIA_TUN if the fast path cannot tell (IPv6 extension headers,
 * which it does not walk): the kernel routes it and the guard decides.
 */
static int egress_ok(const struct cfrd_xdp_route *r, const uint8_t *ip, uint32_t len)
{
	int family = (ip[0] >> 4) == 4 ? CFR_FAMILY_V4 : CFR_FAMILY_V6;
	uint32_t l4, src_off = family == CFR_FAMILY_V4 ? 12 : 8,
	             alen = family == CFR_FAMILY_V4 ? 4 : 16;
	bool error;

	if (!in_prefixes(r->pools, r->n_pools, family, ip + src_off))
		return CFRD_XDP_VIA_DROP;
	if (family == CFR_FAMILY_V4) {
		/* Later fragments carry no ICMP header, for nft either. */
		l4 = (ip[0] & 0xfu) * 4u;
		error = ip[9] == 1 && ((ip[6] & 0x1f) | ip[7]) == 0 && l4 + 8 + 20 <= len &&
		        (ip[l4] == 3 || ip[l4] == 4 || ip[l4] == 5 || ip[l4] == 11 || ip[l4] == 12);
	} else {
		/* TCP, UDP, ICMPv6 and fragments (the engine drops fragmented errors). */
		if (ip[6] != 6 && ip[6] != 17 && ip[6] != 58 && ip[6] != 44)
			return CFRD_XDP_VIA_TUN;
		l4 = 40;
		error = ip[6] == 58 && l4 + 8 + 40 <= len && ip[l4] >= 1 && ip[l4] <= 4;
	}
	if (error &&
	    (in_prefixes(r->subscribers, r->n_subscribers, family, ip + l4 + 8 + src_off) ||
	     in_prefixes(r->subscribers, r->n_subscribers, family, ip + l4 + 8 + src_off + alen)))
		return CFRD_XDP_VIA_DROP;
	return 0;
}

/* Remember where the sender of an accepted outbound packet is; a line every worker shares. */
static void learn(struct cfrd_xdp_route *r, unsigned from, const struct cfrd_xdp_sender *s,
                  uint64_t now_ms)
{
	struct cfrd_xdp_neigh *e = neigh_slot(r, s->addr);
	struct cfrd_xdp_neigh learned = {.port = (uint8_t)(from + 1), .seen_ms = now_ms};

	memcpy(learned.addr, s->addr, 16);
	memcpy(learned.mac, s->mac, ETH_ALEN);
	/* Written only if changed or aging: the line is shared by every worker. */
	if (memcmp(e, &learned, offsetof(struct cfrd_xdp_neigh, seen_ms)) != 0 ||
	    age_ms(now_ms, e->seen_ms) >= CFRD_XDP_NEIGH_REFRESH_MS)
		*e = learned;
}

/* The inside port of a reply's subscriber, with its Ethernet header filled; -1: none known. */
static int reply_port(struct cfrd_xdp_route *r, struct cfr_pkt *pkt, uint64_t now_ms)
{
	uint8_t *eth = pkt->data - ETH_HLEN, key[16];
	struct cfrd_xdp_neigh *e;
	int p;

	addr_key(key, pkt->data, true);
	e = neigh_slot(r, key);
	if (e->port == 0 || memcmp(e->addr, key, 16) != 0 ||
	    age_ms(now_ms, e->seen_ms) >= CFRD_XDP_NEIGH_FRESH_MS) {
		atomic_fetch_add_explicit(&r->neigh_misses, 1, memory_order_relaxed);
		return -1;
	}
	p = e->port - 1;
	if (!r->ports[p].inside || pkt->len > __atomic_load_n(&r->ports[p].mtu, __ATOMIC_RELAXED))
		return -1;
	memcpy(eth, e->mac, ETH_ALEN);
	memcpy(eth + ETH_ALEN, r->ports[p].mac, ETH_ALEN);
	return p;
}

int cfrd_xdp_route_pick(struct cfrd_xdp_route *r, unsigned from, const struct cfrd_xdp_sender *s,
                        struct cfr_pkt *pkt, uint32_t sendable, uint64_t now_ms)
{
	int p;

	if (pkt->verdict != CFR_VERDICT_FORWARD)
		return CFRD_XDP_VIA_TUN;
	if (pkt->dir == CFR_DIR_OUT) {
		int verdict;

		if (s->learnable)
			learn(r, from, s, now_ms);
		p = port_by_mac(r, pkt->data - ETH_HLEN + ETH_ALEN);
		if (p < 0 || r->ports[p].inside)
			return CFRD_XDP_VIA_TUN;
		verdict = egress_ok(r, pkt->data, pkt->len);
		if (verdict != 0)
			return verdict;
	} else {
		p = reply_port(r, pkt, now_ms);
		if (p < 0)
			return CFRD_XDP_VIA_TUN;
	}
	return sendable & (1u << p) ? p : CFRD_XDP_VIA_TUN;
}

void cfrd_xdp_hop_decrement(uint8_t *ip)
{
	if ((ip[0] >> 4) == 4) {
		uint8_t word[2] = {(uint8_t)(ip[8] - 1), ip[9]};

		csum_replace(ip + 10, ip + 8, word, 2);
		ip[8] = word[0];
	} else {
		ip[7]--;
	}
}
