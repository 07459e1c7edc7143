/*
 * mapping.c: traffic classes, and the endpoint-independent and
 * address-dependent mappings of the classes that have them (issue 17).
 * Called by translate.c (each TCP/UDP packet of a class with a mapping)
 * and alloc.c (what a new per-flow alias must stay clear of).
 */
#ifndef CFR_MAPPING_H
#define CFR_MAPPING_H

#include <stdbool.h>
#include <stdint.h>

#include "engine-t.h"
#include "parse.h"

/* The zero address: the remote of an endpoint-independent mapping's record. */
extern const uint8_t cfr_map_any[16];

/*
 * The class of a TCP or UDP packet of IP protocol <proto> to <dport>, or
 * NULL: per-flow. Only classes with a mapping of their own are returned.
 * Inline: every outbound TCP and UDP packet asks, and a few compares are
 * cheaper than the call.
 */
static inline const struct cfr_class *cfr_class_of(const struct cfr_engine *eng, uint8_t proto,
                                                   uint16_t dport)
{
	const struct cfr_engine_config *cfg = &eng->cfg;
	uint8_t pi = proto == CFR_IPPROTO_TCP ? CFR_PROTO_TCP : CFR_PROTO_UDP;
	unsigned i;

	if (!(eng->map_protos & (1u << pi)))
		return NULL;
	for (i = 0; i < cfg->n_classes; i++) {
		const struct cfr_class *c = &cfg->classes[i];

		if (c->proto == pi && dport >= c->port_min && dport <= c->port_max)
			return c->mapping == CFR_MAPPING_PER_FLOW ? NULL : c;
	}
	return NULL;
}

/* Does any class of IP protocol <proto> have a mapping? */
static inline bool cfr_class_maps(const struct cfr_engine *eng, uint8_t proto)
{
	if (proto == CFR_IPPROTO_TCP)
		return eng->map_protos & (1u << CFR_PROTO_TCP);
	return proto == CFR_IPPROTO_UDP && (eng->map_protos & (1u << CFR_PROTO_UDP));
}

/* eng->cfg's classes changed (creation, reload): which protocols have mappings. */
void cfr_classes_changed(struct cfr_engine *eng);

/*
 * The record an outbound packet of class <c> is translated with: its
 * mapping, or its peer record under it; created when new. 0 with the
 * reason in <*why> when refused.
 */
uint32_t cfr_map_out(struct cfr_engine *eng, const uint8_t *buf, const struct cfr_parsed *p,
                     const struct cfr_class *c, enum cfr_drop *why);

/*
 * An inbound packet from <remote> to <alias>:<alias_port> that matched no
 * record exactly: the mapping or peer record its filtering lets it through
 * to, or 0 with <*why> (FILTERED: a mapping holds that alias and port;
 * NO_FLOW: nothing does). <own>, for a hairpinned packet, is the sending
 * subscriber's address: a subscriber's own mappings are not filtered from
 * each other (RFC 5780's hairpinning test sends from a second socket).
 */
uint32_t cfr_map_in(struct cfr_engine *eng, uint8_t family, uint8_t proto, const uint8_t *alias,
                    uint16_t alias_port, const uint8_t *remote, const uint8_t *own,
                    enum cfr_drop *why);

/*
 * The record of subscriber <sub>:<sub_port> for <remote>, when no record
 * matched exactly: its peer record or mapping (for an outbound ICMP error
 * quoting what the remote sent).
 */
uint32_t cfr_map_inside(struct cfr_engine *eng, uint8_t family, uint8_t proto, const uint8_t *sub,
                        uint16_t sub_port, const uint8_t *remote);

/*
 * The inside key an outbound packet of class <c> to <remote>:<dport> is
 * looked up by first: its peer record's (the remote, and the port under
 * address-and-port-dependent filtering), or the mapping's (the zero address,
 * or the remote for an address-dependent mapping; port 0). The prefetch
 * hashes the same key, so the lookup finds its bucket already computed.
 */
static inline void cfr_map_first_key(const struct cfr_class *c, const uint8_t *remote,
                                     uint16_t dport, const uint8_t **key, uint16_t *port)
{
	*port = 0;
	*key = remote;
	if (c->filtering == CFR_FILTERING_ADDRESS_PORT_DEPENDENT)
		*port = dport;
	else if (c->filtering == CFR_FILTERING_ENDPOINT_INDEPENDENT &&
	         c->mapping == CFR_MAPPING_ENDPOINT_INDEPENDENT)
		*key = cfr_map_any;
}

void cfr_map_peer_seen(struct cfr_engine *eng, uint32_t idx);

/*
 * Count every UDP mapping's peers again (struct cfr_flow's <peers>), for
 * a table taken over from a cfrd that did not keep the counts.
 */
void cfr_map_recount(struct cfr_engine *eng);

/* A packet used record <idx>: a peer keeps its mapping alive too. */
static inline void cfr_map_seen(struct cfr_engine *eng, uint32_t idx)
{
	if (eng->flow.flows[idx].in_use & CFR_FLOW_PEER)
		cfr_map_peer_seen(eng, idx);
}

#endif
