/*
 * Fragment tracking. Only the first fragment of a datagram carries ports,
 * so when it is translated we remember which flow it belonged to, keyed by
 * (addresses, protocol, identification); later fragments follow it. A later
 * fragment that arrives before its first one is dropped, never forwarded
 * untranslated: that would leak the subscriber's address.
 *
 * The table is a fixed array with bounded open addressing: hostile
 * fragments can fill it (then new fragmented datagrams are refused and
 * counted) but never make it grow or make a lookup long.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "frag.h"
#include "guard.h"
#include "parse.h"
#include "rng.h"

#define FRAG_TIMEOUT_S 30 /* Linux's ipfrag_time default */
#define FRAG_PROBES    8

struct frag_key {
	uint8_t src[16], dst[16];
	uint32_t id;
	uint8_t family, proto, dir, tag;
};
static_assert(sizeof(struct frag_key) == 40, "frag key must have no implicit padding");

int cfr_frag_init(struct cfr_engine *eng)
{
	uint32_t slots = 1;

	/* Twice the datagrams tracked: probes stay short while the table fills. */
	while (slots < eng->cfg.max_frags * 2)
		slots <<= 1;
	eng->frag.mask = slots - 1;
	eng->frag.slots = calloc(slots, sizeof(*eng->frag.slots));
	if (!eng->frag.slots)
		return -ENOMEM;
	eng->memory += (size_t)slots * sizeof(*eng->frag.slots);
	return 0;
}

void cfr_frag_free(struct cfr_engine *eng)
{
	free(eng->frag.slots);
}

static uint32_t frag_slot(const struct cfr_engine *eng, uint8_t dir, const uint8_t *buf,
                          const struct cfr_parsed *p)
{
	struct frag_key k;
	uint64_t h;

	memset(&k, 0, sizeof(k));
	memcpy(k.src, buf + p->src_off, p->addr_len);
	memcpy(k.dst, buf + p->dst_off, p->addr_len);
	k.id = p->frag_id;
	k.family = p->family;
	k.proto = p->frag_nh;
	k.dir = dir;
	k.tag = 0xf7; /* apart from flow keys hashed under the same key */
	crypto_shorthash((unsigned char *)&h, (const unsigned char *)&k, sizeof(k), eng->hash_key);
	return (uint32_t)h & eng->frag.mask;
}

static bool frag_matches(const struct cfr_frag *e, uint8_t dir, const uint8_t *buf,
                         const struct cfr_parsed *p)
{
	return e->id == p->frag_id && e->family == p->family && e->nh == p->frag_nh &&
	       e->dir == dir && memcmp(e->src.b, buf + p->src_off, p->addr_len) == 0 &&
	       memcmp(e->dst.b, buf + p->dst_off, p->addr_len) == 0;
}

static bool frag_live(const struct cfr_engine *eng, const struct cfr_frag *e)
{
	return e->in_use && (int32_t)(e->expires_s - eng->now_s) > 0;
}

/* Forget entry <e> and give its subscriber's share back. */
static void frag_forget(struct cfr_engine *eng, struct cfr_frag *e)
{
	uint32_t guard = e->guard;

	memset(e, 0, sizeof(*e));
	cfr_guard_frags(eng, guard, -1);
}

enum cfr_drop cfr_frag_remember(struct cfr_engine *eng, uint8_t dir, const uint8_t *buf,
                                const struct cfr_parsed *p, uint32_t flow, struct cfr_frag **out)
{
	uint32_t slot = frag_slot(eng, dir, buf, p), i, guard = eng->flow.flows[flow].guard;
	uint32_t limit = eng->cfg.limits.frags_per_subscriber;
	struct cfr_frag *free_slot = NULL;

	for (i = 0; i < FRAG_PROBES; i++) {
		struct cfr_frag *e = &eng->frag.slots[(slot + i) & eng->frag.mask];

		/* A repeated first fragment keeps the datagram's identification. */
		if (frag_live(eng, e) && frag_matches(e, dir, buf, p)) {
			e->flow = flow;
			e->expires_s = eng->now_s + FRAG_TIMEOUT_S;
			*out = e;
			return CFR_DROP_NONE;
		}
		if (!free_slot && !frag_live(eng, e))
			free_slot = e;
	}
	if (!free_slot)
		return CFR_DROP_FRAG_TABLE_FULL;
	/*
	 * A share per subscriber (its datagrams in both directions): one that
	 * floods first fragments, or whose remote does, fills its own share
	 * and leaves the table to everyone else.
	 */
	if (limit && guard && eng->guard.entries[guard].frags >= limit)
		return CFR_DROP_SUBSCRIBER_FRAG_LIMIT;
	if (free_slot->in_use)
		frag_forget(eng, free_slot); /* expired, not swept yet */
	else
		eng->stats.frags_tracked++; /* exact again at the next sweep */
	memcpy(free_slot->src.b, buf + p->src_off, p->addr_len);
	memcpy(free_slot->dst.b, buf + p->dst_off, p->addr_len);
	free_slot->id = p->frag_id;
	free_slot->family = p->family;
	free_slot->nh = p->frag_nh;
	free_slot->l4_proto = p->proto;
	free_slot->dir = dir;
	free_slot->flow = flow;
	free_slot->guard = guard;
	free_slot->expires_s = eng->now_s + FRAG_TIMEOUT_S;
	free_slot->in_use = 1;
	free_slot->got = p->end - p->frag_data_off;
	cfr_guard_frags(eng, guard, +1);
	cfr_rng_bytes(eng, &free_slot->ip_id, sizeof(free_slot->ip_id));
	*out = free_slot;
	return CFR_DROP_NONE;
}

struct cfr_frag *cfr_frag_find(struct cfr_engine *eng, uint8_t dir, const uint8_t *buf,
                               const struct cfr_parsed *p)
{
	uint32_t slot = frag_slot(eng, dir, buf, p), i;

	for (i = 0; i < FRAG_PROBES; i++) {
		struct cfr_frag *e = &eng->frag.slots[(slot + i) & eng->frag.mask];

		if (frag_live(eng, e) && frag_matches(e, dir, buf, p)) {
			e->expires_s = eng->now_s + FRAG_TIMEOUT_S;
			return e;
		}
	}
	return NULL;
}

/*
 * A later fragment of <frag>'s datagram was translated: once every byte of
 * the datagram went through, its entry (and the subscriber's share) is free
 * at once, not 30 s later: a subscriber whose every datagram is fragmented
 * (a UDP sender after PMTU discovery) must not run out of its share.
 * Overlaps and duplicates may free it early; what comes after then finds no
 * entry and is dropped, as a later fragment of an unknown datagram is.
 */
void cfr_frag_arrived(struct cfr_engine *eng, struct cfr_frag *frag, const struct cfr_parsed *p)
{
	frag->got += p->end - p->frag_data_off;
	if (!p->frag_more)
		frag->total = p->frag_off + (p->end - p->frag_data_off);
	if (frag->total && frag->got >= frag->total) {
		frag_forget(eng, frag);
		if (eng->stats.frags_tracked)
			eng->stats.frags_tracked--;
	}
}

void cfr_frag_sweep(struct cfr_engine *eng)
{
	uint32_t i, live = 0;

	for (i = 0; i <= eng->frag.mask; i++) {
		struct cfr_frag *e = &eng->frag.slots[i];

		if (!e->in_use)
			continue;
		if (frag_live(eng, e))
			live++;
		else
			frag_forget(eng, e);
	}
	eng->stats.frags_tracked = live;
}
