/*
 * The engine's whole state, for handing it to another process: a restart
 * or an upgrade that keeps every flow, alias, limit and epoch secret.
 *
 * The state is a header, which is the engine structure itself with its
 * pointers meaningless, and then the engine's tables as raw memory, in the
 * order cfr_engine_state_regions() lists them. Tables hold indexes, never
 * pointers, so a copy of them is valid in any process whose engine has the
 * same shape. The header also carries the size of every record type: a
 * binary whose layout differs refuses the state (a clean start) rather than
 * misread it. Moving the bytes is the daemon's business (no I/O here).
 *
 * The state holds the epoch's secrets and every subscriber's flows: the
 * daemon keeps it in memory only, and it comes from a process of the same
 * user (cfrd's handover.c checks the peer), so it is checked for shape and
 * for indexes that would reach outside the tables, not for lies.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine-t.h"
#include "mapping.h"

#define STATE_MAGIC   "cfrstate"
#define STATE_VERSION 2u

static_assert(CFR_POOL_SLOTS + 16 <= CFR_STATE_REGIONS_MAX, "regions fit the header");

/* What a state is made of: a change here changes the layout. */
enum {
	LAYOUT_ENGINE,
	LAYOUT_CONFIG,
	LAYOUT_FLOW,
	LAYOUT_FLOW6,
	LAYOUT_FRAG,
	LAYOUT_SUB,
	LAYOUT_GUARD,
	LAYOUT_PAIR,
	LAYOUT_RECORD,
	LAYOUT_STATS,
	LAYOUT__COUNT
};

struct state_header {
	char magic[8];
	uint32_t version;
	uint32_t layout[LAYOUT__COUNT];
	uint32_t n_regions;
	uint64_t region_len[CFR_STATE_REGIONS_MAX];
	struct cfr_engine eng;
};

static void layout_of(uint32_t layout[LAYOUT__COUNT])
{
	layout[LAYOUT_ENGINE] = sizeof(struct cfr_engine);
	layout[LAYOUT_CONFIG] = sizeof(struct cfr_engine_config);
	layout[LAYOUT_FLOW] = sizeof(struct cfr_flow);
	layout[LAYOUT_FLOW6] = sizeof(struct cfr_flow6);
	layout[LAYOUT_FRAG] = sizeof(struct cfr_frag);
	layout[LAYOUT_SUB] = sizeof(struct cfr_sub_state);
	layout[LAYOUT_GUARD] = sizeof(struct cfr_guard_entry);
	layout[LAYOUT_PAIR] = sizeof(struct cfr_anon_pair);
	layout[LAYOUT_RECORD] = sizeof(struct cfr_epoch_record);
	layout[LAYOUT_STATS] = sizeof(struct cfr_stats);
}

size_t cfr_engine_state_header_size(void)
{
	return sizeof(struct state_header);
}

static void add(struct cfr_state_region *out, unsigned *n, void *data, size_t len)
{
	out[(*n)++] = (struct cfr_state_region){.data = data, .len = len};
}

unsigned cfr_engine_state_regions(struct cfr_engine *eng, struct cfr_state_region *out)
{
	size_t flows = (size_t)eng->cfg.max_flows + 1, subs = eng->cfg.max_subscribers;
	size_t buckets = (size_t)eng->flow.bucket_mask + 1;
	unsigned n = 0, t, k;

	add(out, &n, eng->flow.flows, flows * sizeof(*eng->flow.flows));
	add(out, &n, eng->flow.flows6, flows * sizeof(*eng->flow.flows6));
	add(out, &n, eng->flow.in_buckets, buckets * sizeof(uint32_t));
	add(out, &n, eng->flow.out_buckets, buckets * sizeof(uint32_t));
	add(out, &n, eng->frag.slots, ((size_t)eng->frag.mask + 1) * sizeof(*eng->frag.slots));
	for (t = 0; t < 2; t++) {
		struct cfr_sub_table *tab = &eng->acct.subs[t];

		add(out, &n, tab->s, (subs + 1) * sizeof(*tab->s));
		add(out, &n, tab->buckets, ((size_t)eng->acct.sub_mask + 1) * sizeof(uint32_t));
		add(out, &n, tab->used, subs * sizeof(uint32_t));
		add(out, &n, tab->dirty, subs * sizeof(uint32_t));
	}
	add(out, &n, eng->acct.early, CFR_EARLY_QUEUE * sizeof(*eng->acct.early));
	add(out, &n, eng->guard.entries, (subs + 1) * sizeof(*eng->guard.entries));
	add(out, &n, eng->guard.buckets, ((size_t)eng->guard.mask + 1) * sizeof(uint32_t));
	add(out, &n, eng->anon.pairs, flows * sizeof(*eng->anon.pairs));
	add(out, &n, eng->anon.buckets, ((size_t)eng->anon.mask + 1) * sizeof(uint32_t));
	for (k = 0; k < CFR_POOL_SLOTS; k++)
		if (eng->pools.slots[k].state != CFR_SLOT_FREE)
			add(out, &n, eng->pools.slots[k].subs,
			    eng->pools.slots[k].n_subs * sizeof(uint32_t));
	return n;
}

