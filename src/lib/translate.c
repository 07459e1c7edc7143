/*
 * Translation: outbound (subscriber -> alias), inbound (alias -> subscriber),
 * later fragments, and ICMP/ICMPv6 errors with the packet they quote.
 *
 * Each path finds or creates the flow, then rewrites one endpoint (source on
 * the way out, destination on the way in) with incremental checksum updates
 * (RFC 1624). Lengths never change, so a packet is rewritten in place.
 */
#include <string.h>

#include "alloc.h"
#include "cfr/internal/csum.h"
#include "flow.h"
#include "frag.h"
#include "guard.h"
#include "mapping.h"
#include "parse.h"
#include "scrub.h"
#include "translate.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

static bool is_icmp(uint8_t proto)
{
	return proto == CFR_IPPROTO_ICMP || proto == CFR_IPPROTO_ICMPV6;
}

/*
 * Rewrite the source (<src_side>) or destination endpoint of the packet
 * described by <p> at <buf> to <addr> and, when the packet has one, <port>.
 * Fixes the IPv4 header checksum and the transport checksum when it lies
 * inside the bytes we have (a quoted packet may be cut short). The address
 * delta is summed once for both checksums, and the transport checksum is
 * updated once for address and port.
 */
static void rewrite_endpoint(uint8_t *buf, const struct cfr_parsed *p, bool src_side,
                             const uint8_t *addr, uint16_t port)
{
	uint8_t *field = buf + (src_side ? p->src_off : p->dst_off);
	uint32_t port_off = src_side ? p->sport_off : p->dport_off;
	uint8_t *csum = p->csum_off && p->csum_off + 2 <= p->end ? buf + p->csum_off : NULL;
	bool pseudo = p->proto != CFR_IPPROTO_ICMP; /* ICMPv4 has no pseudo-header */
	bool v4 = p->family == CFR_FAMILY_V4;
	uint32_t d_addr = v4 ? csum_delta(field, addr, 4) : csum_delta(field, addr, 16);
	uint32_t d_l4 = pseudo ? d_addr : 0;
	bool l4_changes = pseudo;
	uint8_t new_port[2];

	if (csum && p->proto == CFR_IPPROTO_UDP && v4 && get16(csum) == 0 && !p->csum_partial)
		csum = NULL; /* IPv4 UDP without checksum stays without one */
	if (!p->has_l4)
		csum = NULL; /* a later fragment: the checksum is in the first */

	if (v4) {
		csum_apply(buf + 10, d_addr);
		memcpy(field, addr, 4);
	} else {
		memcpy(field, addr, 16);
	}

	if (port_off && p->has_l4) {
		put16(new_port, port);
		/*
		 * A partial checksum (offload: the field holds the folded
		 * pseudo-header sum, not yet inverted) only follows the
		 * pseudo-header; the ports are summed later, with the data.
		 */
		if (!p->csum_partial) {
			d_l4 += csum_delta(buf + port_off, new_port, 2);
			l4_changes = true;
		}
		memcpy(buf + port_off, new_port, 2);
	}
	if (!csum || !l4_changes)
		return;
	if (p->csum_partial) {
		put16(csum, (uint16_t)~get16(csum));
		csum_apply(csum, d_l4);
		put16(csum, (uint16_t)~get16(csum));
		return;
	}
	csum_apply(csum, d_l4);
	/* RFC 768: a computed UDP checksum of zero is sent as all ones. */
	if (p->proto == CFR_IPPROTO_UDP && get16(csum) == 0)
		put16(csum, 0xffff);
}

/*
 * TCP progress, just enough for the timeout class: embryonic until the
 * remote answers the SYN, established after, transitory once both sides
 * sent FIN or either sent RST (RFC 5382 §5, RFC 7857 §2.2).
 */
