/*
 * Internal types of the engine, shared by its modules. Nothing here is part
 * of the public API (include/cfr/cfr.h).
 */
#ifndef CFR_ENGINE_H
#define CFR_ENGINE_H

#include <assert.h>
#include <stdint.h>

#include "cfr/cfr.h"
#include "cfr/internal/compiler.h"
#include "cfr/internal/csum.h"
#include "cfr/internal/siphash.h"
#include "parse.h"

/* An IPv4 address lives in the first 4 bytes, the rest stays zero. */
union cfr_addr {
	uint8_t b[16];
	uint32_t w[4];
};

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
	uint32_t ts_base;   /* the subscriber's first TSval of the flow (scrub.c) */
	uint32_t guard;     /* the subscriber's entry in the guard table */
	uint32_t ts_rate;   /* TSval ticks per subscriber tick: 1 + ts_rate / 2^24 (scrub.c) */
	uint8_t family, proto, tcp_state, tclass;
	uint16_t sub_port, alias_port, remote_port; /* numeric values */
	uint8_t in_use;
	uint8_t pool_slot; /* the pool prefix its alias came from (eng->slots) */
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

/* Which datagram a fragment belongs to, and the flow it was translated with. */
struct cfr_frag {
	union cfr_addr src, dst;
	uint32_t id;
	uint32_t flow;
	uint32_t guard; /* the subscriber whose share it takes */
	uint32_t expires_s;
	uint32_t got, total; /* bytes of the datagram seen, its length once known (0: not yet) */
	uint8_t family, nh, dir, in_use;
	uint16_t ip_id;   /* scrubbed IPv4 identification shared by all fragments */
	uint8_t l4_proto; /* the flow's transport protocol */
	uint8_t pad_;
};

#define CFR_RNG_BUF 512

/* Records sealed early, waiting for the daemon: beyond this, newcomers wait too (acct.c). */
#define CFR_EARLY_QUEUE 256

/*
 * A subscriber's state in one epoch: its secret seed, the allocation
 * counter, and the timeline of when the counter moved (see acct.c).
 */
struct cfr_sub_state {
	uint8_t key[16];
	uint8_t family, in_use;
	uint16_t tl_len;
	uint32_t next; /* bucket chain */
	uint32_t counter;
	uint32_t prev_end;                       /* end second of the last flushed entry */
	uint32_t pend_from, pend_to, pend_count; /* the entry being built */
	uint8_t seed[CFR_SEED_BYTES];
	uint8_t timeline[CFR_TIMELINE_BYTES];
	/* The write-ahead journal (acct.c): what the daemon has not been handed yet. */
	uint32_t slot;           /* this record's number in the epoch, from 1 */
	uint32_t jr_gen;         /* journal generation of its last snapshot; 0: none yet */
	uint32_t jr_counter;     /* counter when last handed out */
	uint32_t jr_from, jr_to; /* seconds of the draws since then */
	uint32_t dirty_pos;      /* 1 + its place in the table's dirty list; 0: not on it */
};

/* One subscriber's use of the engine, for its limits (guard.c). */
struct cfr_guard_entry {
	uint8_t key[16];
	uint8_t family;
	uint8_t idle_queued; /* on the idle queue (guard.c) */
	uint8_t pad_[2];
	uint32_t next;      /* bucket chain */
	uint32_t idle_next; /* idle queue */
	uint32_t flows[CFR_PROTO__COUNT];
	uint32_t half_open;
	uint32_t frags;        /* its datagrams in the fragment table */
	uint64_t tokens_milli; /* new-flow token bucket, in thousandths */
	uint64_t refill_ms;
};

struct cfr_sub_table {
	struct cfr_sub_state *s; /* max_subscribers + 1; index 0 means none */
	uint32_t *buckets;
	uint32_t *used; /* indexes in use, in order of arrival */
	uint32_t n_used, drained;
	uint32_t cursor; /* where the search for an idle subscriber goes on (acct.c) */
	uint64_t epoch, start_ms, end_ms;
	uint32_t *dirty; /* subscribers whose counter moved since the journal last saw them */
	uint32_t n_dirty;
	uint32_t next_slot;
	uint32_t reseed; /* journal restart: position in used[] of the next snapshot */
};

