/*
 * cfrd's XDP program: the kernel half of the AF_XDP backend. It decides,
 * per frame and before the kernel's stack sees it, whether cfrd takes the
 * frame into its AF_XDP socket or the kernel handles it as before.
 *
 * Inside ports (facing subscribers): an IPv4/IPv6 packet from a subscriber
 * prefix whose frame agrees with the kernel's neighbour table (the route
 * back to its source leaves by this port, to a resolved neighbour whose MAC
 * is the frame's source: a strict reverse-path check down to the link
 * layer) and that the kernel's main routing table sends out of one of
 * cfrd's outside ports, to a resolved neighbour, is turned into the frame
 * that port will send (next hop's MAC, TTL or hop limit decremented) and
 * handed to cfrd, with the neighbour table's MAC for the subscriber kept in
 * front of it so cfrd can send the replies back. Outside ports: a packet to
 * an alias pool address is handed to cfrd, TTL decremented.
 *
 * Everything else passes to the kernel unchanged: ARP and neighbour
 * discovery, traffic for the gateway itself, packets whose next hop or
 * source is not resolved yet, frames whose MAC is not the one the kernel
 * knows for their source, TTL expiry. Subscriber packets among those take
 * the TUN path (policy routing into cfr0) through netfilter (cfrd's guard,
 * the operator's rules), where the same engine translates them: the program
 * is a fast path, never the only path, and it never forwards anything
 * itself. It must never let a frame's own addresses decide where another
 * subscriber's replies go.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "cfr_xdp.h"

/* bpf_fib_lookup flag: the main table, no policy rules (those send subscribers into cfr0). */
#define FIB_DIRECT 1u

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CFR_XDP_MAX_PORTS);
	__type(key, __u32); /* ifindex */
	__type(value, struct cfr_xdp_port);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, CFR_XDP_MAX_PORTS *CFR_XDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, CFR_XDP_MAX_POOL_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cfr_xdp_lpm4);
	__type(value, __u8);
} pools4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, CFR_XDP_MAX_POOL_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cfr_xdp_lpm6);
	__type(value, __u8);
} pools6 SEC(".maps");

/* The subscriber prefixes: only their packets take the fast path from an inside port. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, CFR_XDP_MAX_SUBSCRIBER_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cfr_xdp_lpm4);
	__type(value, __u8);
} subs4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, CFR_XDP_MAX_SUBSCRIBER_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cfr_xdp_lpm6);
	__type(value, __u8);
} subs6 SEC(".maps");

/* RFC 1624 update of the IPv4 header checksum for TTL - 1 (the high byte of a 16-bit word). */
static __always_inline void ipv4_ttl_decrement(struct iphdr *ip)
{
	__u32 check = ip->check;

	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
}

/* The redirect key of this frame's queue, or -1 if cfrd has no socket on it. */
static __always_inline int xsk_key(struct xdp_md *ctx, const struct cfr_xdp_port *port)
{
	__u32 key;

	if (ctx->rx_queue_index >= CFR_XDP_MAX_QUEUES)
		return -1;
	key = port->slot * CFR_XDP_MAX_QUEUES + ctx->rx_queue_index;
	return bpf_map_lookup_elem(&xsks, &key) ? (int)key : -1;
}

/*
 * Fill <fib> for the packet's route (or, with <reverse>, for the route back
 * to its source) in the main table. Returns 0 for IPv4/IPv6 within bounds.
 */
static __always_inline int fib_params(struct bpf_fib_lookup *fib, void *l3, void *end, __u16 proto,
                                      __u32 ifindex, int reverse)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->ifindex = ifindex;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > end)
			return -1;
		fib->family = AF_INET;
		fib->tos = ip->tos;
		fib->l4_protocol = ip->protocol;
		fib->tot_len = bpf_ntohs(ip->tot_len);
		fib->ipv4_src = reverse ? ip->daddr : ip->saddr;
		fib->ipv4_dst = reverse ? ip->saddr : ip->daddr;
		return 0;
	}
	struct ipv6hdr *ip6 = l3;

	if ((void *)(ip6 + 1) > end)
		return -1;
	fib->family = AF_INET6;
	fib->l4_protocol = ip6->nexthdr;
	/* The kernel checks it against the route's MTU: too big passes to the kernel, which
	 * answers. */
	fib->tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
	__builtin_memcpy(fib->ipv6_src, reverse ? &ip6->daddr : &ip6->saddr, 16);
	__builtin_memcpy(fib->ipv6_dst, reverse ? &ip6->saddr : &ip6->daddr, 16);
	return 0;
}

/*
 * Room for two hops: this one, and the one cfrd takes after translating, as
 * the kernel's second forward (cfr0 to the port) does on the TUN path; both
 * paths leave the same TTL. Less, and the kernel must answer (time exceeded).
 */
static __always_inline int hop_ok(void *l3, __u16 proto)
{
	if (proto == bpf_htons(ETH_P_IP))
		return ((struct iphdr *)l3)->ttl > 2;
	return ((struct ipv6hdr *)l3)->hop_limit > 2;
}

static __always_inline void hop_decrement(void *l3, __u16 proto)
{
	if (proto == bpf_htons(ETH_P_IP))
		ipv4_ttl_decrement(l3);
	else
		((struct ipv6hdr *)l3)->hop_limit--;
}