static uint8_t tcp_track(struct cfr_flow *f, uint8_t dir, uint8_t flags)
{
	if (dir == CFR_DIR_OUT) {
		/* A new connection reusing the tuple of a closing one starts afresh. */
		if ((flags & (TCP_SYN | TCP_ACK)) == TCP_SYN &&
		    (f->tcp_state & (CFR_TCP_FIN_OUT | CFR_TCP_FIN_IN | CFR_TCP_RST)))
			f->tcp_state = 0;
		if ((flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
			f->tcp_state |= CFR_TCP_SYN_OUT;
		if (flags & TCP_FIN)
			f->tcp_state |= CFR_TCP_FIN_OUT;
	} else {
		if ((flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK))
			f->tcp_state |= CFR_TCP_SYNACK_IN;
		if (flags & TCP_FIN)
			f->tcp_state |= CFR_TCP_FIN_IN;
	}
	if (flags & TCP_RST)
		f->tcp_state |= CFR_TCP_RST;

	if ((f->tcp_state & CFR_TCP_RST) || (f->tcp_state & (CFR_TCP_FIN_OUT | CFR_TCP_FIN_IN)) ==
	                                        (CFR_TCP_FIN_OUT | CFR_TCP_FIN_IN))
		return CFR_TIMEOUT_TCP_TRANSITORY;
	if (f->tcp_state & CFR_TCP_SYNACK_IN)
		return CFR_TIMEOUT_TCP_ESTABLISHED;
	return CFR_TIMEOUT_TCP_EMBRYONIC;
}

static void flow_seen(struct cfr_engine *eng, uint32_t idx, uint8_t dir, const struct cfr_parsed *p)
{
	struct cfr_flow *f = &eng->flow.flows[idx];
	uint8_t tclass = f->tclass;

	if (p->proto == CFR_IPPROTO_TCP) {
		tclass = tcp_track(f, dir, p->tcp_flags);
		/* Half-open is a limited resource: keep the subscriber's count exact. */
		if ((f->tclass == CFR_TIMEOUT_TCP_EMBRYONIC) !=
		    (tclass == CFR_TIMEOUT_TCP_EMBRYONIC))
			cfr_guard_half_open(eng, f, tclass == CFR_TIMEOUT_TCP_EMBRYONIC ? 1 : -1);
	}
	cfr_flow_touch(eng, idx, tclass);
}

static enum cfr_drop translate_out(struct cfr_engine *eng, struct cfr_pkt *pkt,
                                   const struct cfr_parsed *p)
{
	uint8_t *buf = pkt->data;
	const uint8_t *sub = buf + p->src_off, *remote = buf + p->dst_off;
	uint16_t remote_port = is_icmp(p->proto) ? 0 : p->dport;
	const struct cfr_class *cls;
	struct cfr_frag *frag = NULL;
	enum cfr_drop reason;
	struct cfr_flow *f;
	uint32_t idx;

	/* Only echo requests open ICMP flows; a subscriber never answers an alias's echo. */
	if (is_icmp(p->proto) && p->icmp_kind != CFR_ICMP_ECHO_REQUEST)
		return CFR_DROP_UNSUPPORTED_ICMP;

	/* A class with a mapping of its own (mapping.c): STUN, games, peer-to-peer. */
	cls = is_icmp(p->proto) ? NULL : cfr_class_of(eng, p->proto, p->dport);
	if (cls) {
		idx = cfr_map_out(eng, buf, p, cls, &reason);
		if (!idx)
			return reason;
	} else {
		idx = cfr_flow_find_inside(eng, p->family, p->proto, sub, p->sport, remote,
		                           remote_port, p->bucket_known ? &p->bucket : NULL);
	}
	if (!idx) {
		union cfr_addr alias;
		uint16_t alias_port;
		uint32_t guard;

		/* RFC 5382 REQ-2 lets us require a SYN: a stray segment opens nothing. */
		if (p->proto == CFR_IPPROTO_TCP &&
		    (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN)
			return CFR_DROP_TCP_NOT_SYN;
		reason = cfr_guard_admit(eng, p->family, sub, cfr_proto_index(p->proto), &guard);
		if (reason != CFR_DROP_NONE)
			return reason;
		reason = cfr_alloc_alias(eng, p->family, p->proto, sub, remote, remote_port, &alias,
		                         &alias_port);
		if (reason == CFR_DROP_NONE) {
			idx = cfr_flow_create(eng, p->family, p->proto, sub, p->sport, remote,
			                      remote_port, &alias, alias_port, guard, 0);
			if (!idx)
				reason = CFR_DROP_TABLE_FULL;
		}
		if (reason != CFR_DROP_NONE) {
			cfr_guard_release(eng, guard);
			return reason;
		}
	}
	if (p->frag) {
		reason = cfr_frag_remember(eng, CFR_DIR_OUT, buf, p, idx, &frag);
		if (reason != CFR_DROP_NONE)
			return reason;
	}
	flow_seen(eng, idx, CFR_DIR_OUT, p);
	f = &eng->flow.flows[idx];
	rewrite_endpoint(buf, p, true, cfr_flow_addr_at(eng, idx, CFR_FLOW_ALIAS), f->alias_port);
	cfr_scrub_out(eng, buf, p, f, frag);
	pkt->flow = cfr_flow_offloadable(f) ? idx : 0;
	return CFR_DROP_NONE;
}

/* <own>: for a hairpinned packet, the sending subscriber (cfr_map_in()). */
static enum cfr_drop translate_in(struct cfr_engine *eng, struct cfr_pkt *pkt,
                                  const struct cfr_parsed *p, const uint8_t *own)
{
	uint8_t *buf = pkt->data;
	const uint8_t *remote = buf + p->src_off, *alias = buf + p->dst_off;
	uint16_t remote_port = is_icmp(p->proto) ? 0 : p->sport;
	struct cfr_flow *f;
	uint32_t idx;

	/* An echo request to an alias is unsolicited, like any packet without a flow. */
	if (is_icmp(p->proto) && p->icmp_kind != CFR_ICMP_ECHO_REPLY)
		return CFR_DROP_NO_FLOW;

	idx = cfr_flow_find_outside(eng, p->family, p->proto, alias, p->dport, remote, remote_port,
	                            p->bucket_known ? &p->bucket : NULL);
	if (!idx && !is_icmp(p->proto)) {
		enum cfr_drop why;

		idx = cfr_map_in(eng, p->family, p->proto, alias, p->dport, remote, own, &why);
		if (!idx)
			return why;
	}
	if (!idx)
		return CFR_DROP_NO_FLOW;
	if (p->frag) {
		struct cfr_frag *frag;
		enum cfr_drop reason = cfr_frag_remember(eng, CFR_DIR_IN, buf, p, idx, &frag);

		if (reason != CFR_DROP_NONE)
			return reason;
	}
	flow_seen(eng, idx, CFR_DIR_IN, p);
	cfr_map_seen(eng, idx);
	f = &eng->flow.flows[idx];
	rewrite_endpoint(buf, p, false, cfr_flow_addr_at(eng, idx, CFR_FLOW_SUB), f->sub_port);
	cfr_scrub_in(eng, buf, p, f);
	pkt->flow = cfr_flow_offloadable(f) ? idx : 0;
	return CFR_DROP_NONE;
}

/* A later fragment: follow the flow its first fragment was translated with. */
static enum cfr_drop translate_fragment(struct cfr_engine *eng, uint8_t *buf,
                                        const struct cfr_parsed *p, uint8_t dir)
{
	struct cfr_frag *frag = cfr_frag_find(eng, dir, buf, p);
	struct cfr_flow *f = &eng->flow.flows[frag ? frag->flow : 0];
	bool out = dir == CFR_DIR_OUT;
	/* An endpoint-independent mapping has no remote of its own: the table entry names one. */
	bool any_remote = (f->in_use & (CFR_FLOW_MAPPING | CFR_FLOW_ADM)) == CFR_FLOW_MAPPING;

	/* The flow may have expired and its record been reused since. */
	if (!frag || !f->in_use || f->proto != frag->l4_proto || f->family != p->family ||
	    (!(any_remote && !out) &&
	     memcmp(cfr_flow_caddr(eng, f, out ? CFR_FLOW_SUB : CFR_FLOW_REMOTE), buf + p->src_off,
	            p->addr_len) != 0) ||
	    (!(any_remote && out) &&
	     memcmp(cfr_flow_caddr(eng, f, out ? CFR_FLOW_REMOTE : CFR_FLOW_ALIAS),
	            buf + p->dst_off, p->addr_len) != 0))
		return CFR_DROP_FRAG_NO_FLOW;
	rewrite_endpoint(buf, p, out, cfr_flow_caddr(eng, f, out ? CFR_FLOW_ALIAS : CFR_FLOW_SUB),
	                 0);
	if (out)
		cfr_scrub_out(eng, buf, p, f, frag);
	cfr_frag_arrived(eng, frag, p);
	return CFR_DROP_NONE;
}

static uint16_t icmp_checksum(const uint8_t *buf, const struct cfr_parsed *p)
{
	uint32_t len = p->end - p->l4_off;
	uint32_t sum = 0;

	if (p->family == CFR_FAMILY_V6)
		sum = csum_pseudo(buf + p->src_off, buf + p->dst_off, 16, CFR_IPPROTO_ICMPV6, len);
	return csum_fold(csum_add(sum, buf + p->l4_off, len));
}

/*
 * Shorten an outbound error to its headers and the first 8 bytes of the
 * quoted transport header: all RFC 792 promises and all a remote stack reads
 * (ports, TCP sequence number). What lies beyond are fields the scrubbers
 * only handle on the wire (TCP timestamps: a quoted TSecr is the
 * subscriber's raw clock) and payload nobody outside needs back. The outer
 * length fields follow; the caller recomputes the ICMP checksum.
 */
static uint32_t quote_truncate(uint8_t *buf, const struct cfr_parsed *p, uint32_t inner_off,
                               struct cfr_parsed *q)
{
	uint32_t end = inner_off + q->l4_off + 8;

	if (end >= p->end)
		return p->end;
	q->end = q->l4_off + 8;
	if (q->csum_off + 2 > q->end)
		q->csum_off = 0;
	if (p->family == CFR_FAMILY_V4) {
		uint8_t len[2];

		put16(len, (uint16_t)(end));
		csum_replace(buf + 10, buf + 2, len, 2);
		memcpy(buf + 2, len, 2);
	} else {
		put16(buf + 4, (uint16_t)(end - 40));
	}
	return end;
}

/*
 * An ICMP error about a packet of one of our flows (RFC 5508 §7, RFC 7857
 * §2.9). Inbound, the quoted packet is the one we sent: its source is the
 * alias and must become the subscriber again, or PMTUD breaks. Outbound,
 * the quoted packet is one a subscriber was sent: its destination is the
 * subscriber and must become the alias, or the error names who it was.
 *
 * An outbound error may come from the subscriber, from a router on its
 * access side, or from the gateway's own stack: the kernel forwards what
 * cfrd restored once more, and its Time Exceeded, Fragmentation Needed and
 * unreachables about that hop are routed back through cfrd (docs/engine.md).
 * Whoever sent it, it leaves as if the alias had: the alias as source, the
 * quote cut to what the remote needs, and the outer header scrubbed like
 * any packet of the flow.
 */
static enum cfr_drop translate_icmp_error(struct cfr_engine *eng, struct cfr_pkt *pkt,
                                          const struct cfr_parsed *p)
{
	uint8_t *buf = pkt->data;
	uint32_t inner_off = p->l4_off + 8;
	uint8_t *inner = buf + inner_off;
	struct cfr_parsed q, outer = *p;
	struct cfr_flow *f;
	uint16_t remote_port;
	enum cfr_drop reason;
	uint32_t idx;

	if (p->frag)
		return CFR_DROP_FRAG_ICMP_ERROR;
	if (icmp_checksum(buf, p) != 0)
		return CFR_DROP_ICMP_BAD_CHECKSUM;
	if (cfr_parse(inner, p->end - inner_off, true, &q) != CFR_DROP_NONE ||
	    q.family != p->family || !q.has_l4 || q.icmp_kind == CFR_ICMP_ERROR)
		return CFR_DROP_ICMP_BAD_INNER;

	if (pkt->dir == CFR_DIR_IN) {
		if (memcmp(buf + p->dst_off, inner + q.src_off, p->addr_len) != 0)
			return CFR_DROP_ICMP_BAD_INNER;
		remote_port = is_icmp(q.proto) ? 0 : q.dport;
		idx = cfr_flow_find_outside(eng, q.family, q.proto, inner + q.src_off, q.sport,
		                            inner + q.dst_off, remote_port, NULL);
		/* The mapping's filter decides, as for the packet the error is about. */
		if (!idx && !is_icmp(q.proto))
			idx = cfr_map_in(eng, q.family, q.proto, inner + q.src_off, q.sport,
			                 inner + q.dst_off, NULL, &reason);
		if (!idx)
			return CFR_DROP_ICMP_NO_FLOW;
		f = &eng->flow.flows[idx];
		rewrite_endpoint(buf, p, false, cfr_flow_caddr(eng, f, CFR_FLOW_SUB), 0);
		rewrite_endpoint(inner, &q, true, cfr_flow_caddr(eng, f, CFR_FLOW_SUB),
		                 f->sub_port);
	} else {
		if (memcmp(buf + p->dst_off, inner + q.src_off, p->addr_len) != 0)
			return CFR_DROP_ICMP_BAD_INNER; /* an error goes back to the quoted sender
			                                 */
		remote_port = is_icmp(q.proto) ? 0 : q.sport;
		idx = cfr_flow_find_inside(eng, q.family, q.proto, inner + q.dst_off, q.dport,
		                           inner + q.src_off, remote_port, NULL);
		if (!idx && !is_icmp(q.proto))
			idx = cfr_map_inside(eng, q.family, q.proto, inner + q.dst_off, q.dport,
			                     inner + q.src_off);
		if (!idx)
			return CFR_DROP_ICMP_NO_FLOW;
		reason = cfr_guard_error_sender(eng, pkt, p, inner + q.dst_off);
		if (reason != CFR_DROP_NONE)
			return reason;
		f = &eng->flow.flows[idx];
		outer.end = quote_truncate(buf, p, inner_off, &q);
		pkt->len = outer.end;
		rewrite_endpoint(buf, &outer, true, cfr_flow_caddr(eng, f, CFR_FLOW_ALIAS), 0);
		rewrite_endpoint(inner, &q, false, cfr_flow_caddr(eng, f, CFR_FLOW_ALIAS),
		                 f->alias_port);
		cfr_scrub_out(eng, buf, &outer, f, NULL);
	}
	/* Verified above, so recomputing cannot launder a corrupted message. */
	put16(buf + p->l4_off + 2, 0);
	put16(buf + p->l4_off + 2, icmp_checksum(buf, &outer));
	return CFR_DROP_NONE;
}

/* One packet, by kind and direction; <own> as translate_in() takes it. */
static enum cfr_drop translate(struct cfr_engine *eng, struct cfr_pkt *pkt,
                               const struct cfr_parsed *p, const uint8_t *own)
{
	if (p->icmp_kind == CFR_ICMP_ERROR)
		return translate_icmp_error(eng, pkt, p);
	if (!p->has_l4)
		return translate_fragment(eng, pkt->data, p, pkt->dir);
	return pkt->dir == CFR_DIR_OUT ? translate_out(eng, pkt, p)
	                               : translate_in(eng, pkt, p, own);
}

/*
 * Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8): a subscriber's packet to
 * another subscriber's alias is translated twice inside the gateway, out
 * as the sender's (its alias for that destination, in its class), then in
 * as to any alias (the receiver's mapping and filter decide), so the
 * receiver sees the sender's alias and never its address. An ICMP error
 * about a hairpinned packet takes the same two steps: its quote names the
 * receiver's alias and then the sender's subscriber address again.
 */
enum cfr_drop cfr_translate_hairpin(struct cfr_engine *eng, struct cfr_pkt *pkt,
                                    const struct cfr_parsed *p)
{
	struct cfr_parsed out = *p, q;
	union cfr_addr own;
	enum cfr_drop reason;

	memcpy(own.b, pkt->data + p->src_off, p->addr_len);
	/* The prefetch hashed the inbound key (the packet is to an alias): not this one. */
	out.bucket_known = false;
	pkt->dir = CFR_DIR_OUT;
	reason = cfr_guard_packet(eng, pkt, &out);
	if (reason == CFR_DROP_NONE)
		reason = translate(eng, pkt, &out, NULL);
	if (reason != CFR_DROP_NONE)
		return reason;
	/* Offsets stay; ports and, for an error, the quote's length changed. */
	reason = cfr_parse(pkt->data, pkt->len, false, &q);
	if (reason != CFR_DROP_NONE)
		return reason;
	q.csum_partial = p->csum_partial;
	pkt->dir = CFR_DIR_IN;
	reason = translate(eng, pkt, &q, own.b);
	/* Sent to an alias and port nobody holds: counted apart from the internet's. */
	if (reason == CFR_DROP_NO_FLOW || reason == CFR_DROP_ICMP_NO_FLOW)
		reason = CFR_DROP_HAIRPIN;
	/* Both legs' flows are the engine's: no offload carries half of one. */
	pkt->flow = 0;
	/* Read from a subscriber; forwarded, it leaves towards one. */
	if (reason == CFR_DROP_NONE)
		eng->stats.hairpinned++;
	else
		pkt->dir = CFR_DIR_OUT;
	return reason;
}

enum cfr_drop cfr_translate(struct cfr_engine *eng, struct cfr_pkt *pkt, const struct cfr_parsed *p)
{
	return translate(eng, pkt, p, NULL);
}
