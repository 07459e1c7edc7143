/*
 * The flow table: one record per flow, two keyed hash indexes over it (the
 * inside tuple and the outside tuple), and one LRU list per timeout class.
 *
 * Every flow of a class shares one idle timeout, so appending a flow to its
 * class list when it sees traffic keeps each list sorted by last use and
 * expiry only ever looks at list heads: O(1) per expired flow, the trick
 * VPP's NAT uses. The indexes hash with SipHash-1-3 under a random key per
 * engine because subscribers choose their ports and could otherwise aim
 * every flow at one bucket.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "anon.h"
#include "cfr/internal/compiler.h"
#include "cfr/internal/siphash.h"
#include "flow.h"
#include "guard.h"
#include "mapping.h"
#include "offload.h"
#include "parse.h"
#include "pool.h"
#include "rng.h"

enum { SIDE_INSIDE = 1, SIDE_OUTSIDE = 2, SIDE_LABEL = 3 };

/*
 * Ask for transparent huge pages on the flow arrays and the indexes: with a
 * large table every lookup lands on a random page, and a TLB miss per array
 * costs more than the cache miss itself (about 12% per IPv6 packet, 7% per
 * IPv4 packet at one million flows). Memory still becomes resident only as
 * it is touched, in 2 MiB steps: records are handed out from the start of
 * their array, so a partly filled table holds at most one partly used huge
 * page per flow array. The indexes are touched at random and become wholly
 * resident after a few thousand flows with either page size (4 bytes per
 * bucket). Only the aligned middle of each allocation is advised; where
 * THP is off the call does nothing, and its failure changes nothing.
 */
#define HUGE_ALIGN ((size_t)2 << 20)

static void want_huge_pages(void *p, size_t len)
{
	uintptr_t start = ((uintptr_t)p + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1);
	uintptr_t end = ((uintptr_t)p + len) & ~(uintptr_t)(HUGE_ALIGN - 1);

	if (p && end > start)
		(void)madvise((void *)start, end - start, MADV_HUGEPAGE);
}

/*
 * The flow table pairs every subscriber with its aliases and remotes: a
 * core dump must not carry it. Only whole pages inside the allocation are
 * advised; the daemon also makes itself undumpable, this holds for any
 * other program linking the engine.
 */
static void keep_out_of_dumps(void *p, size_t len)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1);
	uintptr_t end = ((uintptr_t)p + len) & ~(page - 1);

	if (p && end > start)
		(void)madvise((void *)start, end - start, MADV_DONTDUMP);
}

int cfr_flow_init(struct cfr_engine *eng)
{
	size_t records = (size_t)eng->cfg.max_flows + 1;
	uint32_t buckets = 1;
	struct cfr_flow_table *t = &eng->flow;

	while (buckets < eng->cfg.max_flows)
		buckets <<= 1;
	t->bucket_mask = buckets - 1;
	/* calloc keeps untouched records as zero pages: memory is committed as flows come. */
	t->flows = calloc(records, sizeof(*t->flows));
	t->flows6 = calloc(records, sizeof(*t->flows6));
	t->in_buckets = calloc(buckets, sizeof(uint32_t));
	t->out_buckets = calloc(buckets, sizeof(uint32_t));
	if (!t->flows || !t->flows6 || !t->in_buckets || !t->out_buckets)
		return -ENOMEM;
	want_huge_pages(t->flows, records * sizeof(*t->flows));
	want_huge_pages(t->flows6, records * sizeof(*t->flows6));
	keep_out_of_dumps(t->flows, records * sizeof(*t->flows));
	keep_out_of_dumps(t->flows6, records * sizeof(*t->flows6));
	want_huge_pages(t->in_buckets, (size_t)buckets * sizeof(uint32_t));
	want_huge_pages(t->out_buckets, (size_t)buckets * sizeof(uint32_t));
	t->next_fresh = 1;
	randombytes_buf(&t->index_key, sizeof(t->index_key));
	eng->memory += records * (sizeof(*t->flows) + sizeof(*t->flows6)) +
	               2 * (size_t)buckets * sizeof(uint32_t);
	return 0;
}