/*
 * Whether the packet's source (or with <dst>, its destination) is in the
 * prefixes of LPM maps <m4> (IPv4) and <m6> (IPv6).
 */
static __always_inline int addr_in(void *m4, void *m6, void *l3, void *end, __u16 proto, int dst)
{
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		struct cfr_xdp_lpm4 k4 = {.prefixlen = 32};

		if ((void *)(ip + 1) > end)
			return 0;
		__builtin_memcpy(k4.addr, dst ? &ip->daddr : &ip->saddr, 4);
		return bpf_map_lookup_elem(m4, &k4) != NULL;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		struct cfr_xdp_lpm6 k6 = {.prefixlen = 128};

		if ((void *)(ip6 + 1) > end)
			return 0;
		__builtin_memcpy(k6.addr, dst ? &ip6->daddr : &ip6->saddr, 16);
		return bpf_map_lookup_elem(m6, &k6) != NULL;
	}
	return 0;
}

static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) |
	        (a[5] ^ b[5])) == 0;
}

static __always_inline int from_inside(struct xdp_md *ctx, const struct cfr_xdp_port *port)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bpf_fib_lookup fib;
	struct cfr_xdp_port *out;
	struct cfr_xdp_meta *meta;
	__u8 neigh_mac[ETH_ALEN];
	__u16 proto;
	int key;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	proto = eth->h_proto;
	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	/*
	 * Only subscribers: anything else from the access side (a router's
	 * ICMP error) meets the guard's source check on the kernel's path.
	 */
	if (!addr_in(&subs4, &subs6, eth + 1, end, proto, 0))
		return XDP_PASS;
	/*
	 * The route back to the source, with its neighbour (the subscriber, or
	 * the router it sits behind): it must leave by this port (strict
	 * reverse path) to the MAC address this frame comes from. cfrd sends
	 * the replies to the neighbour table's MAC, never to a frame's: on a
	 * port several subscribers share (a bridge, a switch), a frame with a
	 * neighbour's address and its own MAC must not redirect the neighbour's
	 * replies. Such a frame, and one whose source the kernel has not
	 * resolved yet, passes to the kernel: the operator's rules and the
	 * guard see it, and the kernel's own replies resolve the neighbour for
	 * the next packets.
	 */
	if (fib_params(&fib, eth + 1, end, proto, ctx->ingress_ifindex, 1) < 0)
		return XDP_PASS;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), FIB_DIRECT) != BPF_FIB_LKUP_RET_SUCCESS ||
	    fib.ifindex != ctx->ingress_ifindex || !mac_equal(fib.dmac, eth->h_source))
		return XDP_PASS;
	__builtin_memcpy(neigh_mac, fib.dmac, ETH_ALEN);
	if (fib_params(&fib, eth + 1, end, proto, ctx->ingress_ifindex, 0) < 0 ||
	    !hop_ok(eth + 1, proto))
		return XDP_PASS;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), FIB_DIRECT) != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;
	out = bpf_map_lookup_elem(&ports, &fib.ifindex);
	if (out == NULL || out->role != CFR_XDP_OUTSIDE)
		return XDP_PASS;
	key = xsk_key(ctx, port);
	if (key < 0)
		return XDP_PASS;
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(*meta)) < 0)
		return XDP_PASS;
	/* adjust_head moved the pointers: every check is made again. */
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	meta = data;
	eth = (void *)(meta + 1);
	if ((void *)(eth + 1) > end ||
	    (proto == bpf_htons(ETH_P_IP) ? (void *)((struct iphdr *)(eth + 1) + 1) > end
	                                  : (void *)((struct ipv6hdr *)(eth + 1) + 1) > end)) {
		/* Cannot happen (checked above, same bytes): give the kernel its frame back. */
		bpf_xdp_adjust_head(ctx, (int)sizeof(*meta));
		return XDP_PASS;
	}
	__builtin_memcpy(meta->neigh_mac, neigh_mac, ETH_ALEN);
	__builtin_memcpy(meta->frame_mac, eth->h_source, ETH_ALEN);
	meta->pad = 0;
	meta->magic = CFR_XDP_META_MAGIC;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	hop_decrement(eth + 1, proto);
	/* No longer the frame that arrived: if the socket went away meanwhile, drop it. */
	return bpf_redirect_map(&xsks, key, XDP_DROP);
}

static __always_inline int from_outside(struct xdp_md *ctx, const struct cfr_xdp_port *port)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	int key;

	if ((void *)(eth + 1) > end || !addr_in(&pools4, &pools6, eth + 1, end, eth->h_proto, 1) ||
	    !hop_ok(eth + 1, eth->h_proto))
		return XDP_PASS;
	key = xsk_key(ctx, port);
	if (key < 0)
		return XDP_PASS;
	hop_decrement(eth + 1, eth->h_proto);
	return bpf_redirect_map(&xsks, key, XDP_PASS);
}

SEC("xdp")
int cfr_xdp(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct cfr_xdp_port *port = bpf_map_lookup_elem(&ports, &ifindex);

	if (port == NULL)
		return XDP_PASS;
	if (port->role == CFR_XDP_INSIDE)
		return from_inside(ctx, port);
	return from_outside(ctx, port);
}

/* GPL-compatible, as bpf_fib_lookup() requires; the rest of cfr is not bound by it. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
