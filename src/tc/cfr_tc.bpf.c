/*
 * cfrd's TC fast path: the packets of established flows rewritten in the
 * kernel, from a copy of the engine's flow (cfr_tc.h, filled by
 * src/cfrd/fastpath.c), with the same result the engine gives: addresses,
 * ports, checksums (partial ones and GSO super-packets stay so, so devices
 * keep their offloads), the TCP timestamp scrub, TTL / hop limit as the
 * TUN path leaves them, a fresh IPv4 identification and the flow's IPv6
 * flow label. It then routes the packet as the kernel would route it out
 * of cfrd's TUN device and hands it straight to the egress device.
 *
 * It only ever takes the common case. Everything else goes on into the
 * kernel untouched and so to cfrd through TUN, where the engine and its
 * leak rules decide: the first packets of a flow, TCP SYN, FIN and RST
 * (the engine tracks the connection), ICMP but echo, fragments, IPv4 options and
 * IPv6 extension headers, TCP options in an unusual layout, a TTL that
 * would expire at the gateway, a packet too big for the egress link, a
 * next hop whose neighbour entry is not resolved, and an outbound packet
 * that did not arrive on its subscriber's line.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <stdbool.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "cfr_tc.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define ETH_LEN       14
#define TS_RATE_SHIFT 24

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* set by cfrd from max-flows, twice (both directions) */
	__type(key, struct cfr_tc_key);
	__type(value, struct cfr_tc_flow);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cfr_tc_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CFR_TC_STAT__COUNT + 1); /* the last: the identification counter */
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 which, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &which);

	if (c)
		*c += n;
}

static __always_inline int pass(__u32 why)
{
	count(why, 1);
	return TC_ACT_OK;
}

#define ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

/*
 * SipHash-1-3 of one 64-bit word: the IPv4 identification is a keyed PRF of
 * a per-CPU counter, as unpredictable as the engine's CSPRNG draw to anyone
 * without the epoch's key (bpf_get_prandom_u32() is not a CSPRNG).
 */
static __always_inline __u64 siphash13(const __u64 key[2], __u64 m)
{
	__u64 v0 = 0x736f6d6570736575ULL ^ key[0], v1 = 0x646f72616e646f6dULL ^ key[1];
	__u64 v2 = 0x6c7967656e657261ULL ^ key[0], v3 = 0x7465646279746573ULL ^ key[1];
	__u64 b = 8ULL << 56;

	v3 ^= m;
	SIPROUND;
	v0 ^= m;
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static __always_inline __u16 fresh_ip_id(const struct cfr_tc_config *cfg)
{
	__u32 which = CFR_TC_STAT__COUNT;
	__u64 *ctr = bpf_map_lookup_elem(&stats, &which);
	__u64 m;

	if (!ctr)
		return 0;
	m = ((__u64)bpf_get_smp_processor_id() << 48) | (*ctr)++;
	return (__u16)siphash13(cfg->id_key, m);
}

/* The engine's TSval map (scrub.c tsval_out), for a flow whose origin is set. */
static __always_inline __u32 tsval_out(const struct cfr_tc_flow *f, __u32 tsval)
{
	return f->ts_offset +
	       (__u32)(((__u64)(tsval - f->ts_base) * ((1ULL << TS_RATE_SHIFT) + f->ts_rate)) >>
	               TS_RATE_SHIFT);
}

/* Its exact inverse (scrub.c tsecr_in). */
static __always_inline __u32 tsecr_in(const struct cfr_tc_flow *f, __u32 tsecr)
{
	__u64 scaled = tsecr - f->ts_offset, rate = (1ULL << TS_RATE_SHIFT) + f->ts_rate;

	return f->ts_base + (__u32)(((scaled << TS_RATE_SHIFT) + rate - 1) / rate);
}

/* What the parser found, in the terms the rewrite needs. */
struct packet {
	struct cfr_tc_key key;
	__u32 l4_off;   /* from the start of the frame */
	__u32 csum_off; /* the transport checksum */
	__u32 ts_off;   /* the timestamp option's TSval (TSecr follows), or 0 */
	__u32 l4_hlen;  /* the transport header's length */
	__u32 port_off; /* ICMP echo: the identifier, which both directions rewrite */
	bool pseudo;    /* the transport checksum covers the addresses */
	__u8 ttl, tcp_flags, tos;
	__u64 csum_flags; /* for bpf_l4_csum_replace */
};

/* Parse the transport header at <l4>; returns a CFR_TC_PASS_* or -1 to take the packet. */
static __always_inline int parse_l4(struct packet *pk, void *l4, void *end)
{
	if (pk->key.proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > end)
			return CFR_TC_PASS_OPTIONS;
		pk->key.sport = udp->source;
		pk->key.dport = udp->dest;
		pk->csum_off = pk->l4_off + 6;
		pk->csum_flags = BPF_F_MARK_MANGLED_0;
		pk->l4_hlen = sizeof(*udp);
		pk->pseudo = true;
		return -1;
	}
	if (pk->key.proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		__u8 *opt = (__u8 *)(tcp + 1);

		if ((void *)(tcp + 1) > end)
			return CFR_TC_PASS_OPTIONS;
		pk->key.sport = tcp->source;
		pk->key.dport = tcp->dest;
		pk->csum_off = pk->l4_off + 16;
		pk->tcp_flags = ((__u8 *)tcp)[13];
		pk->l4_hlen = tcp->doff * 4;
		pk->pseudo = true;
		if (pk->tcp_flags & 0x07) /* FIN, SYN, RST */
			return CFR_TC_PASS_TCP_FLAGS;
		/* The layout of nearly every segment (RFC 7323 App. A); the rest go to the engine.
		 */
		if (tcp->doff >= 8 && (void *)(opt + 12) <= end && opt[0] == 1 && opt[1] == 1 &&
		    opt[2] == 8 && opt[3] == 10)
			pk->ts_off = pk->l4_off + 20 + 4;
		else if (tcp->doff != 5)
			return CFR_TC_PASS_OPTIONS;
		return -1;
	}
	if (pk->key.proto == IPPROTO_ICMP || pk->key.proto == IPPROTO_ICMPV6) {
		__u8 *icmp = l4;
		bool v4 = pk->key.proto == IPPROTO_ICMP;

		if ((void *)(icmp + 8) > end)
			return CFR_TC_PASS_OPTIONS;
		/* Echo requests go out, replies come in; the identifier is the flow's port. */
		if (icmp[0] == (v4 ? 8 : 128))
			pk->key.sport = *(__be16 *)(icmp + 4);
		else if (icmp[0] == (v4 ? 0 : 129))
			pk->key.dport = *(__be16 *)(icmp + 4);
		else
			return 0; /* errors and the rest: cfrd's */
		pk->csum_off = pk->l4_off + 2;
		pk->port_off = pk->l4_off + 4;
		pk->l4_hlen = 8;
		pk->pseudo = !v4; /* ICMPv4's checksum has no pseudo-header */
		return -1;
	}
	return 0; /* not ours to count */
}

