/*
 * Reconfiguring a running engine without dropping a flow, and the pool
 * prefixes that makes necessary to track (struct cfr_pool_slot).
 *
 * A reload is cut in three so that the packet path waits only for a swap:
 * cfr_reconfig_new() validates the new configuration against the running
 * one and allocates what it will need (the anonymity counters of added
 * pool prefixes), off the lock; cfr_engine_reconfigure() installs it under
 * the lock, O(number of prefixes), and cannot fail; cfr_reconfig_free()
 * releases what the engine gave up, off the lock again.
 *
 * Pools are what makes this more than a copy. A flow's alias must keep
 * working for the flow's whole life (RFC 4787 REQ-1: the mapping does not
 * change), so a removed prefix only stops taking new flows: it drains.
 * Inbound packets to it are still recognised as inbound (classify() in
 * engine.c, which looks at the live prefixes, not the configured ones) and
 * translated, and the anonymity counts of its aliases stay where they were,
 * since a flow names its slot rather than a position in the configuration.
 * When its last flow ends (cfr_anon_remove) the slot is freed and the
 * prefix forgotten.
 *
 * Alias derivation reads the pools, the ports, the policies and the epoch
 * length, and so does cfr-lookup, from the records' segment header: a
 * change to any of them ends the privacy epoch, so that every record's
 * allocations were drawn under one configuration, and the daemon hands the
 * new one to the records writer for the epochs that follow.
 *
 * Never called on the packet path; it must never leave a flow whose alias
 * is in no live slot, or an inbound packet would be taken for outbound.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-t.h"
#include "guard.h"
#include "mapping.h"
#include "pool.h"
#include "prefix.h"

static uint32_t prefix_aliases(const struct cfr_prefix *p)
{
	/* config_valid() bounds an IPv4 pool to 2^24 addresses in all. */
	return p->family == CFR_FAMILY_V4 ? (uint32_t)(1ull << (32 - p->len)) : 1;
}

static bool same_prefix(const struct cfr_prefix *a, const struct cfr_prefix *b)
{
	return a->family == b->family && a->len == b->len && memcmp(a->addr, b->addr, 16) == 0;
}

static bool overlap(const struct cfr_prefix *a, const struct cfr_prefix *b)
{
	const struct cfr_prefix *shorter = a->len <= b->len ? a : b;
	const struct cfr_prefix *longer = shorter == a ? b : a;

	return a->family == b->family && cfr_prefix_has(shorter, longer->family, longer->addr);
}

/* The configured pool prefix <i> of both families: IPv4 first. */
static const struct cfr_prefix *pool_at(const struct cfr_engine_config *cfg, unsigned i)
{
	return i < cfg->n_pool4 ? &cfg->pool4[i] : &cfg->pool6[i - cfg->n_pool4];
}

/* Rebuild the per-family lists of prefixes inbound packets may be for. */
static void live_rebuild(struct cfr_engine *eng)
{
	unsigned k;

	eng->pools.n_live[CFR_FAMILY_V4] = eng->pools.n_live[CFR_FAMILY_V6] = 0;
	/* Active prefixes first, in configuration order: they take most packets. */
	for (k = 0; k < eng->cfg.n_pool4 + eng->cfg.n_pool6; k++) {
		const struct cfr_prefix *p = pool_at(&eng->cfg, k);

		eng->pools.live[p->family][eng->pools.n_live[p->family]++] = *p;
	}
	for (k = 0; k < CFR_POOL_SLOTS; k++) {
		const struct cfr_prefix *p = &eng->pools.slots[k].prefix;

		if (eng->pools.slots[k].state == CFR_SLOT_DRAINING)
			eng->pools.live[p->family][eng->pools.n_live[p->family]++] = *p;
	}
}

static void slot_take(struct cfr_engine *eng, uint8_t k, const struct cfr_prefix *p, uint32_t *subs)
{
	struct cfr_pool_slot *slot = &eng->pools.slots[k];

	memset(slot, 0, sizeof(*slot));
	slot->prefix = *p;
	slot->state = CFR_SLOT_ACTIVE;
	slot->subs = subs;
	slot->n_subs = prefix_aliases(p);
	eng->memory += (size_t)slot->n_subs * sizeof(uint32_t);
}

/* Empty <k> and return its counters for the caller to free. */
static uint32_t *slot_release(struct cfr_engine *eng, uint8_t k)
{
	struct cfr_pool_slot *slot = &eng->pools.slots[k];
	uint32_t *subs = slot->subs;

	eng->memory -= (size_t)slot->n_subs * sizeof(uint32_t);
	memset(slot, 0, sizeof(*slot));
	return subs;
}