void cfr_flow_free(struct cfr_engine *eng)
{
	free(eng->flow.flows);
	free(eng->flow.flows6);
	free(eng->flow.in_buckets);
	free(eng->flow.out_buckets);
}

/*
 * The tuple, serialised tightly: a keyed hash costs more with every 8
 * bytes, so an IPv4 key is 15 bytes, not a padded 40. The addresses come
 * first, so that they fill whole 8-byte words and the small fields make
 * up the last, partial one. Returns its length.
 */
static size_t flow_key(uint8_t k[32 + 7], uint8_t side, uint8_t family, uint8_t proto,
                       const uint8_t *a, uint16_t pa, const uint8_t *b, uint16_t pb)
{
	size_t alen = family == CFR_FAMILY_V4 ? 4 : 16;
	uint8_t *t = k + 2 * alen;

	if (family == CFR_FAMILY_V4) {
		memcpy(k, a, 4);
		memcpy(k + 4, b, 4);
	} else {
		memcpy(k, a, 16);
		memcpy(k + 16, b, 16);
	}
	t[0] = side;
	t[1] = family;
	t[2] = proto;
	memcpy(t + 3, &pa, 2);
	memcpy(t + 5, &pb, 2);
	return 2 * alen + 7;
}

/* The index hash, SipHash-1-3 (siphash.h): run once per packet, never seen outside. */
static uint32_t flow_hash(const struct cfr_engine *eng, uint8_t side, uint8_t family, uint8_t proto,
                          const uint8_t *a, uint16_t pa, const uint8_t *b, uint16_t pb)
{
	uint8_t k[32 + 7];

	flow_key(k, side, family, proto, a, pa, b, pb);
	/* Two calls with constant lengths: each inlines to straight-line code. */
	if (family == CFR_FAMILY_V4)
		return (uint32_t)cfr_siphash13(&eng->flow.index_key, k, 8 + 7);
	return (uint32_t)cfr_siphash13(&eng->flow.index_key, k, 32 + 7);
}

static uint32_t flow_bucket(const struct cfr_engine *eng, uint8_t side, uint8_t family,
                            uint8_t proto, const uint8_t *a, uint16_t pa, const uint8_t *b,
                            uint16_t pb)
{
	return flow_hash(eng, side, family, proto, a, pa, b, pb) & eng->flow.bucket_mask;
}

/*
 * RFC 6437 asks for labels that are uniformly distributed and stable per
 * flow; a keyed hash of the translated tuple is both, and says nothing of
 * the subscriber's own label (which may be a per-host hash).
 */
uint32_t cfr_flow_label(const struct cfr_engine *eng, const struct cfr_flow *f)
{
	uint8_t k[32 + 7];
	size_t len =
	    flow_key(k, SIDE_LABEL, f->family, f->proto, cfr_flow_caddr(eng, f, CFR_FLOW_ALIAS),
	             f->alias_port, cfr_flow_caddr(eng, f, CFR_FLOW_REMOTE), f->remote_port);
	uint64_t h;

	/* SipHash-2-4 here: the label is sent upstream, once per flow. */
	crypto_shorthash((unsigned char *)&h, k, len, eng->hash_key);
	return (uint32_t)h & 0xfffff;
}

uint32_t cfr_flow_label_of(const struct cfr_engine *eng, const struct cfr_flow *f)
{
	uint32_t label;

	(void)eng;
	/* An IPv6 flow has no IPv4 addresses: its label lives in their place. */
	memcpy(&label, f->v4, sizeof(label));
	return label;
}

/* Fixed-size compares the compiler inlines, instead of a call to memcmp. */
static inline bool addr_eq(const uint8_t *a, const uint8_t *b, size_t alen)
{
	return alen == 4 ? memcmp(a, b, 4) == 0 : memcmp(a, b, 16) == 0;
}

