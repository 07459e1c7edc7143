/*
 * Traffic classes and their mappings (issue 17, RFC 4787).
 *
 * Per-flow aliases make cfr a "symmetric" NAT: what hides a subscriber's
 * TLS and QUIC visits from a front door, and what breaks STUN, games and
 * hole punching. A class (protocol and destination ports) may instead keep
 * one alias:port per subscriber source address and port:
 *   endpoint-independent mapping  for every remote (RFC 4787 REQ-1);
 *   address-dependent mapping     for every port of one remote address;
 * and filter what may come back:
 *   endpoint-independent  anyone;
 *   address-dependent     a remote address it sent to, any port (REQ-8);
 *   address and port      a remote address and port it sent to.
 *
 * TCP classes may have mappings too, filtered by address and port: each
 * remote is a peer record that opens with the subscriber's SYN and tracks
 * its TCP state like a flow (simultaneous open makes hole punching work),
 * and the mapping itself keeps the established timeout, so that an idle
 * connection never outlives the mapping whose alias:port it uses.
 *
 * Such a mapping is one record in the flow table whose remote is the zero
 * address (endpoint-independent) or the remote address (address-
 * dependent), remote port 0, so both indexes find it with no new table:
 * inside by (subscriber, port, zero or remote, 0), outside by (alias, port,
 * zero or remote, 0). When the filtering is narrower than the mapping,
 * each remote it sends to gets a peer record on the same alias:port, keyed
 * by the remote address (port 0) or address and port: the permission the
 * filter looks up, and the flow the anonymity count, the per-subscriber
 * limits and the timeouts already know. A peer refreshes its mapping on
 * every packet, so a mapping never expires before its peers.
 *
 * The alias and port come from the subscriber's epoch seed and counter
 * like a flow's (policy.c, so the sealed records attribute them): fresh
 * each epoch, uniform over the pool, and never an alias:port a per-flow
 * flow takes (alloc.c keeps flows off mappings). The classes split
 * (protocol, destination port) between them, so a mapping and an older
 * flow of another subscriber on the same alias:port never share an
 * outside tuple either.
 */
#include <string.h>

#include "alloc.h"
#include "flow.h"
#include "guard.h"
#include "mapping.h"
#include "policy.h"

#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

const uint8_t cfr_map_any[16];

const char *cfr_mapping_name(enum cfr_mapping mapping)
{
	static const char *const names[CFR_MAPPING__COUNT] = {
	    [CFR_MAPPING_PER_FLOW] = "per-flow",
	    [CFR_MAPPING_ENDPOINT_INDEPENDENT] = "endpoint-independent",
	    [CFR_MAPPING_ADDRESS_DEPENDENT] = "address-dependent",
	};

	return (unsigned)mapping < CFR_MAPPING__COUNT ? names[mapping] : "unknown";
}

const char *cfr_filtering_name(enum cfr_filtering filtering)
{
	static const char *const names[CFR_FILTERING__COUNT] = {
	    [CFR_FILTERING_ADDRESS_PORT_DEPENDENT] = "address-and-port-dependent",
	    [CFR_FILTERING_ADDRESS_DEPENDENT] = "address-dependent",
	    [CFR_FILTERING_ENDPOINT_INDEPENDENT] = "endpoint-independent",
	};

	return (unsigned)filtering < CFR_FILTERING__COUNT ? names[filtering] : "unknown";
}

void cfr_classes_changed(struct cfr_engine *eng)
{
	unsigned i;

	eng->map_protos = 0;
	for (i = 0; i < eng->cfg.n_classes; i++)
		if (eng->cfg.classes[i].mapping != CFR_MAPPING_PER_FLOW)
			eng->map_protos |= (uint8_t)(1u << eng->cfg.classes[i].proto);
}

static uint8_t filtering_of(const struct cfr_flow *f)
{
	return (uint8_t)((f->in_use >> CFR_FLOW_FILTER_SHIFT) & 3);
}

/*
 * The mapping record of peer <idx>. A UDP peer names it; a TCP peer's
 * field holds its first TSval instead (the timestamp scrubber's), so its
 * mapping is looked up by the key it was made under.
 */