int cfr_pools_init(struct cfr_engine *eng)
{
	unsigned i, n = eng->cfg.n_pool4 + eng->cfg.n_pool6;

	for (i = 0; i < n; i++) {
		const struct cfr_prefix *p = pool_at(&eng->cfg, i);
		uint32_t *subs = calloc(prefix_aliases(p), sizeof(uint32_t));

		if (!subs)
			return -ENOMEM;
		slot_take(eng, (uint8_t)i, p, subs);
	}
	live_rebuild(eng);
	return 0;
}

void cfr_pools_free(struct cfr_engine *eng)
{
	unsigned k;

	for (k = 0; k < CFR_POOL_SLOTS; k++)
		free(eng->pools.slots[k].subs);
}

uint8_t cfr_pool_slot_of(const struct cfr_engine *eng, uint8_t family, const uint8_t *alias)
{
	unsigned k;

	for (k = 0; k < CFR_POOL_SLOTS; k++)
		if (eng->pools.slots[k].state == CFR_SLOT_ACTIVE &&
		    cfr_prefix_has(&eng->pools.slots[k].prefix, family, alias))
			return (uint8_t)k;
	return CFR_SLOT_NONE;
}

/*
 * The last flow of a draining prefix ended (flow expiry, control path):
 * forget the prefix. Its counters are all zero again; freeing them is the
 * one release of memory the engine makes outside cfr_reconfig_free(), once
 * per removed prefix.
 */
void cfr_pool_slot_drained(struct cfr_engine *eng, uint8_t k)
{
	free(slot_release(eng, k));
	live_rebuild(eng);
}

unsigned cfr_engine_pools(const struct cfr_engine *eng, struct cfr_pool_info *out, unsigned max)
{
	unsigned k, n = 0, pass;

	for (pass = CFR_SLOT_ACTIVE; pass <= CFR_SLOT_DRAINING; pass++)
		for (k = 0; k < CFR_POOL_SLOTS; k++) {
			const struct cfr_pool_slot *slot = &eng->pools.slots[k];

			if (slot->state != pass)
				continue;
			if (n < max)
				out[n] =
				    (struct cfr_pool_info){.prefix = slot->prefix,
				                           .draining = pass == CFR_SLOT_DRAINING,
				                           .flows = slot->flows};
			n++;
		}
	return n;
}

/* What becomes of each pool prefix of the new configuration. */
struct pool_plan {
	uint8_t slot;
	bool fresh;     /* a free slot, with <subs> allocated for it */
	uint32_t *subs; /* owned by the plan until installed */
};

struct cfr_reconfig {
	struct cfr_engine_config cfg;
	unsigned changes;
	struct pool_plan plan[2 * CFR_MAX_POOL_PREFIXES];
	uint32_t *released[CFR_POOL_SLOTS]; /* counters the engine gave up, to free */
	unsigned n_released;
	unsigned draining; /* prefixes left draining, counted by cfr_engine_reconfigure() */
};

