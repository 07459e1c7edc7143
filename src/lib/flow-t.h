/*
 * Types of the flow table (flow.c): the records, their two keyed indexes
 * and the per-class LRU lists. Types only; functions are in flow.h.
 */
#ifndef CFR_FLOW_T_H
#define CFR_FLOW_T_H

#include <assert.h>
#include <stdint.h>

#include "cfr/cfr.h"
#include "cfr/internal/siphash.h"

/* TCP progress bits (struct cfr_flow.tcp_state), enough to pick a timeout class. */
enum {
	CFR_TCP_SYN_OUT = 1 << 0,
	CFR_TCP_SYNACK_IN = 1 << 1,
	CFR_TCP_FIN_OUT = 1 << 2,
	CFR_TCP_FIN_IN = 1 << 3,
	CFR_TCP_RST = 1 << 4,
	CFR_TCP_TS_BASE = 1 << 5, /* ts_base holds the subscriber's first TSval */
};

/* A flow's TSval rate is (TS_RATE_ONE + ts_rate) / TS_RATE_ONE (scrub.c). */
enum {
	TS_RATE_SHIFT = 24,
	TS_RATE_ONE = 1 << TS_RATE_SHIFT,
};

/*
 * cfr_flow.in_use: nonzero for a record in use, and what kind of record
 * (mapping.c). A per-flow flow is CFR_FLOW_USED alone. An endpoint-
 * independent or address-dependent mapping is one CFR_FLOW_MAPPING record
 * (its remote the zero address, or the remote address for an
 * address-dependent one; remote port 0), and a CFR_FLOW_PEER record per
 * remote it sent to when its filtering needs one (same alias and port; a
 * UDP peer's <mapping> names the mapping, a TCP peer's field is its first
 * TSval and its mapping is looked up). The filtering sits in two bits.
 */
enum {
	CFR_FLOW_USED = 1 << 0,
	CFR_FLOW_MAPPING = 1 << 1,
	CFR_FLOW_PEER = 1 << 2,
	CFR_FLOW_ADM = 1 << 3,     /* the mapping is address-dependent (mapping or peer) */
	CFR_FLOW_FILTER_SHIFT = 4, /* and 5 */
	/*
	 * A mapping its peers stand for: not a flow of its own in the counters,
	 * the per-subscriber limits or the anonymity sets, which count the peers.
	 */
	CFR_FLOW_SHARED = 1 << 6,
	CFR_FLOW_CLASSED = CFR_FLOW_MAPPING | CFR_FLOW_PEER,
};

/* The three addresses of a flow, in cfr_flow.v4 or cfr_flow6.addr. */
enum { CFR_FLOW_SUB = 0, CFR_FLOW_ALIAS = 1, CFR_FLOW_REMOTE = 2 };

/*
 * One flow: the inside tuple (sub:sub_port -> remote:remote_port) and its
 * outside tuple (alias:alias_port -> remote:remote_port). Flows are named by
 * their index in the flow array; index 0 means "none". An IPv4 flow lives
 * entirely in these 60 bytes; an IPv6 flow keeps its addresses in the
 * parallel cfr_flow6 array, whose pages an IPv4-only load never touches.
 */
struct cfr_flow {
	uint32_t in_next;  /* inside index chain; free list when unused */
	uint32_t out_next; /* outside index chain */
	uint32_t lru_prev, lru_next;
	uint32_t last_seen_s;
	uint32_t ts_offset; /* added to our TSval, removed from the remote's TSecr */
	union {
		uint32_t ts_base; /* TCP: the subscriber's first TSval of the flow (scrub.c) */
		uint32_t mapping; /* a UDP peer record: its mapping's record (mapping.c) */
		uint32_t peers;   /* a UDP mapping record: its peer records, which keep it */
	};
	uint32_t guard;   /* the subscriber's entry in the guard table */
	uint32_t ts_rate; /* TSval ticks per subscriber tick: 1 + ts_rate / 2^24 (scrub.c) */
	uint8_t family, proto, tcp_state, tclass;
	uint16_t sub_port, alias_port, remote_port; /* numeric values */
	uint8_t in_use;                             /* CFR_FLOW_* bits, 0: free */
	uint8_t pool_slot; /* the pool prefix its alias came from (eng->pools.slots) */
	/*
	 * IPv4 addresses, by CFR_FLOW_*. An IPv6 flow keeps its addresses in
	 * cfr_flow6 and its flow label here instead (cfr_flow_label_of()), so
	 * that its cfr_flow6 entry is 48 bytes and straddles fewer cache lines.
	 */
	uint8_t v4[3][4];
};
static_assert(sizeof(struct cfr_flow) == 60, "flow record layout changed: update docs/engine.md");

struct cfr_flow6 {
	uint8_t addr[3][16]; /* by CFR_FLOW_* */
};
static_assert(sizeof(struct cfr_flow6) == 48, "IPv6 flow layout changed: update docs/engine.md");

struct cfr_lru {
	uint32_t head, tail;
};

/* The flow table: records named by index (0: none), two indexes, LRU lists. */
struct cfr_flow_table {
	struct cfr_sipkey index_key; /* SipHash-1-3 key of both flow indexes */
	struct cfr_flow *flows;      /* max_flows + 1 records */
	struct cfr_flow6 *flows6;    /* parallel to flows, used by IPv6 flows only */
	uint32_t *in_buckets, *out_buckets;
	uint32_t bucket_mask;
	uint32_t free_head;  /* recycled records */
	uint32_t next_fresh; /* records never used yet start here */
	struct cfr_lru lru[CFR_TIMEOUT__COUNT];
};

#endif