void cfr_engine_state_header(struct cfr_engine *eng, void *out)
{
	struct state_header *h = out;
	struct cfr_state_region r[CFR_STATE_REGIONS_MAX];
	unsigned i;

	memset(h, 0, sizeof(*h));
	memcpy(h->magic, STATE_MAGIC, sizeof(h->magic));
	h->version = STATE_VERSION;
	layout_of(h->layout);
	h->n_regions = cfr_engine_state_regions(eng, r);
	for (i = 0; i < h->n_regions; i++)
		h->region_len[i] = r[i].len;
	h->eng = *eng;
	/* CSPRNG output not handed out yet stays with this process. */
	memset(h->eng.rng.buf, 0, sizeof(h->eng.rng.buf));
}

static struct cfr_engine *refuse(struct cfr_engine *eng, const char **why, const char *what)
{
	cfr_engine_free(eng);
	*why = what;
	errno = EINVAL;
	return NULL;
}

/* Give <eng> the pool slots of <saved>: a reload may have moved or added prefixes. */
static int take_slots(struct cfr_engine *eng, const struct cfr_engine *saved)
{
	unsigned k;

	for (k = 0; k < CFR_POOL_SLOTS; k++) {
		const struct cfr_pool_slot *s = &saved->pools.slots[k];
		struct cfr_pool_slot *mine = &eng->pools.slots[k];

		eng->memory -= (size_t)mine->n_subs * sizeof(uint32_t);
		free(mine->subs);
		memset(mine, 0, sizeof(*mine));
		if (s->state == CFR_SLOT_FREE)
			continue;
		if (s->state > CFR_SLOT_DRAINING || s->n_subs == 0 ||
		    s->n_subs > CFR_MAX_POOL4_ADDRESSES || (s->n_subs & (s->n_subs - 1)) != 0)
			return -EINVAL;
		*mine = *s;
		mine->subs = calloc(s->n_subs, sizeof(uint32_t));
		if (!mine->subs)
			return -ENOMEM;
		eng->memory += (size_t)s->n_subs * sizeof(uint32_t);
	}
	return 0;
}

/* The saved engine's scalars, this engine's tables. */
static void take_scalars(struct cfr_engine *eng, const struct cfr_engine *saved)
{
	struct cfr_engine mine = *eng;
	unsigned t, k;

	*eng = *saved;
	eng->flow.flows = mine.flow.flows;
	eng->flow.flows6 = mine.flow.flows6;
	eng->flow.in_buckets = mine.flow.in_buckets;
	eng->flow.out_buckets = mine.flow.out_buckets;
	eng->frag.slots = mine.frag.slots;
	for (k = 0; k < CFR_POOL_SLOTS; k++)
		eng->pools.slots[k].subs = mine.pools.slots[k].subs;
	for (t = 0; t < 2; t++) {
		eng->acct.subs[t].s = mine.acct.subs[t].s;
		eng->acct.subs[t].buckets = mine.acct.subs[t].buckets;
		eng->acct.subs[t].used = mine.acct.subs[t].used;
		eng->acct.subs[t].dirty = mine.acct.subs[t].dirty;
	}
	eng->acct.early = mine.acct.early;
	eng->guard.entries = mine.guard.entries;
	eng->guard.buckets = mine.guard.buckets;
	eng->anon.pairs = mine.anon.pairs;
	eng->anon.buckets = mine.anon.buckets;
	eng->memory = mine.memory;
	eng->offload = mine.offload;
	eng->rng.used = CFR_RNG_BUF;
}