/*
 * A pool prefix in use (reconfigure.c): active, or removed by a reload and
 * draining, its flows living out their lifetime. Flows name their slot, so
 * nothing depends on a prefix's position in the configuration, which a
 * reload may change.
 */
#define CFR_POOL_SLOTS 64 /* 16 active and 16 draining prefixes per family */
#define CFR_SLOT_NONE  0xff
enum { CFR_SLOT_FREE = 0, CFR_SLOT_ACTIVE, CFR_SLOT_DRAINING };

struct cfr_pool_slot {
	struct cfr_prefix prefix;
	uint8_t state;
	uint32_t flows; /* live flows with an alias in it */
	uint32_t *subs; /* anonymity set per alias: one per IPv4 address, one for IPv6 */
	uint32_t n_subs;
};

/* How many flows of one subscriber sit on one alias (the anonymity-set count). */
struct cfr_anon_pair {
	uint32_t guard; /* the subscriber, by its guard entry (alive while it has flows) */
	uint32_t alias_id;
	uint32_t flows;
	uint32_t next; /* bucket chain; free list when unused */
};

struct cfr_engine {
	struct cfr_engine_config cfg;
	struct cfr_sipkey index_key; /* SipHash-1-3 key of both flow indexes */
	uint8_t hash_key[16];     /* SipHash-2-4 key: flow labels, fragment and subscriber tables */
	struct cfr_flow *flows;   /* max_flows + 1 records */
	struct cfr_flow6 *flows6; /* parallel to flows, used by IPv6 flows only */
	uint32_t *in_buckets, *out_buckets;
	uint32_t bucket_mask;
	uint32_t free_head;  /* recycled records */
	uint32_t next_fresh; /* records never used yet start here */
	struct cfr_lru lru[CFR_TIMEOUT__COUNT];
	struct cfr_frag *frags;
	uint32_t frag_mask;
	/* Pool prefixes in use, and those of each family inbound packets may be for. */
	struct cfr_pool_slot slots[CFR_POOL_SLOTS];
	struct cfr_prefix live[CFR_FAMILY__COUNT][CFR_POOL_SLOTS];
	unsigned n_live[CFR_FAMILY__COUNT];
	uint32_t now_s;
	uint32_t epoch_start_s;
	uint64_t epoch_start_ms;
	struct cfr_sub_table subs[2];   /* current epoch, and the ended one being drained */
	struct cfr_epoch_record *early; /* sealed before their epoch ended, to drain (acct.c) */
	uint32_t early_head, early_count;
	uint32_t jr_gen; /* journal generation: a subscriber not snapshotted in it gets one */
	uint8_t cur_subs;
	struct cfr_guard_entry *guards; /* max_subscribers + 1 */
	uint32_t *guard_buckets;
	uint32_t guard_mask, guard_fresh;
	uint32_t guard_idle_head, guard_idle_tail; /* entries without flows, oldest first */
	bool ingress_bound; /* some prefix is bound to a line, or strict mode */
	uint32_t sub_mask;
	uint64_t now_ms;
	/* Anonymity-set accounting: distinct subscribers per alias (slots[].subs). */
	struct cfr_anon_pair *pairs;
	uint32_t *pair_buckets;
	uint32_t pair_mask, pair_free, pair_fresh;
	uint32_t rng_used;
	uint8_t rng[CFR_RNG_BUF]; /* CSPRNG output not handed out yet */
	struct cfr_stats stats;
	size_t memory;
};

