/*
 * Complaint matching: regenerate the allocations one record's seed made in
 * a time window and compare each with the complaint's alias and port.
 *
 * The timeline says which counter values were drawn in which seconds of the
 * epoch (second k covers engine time [start + k s, start + k s + 1 s)), so
 * only the values drawn in the window are derived; skipped values (a pair
 * already in use) are derived too, which costs a little work and, very
 * rarely, a spurious candidate, never a missed one.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "records.h"

long cfr_range_match(const struct cfr_engine_config *cfg, const struct cfr_epoch_record *rec,
                     const struct cfr_complaint *c, uint32_t first, uint32_t count, uint32_t t_from,
                     uint32_t t_to, cfr_match_fn fn, void *ctx)
{
	struct cfr_match m = {
	    .from_ms = rec->start_ms + (uint64_t)t_from * 1000,
	    .to_ms = rec->start_ms + ((uint64_t)t_to + 1) * 1000 - 1,
	};
	long derived = 0;
	bool parity = false;
	unsigned i;

	if (rec->family != c->family)
		return 0;
	if (cfg->policy[c->family] == CFR_POLICY_PER_DESTINATION && !c->have_remote)
		return -EDESTADDRREQ;
	if (m.from_ms > c->to_ms || m.to_ms < c->from_ms)
		return 0;
	/*
	 * A mapping of a UDP class keeps the subscriber port's parity (the
	 * engine's alloc.c): its port is the draw's but for the lowest bit. The
	 * record does not say which draws were mappings, so either parity
	 * matches: twice the (tiny) odds of a spurious candidate, never a miss.
	 */
	for (i = 0; i < cfg->n_classes; i++)
		parity |= cfg->classes[i].mapping != CFR_MAPPING_PER_FLOW;
	for (m.counter = first; m.counter - first < count; m.counter++) {
		uint8_t alias[16];
		uint16_t port;

		cfr_derive_alias(cfg, rec->seed, c->family, m.counter,
		                 c->have_remote ? c->remote : NULL, alias, &port);
		derived++;
		if ((port == c->port || (parity && (port ^ c->port) == 1)) &&
		    memcmp(alias, c->alias, c->family == CFR_FAMILY_V4 ? 4 : 16) == 0)
			fn(ctx, rec, &m);
	}
	return derived;
}

long cfr_record_match(const struct cfr_engine_config *cfg, const struct cfr_epoch_record *rec,
                      const struct cfr_complaint *c, cfr_match_fn fn, void *ctx)
{
	uint32_t t_from = 0, t_to = 0, first = 0, count = 0;
	size_t off = 0;
	long derived = 0;
	int ret;

	if (rec->family != c->family)
		return 0;
	if (cfg->policy[c->family] == CFR_POLICY_PER_DESTINATION && !c->have_remote)
		return -EDESTADDRREQ;
	while ((ret = cfr_timeline_next(rec, &off, &t_from, &t_to, &first, &count)) == 1) {
		long n = cfr_range_match(cfg, rec, c, first, count, t_from, t_to, fn, ctx);

		if (n < 0)
			return n;
		derived += n;
	}
	return ret < 0 ? ret : derived;
}