struct cfr_engine *cfr_engine_from_state(const void *header, const char **why)
{
	const struct state_header *h = header;
	struct cfr_state_region r[CFR_STATE_REGIONS_MAX];
	uint32_t layout[LAYOUT__COUNT];
	struct cfr_engine *eng;
	unsigned i, n;

	layout_of(layout);
	if (memcmp(h->magic, STATE_MAGIC, sizeof(h->magic)) != 0)
		return refuse(NULL, why, "not an engine state");
	if (h->version != STATE_VERSION || memcmp(h->layout, layout, sizeof(layout)) != 0)
		return refuse(NULL, why, "the state's layout is another version's");
	eng = cfr_engine_new(&h->eng.cfg);
	if (!eng) {
		*why = errno == EINVAL ? "the state's configuration is not valid" : "out of memory";
		return NULL;
	}
	if (eng->flow.bucket_mask != h->eng.flow.bucket_mask ||
	    eng->frag.mask != h->eng.frag.mask || eng->acct.sub_mask != h->eng.acct.sub_mask ||
	    eng->guard.mask != h->eng.guard.mask || eng->anon.mask != h->eng.anon.mask)
		return refuse(eng, why,
		              "the state's tables are not the size its configuration says");
	if (take_slots(eng, &h->eng) != 0)
		return refuse(eng, why, "the state's pool table is damaged, or out of memory");
	take_scalars(eng, &h->eng);
	n = cfr_engine_state_regions(eng, r);
	if (n != h->n_regions)
		return refuse(eng, why, "the state's tables do not match its header");
	for (i = 0; i < n; i++)
		if (r[i].len != h->region_len[i])
			return refuse(eng, why, "the state's tables do not match its header");
	return eng;
}

static bool lru_ok(const struct cfr_engine *eng)
{
	for (unsigned c = 0; c < CFR_TIMEOUT__COUNT; c++)
		if (eng->flow.lru[c].head > eng->cfg.max_flows ||
		    eng->flow.lru[c].tail > eng->cfg.max_flows)
			return false;
	return true;
}

int cfr_engine_state_check(struct cfr_engine *eng, const char **why)
{
	uint32_t flows = eng->cfg.max_flows, subs = eng->cfg.max_subscribers;

	*why = "the state's indexes reach outside its tables";
	if (eng->flow.free_head > flows || eng->flow.next_fresh == 0 ||
	    eng->flow.next_fresh > flows + 1 || eng->anon.free_head > flows ||
	    eng->anon.fresh == 0 || eng->anon.fresh > flows + 1 || eng->guard.fresh == 0 ||
	    eng->guard.fresh > subs + 1 || eng->guard.idle_head > subs ||
	    eng->guard.idle_tail > subs || eng->acct.cur_subs > 1 ||
	    eng->acct.early_head >= CFR_EARLY_QUEUE || eng->acct.early_count > CFR_EARLY_QUEUE ||
	    !lru_ok(eng))
		return -EINVAL;
	for (unsigned t = 0; t < 2; t++) {
		const struct cfr_sub_table *tab = &eng->acct.subs[t];

		if (tab->n_used > subs || tab->drained > tab->n_used || tab->n_dirty > subs ||
		    tab->reseed > tab->n_used || tab->cursor > subs)
			return -EINVAL;
	}
	for (unsigned f = 0; f < CFR_FAMILY__COUNT; f++)
		if (eng->pools.n_live[f] > CFR_POOL_SLOTS)
			return -EINVAL;
	/* What a cfrd before the counts existed left at 0: derived, so derived again. */
	cfr_map_recount(eng);
	*why = NULL;
	return 0;
}
