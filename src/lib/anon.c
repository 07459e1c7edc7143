/*
 * Anonymity-set accounting: for every alias, how many distinct subscribers
 * have live flows on it right now. A pair table counts the flows of each
 * (subscriber, alias); an alias's set grows when a pair appears and shrinks
 * when its last flow ends. Both tables are sized at start from max_flows
 * (there are never more pairs than flows), so the packet path allocates
 * nothing and a flow costs one more keyed lookup when it starts and ends.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "anon.h"
#include "cfr/internal/compiler.h"
#include "flow.h"
#include "pool.h"

/*
 * An alias's index in the anonymity counts: its pool slot in the top bits,
 * and for IPv4 its offset in the prefix (a pool holds at most 2^24
 * addresses). An IPv6 pool prefix is one alias.
 */
static uint32_t alias_id(const struct cfr_engine *eng, const struct cfr_flow *f)
{
	const struct cfr_pool_slot *slot = &eng->pools.slots[f->pool_slot];
	const uint8_t *alias = cfr_flow_caddr(eng, f, CFR_FLOW_ALIAS);
	uint32_t a;

	if (f->family == CFR_FAMILY_V6)
		return (uint32_t)f->pool_slot << 24;
	a = (uint32_t)alias[0] << 24 | (uint32_t)alias[1] << 16 | (uint32_t)alias[2] << 8 |
	    alias[3];
	return (uint32_t)f->pool_slot << 24 | (a & (slot->n_subs - 1));
}

static uint32_t *alias_subs(struct cfr_engine *eng, uint32_t id)
{
	return &eng->pools.slots[id >> 24].subs[id & 0xffffff];
}

int cfr_anon_init(struct cfr_engine *eng)
{
	uint32_t buckets = eng->flow.bucket_mask + 1;

	eng->anon.pairs = calloc((size_t)eng->cfg.max_flows + 1, sizeof(*eng->anon.pairs));
	eng->anon.buckets = calloc(buckets, sizeof(uint32_t));
	if (!eng->anon.pairs || !eng->anon.buckets)
		return -1;
	eng->anon.mask = buckets - 1;
	eng->anon.fresh = 1;
	eng->memory += ((size_t)eng->cfg.max_flows + 1) * sizeof(*eng->anon.pairs) +
	               buckets * sizeof(uint32_t);
	return 0;
}

void cfr_anon_free(struct cfr_engine *eng)
{
	free(eng->anon.pairs);
	free(eng->anon.buckets);
}

/*
 * The pair of (subscriber, alias): the subscriber is named by its guard
 * entry, which lives exactly as long as it has flows, so a pair costs 16
 * bytes rather than carrying the subscriber's address.
 */
static uint32_t *pair_link(struct cfr_engine *eng, uint32_t guard, uint32_t id)
{
	uint32_t key[2] = {guard, id}, *link;
	uint64_t h;

	crypto_shorthash((unsigned char *)&h, (const unsigned char *)key, sizeof(key),
	                 eng->hash_key);
	link = &eng->anon.buckets[(uint32_t)h & eng->anon.mask];
	while (*link) {
		struct cfr_anon_pair *pr = &eng->anon.pairs[*link];

		if (pr->alias_id == id && pr->guard == guard)
			break;
		link = &pr->next;
	}
	return link;
}

uint32_t cfr_anon_add(struct cfr_engine *eng, struct cfr_flow *f)
{
	uint32_t id, *link, idx;

	/* A new flow's alias is in an active prefix: cfr_derive_alias() draws from no other. */
	f->pool_slot = cfr_pool_slot_of(eng, f->family, cfr_flow_caddr(eng, f, CFR_FLOW_ALIAS));
	if (unlikely(f->pool_slot == CFR_SLOT_NONE))
		return 0;
	eng->pools.slots[f->pool_slot].flows++;
	id = alias_id(eng, f);
	link = pair_link(eng, f->guard, id);
	if (*link == 0) {
		/* There are never more pairs than flows, so a record is always free. */
		if (eng->anon.free_head) {
			idx = eng->anon.free_head;
			eng->anon.free_head = eng->anon.pairs[idx].next;
		} else {
			idx = eng->anon.fresh++;
		}
		memset(&eng->anon.pairs[idx], 0, sizeof(eng->anon.pairs[idx]));
		eng->anon.pairs[idx].guard = f->guard;
		eng->anon.pairs[idx].alias_id = id;
		*link = idx;
		(*alias_subs(eng, id))++;
	}
	eng->anon.pairs[*link].flows++;
	return *alias_subs(eng, id);
}

void cfr_anon_remove(struct cfr_engine *eng, const struct cfr_flow *f)
{
	struct cfr_pool_slot *slot;
	uint32_t id, *link, idx;

	if (unlikely(f->pool_slot == CFR_SLOT_NONE))
		return;
	slot = &eng->pools.slots[f->pool_slot];
	id = alias_id(eng, f);
	link = pair_link(eng, f->guard, id);
	idx = *link;
	if (idx != 0 && --eng->anon.pairs[idx].flows == 0) {
		*link = eng->anon.pairs[idx].next;
		memset(&eng->anon.pairs[idx], 0, sizeof(eng->anon.pairs[idx]));
		eng->anon.pairs[idx].next = eng->anon.free_head;
		eng->anon.free_head = idx;
		(*alias_subs(eng, id))--;
	}
	/* A prefix a reload removed is forgotten with its last flow. */
	if (--slot->flows == 0 && slot->state == CFR_SLOT_DRAINING)
		cfr_pool_slot_drained(eng, f->pool_slot);
}

static unsigned log2_bucket(uint32_t n)
{
	unsigned b = 0;

	while (n >>= 1)
		b++;
	return b < CFR_ANON_BUCKETS ? b : CFR_ANON_BUCKETS - 1;
}

