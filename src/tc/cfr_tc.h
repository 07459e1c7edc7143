/*
 * What cfrd's TC fast path (cfr_tc.bpf.c) and its loader (src/cfrd/
 * fastpath.c) agree on: the flow map's key and value, the settings and the
 * counters. Included by both the BPF object and cfrd, so only fixed-size
 * kernel types here.
 */
#ifndef CFR_TC_H
#define CFR_TC_H

#include <linux/types.h>

/*
 * A packet as it arrives, in the flow map's terms: an outbound packet of a
 * flow has (subscriber, its port, remote, its port), an inbound one
 * (remote, its port, alias, its port). Ports in network byte order.
 */
struct cfr_tc_key {
	__u8 family; /* 4 or 6 */
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__be16 sport, dport;
	__u16 zero;
	__u8 saddr[16], daddr[16]; /* IPv4 in the first 4 bytes, the rest zero */
};

enum cfr_tc_dir { CFR_TC_OUT = 1, CFR_TC_IN = 2 };

enum {
	CFR_TC_TS = 1 << 0,    /* rewrite TCP timestamps with ts_offset/base/rate */
	CFR_TC_LABEL = 1 << 1, /* IPv6: leave with flow_label */
};

/* What the packet becomes, and what the fast path saw of it. */
struct cfr_tc_flow {
	__u8 addr[16];                     /* the new source (out) or destination (in) address */
	__be16 port;                       /* and port */
	__u8 dir;                          /* enum cfr_tc_dir */
	__u8 flags;                        /* CFR_TC_* */
	__u32 ts_offset, ts_base, ts_rate; /* the engine's timestamp scrub (scrub.c) */
	__u32 flow_label;
	/* Route as if the packet came out of this device: the TUN cfrd writes the flow to. */
	__u32 via_ifindex;
	/* out: the device the subscriber's packets arrive on, learnt from the route back */
	__u32 line_ifindex;
	__u32 flow_id; /* the engine's, for cfrd */
	/* CLOCK_MONOTONIC, as cfrd's and the engine's clock; kept to a quarter second */
	__u64 last_seen_ns;
};

/*
 * The maps' layout: a new cfrd takes over the running one's maps (cfrd(8),
 * RESTART) only if they carry its own number. Change it with any struct here.
 */
#define CFR_TC_LAYOUT 2

/* The settings, entry 0 of the config map. */
struct cfr_tc_config {
	__u8 ttl_cap; /* outbound TTL / hop limit at most this (0: off) */
	__u8 ip_id;   /* give each outbound IPv4 packet a fresh identification */
	__u8 zero[2];
	__u32 layout;    /* CFR_TC_LAYOUT */
	__u64 id_key[2]; /* SipHash key for the identification, replaced every epoch */
};

/*
 * Counters, per CPU, one entry each (an index the verifier can bound for a
 * loader without CAP_PERFMON): packets carried, and packets left to cfrd
 * by why; after them, the identification PRF's counter.
 */
enum cfr_tc_stat {
	CFR_TC_FWD_OUT,
	CFR_TC_FWD_IN,
	CFR_TC_BYTES_OUT,
	CFR_TC_BYTES_IN,
	CFR_TC_PASS_TCP_FLAGS, /* SYN, FIN or RST: the engine tracks the connection */
	CFR_TC_PASS_TTL,       /* would expire at the gateway: cfrd answers that */
	CFR_TC_PASS_OPTIONS,   /* IP options, extension headers, odd TCP options, bad lengths */
	CFR_TC_PASS_LINE,      /* arrived on another device than the subscriber's line */
	CFR_TC_PASS_ROUTE,     /* no route, unresolved neighbour, too big for the link */
	CFR_TC_DROPPED,        /* a rewrite the kernel refused half way: never sent */
	CFR_TC_STAT__COUNT
};

#endif
