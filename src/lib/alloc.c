/*
 * Alias choice for a new flow: the subscriber's epoch seed and allocation
 * counter give a pseudo-random alias and port (policy.c); a pair whose
 * outside tuple is already taken is skipped and the next counter value
 * tried (RFC 6056 algorithm 1's "random, check, retry", with every candidate
 * reproducible by cfr-lookup). The outside tuple includes the remote address
 * and port, so one alias:port serves many remotes at once, as NAT44-ED does.
 * The search is bounded: a full pool costs ALLOC_TRIES lookups, no more.
 */
#include "alloc.h"
#include "acct.h"
#include "flow.h"
#include "mapping.h"

/* (7/8)^128 < 4e-8: even a pool with one free port in eight is found. */
#define ALLOC_TRIES 128

enum cfr_drop cfr_alloc_alias(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                              const uint8_t *sub, const uint8_t *remote, uint16_t remote_port,
                              union cfr_addr *alias, uint16_t *alias_port)
{
	struct cfr_sub_state *s;
	bool fresh, maps;
	unsigned i;

	if (family == CFR_FAMILY_V4 ? eng->cfg.n_pool4 == 0 : eng->cfg.n_pool6 == 0)
		return CFR_DROP_POOL_EXHAUSTED;
	s = cfr_acct_subscriber(eng, family, sub);
	if (!s)
		return CFR_DROP_SUBSCRIBER_TABLE_FULL;
	fresh = s->counter == 0;
	/* A mapping's alias:port is its own for every remote: a flow never takes it. */
	maps = cfr_class_maps(eng, proto);

	for (i = 0; i < ALLOC_TRIES; i++) {
		cfr_derive_alias(&eng->cfg, s->seed, family, s->counter, remote, alias->b,
		                 alias_port);
		cfr_acct_drew(eng, s);
		if (!cfr_flow_find_outside(eng, family, proto, alias->b, *alias_port, remote,
		                           remote_port, NULL) &&
		    (!maps || !cfr_flow_find_outside(eng, family, proto, alias->b, *alias_port,
		                                     cfr_map_any, 0, NULL)))
			return CFR_DROP_NONE;
	}
	if (fresh)
		cfr_acct_forget_new(eng, s);
	return CFR_DROP_POOL_EXHAUSTED;
}

/*
 * RFC 4787 REQ-4 asks for port parity (RTP on even ports, RTCP on odd). It
 * costs nothing here: the draw stays uniform over the ports of one parity,
 * and the bit it carries is the subscriber's own port's, which the remote
 * sees in the application's payload anyway (or random, for an ephemeral
 * port). Contiguity (RTCP on the next port) is not kept: it would make two
 * draws depend on each other, and RTP muxes RTCP on one port today.
 * cfr-lookup accepts either parity of a regenerated port (match.c).
 */
static uint16_t with_parity(const struct cfr_engine_config *cfg, uint16_t port, uint16_t sub_port)
{
	uint16_t q = (uint16_t)(port ^ ((port ^ sub_port) & 1));

	return q < cfg->port_min || q > cfg->port_max ? port : q;
}

enum cfr_drop cfr_alloc_mapping(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                                const uint8_t *sub, uint16_t sub_port, const uint8_t *remote,
                                const uint8_t *key, union cfr_addr *alias, uint16_t *alias_port)
{
	struct cfr_sub_state *s;
	bool fresh;
	unsigned i;

	if (family == CFR_FAMILY_V4 ? eng->cfg.n_pool4 == 0 : eng->cfg.n_pool6 == 0)
		return CFR_DROP_POOL_EXHAUSTED;
	s = cfr_acct_subscriber(eng, family, sub);
	if (!s)
		return CFR_DROP_SUBSCRIBER_TABLE_FULL;
	fresh = s->counter == 0;

	for (i = 0; i < ALLOC_TRIES; i++) {
		cfr_derive_alias(&eng->cfg, s->seed, family, s->counter, remote, alias->b,
		                 alias_port);
		cfr_acct_drew(eng, s);
		*alias_port = with_parity(&eng->cfg, *alias_port, sub_port);
		/* No endpoint-independent mapping there, nor one for the same remote. */
		if (cfr_flow_find_outside(eng, family, proto, alias->b, *alias_port, cfr_map_any, 0,
		                          NULL) ||
		    (key && cfr_flow_find_outside(eng, family, proto, alias->b, *alias_port, key, 0,
		                                  NULL)))
			continue;
		return CFR_DROP_NONE;
	}
	if (fresh)
		cfr_acct_forget_new(eng, s);
	return CFR_DROP_POOL_EXHAUSTED;
}
