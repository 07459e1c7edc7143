/*
 * Guard: what may enter at all, and how much of the engine one subscriber
 * may take (MISSION R8, and the state-exhaustion concerns of RFC 6888).
 *
 * Address checks stop martians both ways and packets claiming our own
 * address space from outside; ingress binding stops one access line from
 * sending as another. Per-subscriber limits (concurrent flows per protocol,
 * half-open TCP flows, a token bucket on new flows) make a hostile
 * subscriber run into its own ceiling, counted, while everyone else keeps
 * working. The per-subscriber table is sized at start like every other
 * table; an entry lives while its subscriber has flows.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "parse.h"
#include "policy.h"
#include "pool.h"
#include "prefix.h"

void cfr_guard_config_changed(struct cfr_engine *eng)
{
	unsigned i;

	eng->guard.ingress_bound = eng->cfg.strict_ingress;
	for (i = 0; i < eng->cfg.n_subscribers; i++)
		eng->guard.ingress_bound =
		    eng->guard.ingress_bound || eng->cfg.subscriber_ingress[i] != 0;
}

int cfr_guard_init(struct cfr_engine *eng)
{
	uint32_t n = eng->cfg.max_subscribers, buckets = 1;

	cfr_guard_config_changed(eng);
	while (buckets < n)
		buckets <<= 1;
	eng->guard.entries = calloc((size_t)n + 1, sizeof(*eng->guard.entries));
	eng->guard.buckets = calloc(buckets, sizeof(uint32_t));
	if (!eng->guard.entries || !eng->guard.buckets)
		return -1;
	eng->guard.mask = buckets - 1;
	eng->guard.fresh = 1;
	eng->memory += ((size_t)n + 1) * sizeof(*eng->guard.entries) + buckets * sizeof(uint32_t);
	return 0;
}

void cfr_guard_free(struct cfr_engine *eng)
{
	free(eng->guard.entries);
	free(eng->guard.buckets);
}

static bool martian4(const uint8_t *a)
{
	return a[0] == 0 || a[0] == 127 || a[0] >= 224 || (a[0] == 169 && a[1] == 254);
}

static bool martian6(const uint8_t *a)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const uint8_t zero[15];

	return a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) ||
	       memcmp(a, mapped, 12) == 0 || (memcmp(a, zero, 15) == 0 && a[15] <= 1);
}

static bool martian(uint8_t family, const uint8_t *a)
{
	return family == CFR_FAMILY_V4 ? martian4(a) : martian6(a);
}

/* Whether a packet from <addr> may arrive on line <ingress>. */
static enum cfr_drop ingress_check(const struct cfr_engine *eng, uint8_t family,
                                   const uint8_t *addr, uint16_t ingress)
{
	const struct cfr_engine_config *c = &eng->cfg;
	unsigned i;

	if (!eng->guard.ingress_bound)
		return CFR_DROP_NONE;
	for (i = 0; i < c->n_subscribers; i++) {
		uint16_t bound = c->subscriber_ingress[i];

		if (!cfr_prefix_has(&c->subscribers[i], family, addr))
			continue;
		/* Strict: every prefix has a line, 0 included; loose: only bound ones. */
		if (bound != ingress && (c->strict_ingress || (bound && ingress)))
			return CFR_DROP_INGRESS_MISMATCH;
		return CFR_DROP_NONE;
	}
	return CFR_DROP_NONE;
}

enum cfr_drop cfr_guard_packet(struct cfr_engine *eng, const struct cfr_pkt *pkt,
                               const struct cfr_parsed *p)
{
	const uint8_t *src = pkt->data + p->src_off, *dst = pkt->data + p->dst_off;
	const struct cfr_engine_config *c = &eng->cfg;

	if (pkt->dir == CFR_DIR_IN) {
		if (c->strict_ingress && pkt->ingress != 0)
			return CFR_DROP_INGRESS_MISMATCH;
		if (martian(p->family, src))
			return CFR_DROP_MARTIAN_SOURCE;
		/* Draining prefixes too: their aliases are still ours. */
		if (cfr_in_live_pool(eng, p->family, src))
			return CFR_DROP_SPOOFED_SOURCE;
		return CFR_DROP_NONE;
	}
	if (martian(p->family, dst))
		return CFR_DROP_MARTIAN_DESTINATION;
	return ingress_check(eng, p->family, src, pkt->ingress);
}

