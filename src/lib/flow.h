/*
 * The flow table (flow.c): lookup by inside or outside tuple, creation,
 * LRU touch and expiry, and a flow's addresses. Called by engine.c
 * (prefetch, expiry), translate.c, alloc.c (collision checks), and scrub.c
 * and anon.c (a flow's addresses and label).
 */
#ifndef CFR_FLOW_H
#define CFR_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "addr-t.h"
#include "engine-t.h"
#include "parse.h"

/* Address <which> (CFR_FLOW_*) of flow <f>, 4 or 16 bytes by its family. */
static inline uint8_t *cfr_flow_addr(const struct cfr_engine *eng, struct cfr_flow *f, int which)
{
	if (f->family == CFR_FAMILY_V4)
		return f->v4[which];
	return eng->flow.flows6[f - eng->flow.flows].addr[which];
}

/*
 * The same by index, for the packet path: with records of two sizes, going
 * from a pointer back to the index costs a division on every call.
 */
static inline uint8_t *cfr_flow_addr_at(const struct cfr_engine *eng, uint32_t idx, int which)
{
	if (eng->flow.flows[idx].family == CFR_FAMILY_V4)
		return eng->flow.flows[idx].v4[which];
	return eng->flow.flows6[idx].addr[which];
}

static inline const uint8_t *cfr_flow_caddr(const struct cfr_engine *eng, const struct cfr_flow *f,
                                            int which)
{
	if (f->family == CFR_FAMILY_V4)
		return f->v4[which];
	return eng->flow.flows6[f - eng->flow.flows].addr[which];
}

/*
 * May an offload carry record <f>'s packets? A per-flow flow, or a UDP
 * peer (mapping.c): one remote's share of a mapping, whose packets have
 * one tuple on each side. A mapping record stands for many remotes, and a
 * TCP peer's mapping is found by lookup, not by index (offload_kept()
 * keeps a carried peer's mapping alive): both stay in the engine.
 */
static inline bool cfr_flow_offloadable(const struct cfr_flow *f)
{
	return !(f->in_use & CFR_FLOW_CLASSED) ||
	       ((f->in_use & CFR_FLOW_PEER) && f->proto == CFR_IPPROTO_UDP);
}

/* Allocate the flow table for eng->cfg (0 or -ENOMEM; cfr_flow_free() either way). */
int cfr_flow_init(struct cfr_engine *eng);
void cfr_flow_free(struct cfr_engine *eng);

uint32_t cfr_flow_find_inside(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                              const uint8_t *sub, uint16_t sub_port, const uint8_t *remote,
                              uint16_t remote_port, const uint32_t *bucket);
uint32_t cfr_flow_find_outside(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                               const uint8_t *alias, uint16_t alias_port, const uint8_t *remote,
                               uint16_t remote_port, const uint32_t *bucket);
uint32_t cfr_flow_create(struct cfr_engine *eng, uint8_t family, uint8_t proto, const uint8_t *sub,
                         uint16_t sub_port, const uint8_t *remote, uint16_t remote_port,
                         const union cfr_addr *alias, uint16_t alias_port, uint32_t guard,
                         uint8_t flags);
void cfr_flow_touch(struct cfr_engine *eng, uint32_t idx, uint8_t tclass);
void cfr_flow_expire(struct cfr_engine *eng);
bool cfr_flow_bucket_of(const struct cfr_engine *eng, const uint8_t *buf, struct cfr_parsed *p,
                        uint8_t dir, uint32_t **table, uint32_t *bucket);

uint32_t cfr_flow_label(const struct cfr_engine *eng, const struct cfr_flow *f);
uint32_t cfr_flow_label_of(const struct cfr_engine *eng, const struct cfr_flow *f);

#endif