static uint32_t mapping_of(struct cfr_engine *eng, uint32_t idx)
{
	const struct cfr_flow *f = &eng->flow.flows[idx];
	uint32_t m;

	if (f->proto == CFR_IPPROTO_UDP)
		return f->mapping;
	m = cfr_flow_find_inside(
	    eng, f->family, f->proto, cfr_flow_caddr(eng, f, CFR_FLOW_SUB), f->sub_port,
	    f->in_use & CFR_FLOW_ADM ? cfr_flow_caddr(eng, f, CFR_FLOW_REMOTE) : cfr_map_any, 0,
	    NULL);
	return m && (eng->flow.flows[m].in_use & CFR_FLOW_MAPPING) ? m : 0;
}

void cfr_map_recount(struct cfr_engine *eng)
{
	struct cfr_flow *flows = eng->flow.flows;
	uint32_t end = eng->flow.next_fresh, idx;

	for (idx = 1; idx < end; idx++)
		if ((flows[idx].in_use & CFR_FLOW_MAPPING) && flows[idx].proto == CFR_IPPROTO_UDP)
			flows[idx].peers = 0;
	for (idx = 1; idx < end; idx++) {
		const struct cfr_flow *f = &flows[idx];

		if ((f->in_use & CFR_FLOW_PEER) && f->proto == CFR_IPPROTO_UDP && f->mapping &&
		    f->mapping < end && (flows[f->mapping].in_use & CFR_FLOW_MAPPING))
			flows[f->mapping].peers++;
	}
}

void cfr_map_peer_seen(struct cfr_engine *eng, uint32_t idx)
{
	uint32_t m = mapping_of(eng, idx);

	if (m)
		cfr_flow_touch(eng, m, eng->flow.flows[m].tclass);
}

uint32_t cfr_map_out(struct cfr_engine *eng, const uint8_t *buf, const struct cfr_parsed *p,
                     const struct cfr_class *c, enum cfr_drop *why)
{
	const uint8_t *sub = buf + p->src_off, *remote = buf + p->dst_off;
	bool adm = c->mapping == CFR_MAPPING_ADDRESS_DEPENDENT;
	const uint8_t *key = adm ? remote : cfr_map_any;
	uint8_t filt = (uint8_t)(c->filtering << CFR_FLOW_FILTER_SHIFT);
	const uint32_t *bucket = p->bucket_known ? &p->bucket : NULL;
	const uint8_t *peer = NULL;
	uint16_t peer_port = 0;
	union cfr_addr alias;
	uint16_t alias_port;
	uint32_t m, idx, guard;

	/* A peer record when the filter is narrower than the mapping. */
	if (c->filtering == CFR_FILTERING_ADDRESS_PORT_DEPENDENT) {
		peer = remote;
		peer_port = p->dport;
	} else if (c->filtering == CFR_FILTERING_ADDRESS_DEPENDENT && !adm) {
		peer = remote;
	}
	/*
	 * The prefetch hashed the first of these keys (cfr_map_first_key(): the
	 * peer's, else the mapping's), so that lookup starts at its bucket.
	 */
	if (peer) {
		idx = cfr_flow_find_inside(eng, p->family, p->proto, sub, p->sport, peer, peer_port,
		                           bucket);
		if (idx) {
			cfr_map_seen(eng, idx);
			return idx;
		}
		bucket = NULL;
	}
	m = cfr_flow_find_inside(eng, p->family, p->proto, sub, p->sport, key, 0, bucket);
	if (m && (eng->flow.flows[m].in_use & CFR_FLOW_PEER))
		m = mapping_of(eng, m); /* a peer of another class's mapping on the same port */
	if (m && !peer)
		return m;
	/* RFC 5382 REQ-2, as for flows: a stray segment opens nothing. */
	if (p->proto == CFR_IPPROTO_TCP &&
	    (p->tcp_flags & (TCP_SYN | TCP_RST | TCP_ACK)) != TCP_SYN) {
		*why = CFR_DROP_TCP_NOT_SYN;
		return 0;
	}

	/* One new flow, whatever records it takes: one admission, one token. */
	*why = cfr_guard_admit(eng, p->family, sub, cfr_proto_index(p->proto), &guard);
	if (*why != CFR_DROP_NONE)
		return 0;
	if (!m) {
		*why = cfr_alloc_mapping(eng, p->family, p->proto, sub, p->sport, remote,
		                         adm ? remote : NULL, &alias, &alias_port);
		if (*why != CFR_DROP_NONE)
			goto refused;
		m = cfr_flow_create(eng, p->family, p->proto, sub, p->sport, key, 0, &alias,
		                    alias_port, guard,
		                    (uint8_t)(CFR_FLOW_MAPPING | (adm ? CFR_FLOW_ADM : 0) | filt |
		                              (peer ? CFR_FLOW_SHARED : 0)));
		if (!m)
			goto full;
		eng->stats.mappings_created++;
		if (p->proto == CFR_IPPROTO_TCP)
			cfr_flow_touch(eng, m, CFR_TIMEOUT_TCP_ESTABLISHED);
		if (!peer)
			return m;
	}
	memcpy(alias.b, cfr_flow_addr_at(eng, m, CFR_FLOW_ALIAS), p->addr_len);
	alias_port = eng->flow.flows[m].alias_port;
	/* Another subscriber's older flow on this alias:port to this very remote. */
	if (cfr_flow_find_outside(eng, p->family, p->proto, alias.b, alias_port, peer, peer_port,
	                          NULL)) {
		*why = CFR_DROP_POOL_EXHAUSTED;
		goto refused;
	}
	idx = cfr_flow_create(eng, p->family, p->proto, sub, p->sport, peer, peer_port, &alias,
	                      alias_port, guard,
	                      (uint8_t)(CFR_FLOW_PEER | (adm ? CFR_FLOW_ADM : 0) | filt));
	if (!idx)
		goto full;
	if (p->proto == CFR_IPPROTO_UDP) {
		eng->flow.flows[idx].mapping = m;
		eng->flow.flows[m].peers++;
	}
	cfr_flow_touch(eng, m, eng->flow.flows[m].tclass);
	return idx;
full:
	*why = CFR_DROP_TABLE_FULL;
refused:
	cfr_guard_release(eng, guard);
	return 0;
}