/* Address <which> (CFR_FLOW_*) of flow <f>, 4 or 16 bytes by its family. */
static inline uint8_t *cfr_flow_addr(const struct cfr_engine *eng, struct cfr_flow *f, int which)
{
	if (f->family == CFR_FAMILY_V4)
		return f->v4[which];
	return eng->flows6[f - eng->flows].addr[which];
}

/*
 * The same by index, for the packet path: with records of two sizes, going
 * from a pointer back to the index costs a division on every call.
 */
static inline uint8_t *cfr_flow_addr_at(const struct cfr_engine *eng, uint32_t idx, int which)
{
	if (eng->flows[idx].family == CFR_FAMILY_V4)
		return eng->flows[idx].v4[which];
	return eng->flows6[idx].addr[which];
}

static inline const uint8_t *cfr_flow_caddr(const struct cfr_engine *eng, const struct cfr_flow *f,
                                            int which)
{
	if (f->family == CFR_FAMILY_V4)
		return f->v4[which];
	return eng->flows6[f - eng->flows].addr[which];
}

/*
 * cfr_prefix_contains(), inline for the packet path (two or three prefix
 * checks per packet): whole 32-bit words compare equal, then the last
 * partial word under its mask.
 */
static inline bool cfr_prefix_has(const struct cfr_prefix *p, int family, const uint8_t *addr)
{
	unsigned words = p->len / 32, rest = p->len % 32, i;

	if (p->family != family)
		return false;
	for (i = 0; i < words; i++)
		if (get32(p->addr + 4 * i) != get32(addr + 4 * i))
			return false;
	return rest == 0 ||
	       ((get32(p->addr + 4 * i) ^ get32(addr + 4 * i)) & (0xffffffffu << (32 - rest))) == 0;
}

/* rng.c: libsodium CSPRNG, buffered so a new flow costs no syscall. */
void cfr_rng_bytes(struct cfr_engine *eng, void *out, size_t n);
uint64_t cfr_rng_below(struct cfr_engine *eng, uint64_t n);

/* flow.c */
uint32_t cfr_flow_find_inside(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                              const uint8_t *sub, uint16_t sub_port, const uint8_t *remote,
                              uint16_t remote_port, const uint32_t *bucket);
uint32_t cfr_flow_find_outside(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                               const uint8_t *alias, uint16_t alias_port, const uint8_t *remote,
                               uint16_t remote_port, const uint32_t *bucket);
uint32_t cfr_flow_create(struct cfr_engine *eng, uint8_t family, uint8_t proto, const uint8_t *sub,
                         uint16_t sub_port, const uint8_t *remote, uint16_t remote_port,
                         const union cfr_addr *alias, uint16_t alias_port, uint32_t guard);
void cfr_flow_touch(struct cfr_engine *eng, uint32_t idx, uint8_t tclass);
void cfr_flow_expire(struct cfr_engine *eng);
bool cfr_flow_bucket_of(const struct cfr_engine *eng, const uint8_t *buf, struct cfr_parsed *p,
                        uint8_t dir, uint32_t **table, uint32_t *bucket);

uint32_t cfr_flow_label(const struct cfr_engine *eng, const struct cfr_flow *f);
uint32_t cfr_flow_label_of(const struct cfr_engine *eng, const struct cfr_flow *f);

/* alloc.c */
enum cfr_drop cfr_alloc_alias(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                              const uint8_t *sub, const uint8_t *remote, uint16_t remote_port,
                              union cfr_addr *alias, uint16_t *alias_port);

/* policy.c */
void cfr_subscriber_key(const struct cfr_engine *eng, uint8_t family, const uint8_t *addr,
                        uint8_t key[16]);

/* acct.c */
int cfr_acct_init(struct cfr_engine *eng);
void cfr_acct_free(struct cfr_engine *eng);
struct cfr_sub_state *cfr_acct_subscriber(struct cfr_engine *eng, uint8_t family,
                                          const uint8_t *addr);