static __always_inline int parse(struct __sk_buff *skb, struct packet *pk)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	__builtin_memset(pk, 0, sizeof(*pk));
	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end ||
		    (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP &&
		     ip->protocol != IPPROTO_ICMP))
			return 0;
		if (ip->ihl != 5)
			return CFR_TC_PASS_OPTIONS;
		if (ip->frag_off & bpf_htons(0x3fff))
			return CFR_TC_PASS_OPTIONS; /* a fragment: the engine pairs them up */
		pk->key.family = 4;
		pk->key.proto = ip->protocol;
		__builtin_memcpy(pk->key.saddr, &ip->saddr, 4);
		__builtin_memcpy(pk->key.daddr, &ip->daddr, 4);
		/*
		 * TC ingress runs before the kernel checks the IP header: a
		 * length the frame does not hold goes to the engine, which
		 * drops it with its reason.
		 */
		if (bpf_ntohs(ip->tot_len) < sizeof(*ip) ||
		    bpf_ntohs(ip->tot_len) > skb->len - ETH_LEN)
			return CFR_TC_PASS_OPTIONS;
		pk->ttl = ip->ttl;
		pk->tos = ip->tos;
		pk->l4_off = ETH_LEN + sizeof(*ip);
		return parse_l4(pk, ip + 1, end);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return 0;
		if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP &&
		    ip6->nexthdr != IPPROTO_ICMPV6)
			return 0; /* extension headers too: rare, and the engine's to judge */
		pk->key.family = 6;
		pk->key.proto = ip6->nexthdr;
		__builtin_memcpy(pk->key.saddr, &ip6->saddr, 16);
		__builtin_memcpy(pk->key.daddr, &ip6->daddr, 16);
		if (bpf_ntohs(ip6->payload_len) + sizeof(*ip6) > skb->len - ETH_LEN)
			return CFR_TC_PASS_OPTIONS;
		pk->ttl = ip6->hop_limit;
		pk->l4_off = ETH_LEN + sizeof(*ip6);
		return parse_l4(pk, ip6 + 1, end);
	}
	return 0;
}

/*
 * Route the packet as it will be (<src>, <dst>) as the kernel routes what
 * cfrd writes to its TUN device <via>: the same policy rules and tables.
 */