__attribute__((format(printf, 3, 4))) static int refuse(char *why, size_t size, const char *fmt,
                                                        ...)
{
	va_list ap;

	if (why && size) {
		va_start(ap, fmt);
		vsnprintf(why, size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool prefixes_equal(const struct cfr_prefix *a, const struct cfr_prefix *b, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (!same_prefix(&a[i], &b[i]))
			return false;
	return true;
}

_Static_assert(sizeof(struct cfr_scrub_config) == 5 && sizeof(struct cfr_limits) == 28,
               "a field was added: check that changes_of() compares it");

/* Which parts differ, field by field where a struct has padding. */
static unsigned changes_of(const struct cfr_engine_config *a, const struct cfr_engine_config *b)
{
	unsigned c = 0, i;

	if (a->n_pool4 != b->n_pool4 || a->n_pool6 != b->n_pool6 ||
	    !prefixes_equal(a->pool4, b->pool4, a->n_pool4) ||
	    !prefixes_equal(a->pool6, b->pool6, a->n_pool6))
		c |= CFR_CHANGE_POOLS;
	if (a->port_min != b->port_min || a->port_max != b->port_max)
		c |= CFR_CHANGE_PORTS;
	if (memcmp(a->policy, b->policy, sizeof(a->policy)) != 0)
		c |= CFR_CHANGE_POLICY;
	if (a->n_classes != b->n_classes)
		c |= CFR_CHANGE_POLICY;
	for (i = 0; i < a->n_classes && i < b->n_classes; i++)
		if (a->classes[i].proto != b->classes[i].proto ||
		    a->classes[i].mapping != b->classes[i].mapping ||
		    a->classes[i].filtering != b->classes[i].filtering ||
		    a->classes[i].port_min != b->classes[i].port_min ||
		    a->classes[i].port_max != b->classes[i].port_max)
			c |= CFR_CHANGE_POLICY;
	if (a->epoch_s != b->epoch_s)
		c |= CFR_CHANGE_EPOCH;
	if (a->n_subscribers != b->n_subscribers || a->strict_ingress != b->strict_ingress ||
	    !prefixes_equal(a->subscribers, b->subscribers, a->n_subscribers))
		c |= CFR_CHANGE_SUBSCRIBERS;
	for (i = 0; i < a->n_subscribers && i < b->n_subscribers; i++)
		if (a->subscriber_ingress[i] != b->subscriber_ingress[i] ||
		    a->subscriber_ident6[i] != b->subscriber_ident6[i])
			c |= CFR_CHANGE_SUBSCRIBERS;
	if (memcmp(&a->limits, &b->limits, sizeof(a->limits)) != 0)
		c |= CFR_CHANGE_LIMITS;
	if (memcmp(a->timeout, b->timeout, sizeof(a->timeout)) != 0)
		c |= CFR_CHANGE_TIMEOUTS;
	/* Byte fields only, no padding: compared whole, so a new scrubber cannot be missed. */
	if (memcmp(&a->scrub, &b->scrub, sizeof(a->scrub)) != 0)
		c |= CFR_CHANGE_SCRUB;
	if (a->anon_k != b->anon_k)
		c |= CFR_CHANGE_ANONYMITY;
	return c;
}

/* What sizes a table or names a subscriber cannot change in a running engine. */
static int fixed_fields(const struct cfr_engine_config *old, const struct cfr_engine_config *cfg,
                        char *why, size_t size)
{
	if (cfg->max_flows != old->max_flows)
		return refuse(why, size, "max_flows sizes the flow table: it takes a restart");
	if (cfg->max_frags != old->max_frags)
		return refuse(why, size, "max_frags sizes the fragment table: it takes a restart");
	if (cfg->max_subscribers != old->max_subscribers)
		return refuse(why, size,
		              "max_subscribers sizes the subscriber tables: it takes a restart");
	/* Guard entries, epoch seeds and records are keyed by the identity. */
	if (cfg->subscriber_prefix6 != old->subscriber_prefix6 ||
	    cfr_config_ident6_max(cfg) != cfr_config_ident6_max(old))
		return refuse(why, size,
		              "the IPv6 subscriber identity length names subscribers: it takes a "
		              "restart");
	return 0;
}

/*
 * Match each pool prefix of <cfg> with the slot it keeps (active), takes
 * back (draining: re-added before its flows ended) or gets (a free one).
 */
static int plan_pools(const struct cfr_engine *eng, struct cfr_reconfig *rc, char *why, size_t size)
{
	const struct cfr_engine_config *cfg = &rc->cfg;
	bool taken[CFR_POOL_SLOTS] = {false}, matched[2 * CFR_MAX_POOL_PREFIXES] = {false};
	unsigned i, k, n = cfg->n_pool4 + cfg->n_pool6;

	for (i = 0; i < n; i++)
		for (k = 0; k < CFR_POOL_SLOTS && !matched[i]; k++)
			if (eng->pools.slots[k].state != CFR_SLOT_FREE && !taken[k] &&
			    same_prefix(&eng->pools.slots[k].prefix, pool_at(cfg, i))) {
				rc->plan[i].slot = (uint8_t)k;
				taken[k] = matched[i] = true;
			}
	for (i = 0; i < n; i++) {
		if (matched[i])
			continue;
		/* Slots only ever free up between here and cfr_engine_reconfigure(). */
		for (k = 0; k < CFR_POOL_SLOTS; k++)
			if (eng->pools.slots[k].state == CFR_SLOT_FREE && !taken[k])
				break;
		if (k == CFR_POOL_SLOTS)
			return refuse(why, size,
			              "too many pool prefixes still draining from earlier reloads; "
			              "try again once some have drained");
		rc->plan[i].slot = (uint8_t)k;
		rc->plan[i].fresh = true;
		rc->plan[i].subs = calloc(prefix_aliases(pool_at(cfg, i)), sizeof(uint32_t));
		if (!rc->plan[i].subs)
			return -ENOMEM;
		taken[k] = true;
	}
	return 0;
}

/*
 * A subscriber prefix inside a pool prefix would have the engine translate
 * its own aliases (the configuration parser checks the new pools; the
 * draining ones are only known here).
 */
static int check_draining(const struct cfr_engine *eng, const struct cfr_engine_config *cfg,
                          char *why, size_t size)
{
	unsigned i, k;

	for (k = 0; k < CFR_POOL_SLOTS; k++) {
		if (eng->pools.slots[k].state == CFR_SLOT_FREE)
			continue;
		for (i = 0; i < cfg->n_subscribers; i++)
			if (overlap(&cfg->subscribers[i], &eng->pools.slots[k].prefix))
				return refuse(why, size,
				              "subscriber prefix %u overlaps a pool prefix whose "
				              "flows still drain",
				              i + 1);
	}
	return 0;
}

struct cfr_reconfig *cfr_reconfig_new(const struct cfr_engine *eng,
                                      const struct cfr_engine_config *cfg, char *why,
                                      size_t why_size)
{
	struct cfr_reconfig *rc;
	const char *invalid;
	int ret;

	if (why && why_size)
		why[0] = '\0';
	if (cfr_engine_config_check(cfg, &invalid) != 0) {
		refuse(why, why_size, "invalid engine configuration: %s", invalid);
		errno = EINVAL;
		return NULL;
	}
	ret = fixed_fields(&eng->cfg, cfg, why, why_size);
	if (ret == 0)
		ret = check_draining(eng, cfg, why, why_size);
	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	rc = calloc(1, sizeof(*rc));
	if (!rc) {
		refuse(why, why_size, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	rc->cfg = *cfg;
	rc->changes = changes_of(&eng->cfg, cfg);
	ret = plan_pools(eng, rc, why, why_size);
	if (ret < 0) {
		if (ret == -ENOMEM)
			refuse(why, why_size, "out of memory");
		cfr_reconfig_free(rc);
		errno = -ret;
		return NULL;
	}
	return rc;
}

unsigned cfr_reconfig_changes(const struct cfr_reconfig *rc)
{
	return rc->changes;
}

unsigned cfr_reconfig_draining(const struct cfr_reconfig *rc)
{
	return rc->draining;
}

void cfr_engine_reconfigure(struct cfr_engine *eng, struct cfr_reconfig *rc, uint64_t now_ms)
{
	bool kept[CFR_POOL_SLOTS] = {false};
	unsigned i, k, n = rc->cfg.n_pool4 + rc->cfg.n_pool6;

	for (i = 0; i < n; i++) {
		struct pool_plan *pl = &rc->plan[i];

		if (pl->fresh) {
			slot_take(eng, pl->slot, pool_at(&rc->cfg, i), pl->subs);
			pl->subs = NULL;
		} else {
			eng->pools.slots[pl->slot].state =
			    CFR_SLOT_ACTIVE; /* a draining one comes back */
		}
		kept[pl->slot] = true;
	}
	for (k = 0; k < CFR_POOL_SLOTS; k++) {
		struct cfr_pool_slot *slot = &eng->pools.slots[k];

		if (slot->state == CFR_SLOT_FREE || kept[k])
			continue;
		if (slot->flows == 0)
			rc->released[rc->n_released++] = slot_release(eng, (uint8_t)k);
		else
			slot->state = CFR_SLOT_DRAINING;
	}
	rc->draining = 0;
	for (k = 0; k < CFR_POOL_SLOTS; k++)
		rc->draining += eng->pools.slots[k].state == CFR_SLOT_DRAINING;
	/*
	 * The ended epoch's records were drawn under the old pools, ports,
	 * policies and epoch length, the new epoch's under the new ones.
	 */
	if ((rc->changes & CFR_CHANGES_ROTATE) && eng->stats.epoch != 0)
		cfr_engine_epoch_rotate(eng, now_ms);
	eng->cfg = rc->cfg;
	cfr_guard_config_changed(eng);
	cfr_classes_changed(eng);
	live_rebuild(eng);
}

void cfr_reconfig_free(struct cfr_reconfig *rc)
{
	unsigned i;

	if (!rc)
		return;
	for (i = 0; i < 2 * CFR_MAX_POOL_PREFIXES; i++)
		free(rc->plan[i].subs);
	for (i = 0; i < rc->n_released; i++)
		free(rc->released[i]);
	free(rc);
}