/* An IPv6 address chosen by a sticky policy is one subscriber's alone. */
static bool v6_per_address(const struct cfr_engine *eng)
{
	return eng->cfg.policy[CFR_FAMILY_V6] != CFR_POLICY_PER_FLOW;
}

/* A new flow was placed on an alias now shared by <set> subscribers. */
void cfr_anon_placed(struct cfr_engine *eng, uint8_t family, uint32_t set)
{
	if (family == CFR_FAMILY_V6 && v6_per_address(eng))
		set = 1;
	if (set < eng->cfg.anon_k)
		eng->stats.new_flows_below_k++;
	eng->stats.new_flow_anon_hist[family][log2_bucket(set)]++;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

uint32_t cfr_engine_anon_capacity(const struct cfr_engine *eng)
{
	uint64_t aliases = 0;

	for (unsigned k = 0; k < CFR_POOL_SLOTS; k++)
		if (eng->pools.slots[k].state != CFR_SLOT_FREE)
			aliases += eng->pools.slots[k].n_subs;
	/* An alias in use has a pair, and there are never more pairs than flows. */
	return (uint32_t)(aliases < eng->cfg.max_flows ? aliases : eng->cfg.max_flows);
}

#define ANON_CHUNK 256

/*
 * Under the daemon's lock: a read of the alias counts and a copy of those
 * in use, nothing else (no allocation, no sort).
 */
void cfr_engine_anon_copy(const struct cfr_engine *eng, struct cfr_anon_copy *copy)
{
	uint32_t n = 0;

	memset(copy->n, 0, sizeof(copy->n));
	copy->v6_subscribers = 0;
	copy->v6_per_address = v6_per_address(eng);
	copy->truncated = false;
	for (unsigned fam = 0; fam < CFR_FAMILY__COUNT; fam++) {
		/* Draining prefixes too: their aliases still hide the flows on them. */
		for (unsigned k = 0; k < CFR_POOL_SLOTS; k++) {
			const struct cfr_pool_slot *slot = &eng->pools.slots[k];
			uint32_t i = 0;

			if (slot->state == CFR_SLOT_FREE || slot->prefix.family != fam)
				continue;
			if (fam == CFR_FAMILY_V6)
				copy->v6_subscribers += slot->subs[0];
			/*
			 * Branch-free while a whole chunk fits: every count is
			 * stored, and the index moves past it only if it is not
			 * 0. Aliases in use sit at random among free ones, so a
			 * branch on each would be mispredicted about as often as
			 * not (twice as slow on a /10 pool: bench/stall).
			 */
			for (; i + ANON_CHUNK <= slot->n_subs && copy->cap - n >= ANON_CHUNK;
			     i += ANON_CHUNK) {
				for (uint32_t j = i; j < i + ANON_CHUNK; j++) {
					copy->sizes[n] = slot->subs[j];
					n += slot->subs[j] != 0;
				}
			}
			for (; i < slot->n_subs; i++) {
				if (slot->subs[i] == 0)
					continue;
				if (n == copy->cap) {
					copy->truncated = true;
					break;
				}
				copy->sizes[n++] = slot->subs[i];
			}
		}
		copy->n[fam] = n - (fam ? copy->n[0] : 0);
	}
}

/* Off the lock: min, max, histogram, and the quantiles from a sort. */
void cfr_anon_figures(struct cfr_anon_copy *copy, struct cfr_anon_stats *out)
{
	uint32_t *sizes = copy->sizes;

	memset(out, 0, sizeof(*out));
	for (unsigned fam = 0; fam < CFR_FAMILY__COUNT; fam++) {
		uint32_t n = copy->n[fam];

		for (uint32_t i = 0; i < n; i++) {
			uint32_t set = sizes[i];

			if (i == 0 || set < out->min[fam])
				out->min[fam] = set;
			if (set > out->max[fam])
				out->max[fam] = set;
			out->histogram[fam][log2_bucket(set)]++;
		}
		out->aliases_in_use[fam] = n;
		if (n > 0) {
			qsort(sizes, n, sizeof(*sizes), cmp_u32);
			out->p5[fam] = sizes[(n - 1) / 20];
			out->median[fam] = sizes[(n - 1) / 2];
		}
		sizes += n;
	}
	if (copy->v6_per_address && out->aliases_in_use[CFR_FAMILY_V6]) {
		/* At least one address per subscriber, each a set of one. */
		memset(out->histogram[CFR_FAMILY_V6], 0, sizeof(out->histogram[CFR_FAMILY_V6]));
		out->histogram[CFR_FAMILY_V6][0] = copy->v6_subscribers;
		out->aliases_in_use[CFR_FAMILY_V6] = copy->v6_subscribers;
		out->min[CFR_FAMILY_V6] = out->p5[CFR_FAMILY_V6] = 1;
		out->median[CFR_FAMILY_V6] = out->max[CFR_FAMILY_V6] = 1;
	}
}

/*
 * Both steps at once, for callers without a lock to spare it (tests,
 * cfr-audit); if the copy cannot be allocated, every figure stays 0.
 */
void cfr_engine_anonymity(const struct cfr_engine *eng, struct cfr_anon_stats *out)
{
	uint32_t cap = cfr_engine_anon_capacity(eng);
	struct cfr_anon_copy copy = {.sizes = malloc((size_t)cap * sizeof(uint32_t) + 1),
	                             .cap = cap};

	if (copy.sizes == NULL) {
		memset(out, 0, sizeof(*out));
		return;
	}
	cfr_engine_anon_copy(eng, &copy);
	cfr_anon_figures(&copy, out);
	free(copy.sizes);
}