static __always_inline int route(struct __sk_buff *skb, const struct packet *pk, const __u8 *src,
                                 const __u8 *dst, __be16 sport, __be16 dport, __u32 via,
                                 struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->ifindex = via;
	fib->l4_protocol = pk->key.proto;
	fib->sport = sport;
	fib->dport = dport;
	/*
	 * The route's MTU (PMTU exceptions included) against the largest
	 * packet that will leave: the packet, or one segment of a GSO
	 * super-packet. Too big goes to the kernel, which answers in alias
	 * form through cfrd.
	 */
	fib->tot_len =
	    skb->gso_size ? pk->l4_off - ETH_LEN + pk->l4_hlen + skb->gso_size : skb->len - ETH_LEN;
	if (pk->key.family == 4) {
		fib->family = AF_INET;
		fib->tos = pk->tos;
		__builtin_memcpy(&fib->ipv4_src, src, 4);
		__builtin_memcpy(&fib->ipv4_dst, dst, 4);
	} else {
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, src, 16);
		__builtin_memcpy(fib->ipv6_dst, dst, 16);
	}
	return bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
}

/* An outbound packet must arrive where the route back to its subscriber leaves. */
static __always_inline bool on_its_line(struct __sk_buff *skb, const struct packet *pk,
                                        struct cfr_tc_flow *f)
{
	struct bpf_fib_lookup fib;
	int rc;

	if (f->line_ifindex)
		return f->line_ifindex == skb->ingress_ifindex;
	/* Where the route back leaves, whatever the size of this packet on it. */
	rc = route(skb, pk, pk->key.daddr, pk->key.saddr, pk->key.dport, pk->key.sport,
	           f->via_ifindex, &fib);
	if ((rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_FRAG_NEEDED) ||
	    fib.ifindex != skb->ingress_ifindex)
		return false;
	f->line_ifindex = fib.ifindex;
	return true;
}

/* The TTL the TUN path leaves with: one hop into TUN, the cap, one hop out of it. */
static __always_inline __u8 ttl_after(const struct packet *pk, const struct cfr_tc_flow *f,
                                      const struct cfr_tc_config *cfg)
{
	__u8 ttl = pk->ttl - 1;

	if (f->dir == CFR_TC_OUT && cfg->ttl_cap && ttl > cfg->ttl_cap)
		ttl = cfg->ttl_cap;
	return ttl - 1;
}

/* One's complement sums (RFC 1071), on words as they lie in the packet. */
static __always_inline __u64 sum_change16(__u64 sum, __u16 old, __u16 new)
{
	return sum + (__u16)~old + new;
}

static __always_inline __u64 sum_change32(__u64 sum, __u32 old, __u32 new)
{
	return sum_change16(sum_change16(sum, (__u16)old, (__u16) new), (__u16)(old >> 16),
	                    (__u16)(new >> 16));
}

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)((sum & 0xffff) + (sum >> 16));
}

/* The new TSval (out) or TSecr (in). */
static __always_inline __be32 new_ts(const struct cfr_tc_flow *f, __be32 old)
{
	return bpf_htonl(f->dir == CFR_TC_OUT ? tsval_out(f, bpf_ntohl(old))
	                                      : tsecr_in(f, bpf_ntohl(old)));
}

/*
 * Rewrite the packet as the engine would. The transport checksum goes
 * through the kernel's helper, the one place that knows whether it is
 * partial (then only the pseudo-header's addresses count, the rest is
 * summed later, with the data) or complete: once for the addresses, once
 * for everything else. The IPv4 header checksum is always complete and is
 * updated here. Then every field is written in place.
 */