/* Does record <idx> belong to the subscriber (the customer: its IPv6 prefix) of <own>? */
static bool own_mapping(const struct cfr_engine *eng, uint32_t idx, const uint8_t *own)
{
	const struct cfr_flow *f = &eng->flow.flows[idx];
	uint8_t a[16], b[16];

	if (!own)
		return false;
	/* A TCP mapping carries no connection of its own: its peers do. */
	if (f->proto != CFR_IPPROTO_UDP)
		return false;
	cfr_subscriber_key(eng, f->family, cfr_flow_caddr(eng, f, CFR_FLOW_SUB), a);
	cfr_subscriber_key(eng, f->family, own, b);
	return memcmp(a, b, sizeof(a)) == 0;
}

uint32_t cfr_map_in(struct cfr_engine *eng, uint8_t family, uint8_t proto, const uint8_t *alias,
                    uint16_t alias_port, const uint8_t *remote, const uint8_t *own,
                    enum cfr_drop *why)
{
	uint32_t idx;

	*why = CFR_DROP_NO_FLOW;
	if (!cfr_class_maps(eng, proto))
		return 0;
	/* An address-dependent filter's peer, or an address-dependent mapping. */
	idx = cfr_flow_find_outside(eng, family, proto, alias, alias_port, remote, 0, NULL);
	if (idx && (eng->flow.flows[idx].in_use & CFR_FLOW_CLASSED)) {
		if (filtering_of(&eng->flow.flows[idx]) != CFR_FILTERING_ADDRESS_PORT_DEPENDENT ||
		    own_mapping(eng, idx, own))
			return idx;
		*why = CFR_DROP_FILTERED;
	}
	idx = cfr_flow_find_outside(eng, family, proto, alias, alias_port, cfr_map_any, 0, NULL);
	if (!idx || !(eng->flow.flows[idx].in_use & CFR_FLOW_MAPPING))
		return 0;
	if (filtering_of(&eng->flow.flows[idx]) == CFR_FILTERING_ENDPOINT_INDEPENDENT ||
	    own_mapping(eng, idx, own))
		return idx;
	*why = CFR_DROP_FILTERED;
	return 0;
}

uint32_t cfr_map_inside(struct cfr_engine *eng, uint8_t family, uint8_t proto, const uint8_t *sub,
                        uint16_t sub_port, const uint8_t *remote)
{
	uint32_t idx;

	if (!cfr_class_maps(eng, proto))
		return 0;
	idx = cfr_flow_find_inside(eng, family, proto, sub, sub_port, remote, 0, NULL);
	if (idx && (eng->flow.flows[idx].in_use & CFR_FLOW_CLASSED))
		return idx;
	idx = cfr_flow_find_inside(eng, family, proto, sub, sub_port, cfr_map_any, 0, NULL);
	return idx && (eng->flow.flows[idx].in_use & CFR_FLOW_MAPPING) ? idx : 0;
}
