/*
 * Scrubbing auxiliary signals that re-link flows after the address changed
 * (MISSION.md, "Known limits"): TCP timestamps, IPv4 identification, TTL /
 * hop limit, IPv6 flow label. Payloads, windows, sequence numbers and other
 * options are left alone. Each scrubber is switchable and counted.
 *
 * The TCP timestamp modulation starts as OpenBSD pf's: a random offset per
 * flow, added to TSval on the way out and removed from TSecr on the way
 * back, so the remote's PAWS and RTT measurement keep working while TSvals
 * of two flows from one host are no longer related. An offset alone leaves
 * the rate: a front door that watches a long flow estimates the host's
 * clock skew from its slope and links flows of one host (Kohno et al.;
 * cfr-audit measured about 100 times chance, docs/privacy.md). So each flow
 * also gets a rate of its own, 1 to 2 times the subscriber's: the remote
 * sees TSval = offset + rate * (TSval - first TSval), a clock of 1 to 2 kHz
 * where the host ran at 1 kHz, whose skew is the flow's draw, not the
 * host's crystal. A rate of at least 1 keeps the map one to one, so every
 * echoed TSecr maps back exactly to the TSval the subscriber sent (its RTT
 * samples and undo logic stay right); TSvals stay monotonic and wrap after
 * 12 days or more, far beyond any MSL, so PAWS holds (RFC 7323 §5.4).
 */
#include <string.h>

#include "cfr/internal/csum.h"
#include "flow.h"
#include "parse.h"
#include "rng.h"
#include "scrub.h"

#define TCPOPT_EOL       0
#define TCPOPT_NOP       1
#define TCPOPT_TIMESTAMP 8
#define TCP_SYN          0x02
#define TCP_ACK          0x10

/* Offset of the timestamp option in the TCP header at <l4>, or 0. */
static uint32_t find_timestamp(const uint8_t *buf, const struct cfr_parsed *p)
{
	const uint8_t *l4 = buf + p->l4_off;
	uint32_t hlen = (uint32_t)(l4[12] >> 4) * 4, off = 20;

	/* parse.c guaranteed hlen bytes are present for a packet we translate. */
	if (hlen >= 32 && l4[20] == TCPOPT_NOP && l4[21] == TCPOPT_NOP &&
	    l4[22] == TCPOPT_TIMESTAMP && l4[23] == 10)
		return p->l4_off + 22; /* the layout of nearly every segment (RFC 7323 App. A) */
	while (off < hlen) {
		uint8_t kind = l4[off];

		if (kind == TCPOPT_EOL)
			break;
		if (kind == TCPOPT_NOP) {
			off++;
			continue;
		}
		if (off + 2 > hlen || l4[off + 1] < 2 || off + l4[off + 1] > hlen)
			break; /* malformed options: leave them as they are */
		if (kind == TCPOPT_TIMESTAMP && l4[off + 1] == 10)
			return p->l4_off + off;
		off += l4[off + 1];
	}
	return 0;
}

/*
 * Add <delta> to the 32-bit field at <off>. The checksum sums 16-bit words
 * from the (even) start of the segment, so a field at an odd offset (an
 * option after a single NOP) is updated through the aligned 6 bytes around
 * it rather than through misaligned words. Each case has a fixed length so
 * that the checksum update unrolls: this runs for nearly every TCP segment.
 */
static void add32(uint8_t *buf, uint32_t off, const struct cfr_parsed *p, uint32_t delta)
{
	uint32_t v = get32(buf + off) + delta;
	/* A partial checksum is completed later, over the data as it will be. */
	uint8_t *csum = p->csum_partial ? NULL : buf + p->csum_off;
	uint8_t new[6];

	if (off & 1) {
		uint8_t *start = buf + off - 1;

		new[0] = start[0];
		put32(new + 1, v);
		new[5] = start[5];
		if (csum)
			csum_replace(csum, start, new, 6);
		memcpy(start, new, 6);
		return;
	}
	put32(new, v);
	if (csum)
		csum_replace(csum, buf + off, new, 4);
	memcpy(buf + off, new, 4);
}

/*
 * The subscriber's TSval <tsval> as the remote sees it. A SYN starts a
 * connection, and with it the clock's origin: a tuple reused while the old
 * connection's state lingers (a host that rebooted, a home router that
 * forgot it) must not scale from the old origin, or a TSval below it wraps
 * and its echo maps back to a value the host never sent.
 */