void cfr_acct_drew(struct cfr_engine *eng, struct cfr_sub_state *s);
void cfr_acct_forget_new(struct cfr_engine *eng, struct cfr_sub_state *s);
void cfr_epoch_new(struct cfr_engine *eng, uint64_t now_ms);
void cfr_epoch_check(struct cfr_engine *eng, uint64_t now_ms);

/* anon.c */
int cfr_anon_init(struct cfr_engine *eng);
void cfr_anon_free(struct cfr_engine *eng);
uint32_t cfr_anon_add(struct cfr_engine *eng, struct cfr_flow *f);
void cfr_anon_remove(struct cfr_engine *eng, const struct cfr_flow *f);
void cfr_anon_placed(struct cfr_engine *eng, uint8_t family, uint32_t set);

/* guard.c */
int cfr_guard_init(struct cfr_engine *eng);
void cfr_guard_free(struct cfr_engine *eng);
enum cfr_drop cfr_guard_packet(struct cfr_engine *eng, const struct cfr_pkt *pkt,
                               const struct cfr_parsed *p);
enum cfr_drop cfr_guard_admit(struct cfr_engine *eng, uint8_t family, const uint8_t *sub,
                              uint8_t proto_idx, uint32_t *guard);
void cfr_guard_flow_added(struct cfr_engine *eng, const struct cfr_flow *f, uint8_t proto_idx);
void cfr_guard_flow_removed(struct cfr_engine *eng, const struct cfr_flow *f, uint8_t proto_idx);
enum cfr_drop cfr_guard_error_sender(const struct cfr_engine *eng, const struct cfr_pkt *pkt,
                                     const struct cfr_parsed *p, const uint8_t *sub);
bool cfr_guard_has_flows(struct cfr_engine *eng, uint8_t family, const uint8_t key[16]);
void cfr_guard_frags(struct cfr_engine *eng, uint32_t guard, int delta);
void cfr_guard_release(struct cfr_engine *eng, uint32_t guard);
void cfr_guard_half_open(struct cfr_engine *eng, const struct cfr_flow *f, int delta);
uint8_t cfr_proto_index(uint8_t proto);

/* engine.c */
bool cfr_config_valid(const struct cfr_engine_config *cfg);

/* reconfigure.c */
int cfr_pools_init(struct cfr_engine *eng);
void cfr_pools_free(struct cfr_engine *eng);
uint8_t cfr_pool_slot_of(const struct cfr_engine *eng, uint8_t family, const uint8_t *alias);
void cfr_pool_slot_drained(struct cfr_engine *eng, uint8_t slot);

/* Is <addr> in a pool prefix of <family> in use, active or draining? */
static inline bool cfr_in_live_pool(const struct cfr_engine *eng, uint8_t family,
                                    const uint8_t *addr)
{
	unsigned i;

	for (i = 0; i < eng->n_live[family]; i++)
		if (cfr_prefix_has(&eng->live[family][i], family, addr))
			return true;
	return false;
}

/* scrub.c */
void cfr_scrub_out(struct cfr_engine *eng, uint8_t *buf, const struct cfr_parsed *p,
                   struct cfr_flow *f, const struct cfr_frag *frag);
void cfr_scrub_in(struct cfr_engine *eng, uint8_t *buf, const struct cfr_parsed *p,
                  const struct cfr_flow *f);

/* frag.c */
enum cfr_drop cfr_frag_remember(struct cfr_engine *eng, uint8_t dir, const uint8_t *buf,
                                const struct cfr_parsed *p, uint32_t flow, struct cfr_frag **out);
struct cfr_frag *cfr_frag_find(struct cfr_engine *eng, uint8_t dir, const uint8_t *buf,
                               const struct cfr_parsed *p);
void cfr_frag_arrived(struct cfr_engine *eng, struct cfr_frag *frag, const struct cfr_parsed *p);
void cfr_frag_sweep(struct cfr_engine *eng);

/* translate.c */
enum cfr_drop cfr_translate(struct cfr_engine *eng, struct cfr_pkt *pkt,
                            const struct cfr_parsed *p);

#endif