static __always_inline int rewrite(struct __sk_buff *skb, const struct packet *pk,
                                   const struct cfr_tc_flow *f, const struct cfr_tc_config *cfg,
                                   const struct bpf_fib_lookup *fib)
{
	bool out = f->dir == CFR_TC_OUT, v4 = pk->key.family == 4;
	__u32 alen = v4 ? 4 : 16;
	const __u8 *old_addr = out ? pk->key.saddr : pk->key.daddr;
	__be16 old_port = out ? pk->key.sport : pk->key.dport;
	__u32 port_off = pk->port_off ? pk->port_off : pk->l4_off + (out ? 0 : 2);
	__u32 addr_off = ETH_LEN + (v4 ? (out ? 12 : 16) : (out ? 8 : 24));
	__u32 ts_off = 0;
	__be32 ts_old = 0, ts = 0;
	__s64 d_addr = bpf_csum_diff((__be32 *)old_addr, alen, (__be32 *)f->addr, alen, 0);
	__u64 d_data = sum_change16(0, old_port, f->port);
	__u8 ttl = ttl_after(pk, f, cfg);
	void *data, *end;
	__u8 *l3;

	/* TSval on the way out, TSecr on the way back (RFC 7323 §3.2: valid with ACK only). */
	if ((f->flags & CFR_TC_TS) && pk->ts_off && (out || (pk->tcp_flags & 0x10))) {
		ts_off = pk->ts_off + (out ? 0 : 4);
		if (bpf_skb_load_bytes(skb, ts_off, &ts_old, 4) < 0)
			return -1;
		ts = new_ts(f, ts_old);
		d_data = sum_change32(d_data, ts_old, ts);
	}
	if (pk->pseudo && bpf_l4_csum_replace(skb, pk->csum_off, 0, d_addr,
	                                      BPF_F_PSEUDO_HDR | pk->csum_flags) < 0)
		return -1;
	if (bpf_l4_csum_replace(skb, pk->csum_off, 0, fold(d_data), pk->csum_flags) < 0)
		return -1;
	/*
	 * The fields whose offset depends on the direction go through the
	 * helper: a packet pointer plus a register is refused to a loader
	 * without CAP_PERFMON (cfrd.service grants none), and the compiler
	 * turns two constant offsets into one chosen at run time.
	 */
	if (bpf_skb_store_bytes(skb, addr_off, f->addr, alen, 0) < 0 ||
	    bpf_skb_store_bytes(skb, port_off, &f->port, 2, 0) < 0 ||
	    (ts_off && bpf_skb_store_bytes(skb, ts_off, &ts, 4, 0) < 0))
		return -1;

	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	l3 = (__u8 *)data + ETH_LEN;
	if (v4) {
		struct iphdr *ip = (struct iphdr *)l3;
		__u16 old_word, new_word;
		__u64 sum;

		if ((void *)(ip + 1) > end)
			return -1;
		old_word = *(__u16 *)&ip->ttl;
		new_word = old_word;
		sum = (__u16)~ip->check + (__u64)(__u32)d_addr;
		*(__u8 *)&new_word = ttl;
		sum = sum_change16(sum, old_word, new_word);
		*(__u16 *)&ip->ttl = new_word;
		if (out && cfg->ip_id) {
			__u16 id = (__u16)fresh_ip_id(cfg);

			sum = sum_change16(sum, ip->id, id);
			ip->id = id;
		}
		ip->check = (__u16)~fold(sum);
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)l3;

		if ((void *)(ip6 + 1) > end)
			return -1;
		ip6->hop_limit = ttl;
		if (out && (f->flags & CFR_TC_LABEL)) {
			ip6->flow_lbl[0] =
			    (ip6->flow_lbl[0] & 0xf0) | ((f->flow_label >> 16) & 0x0f);
			ip6->flow_lbl[1] = (__u8)(f->flow_label >> 8);
			ip6->flow_lbl[2] = (__u8)f->flow_label;
		}
	}
	__builtin_memcpy(data, fib->dmac, ETH_ALEN);
	__builtin_memcpy((__u8 *)data + ETH_ALEN, fib->smac, ETH_ALEN);
	return 0;
}

SEC("tc")
int cfr_tc_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0, len = skb->len;
	struct cfr_tc_config *cfg = bpf_map_lookup_elem(&config, &zero);
	struct bpf_fib_lookup fib;
	struct cfr_tc_flow *f;
	struct packet pk;
	const __u8 *src, *dst;
	__be16 sport, dport;
	__u64 now;
	bool out;
	int why;

	if (!cfg)
		return TC_ACT_OK;
	why = parse(skb, &pk);
	if (why >= 0)
		return why > 0 ? pass((__u32)why) : TC_ACT_OK;
	f = bpf_map_lookup_elem(&flows, &pk.key);
	if (!f)
		return TC_ACT_OK;
	if (pk.ttl <= 2)
		return pass(CFR_TC_PASS_TTL);
	out = f->dir == CFR_TC_OUT;
	if (out && !on_its_line(skb, &pk, f))
		return pass(CFR_TC_PASS_LINE);
	src = out ? f->addr : pk.key.saddr;
	dst = out ? pk.key.daddr : f->addr;
	sport = out ? f->port : pk.key.sport;
	dport = out ? pk.key.dport : f->port;
	if (route(skb, &pk, src, dst, sport, dport, f->via_ifindex, &fib) !=
	    BPF_FIB_LKUP_RET_SUCCESS)
		return pass(CFR_TC_PASS_ROUTE);

	/* Checksums first: past them, a failure could leave the packet half rewritten. */
	if (rewrite(skb, &pk, f, cfg, &fib) < 0) {
		count(CFR_TC_DROPPED, 1);
		return TC_ACT_SHOT;
	}

	/*
	 * The engine's clock has seconds: a store a quarter second is enough,
	 * and spares the cache line that CPUs carrying both directions share.
	 */
	now = bpf_ktime_get_ns();
	if (now - f->last_seen_ns > 250000000)
		f->last_seen_ns = now;
	count(out ? CFR_TC_FWD_OUT : CFR_TC_FWD_IN, 1);
	count(out ? CFR_TC_BYTES_OUT : CFR_TC_BYTES_IN, len - ETH_LEN);
	return bpf_redirect(fib.ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