/* Keyed hashing should keep chains short whatever ports subscribers pick: watch it. */
static void note_chain(struct cfr_engine *eng, uint32_t steps)
{
	if (unlikely(steps > eng->stats.longest_chain))
		eng->stats.longest_chain = steps;
}

/*
 * The bucket a query or first-fragment packet will look up, for prefetching:
 * the inside index on the way out, the outside index on the way in. ICMP
 * errors and later fragments look up other keys and are not prefetched.
 */
bool cfr_flow_bucket_of(const struct cfr_engine *eng, const uint8_t *buf, struct cfr_parsed *p,
                        uint8_t dir, uint32_t **table, uint32_t *bucket)
{
	bool icmp = p->proto == CFR_IPPROTO_ICMP || p->proto == CFR_IPPROTO_ICMPV6;

	if (!p->has_l4 || p->icmp_kind == CFR_ICMP_ERROR)
		return false;
	if (dir == CFR_DIR_OUT) {
		const struct cfr_class *c = icmp ? NULL : cfr_class_of(eng, p->proto, p->dport);
		const uint8_t *key = buf + p->dst_off;
		uint16_t port = icmp ? 0 : p->dport;

		/* A class with a mapping looks up its peer or mapping key first (mapping.c). */
		if (c)
			cfr_map_first_key(c, buf + p->dst_off, p->dport, &key, &port);
		*table = eng->flow.in_buckets;
		*bucket = flow_bucket(eng, SIDE_INSIDE, p->family, p->proto, buf + p->src_off,
		                      p->sport, key, port);
	} else {
		*table = eng->flow.out_buckets;
		*bucket = flow_bucket(eng, SIDE_OUTSIDE, p->family, p->proto, buf + p->dst_off,
		                      p->dport, buf + p->src_off, icmp ? 0 : p->sport);
	}
	/* Kept for the translation, which looks up exactly this key. */
	p->bucket = *bucket;
	p->bucket_known = true;
	return true;
}

static struct cfr_flow *flow_at(struct cfr_engine *eng, uint32_t idx)
{
	return &eng->flow.flows[idx];
}

uint32_t cfr_flow_find_inside(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                              const uint8_t *sub, uint16_t sub_port, const uint8_t *remote,
                              uint16_t remote_port, const uint32_t *bucket)
{
	size_t alen = family == CFR_FAMILY_V4 ? 4 : 16;
	uint32_t idx =
	    eng->flow.in_buckets[bucket ? *bucket
	                                : flow_bucket(eng, SIDE_INSIDE, family, proto, sub,
	                                              sub_port, remote, remote_port)];
	uint32_t steps = 0;

	for (; idx != 0; idx = flow_at(eng, idx)->in_next) {
		const struct cfr_flow *f = flow_at(eng, idx);

		note_chain(eng, ++steps);

		if (f->sub_port == sub_port && f->remote_port == remote_port && f->proto == proto &&
		    f->family == family &&
		    addr_eq(cfr_flow_addr_at(eng, idx, CFR_FLOW_SUB), sub, alen) &&
		    addr_eq(cfr_flow_addr_at(eng, idx, CFR_FLOW_REMOTE), remote, alen))
			return idx;
	}
	return 0;
}

uint32_t cfr_flow_find_outside(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                               const uint8_t *alias, uint16_t alias_port, const uint8_t *remote,
                               uint16_t remote_port, const uint32_t *bucket)
{
	size_t alen = family == CFR_FAMILY_V4 ? 4 : 16;
	uint32_t idx =
	    eng->flow.out_buckets[bucket ? *bucket
	                                 : flow_bucket(eng, SIDE_OUTSIDE, family, proto, alias,
	                                               alias_port, remote, remote_port)];
	uint32_t steps = 0;

	for (; idx != 0; idx = flow_at(eng, idx)->out_next) {
		const struct cfr_flow *f = flow_at(eng, idx);

		note_chain(eng, ++steps);

		if (f->alias_port == alias_port && f->remote_port == remote_port &&
		    f->proto == proto && f->family == family &&
		    addr_eq(cfr_flow_addr_at(eng, idx, CFR_FLOW_ALIAS), alias, alen) &&
		    addr_eq(cfr_flow_addr_at(eng, idx, CFR_FLOW_REMOTE), remote, alen))
			return idx;
	}
	return 0;
}