static uint32_t tsval_out(struct cfr_flow *f, uint32_t tsval, uint8_t tcp_flags)
{
	if (!(f->tcp_state & CFR_TCP_TS_BASE) || (tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
		f->ts_base = tsval;
		f->tcp_state |= CFR_TCP_TS_BASE;
	}
	return f->ts_offset +
	       (uint32_t)(((uint64_t)(tsval - f->ts_base) * (TS_RATE_ONE + f->ts_rate)) >>
	                  TS_RATE_SHIFT);
}

/* The remote's echo <tsecr> as the subscriber sent it: the inverse, exactly. */
static uint32_t tsecr_in(const struct cfr_flow *f, uint32_t tsecr)
{
	uint64_t scaled = tsecr - f->ts_offset, rate = TS_RATE_ONE + (uint64_t)f->ts_rate;

	if (!(f->tcp_state & CFR_TCP_TS_BASE))
		return tsecr - f->ts_offset;
	return f->ts_base + (uint32_t)(((scaled << TS_RATE_SHIFT) + rate - 1) / rate);
}

void cfr_scrub_out(struct cfr_engine *eng, uint8_t *buf, const struct cfr_parsed *p,
                   struct cfr_flow *f, const struct cfr_frag *frag)
{
	const struct cfr_scrub_config *s = &eng->cfg.scrub;

	/* Per flow (ts_offset 0: off when it started), so a reload cannot make TSval jump. */
	if (f->ts_offset && p->proto == CFR_IPPROTO_TCP && p->has_l4) {
		uint32_t ts = find_timestamp(buf, p);

		if (ts) {
			uint32_t tsval = get32(buf + ts + 2);

			add32(buf, ts + 2, p, tsval_out(f, tsval, p->tcp_flags) - tsval);
			eng->stats.scrubbed[CFR_SCRUB_TCP_TIMESTAMPS]++;
		}
	}
	if (p->family == CFR_FAMILY_V4) {
		if (s->ip_id) {
			uint8_t id[2];

			/* All fragments of one datagram must keep one identification. */
			if (frag) {
				put16(id, frag->ip_id);
			} else {
				cfr_rng_bytes(eng, id, sizeof(id));
			}
			csum_replace(buf + 10, buf + 4, id, 2);
			buf[4] = id[0];
			buf[5] = id[1];
			eng->stats.scrubbed[CFR_SCRUB_IP_ID]++;
		}
		if (s->ttl_cap && buf[8] > s->ttl_cap) {
			uint8_t word[2] = {s->ttl_cap, buf[9]};

			csum_replace(buf + 10, buf + 8, word, 2);
			buf[8] = s->ttl_cap;
			eng->stats.scrubbed[CFR_SCRUB_TTL]++;
		}
		return;
	}
	if (s->ttl_cap && buf[7] > s->ttl_cap) {
		buf[7] = s->ttl_cap; /* the IPv6 header has no checksum */
		eng->stats.scrubbed[CFR_SCRUB_TTL]++;
	}
	if (s->flow_label) {
		uint32_t label = cfr_flow_label_of(eng, f);

		buf[1] = (uint8_t)((buf[1] & 0xf0) | ((label >> 16) & 0x0f));
		buf[2] = (uint8_t)(label >> 8);
		buf[3] = (uint8_t)label;
		eng->stats.scrubbed[CFR_SCRUB_FLOW_LABEL]++;
	}
}

void cfr_scrub_in(struct cfr_engine *eng, uint8_t *buf, const struct cfr_parsed *p,
                  const struct cfr_flow *f)
{
	uint32_t ts;

	if (!f->ts_offset || p->proto != CFR_IPPROTO_TCP || !p->has_l4 ||
	    !(p->tcp_flags & TCP_ACK)) /* RFC 7323 §3.2: TSecr is valid only with ACK */
		return;
	ts = find_timestamp(buf, p);
	if (ts) {
		uint32_t tsecr = get32(buf + ts + 6);

		add32(buf, ts + 6, p, tsecr_in(f, tsecr) - tsecr);
		eng->stats.scrubbed[CFR_SCRUB_TCP_TIMESTAMPS]++;
	}
}