/*
 * An outbound ICMP error about subscriber <sub>'s flow, from whoever sent
 * <pkt>. The subscriber itself passed cfr_guard_packet(). A router on the
 * access side (an address of the subscriber prefixes) may only speak about
 * subscribers of its own line, and an address outside them is the gateway's
 * own stack, whose errors come through the shared device: with lines bound,
 * a line sending either would be one subscriber disturbing another's flows.
 */
enum cfr_drop cfr_guard_error_sender(const struct cfr_engine *eng, const struct cfr_pkt *pkt,
                                     const struct cfr_parsed *p, const uint8_t *sub)
{
	const uint8_t *src = pkt->data + p->src_off;
	const struct cfr_engine_config *c = &eng->cfg;
	unsigned i;

	if (memcmp(src, sub, p->addr_len) == 0 || !eng->guard.ingress_bound)
		return CFR_DROP_NONE;
	for (i = 0; i < c->n_subscribers; i++)
		if (cfr_prefix_has(&c->subscribers[i], p->family, src))
			return ingress_check(eng, p->family, sub, pkt->ingress);
	return pkt->ingress == 0 ? CFR_DROP_NONE : CFR_DROP_INGRESS_MISMATCH;
}

static uint32_t guard_bucket(const struct cfr_engine *eng, uint8_t family, const uint8_t key[16])
{
	uint8_t in[18];
	uint64_t h;

	memcpy(in, key, 16);
	in[16] = family;
	in[17] = 'G'; /* apart from the accounting table hashed under the same key */
	crypto_shorthash((unsigned char *)&h, in, sizeof(in), eng->hash_key);
	return (uint32_t)h & eng->guard.mask;
}

static uint32_t *guard_link(struct cfr_engine *eng, uint8_t family, const uint8_t key[16])
{
	uint32_t *link = &eng->guard.buckets[guard_bucket(eng, family, key)];

	while (*link) {
		struct cfr_guard_entry *g = &eng->guard.entries[*link];

		if (g->family == family && memcmp(g->key, key, 16) == 0)
			break;
		link = &g->next;
	}
	return link;
}

static void refill(const struct cfr_engine *eng, struct cfr_guard_entry *g)
{
	uint64_t cap = (uint64_t)eng->cfg.limits.new_flows_burst * 1000;
	uint64_t tokens =
	    g->tokens_milli + (eng->now_ms - g->refill_ms) * eng->cfg.limits.new_flows_per_s;

	g->tokens_milli = tokens > cap ? cap : tokens;
	g->refill_ms = eng->now_ms;
}

/* Flows or tracked fragments refer to the entry: it must stay. */
static bool busy(const struct cfr_guard_entry *g)
{
	return g->flows[CFR_PROTO_TCP] || g->flows[CFR_PROTO_UDP] || g->flows[CFR_PROTO_ICMP] ||
	       g->frags;
}

/*
 * A subscriber left without flows keeps its entry, and with it its token
 * bucket: freeing it at once would hand a subscriber whose every attempt is
 * refused a full bucket each time. Idle entries queue up oldest first and
 * are reclaimed only when the table has no other room, so a flood of
 * sources that come and go cannot lock genuine subscribers out for longer
 * than their own flows last.
 */
static void guard_idle(struct cfr_engine *eng, uint32_t idx)
{
	struct cfr_guard_entry *g = &eng->guard.entries[idx];

	if (busy(g) || g->idle_queued)
		return;
	g->idle_queued = 1;
	g->idle_next = 0;
	if (eng->guard.idle_tail)
		eng->guard.entries[eng->guard.idle_tail].idle_next = idx;
	else
		eng->guard.idle_head = idx;
	eng->guard.idle_tail = idx;
}

/* The oldest entry still idle, unlinked and ready for reuse, or 0. */
static uint32_t reclaim_idle(struct cfr_engine *eng)
{
	while (eng->guard.idle_head) {
		uint32_t idx = eng->guard.idle_head, *link;
		struct cfr_guard_entry *g = &eng->guard.entries[idx];

		eng->guard.idle_head = g->idle_next;
		if (!eng->guard.idle_head)
			eng->guard.idle_tail = 0;
		g->idle_queued = 0;
		if (busy(g))
			continue; /* busy again since it queued: it queues anew when idle */
		link = guard_link(eng, g->family, g->key);
		*link = g->next;
		eng->stats.subscribers_reclaimed++;
		return idx;
	}
	return 0;
}