static void lru_unlink(struct cfr_engine *eng, uint32_t idx)
{
	struct cfr_flow *f = flow_at(eng, idx);
	struct cfr_lru *l = &eng->flow.lru[f->tclass];

	if (f->lru_prev)
		flow_at(eng, f->lru_prev)->lru_next = f->lru_next;
	else
		l->head = f->lru_next;
	if (f->lru_next)
		flow_at(eng, f->lru_next)->lru_prev = f->lru_prev;
	else
		l->tail = f->lru_prev;
	f->lru_prev = f->lru_next = 0;
}

static void lru_append(struct cfr_engine *eng, uint32_t idx)
{
	struct cfr_flow *f = flow_at(eng, idx);
	struct cfr_lru *l = &eng->flow.lru[f->tclass];

	f->lru_prev = l->tail;
	f->lru_next = 0;
	if (l->tail)
		flow_at(eng, l->tail)->lru_next = idx;
	else
		l->head = idx;
	l->tail = idx;
}

uint8_t cfr_proto_index(uint8_t proto)
{
	switch (proto) {
	case CFR_IPPROTO_TCP:
		return CFR_PROTO_TCP;
	case CFR_IPPROTO_UDP:
		return CFR_PROTO_UDP;
	default:
		return CFR_PROTO_ICMP;
	}
}

static uint8_t initial_class(uint8_t proto)
{
	switch (proto) {
	case CFR_IPPROTO_TCP:
		return CFR_TIMEOUT_TCP_EMBRYONIC; /* flows open on a SYN only */
	case CFR_IPPROTO_UDP:
		return CFR_TIMEOUT_UDP;
	default:
		return CFR_TIMEOUT_ICMP;
	}
}

uint32_t cfr_flow_create(struct cfr_engine *eng, uint8_t family, uint8_t proto, const uint8_t *sub,
                         uint16_t sub_port, const uint8_t *remote, uint16_t remote_port,
                         const union cfr_addr *alias, uint16_t alias_port, uint32_t guard,
                         uint8_t flags)
{
	size_t alen = family == CFR_FAMILY_V4 ? 4 : 16;
	struct cfr_flow *f;
	uint32_t idx, hin, hout;

	if (eng->flow.free_head) {
		idx = eng->flow.free_head;
		eng->flow.free_head = flow_at(eng, idx)->in_next;
	} else if (eng->flow.next_fresh <= eng->cfg.max_flows) {
		idx = eng->flow.next_fresh++;
	} else {
		return 0;
	}
	f = flow_at(eng, idx);
	memset(f, 0, sizeof(*f));
	f->family = family;
	f->proto = proto;
	f->sub_port = sub_port;
	f->remote_port = remote_port;
	f->alias_port = alias_port;
	f->guard = guard;
	memcpy(cfr_flow_addr(eng, f, CFR_FLOW_SUB), sub, alen);
	memcpy(cfr_flow_addr(eng, f, CFR_FLOW_REMOTE), remote, alen);
	memcpy(cfr_flow_addr(eng, f, CFR_FLOW_ALIAS), alias->b, alen);
	f->in_use = (uint8_t)(CFR_FLOW_USED | flags);
	f->tclass = initial_class(proto);
	f->last_seen_s = eng->now_s;
	/*
	 * Zero means not modulated. A flow keeps what it started with across a
	 * reload: a TSval that jumps mid-connection fails PAWS (RFC 7323 §5.3).
	 */
	while (eng->cfg.scrub.tcp_timestamps && f->ts_offset == 0)
		cfr_rng_bytes(eng, &f->ts_offset, sizeof(f->ts_offset));
	/*
	 * A clock rate of its own, 1 + ts_rate / 2^24 times the subscriber's
	 * (scrub.c): 24 bits, so the rates form no grid coarser than what a
	 * front door can measure of a host's skew (0.06 ppm steps).
	 */
	if (f->ts_offset && eng->cfg.scrub.tcp_timestamp_rate) {
		cfr_rng_bytes(eng, &f->ts_rate, sizeof(f->ts_rate));
		f->ts_rate &= TS_RATE_ONE - 1;
	}
	if (family == CFR_FAMILY_V6) {
		uint32_t label = cfr_flow_label(eng, f);

		memcpy(f->v4, &label, sizeof(label));
	}

	hin = flow_bucket(eng, SIDE_INSIDE, family, proto, sub, sub_port, remote, remote_port);
	hout = flow_bucket(eng, SIDE_OUTSIDE, family, proto, alias->b, alias_port, remote,
	                   remote_port);
	f->in_next = eng->flow.in_buckets[hin];
	eng->flow.in_buckets[hin] = idx;
	f->out_next = eng->flow.out_buckets[hout];
	eng->flow.out_buckets[hout] = idx;
	lru_append(eng, idx);

	if (flags & CFR_FLOW_SHARED) {
		f->guard = 0;
		f->pool_slot = cfr_pool_slot_of(eng, family, alias->b);
		return idx;
	}
	cfr_anon_placed(eng, family, cfr_anon_add(eng, f));
	cfr_guard_flow_added(eng, f, cfr_proto_index(proto));
	eng->stats.flows_created++;
	eng->stats.flows_active[family][cfr_proto_index(proto)]++;
	return idx;
}

