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

/* (7/8)^128 < 4e-8: even a pool with one free port in eight is found. */
#define ALLOC_TRIES 128

enum cfr_drop cfr_alloc_alias(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                              const uint8_t *sub, const uint8_t *remote, uint16_t remote_port,
                              union cfr_addr *alias, uint16_t *alias_port)
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
		if (!cfr_flow_find_outside(eng, family, proto, alias->b, *alias_port, remote,
		                           remote_port, NULL))
			return CFR_DROP_NONE;
	}
	if (fresh)
		cfr_acct_forget_new(eng, s);
	return CFR_DROP_POOL_EXHAUSTED;
}