enum cfr_drop cfr_guard_admit(struct cfr_engine *eng, uint8_t family, const uint8_t *sub,
                              uint8_t proto_idx, uint32_t *guard)
{
	const struct cfr_limits *l = &eng->cfg.limits;
	struct cfr_guard_entry *g;
	uint8_t key[16];
	uint32_t *link, idx;

	cfr_subscriber_key(eng, family, sub, key);
	link = guard_link(eng, family, key);
	if (*link == 0) {
		if (eng->guard.fresh <= eng->cfg.max_subscribers) {
			idx = eng->guard.fresh++;
		} else if ((idx = reclaim_idle(eng)) == 0) {
			return CFR_DROP_SUBSCRIBER_TABLE_FULL;
		}
		link = guard_link(eng, family, key); /* reclaiming may have moved it */
		g = &eng->guard.entries[idx];
		memset(g, 0, sizeof(*g));
		memcpy(g->key, key, 16);
		g->family = family;
		g->tokens_milli = (uint64_t)l->new_flows_burst * 1000;
		g->refill_ms = eng->now_ms;
		*link = idx;
	}
	*guard = *link;
	g = &eng->guard.entries[*link];
	if (l->flows_per_subscriber[proto_idx] &&
	    g->flows[proto_idx] >= l->flows_per_subscriber[proto_idx])
		return CFR_DROP_SUBSCRIBER_FLOW_LIMIT;
	if (proto_idx == CFR_PROTO_TCP && l->half_open_per_subscriber &&
	    g->half_open >= l->half_open_per_subscriber)
		return CFR_DROP_SUBSCRIBER_HALF_OPEN_LIMIT;
	/*
	 * Every attempt that gets this far costs a token, admitted or not: a
	 * refused allocation (a full pool toward one destination) costs the
	 * engine a bounded search, and a subscriber must not get it for free.
	 */
	if (l->new_flows_per_s) {
		refill(eng, g);
		if (g->tokens_milli < 1000)
			return CFR_DROP_SUBSCRIBER_RATE_LIMIT;
		g->tokens_milli -= 1000;
	}
	return CFR_DROP_NONE;
}

static struct cfr_guard_entry *guard_of(struct cfr_engine *eng, const struct cfr_flow *f)
{
	return f->guard ? &eng->guard.entries[f->guard] : NULL;
}

void cfr_guard_flow_added(struct cfr_engine *eng, const struct cfr_flow *f, uint8_t proto_idx)
{
	struct cfr_guard_entry *g = guard_of(eng, f);

	if (!g)
		return; /* admit always runs first; nothing to count against */
	g->flows[proto_idx]++;
	if (f->tclass == CFR_TIMEOUT_TCP_EMBRYONIC)
		g->half_open++;
}

void cfr_guard_half_open(struct cfr_engine *eng, const struct cfr_flow *f, int delta)
{
	struct cfr_guard_entry *g = guard_of(eng, f);

	if (g && (delta > 0 || g->half_open > 0))
		g->half_open += (uint32_t)delta;
}

/* <guard>'s datagrams in the fragment table moved by <delta> (frag.c). */
void cfr_guard_frags(struct cfr_engine *eng, uint32_t guard, int delta)
{
	struct cfr_guard_entry *g = &eng->guard.entries[guard];

	if (!guard || (delta < 0 && g->frags == 0))
		return;
	g->frags += (uint32_t)delta;
	if (g->frags == 0)
		guard_idle(eng, guard);
}

bool cfr_guard_has_flows(struct cfr_engine *eng, uint8_t family, const uint8_t key[16])
{
	uint32_t idx = *guard_link(eng, family, key);
	const struct cfr_guard_entry *g = &eng->guard.entries[idx];

	return idx &&
	       (g->flows[CFR_PROTO_TCP] || g->flows[CFR_PROTO_UDP] || g->flows[CFR_PROTO_ICMP]);
}

void cfr_guard_release(struct cfr_engine *eng, uint32_t guard)
{
	if (guard)
		guard_idle(eng, guard);
}

void cfr_guard_flow_removed(struct cfr_engine *eng, const struct cfr_flow *f, uint8_t proto_idx)
{
	struct cfr_guard_entry *g = guard_of(eng, f);

	if (!g)
		return;
	if (g->flows[proto_idx])
		g->flows[proto_idx]--;
	if (f->tclass == CFR_TIMEOUT_TCP_EMBRYONIC && g->half_open)
		g->half_open--;
	guard_idle(eng, f->guard);
}