void cfr_flow_touch(struct cfr_engine *eng, uint32_t idx, uint8_t tclass)
{
	struct cfr_flow *f = flow_at(eng, idx);

	/*
	 * A list only has to stay sorted by last_seen_s, whole seconds: a flow
	 * already seen this second is in order where it is. Skipping the move
	 * spares touching its neighbours' records, two cache misses per packet
	 * on a large table.
	 */
	if (f->tclass == tclass &&
	    (f->last_seen_s == eng->now_s || eng->flow.lru[tclass].tail == idx)) {
		f->last_seen_s = eng->now_s;
		return;
	}
	f->last_seen_s = eng->now_s;
	lru_unlink(eng, idx);
	f->tclass = tclass;
	lru_append(eng, idx);
}

/* Unlink <idx> from the chain at <bucket> of the inside or the outside index. */
static void chain_remove(struct cfr_engine *eng, uint32_t *bucket, uint32_t idx, bool inside)
{
	uint32_t *link = bucket;

	while (*link != 0 && *link != idx) {
		struct cfr_flow *f = flow_at(eng, *link);

		link = inside ? &f->in_next : &f->out_next;
	}
	if (*link == idx) {
		struct cfr_flow *f = flow_at(eng, idx);

		*link = inside ? f->in_next : f->out_next;
	}
}

/* The mapping record UDP peer <f> keeps alive (mapping.c), or 0. */
static uint32_t kept_mapping(const struct cfr_engine *eng, const struct cfr_flow *f)
{
	if (!(f->in_use & CFR_FLOW_PEER) || f->proto != CFR_IPPROTO_UDP || !f->mapping)
		return 0;
	return eng->flow.flows[f->mapping].in_use & CFR_FLOW_MAPPING ? f->mapping : 0;
}

