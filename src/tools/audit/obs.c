/*
 * cfr-audit: turning a source address into the keys an adversary at the
 * front door groups flows by.
 *
 * IPv4: the address. IPv6: outside a known shared egress pool the /64 links
 * (RFC 7721: the prefix names the site, whatever the interface identifier
 * does); inside one the /64 is shared by everybody, so only the full
 * address can link, and the anonymity unit is the /64 (the engine counts
 * anonymity sets per pool prefix for the same reason).
 */
#include <stdlib.h>
#include <string.h>

#include "audit.h"

struct obs *obs_push(struct obs_vec *ov)
{
	if (ov->n == ov->cap) {
		size_t cap = ov->cap ? ov->cap * 2 : 1 << 16;
		struct obs *v = realloc(ov->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		ov->v = v;
		ov->cap = cap;
	}
	memset(&ov->v[ov->n], 0, sizeof(ov->v[0]));
	return &ov->v[ov->n++];
}

void obs_free(struct obs_vec *ov)
{
	free(ov->v);
	memset(ov, 0, sizeof(*ov));
}

void obs_from_view(struct obs *o, const struct pkt_view *v, const struct pool_list *pools)
{
	unsigned i;

	o->port = v->sport;
	if (v->family == CFR_FAMILY_V4) {
		o->addr = o->unit = hash_bytes(v->src, 4, 4);
		return;
	}
	o->flags |= OBS_V6;
	for (i = 0; i < pools->n; i++)
		if (cfr_prefix_contains(&pools->p[i], CFR_FAMILY_V6, v->src))
			o->flags |= OBS_POOLED;
	o->unit = hash_bytes(v->src, 8, 6);
	o->addr = o->flags & OBS_POOLED ? hash_bytes(v->src, 16, 6) : o->unit;
	if (v->label)
		o->flags |= OBS_LABEL;
	o->label = v->label;
}