static void flow_destroy(struct cfr_engine *eng, uint32_t idx)
{
	struct cfr_flow *f = flow_at(eng, idx);
	const uint8_t *remote = cfr_flow_caddr(eng, f, CFR_FLOW_REMOTE);
	uint32_t hin =
	    flow_bucket(eng, SIDE_INSIDE, f->family, f->proto, cfr_flow_caddr(eng, f, CFR_FLOW_SUB),
	                f->sub_port, remote, f->remote_port);
	uint32_t hout = flow_bucket(eng, SIDE_OUTSIDE, f->family, f->proto,
	                            cfr_flow_caddr(eng, f, CFR_FLOW_ALIAS), f->alias_port, remote,
	                            f->remote_port);
	uint32_t m;

	cfr_offload_removed(eng, idx);
	m = kept_mapping(eng, f);
	if (m && flow_at(eng, m)->peers)
		flow_at(eng, m)->peers--; /* a UDP peer no longer keeps its mapping */
	chain_remove(eng, &eng->flow.in_buckets[hin], idx, true);
	chain_remove(eng, &eng->flow.out_buckets[hout], idx, false);
	lru_unlink(eng, idx);
	if (!(f->in_use & CFR_FLOW_SHARED)) {
		cfr_anon_remove(eng, f);
		cfr_guard_flow_removed(eng, f, cfr_proto_index(f->proto));
		eng->stats.flows_active[f->family][cfr_proto_index(f->proto)]--;
		eng->stats.flows_expired++;
	}
	/* Wipe the tuple: an expired mapping should not outlive its flow in memory. */
	if (f->family == CFR_FAMILY_V6)
		memset(&eng->flow.flows6[idx], 0, sizeof(eng->flow.flows6[idx]));
	memset(f, 0, sizeof(*f));
	f->in_next = eng->flow.free_head;
	eng->flow.free_head = idx;
}

/*
 * Record <idx> was last used at <seen>: to the back of its list, which it
 * reaches again no sooner than its timeout.
 */
static void seen_at(struct cfr_engine *eng, uint32_t idx, uint32_t seen)
{
	flow_at(eng, idx)->last_seen_s = seen;
	lru_unlink(eng, idx);
	lru_append(eng, idx);
}

/*
 * A flow an offload carries looks idle to the engine: it keeps the time
 * of the offload's last packet. A carried UDP peer keeps its mapping fresh
 * too, as each of its packets through the engine would (cfr_map_seen());
 * a mapping that comes up before its carried peer waits for it
 * (peers_keep()).
 */
static bool offload_kept(struct cfr_engine *eng, uint32_t idx, uint32_t timeout)
{
	struct cfr_flow *f = flow_at(eng, idx);
	uint32_t seen = cfr_offload_last_seen(eng, idx), m;

	if (seen <= f->last_seen_s || eng->now_s - seen > timeout)
		return false;
	seen_at(eng, idx, seen);
	m = kept_mapping(eng, f);
	if (m && flow_at(eng, m)->last_seen_s < seen)
		seen_at(eng, m, seen);
	return true;
}

/*
 * With an offload, a UDP mapping that still has peers is not judged before
 * them: one may be carried, its packets unseen here. A record's place in
 * its list is only ordered to the second, so a mapping can come up just
 * ahead of the peer that keeps it; it is judged again a second later,
 * after the peers (offload_kept() refreshes it from a carried one). Without
 * an offload every peer packet refreshes the mapping, which is then never
 * older than its peers: they expire together, as before.
 */
static bool peers_keep(struct cfr_engine *eng, uint32_t idx, uint32_t timeout)
{
	const struct cfr_flow *f = flow_at(eng, idx);

	if (!eng->offload.last_seen || !(f->in_use & CFR_FLOW_MAPPING) ||
	    f->proto != CFR_IPPROTO_UDP || f->peers == 0)
		return false;
	seen_at(eng, idx, eng->now_s - timeout);
	return true;
}

void cfr_flow_expire(struct cfr_engine *eng)
{
	unsigned c;

	for (c = 0; c < CFR_TIMEOUT__COUNT; c++) {
		uint32_t timeout = eng->cfg.timeout[c];

		while (eng->flow.lru[c].head != 0) {
			uint32_t idx = eng->flow.lru[c].head;

			/*
			 * The clock has whole seconds: wait one more so that no
			 * flow ever lives less than its timeout.
			 */
			if (eng->now_s - flow_at(eng, idx)->last_seen_s <= timeout)
				break;
			if (offload_kept(eng, idx, timeout) || peers_keep(eng, idx, timeout))
				continue;
			flow_destroy(eng, idx);
		}
	}
}
