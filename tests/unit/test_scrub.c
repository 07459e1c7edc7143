/*
 * Scrubbing of auxiliary signals (issue 3): TCP timestamp modulation (a
 * per-flow constant added to TSval outbound, removed from TSecr inbound
 * only when ACK is set, wrap-around included, at any option offset), IPv4
 * identification from the CSPRNG (shared by every fragment of a datagram),
 * TTL / hop limit capped (lowered, never raised, inbound untouched), IPv6
 * flow label replaced by a per-flow constant (traffic class untouched).
 * Each scrubber switched off leaves its field alone, and stats.scrubbed
 * counts exactly the packets changed. Every packet's checksums are checked
 * by full recomputation (pkt.h), never by the engine's incremental code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "lab.h"

#define T0 1000

struct ts {
	uint32_t val, ecr;
};

static struct cfr_engine *engine_scrub(bool ts, bool id, bool label, uint8_t ttl_cap)
{
	struct cfr_engine_config cfg;

	lab_config(&cfg);
	cfg.scrub.tcp_timestamps = ts;
	cfg.scrub.ip_id = id;
	cfg.scrub.flow_label = label;
	cfg.scrub.ttl_cap = ttl_cap;
	return lab_engine(&cfg);
}

static void parse_ok(const struct pkt *p, struct pkt_info *pi)
{
	if (pkt_parse(p->data, p->len, false, pi) != 0)
		fail_msg("packet does not parse");
}

/* Offset (from the start of the packet) of the TCP timestamp option's kind byte, or 0. */
static size_t ts_option(const struct pkt *p)
{
	struct pkt_info pi;
	const uint8_t *l4;
	size_t hl, off = 20;

	parse_ok(p, &pi);
	if (pi.proto != IPPROTO_TCP)
		return 0;
	l4 = p->data + pi.l3_len;
	hl = (size_t)(l4[12] >> 4) * 4;
	while (off < hl) {
		if (l4[off] == 0)
			break;
		if (l4[off] == 1) {
			off++;
			continue;
		}
		if (off + 2 > hl || l4[off + 1] < 2)
			break;
		if (l4[off] == 8 && l4[off + 1] == 10)
			return pi.l3_len + off;
		off += l4[off + 1];
	}
	return 0;
}

static struct ts get_ts(const struct pkt *p)
{
	size_t off = ts_option(p);
	struct ts t;

	if (!off)
		fail_msg("no timestamp option");
	t.val = pkt_get32(p->data + off + 2);
	t.ecr = pkt_get32(p->data + off + 6);
	return t;
}

static void tcp_spec(struct pkt_spec *s, int family, bool inbound, const uint8_t *alias,
                     uint16_t sport, uint16_t dport, uint8_t flags, uint32_t tsval, uint32_t tsecr)
{
	memset(s, 0, sizeof *s);
	s->family = family;
	s->proto = IPPROTO_TCP;
	memcpy(s->src, inbound ? lab_remote(family) : lab_sub(family), 16);
	memcpy(s->dst, inbound ? alias : lab_remote(family), 16);
	s->sport = sport;
	s->dport = dport;
	s->tcp_flags = flags;
	s->seq = inbound ? 90000 : 1000;
	s->ack = inbound ? 1001 : 90001;
	s->tcp_ts = true;
	s->tsval = tsval;
	s->tsecr = tsecr;
	s->payload = lab_payload;
	s->payload_len = sizeof lab_payload;
	s->ip_id = 0x1234;
	s->ttl = 64;
}

/* Process <p> in direction <dir>, expect it forwarded with valid checksums. */
static void through_at(struct cfr_engine *eng, struct pkt *p, enum cfr_dir dir, uint64_t now,
                       int line)
{
	struct cfr_pkt r = lab_process(eng, p, now);

	lab_expect_forward_at(&r, dir, __FILE__, line);
	lab_expect_checksums_at(p, __FILE__, line);
}
#define through(eng, p, dir, now) through_at((eng), (p), (dir), (now), __LINE__)

/*
 * Everything of the TCP header but ports, checksum and the timestamp
 * option's TSval (outbound) or TSecr (inbound) must be unchanged: seq, ack,
 * flags, window, other options, payload.
 */
static void tcp_rest_unchanged(const struct pkt *before, const struct pkt *after, bool inbound)
{
	struct pkt_info a, b;
	size_t ts = ts_option(before), skip = ts + (inbound ? 6 : 2), i;

	parse_ok(before, &b);
	parse_ok(after, &a);
	assert_int_equal(a.l3_len, b.l3_len);
	assert_int_equal(before->len, after->len);
	for (i = b.l3_len + 4; i < before->len; i++) {
		if (i == b.l3_len + 16 || i == b.l3_len + 17)
			continue; /* checksum */
		if (ts && i >= skip && i < skip + 4)
			continue;
		if (before->data[i] != after->data[i])
			fail_msg("TCP byte %zu changed (%02x -> %02x)", i - b.l3_len,
			         before->data[i], after->data[i]);
	}
}

/* --- TCP timestamps -------------------------------------------------------- */

/*
 * One connection: SYN, SYN-ACK, then data both ways. Outbound TSval moves
 * by one constant (mod 2^32, so TSvals near the wrap work too), outbound
 * TSecr stays; inbound TSecr comes back exactly as the subscriber sent its
 * TSval, inbound TSval stays.
 */
static void ts_modulation(int family, uint32_t tsval0)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	struct pkt_spec s;
	struct pkt p, orig;
	struct pkt_info pi;
	struct ts t;
	uint8_t alias[16];
	uint16_t aport;
	uint32_t out0, sent, mine = tsval0, theirs = 777000;
	unsigned i;

	tcp_spec(&s, family, false, NULL, 40000, 443, PKT_TCP_SYN, mine, 0);
	pkt_build(&orig, &s);
	p = orig;
	through(eng, &p, CFR_DIR_OUT, T0);
	tcp_rest_unchanged(&orig, &p, false);
	t = get_ts(&p);
	out0 = sent = t.val;
	assert_int_equal(t.ecr, 0);
	parse_ok(&p, &pi);
	memcpy(alias, pi.src, 16);
	aport = pi.sport;

	for (i = 0; i < 12; i++) {
		uint64_t now = T0 + 10 + i * 100;
		uint8_t flags = i == 0 ? PKT_TCP_SYN | PKT_TCP_ACK : PKT_TCP_ACK | PKT_TCP_PSH;
		uint32_t ticks, seen;

		/* The remote echoes the TSval it saw: the subscriber gets its own back, exactly. */
		tcp_spec(&s, family, true, alias, 443, aport, flags, theirs, sent);
		pkt_build(&orig, &s);
		p = orig;
		through(eng, &p, CFR_DIR_IN, now);
		tcp_rest_unchanged(&orig, &p, true);
		t = get_ts(&p);
		if (t.ecr != mine)
			fail_msg("reply %u: TSecr %#x, the subscriber sent TSval %#x", i, t.ecr,
			         mine);
		assert_int_equal(t.val, theirs);

		mine += 37 + i * 1000; /* the subscriber's clock moves on */
		tcp_spec(&s, family, false, NULL, 40000, 443, PKT_TCP_ACK, mine, theirs);
		pkt_build(&orig, &s);
		p = orig;
		through(eng, &p, CFR_DIR_OUT, now + 5);
		tcp_rest_unchanged(&orig, &p, false);
		t = get_ts(&p);
		sent = t.val;
		/* The flow's clock: 1 to 2 of its ticks per subscriber tick, from its start. */
		ticks = mine - tsval0;
		seen = t.val - out0;
		if (seen < ticks || seen > 2 * ticks)
			fail_msg("packet %u: TSval moved %u for %u subscriber ticks", i, seen,
			         ticks);
		assert_int_equal(t.ecr, theirs);
		theirs += 500;
	}
	/* SYN + 12 out, 12 in: every packet carrying the option was modulated. */
	assert_int_equal(cfr_engine_stats(eng)->scrubbed[CFR_SCRUB_TCP_TIMESTAMPS], 25);
	cfr_engine_free(eng);
}

static void ts_modulation4(void **state)
{
	(void)state;
	ts_modulation(4, 100000);
}

static void ts_modulation6(void **state)
{
	(void)state;
	ts_modulation(6, 100000);
}

static void ts_modulation_wraps4(void **state)
{
	(void)state;
	ts_modulation(4, 0xfffffff0u);
}

static void ts_modulation_wraps6(void **state)
{
	(void)state;
	ts_modulation(6, 0xffffe000u);
}

/*
 * Sixteen connections from one subscriber with one TSval (a raw clock, as
 * net.ipv4.tcp_timestamps=2 sends): the offsets are per flow, so the front
 * door sees 16 different TSvals (equal by chance with p = 2^-32) and none
 * equal to the subscriber's own.
 */
static void ts_offsets_differ(int family)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	uint32_t seen[16];
	unsigned i, j;

	for (i = 0; i < 16; i++) {
		struct pkt_spec s;
		struct pkt p;

		tcp_spec(&s, family, false, NULL, (uint16_t)(40000 + i), 443, PKT_TCP_SYN, 5555555,
		         0);
		pkt_build(&p, &s);
		through(eng, &p, CFR_DIR_OUT, T0 + i);
		seen[i] = get_ts(&p).val;
		assert_int_not_equal(seen[i], 5555555);
		for (j = 0; j < i; j++)
			if (seen[i] == seen[j])
				fail_msg("flows %u and %u show the same TSval %#x", j, i, seen[i]);
	}
	cfr_engine_free(eng);
}

/*
 * The same host's clock, seen through sixteen flows: 100,000 ticks later
 * each flow's TSval moved by its own amount (1 to 2 times as far), so the
 * slope a front door measures per flow is the flow's draw, not the host's
 * skew (the clock-skew linker of docs/privacy.md).
 */
static void ts_rates_differ(int family)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	uint32_t moved[16];
	unsigned i, j, same = 0;

	for (i = 0; i < 16; i++) {
		struct pkt_spec s;
		struct pkt p;
		uint32_t first;

		tcp_spec(&s, family, false, NULL, (uint16_t)(41000 + i), 443, PKT_TCP_SYN, 5555555,
		         0);
		pkt_build(&p, &s);
		through(eng, &p, CFR_DIR_OUT, T0 + i);
		first = get_ts(&p).val;
		tcp_spec(&s, family, false, NULL, (uint16_t)(41000 + i), 443, PKT_TCP_ACK,
		         5555555 + 100000, 1);
		pkt_build(&p, &s);
		through(eng, &p, CFR_DIR_OUT, T0 + i);
		moved[i] = get_ts(&p).val - first;
		assert_in_range(moved[i], 100000, 200000);
		for (j = 0; j < i; j++)
			same += moved[i] == moved[j];
	}
	/* 16-bit rates: two flows may share one by chance (p = 0.2%), not three pairs. */
	if (same > 2)
		fail_msg("%u pairs of flows of one host run at one rate", same);
	cfr_engine_free(eng);
}

/*
 * A tuple reused while its old connection's state lingers (the host
 * rebooted; its clock is now below the old connection's first TSval): the
 * new SYN starts the flow's clock again, so the SYN-ACK's echo maps back to
 * exactly what the host sent.
 */
static void ts_tuple_reused(int family)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	struct pkt_spec s;
	struct pkt p;
	struct pkt_info pi;
	uint32_t host[3] = {4000000000u, 4000500000u, 3999999990u};
	unsigned i;

	for (i = 0; i < 3; i++) {
		uint32_t sent;

		/* A SYN, its SYN-ACK echoing what the remote saw; then on the same tuple again. */
		tcp_spec(&s, family, false, NULL, 40500, 443, i == 1 ? PKT_TCP_ACK : PKT_TCP_SYN,
		         host[i], 0);
		pkt_build(&p, &s);
		through(eng, &p, CFR_DIR_OUT, T0 + i);
		sent = get_ts(&p).val;
		parse_ok(&p, &pi);
		tcp_spec(&s, family, true, pi.src, 443, pi.sport, PKT_TCP_SYN | PKT_TCP_ACK, 9000,
		         sent);
		pkt_build(&p, &s);
		through(eng, &p, CFR_DIR_IN, T0 + i);
		if (get_ts(&p).ecr != host[i])
			fail_msg("step %u: echo %#x maps back to %#x, the host sent %#x", i, sent,
			         get_ts(&p).ecr, host[i]);
	}
	cfr_engine_free(eng);
}

static void ts_tuple_reused4(void **state)
{
	(void)state;
	ts_tuple_reused(4);
}

static void ts_tuple_reused6(void **state)
{
	(void)state;
	ts_tuple_reused(6);
}

static void ts_rates_differ4(void **state)
{
	(void)state;
	ts_rates_differ(4);
}

static void ts_rates_differ6(void **state)
{
	(void)state;
	ts_rates_differ(6);
}

static void ts_offsets_differ4(void **state)
{
	(void)state;
	ts_offsets_differ(4);
}

static void ts_offsets_differ6(void **state)
{
	(void)state;
	ts_offsets_differ(6);
}

/*
 * RFC 7323 §3.2: TSecr is only meaningful with ACK. An inbound SYN without
 * ACK (simultaneous open) and an inbound RST without ACK keep their TSecr
 * exactly as sent.
 */
static void ts_inbound_without_ack_untouched(int family)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	static const uint8_t flags[2] = {PKT_TCP_SYN, PKT_TCP_RST};
	struct pkt_spec s;
	struct pkt p, orig;
	struct pkt_info pi;
	unsigned i;

	tcp_spec(&s, family, false, NULL, 40000, 443, PKT_TCP_SYN, 4242, 0);
	pkt_build(&p, &s);
	through(eng, &p, CFR_DIR_OUT, T0);
	parse_ok(&p, &pi);
	for (i = 0; i < 2; i++) {
		tcp_spec(&s, family, true, pi.src, 443, pi.sport, flags[i], 31337, 0x12345678);
		pkt_build(&orig, &s);
		p = orig;
		through(eng, &p, CFR_DIR_IN, T0 + 1 + i);
		assert_int_equal(get_ts(&p).ecr, 0x12345678);
		assert_int_equal(get_ts(&p).val, 31337);
		tcp_rest_unchanged(&orig, &p, true);
	}
	assert_int_equal(cfr_engine_stats(eng)->scrubbed[CFR_SCRUB_TCP_TIMESTAMPS], 1);
	cfr_engine_free(eng);
}

static void ts_inbound_without_ack_untouched4(void **state)
{
	(void)state;
	ts_inbound_without_ack_untouched(4);
}

static void ts_inbound_without_ack_untouched6(void **state)
{
	(void)state;
	ts_inbound_without_ack_untouched(6);
}

/*
 * Rewrite the options of a built 40-byte-header TCP packet to
 * MSS, NOP, TS, NOP, WS, EOL: the timestamp option starts at an odd offset
 * (TSval at TCP offset 27, TSecr at 31), legal and seen from some stacks.
 */
static void odd_ts_layout(struct pkt *p, uint32_t tsval, uint32_t tsecr)
{
	static const uint8_t head[5] = {2, 4, 5, 180, 1};
	struct pkt_info pi;
	uint8_t *o;

	parse_ok(p, &pi);
	o = p->data + pi.l3_len + 20;
	memcpy(o, head, sizeof head);
	o[5] = 8;
	o[6] = 10;
	pkt_put32(o + 7, tsval);
	pkt_put32(o + 11, tsecr);
	o[15] = 1;
	o[16] = 3;
	o[17] = 3;
	o[18] = 7;
	o[19] = 0;
	pkt_fix_l4_csum(p->data, p->len);
	lab_expect_checksums(p);
	assert_int_equal(ts_option(p), pi.l3_len + 25);
}

/*
 * A timestamp option at an odd offset: TSval still moves by the flow's
 * offset, TSecr still comes back exactly, and the TCP checksum must still
 * verify (an incremental update that assumes even alignment gets it wrong).
 */
static void ts_odd_offset(int family)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	struct pkt_spec s;
	struct pkt p, orig;
	struct pkt_info pi;
	uint32_t delta;

	tcp_spec(&s, family, false, NULL, 40000, 443, PKT_TCP_SYN, 0, 0);
	pkt_build(&orig, &s);
	odd_ts_layout(&orig, 0x01020304, 0);
	p = orig;
	through(eng, &p, CFR_DIR_OUT, T0);
	tcp_rest_unchanged(&orig, &p, false);
	delta = get_ts(&p).val - 0x01020304;
	assert_int_not_equal(delta, 0);
	parse_ok(&p, &pi);

	tcp_spec(&s, family, true, pi.src, 443, pi.sport, PKT_TCP_SYN | PKT_TCP_ACK, 0, 0);
	pkt_build(&orig, &s);
	odd_ts_layout(&orig, 0xa0b0c0d0, 0x01020304 + delta);
	p = orig;
	through(eng, &p, CFR_DIR_IN, T0 + 1);
	assert_int_equal(get_ts(&p).ecr, 0x01020304);
	tcp_rest_unchanged(&orig, &p, true);
	cfr_engine_free(eng);
}

static void ts_odd_offset4(void **state)
{
	(void)state;
	ts_odd_offset(4);
}

static void ts_odd_offset6(void **state)
{
	(void)state;
	ts_odd_offset(6);
}

/* Without a timestamp option nothing is modulated and nothing counted. */
static void ts_absent(void **state)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	struct pkt orig, p;
	struct pkt_spec s;

	(void)state;
	tcp_spec(&s, 4, false, NULL, 40000, 443, PKT_TCP_SYN, 0, 0);
	s.tcp_ts = false;
	pkt_build(&orig, &s);
	p = orig;
	through(eng, &p, CFR_DIR_OUT, T0);
	tcp_rest_unchanged(&orig, &p, false);
	assert_int_equal(cfr_engine_stats(eng)->scrubbed[CFR_SCRUB_TCP_TIMESTAMPS], 0);
	cfr_engine_free(eng);
}

/* --- IPv4 identification --------------------------------------------------- */

static void udp_spec(struct pkt_spec *s, int family, uint16_t sport, const uint8_t *payload,
                     size_t len)
{
	memset(s, 0, sizeof *s);
	s->family = family;
	s->proto = IPPROTO_UDP;
	memcpy(s->src, lab_sub(family), 16);
	memcpy(s->dst, lab_remote(family), 16);
	s->sport = sport;
	s->dport = 53;
	s->payload = payload;
	s->payload_len = len;
	s->ip_id = 0x1234;
	s->ttl = 64;
}

/*
 * 64 datagrams (two flows, all with ID 0x1234): new IDs, 64 draws from 2^16
 * collide with p ~ 0.03, so at least 61 distinct; keeping 0x1234 happens
 * by chance with p = 2^-16 each, so at most 2. The reply's ID is not ours
 * to change. Every header checksum verifies.
 */
static void ip_id_random(void **state)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	uint16_t ids[64];
	unsigned i, j, distinct = 0, kept = 0;
	struct pkt_spec s;
	struct pkt p;
	struct pkt_info pi;

	(void)state;
	for (i = 0; i < 64; i++) {
		udp_spec(&s, 4, (uint16_t)(5000 + i % 2), lab_payload, sizeof lab_payload);
		pkt_build(&p, &s);
		through(eng, &p, CFR_DIR_OUT, T0 + i);
		ids[i] = pkt_get16(p.data + 4);
		kept += ids[i] == 0x1234;
		for (j = 0; j < i && ids[j] != ids[i]; j++)
			;
		distinct += j == i;
	}
	assert_in_range(distinct, 61, 64);
	assert_in_range(kept, 0, 2);
	assert_int_equal(cfr_engine_stats(eng)->scrubbed[CFR_SCRUB_IP_ID], 64);

	/* A reply to the last flow keeps its identification. */
	parse_ok(&p, &pi);
	memset(&s, 0, sizeof s);
	s.family = 4;
	s.proto = IPPROTO_UDP;
	memcpy(s.src, lab_remote(4), 16);
	memcpy(s.dst, pi.src, 16);
	s.sport = 53;
	s.dport = pi.sport;
	s.ip_id = 0x4321;
	s.ttl = 200;
	s.payload = lab_payload;
	s.payload_len = sizeof lab_payload;
	pkt_build(&p, &s);
	through(eng, &p, CFR_DIR_IN, T0 + 100);
	assert_int_equal(pkt_get16(p.data + 4), 0x4321);
	assert_int_equal(p.data[8], 200); /* the cap is for outbound packets only */
	assert_int_equal(cfr_engine_stats(eng)->scrubbed[CFR_SCRUB_IP_ID], 64);
	assert_int_equal(cfr_engine_stats(eng)->scrubbed[CFR_SCRUB_TTL], 0);
	cfr_engine_free(eng);
}

static uint8_t big[1000];

static void fill_big(void)
{
	size_t i;

	for (i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 13 + 5);
}

#define NFRAG  3
#define NDGRAM 8

/*
 * Eight fragmented datagrams (3 fragments each) of one flow, their
 * fragments interleaved two datagrams at a time, each with TTL 100. Every
 * fragment of a datagram carries one new ID, datagrams get different IDs
 * (8 draws from 2^16: at least 7 distinct), every fragment is capped to 64,
 * and each reassembled datagram has a valid UDP checksum.
 */
static void ip_id_fragments(void **state)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	struct pkt whole, frags[NDGRAM][NFRAG], re;
	uint16_t id[NDGRAM];
	struct pkt_spec s;
	unsigned d, f, j, distinct = 0;
	uint64_t now = T0;

	(void)state;
	fill_big();
	for (d = 0; d < NDGRAM; d++) {
		udp_spec(&s, 4, 6000, big, sizeof big);
		s.ttl = 100;
		pkt_build(&whole, &s);
		assert_int_equal(pkt_fragment(&whole, 400, 0xbe00 + d, frags[d], NFRAG), NFRAG);
	}
	for (d = 0; d < NDGRAM; d += 2)
		for (f = 0; f < NFRAG; f++)
			for (j = d; j < d + 2; j++)
				through(eng, &frags[j][f], CFR_DIR_OUT, now++);
	for (d = 0; d < NDGRAM; d++) {
		id[d] = pkt_get16(frags[d][0].data + 4);
		for (f = 0; f < NFRAG; f++) {
			if (pkt_get16(frags[d][f].data + 4) != id[d])
				fail_msg("datagram %u: fragment %u has ID %#x, fragment 0 has %#x",
				         d, f, pkt_get16(frags[d][f].data + 4), id[d]);
			assert_int_equal(frags[d][f].data[8], 64);
		}
		for (j = 0; j < d && id[j] != id[d]; j++)
			;
		distinct += j == d;
		assert_int_equal(pkt_reassemble(frags[d], NFRAG, &re), 0);
		lab_expect_checksums(&re);
	}
	assert_in_range(distinct, NDGRAM - 1, NDGRAM);
	assert_int_equal(cfr_engine_stats(eng)->scrubbed[CFR_SCRUB_IP_ID], NDGRAM * NFRAG);
	assert_int_equal(cfr_engine_stats(eng)->scrubbed[CFR_SCRUB_TTL], NDGRAM * NFRAG);
	cfr_engine_free(eng);
}

/*
 * A duplicated first fragment (the network may duplicate any packet) is
 * still a fragment of the same datagram: it, and the fragments after it,
 * must carry the same ID as the fragments before it, or the receiver can
 * never reassemble the datagram.
 */
static void ip_id_duplicate_first_fragment(void **state)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	struct pkt whole, frags[NFRAG], dup;
	struct pkt_spec s;
	uint16_t id;

	(void)state;
	fill_big();
	udp_spec(&s, 4, 6001, big, sizeof big);
	pkt_build(&whole, &s);
	assert_int_equal(pkt_fragment(&whole, 400, 0xd00d, frags, NFRAG), NFRAG);
	dup = frags[0];
	through(eng, &frags[0], CFR_DIR_OUT, T0);
	through(eng, &frags[1], CFR_DIR_OUT, T0 + 1);
	through(eng, &dup, CFR_DIR_OUT, T0 + 2);
	through(eng, &frags[2], CFR_DIR_OUT, T0 + 3);
	id = pkt_get16(frags[0].data + 4);
	assert_int_equal(pkt_get16(frags[1].data + 4), id);
	if (pkt_get16(dup.data + 4) != id || pkt_get16(frags[2].data + 4) != id)
		fail_msg("duplicate first fragment re-drew the ID: fragments carry %#x %#x, then "
		         "%#x (duplicate) %#x",
		         id, pkt_get16(frags[1].data + 4), pkt_get16(dup.data + 4),
		         pkt_get16(frags[2].data + 4));
	cfr_engine_free(eng);
}

/* --- TTL / hop limit ------------------------------------------------------- */

/*
 * With cap 50: 128 and 51 become 50, 50 and 30 and 1 stay (never raised),
 * with the IPv4 header checksum valid; only lowered packets are counted.
 * Each packet is a new UDP flow, so no flow state is involved.
 */
static void ttl_cap(int family)
{
	static const uint8_t in[6] = {128, 255, 51, 50, 30, 1};
	static const uint8_t want[6] = {50, 50, 50, 50, 30, 1};
	struct cfr_engine *eng = engine_scrub(true, true, true, 50);
	unsigned i;

	for (i = 0; i < 6; i++) {
		struct pkt_spec s;
		struct pkt p;

		udp_spec(&s, family, (uint16_t)(7000 + i), lab_payload, sizeof lab_payload);
		s.ttl = in[i];
		pkt_build(&p, &s);
		through(eng, &p, CFR_DIR_OUT, T0 + i);
		if (p.data[family == 4 ? 8 : 7] != want[i])
			fail_msg("TTL/hop limit %u left as %u, want %u", in[i],
			         p.data[family == 4 ? 8 : 7], want[i]);
	}
	assert_int_equal(cfr_engine_stats(eng)->scrubbed[CFR_SCRUB_TTL], 3);
	cfr_engine_free(eng);
}

static void ttl_cap4(void **state)
{
	(void)state;
	ttl_cap(4);
}

static void hop_limit_cap6(void **state)
{
	(void)state;
	ttl_cap(6);
}

/* --- IPv6 flow label ------------------------------------------------------- */

static uint32_t flow_label(const struct pkt *p)
{
	return (uint32_t)(p->data[1] & 0x0f) << 16 | (uint32_t)p->data[2] << 8 | p->data[3];
}

/* Give a built IPv6 packet traffic class <tc> and flow label <label> (no checksum covers them). */
static void set_tc_label(struct pkt *p, uint8_t tc, uint32_t label)
{
	p->data[0] = (uint8_t)(0x60 | tc >> 4);
	p->data[1] = (uint8_t)((tc & 0x0f) << 4 | (label >> 16 & 0x0f));
	p->data[2] = (uint8_t)(label >> 8);
	p->data[3] = (uint8_t)label;
}

/*
 * Sixteen UDP flows, five packets each, all sent with the subscriber's
 * label 0xabcde and traffic class 0xb8: within a flow one label, across
 * flows different labels (16 draws from 2^20: at least 15 distinct), never
 * the subscriber's own, traffic class untouched. Inbound labels are left
 * as the remote sent them.
 */
static void flow_label_per_flow(void **state)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	uint32_t label[16];
	unsigned f, k, j, distinct = 0;
	struct pkt_spec s;
	struct pkt p;
	struct pkt_info pi;

	(void)state;
	for (f = 0; f < 16; f++) {
		for (k = 0; k < 5; k++) {
			udp_spec(&s, 6, (uint16_t)(8000 + f), lab_payload, sizeof lab_payload);
			pkt_build(&p, &s);
			set_tc_label(&p, 0xb8, 0xabcde);
			through(eng, &p, CFR_DIR_OUT, T0 + f * 10 + k);
			assert_int_equal(p.data[0], 0x6b);
			assert_int_equal(p.data[1] >> 4, 0x8);
			if (k == 0)
				label[f] = flow_label(&p);
			else if (flow_label(&p) != label[f])
				fail_msg("flow %u packet %u: label %#x, flow's first %#x", f, k,
				         flow_label(&p), label[f]);
		}
		assert_int_not_equal(label[f], 0xabcde);
		for (j = 0; j < f && label[j] != label[f]; j++)
			;
		distinct += j == f;
	}
	assert_in_range(distinct, 15, 16);
	assert_int_equal(cfr_engine_stats(eng)->scrubbed[CFR_SCRUB_FLOW_LABEL], 80);

	parse_ok(&p, &pi);
	memset(&s, 0, sizeof s);
	s.family = 6;
	s.proto = IPPROTO_UDP;
	memcpy(s.src, lab_remote(6), 16);
	memcpy(s.dst, pi.src, 16);
	s.sport = 53;
	s.dport = pi.sport;
	s.ttl = 200;
	s.payload = lab_payload;
	s.payload_len = sizeof lab_payload;
	pkt_build(&p, &s);
	set_tc_label(&p, 0x20, 0x54321);
	through(eng, &p, CFR_DIR_IN, T0 + 500);
	assert_int_equal(flow_label(&p), 0x54321);
	assert_int_equal(p.data[7], 200);
	assert_int_equal(cfr_engine_stats(eng)->scrubbed[CFR_SCRUB_FLOW_LABEL], 80);
	cfr_engine_free(eng);
}

/* A TCP connection: the SYN and later segments carry one label. */
static void flow_label_tcp_constant(void **state)
{
	struct cfr_engine *eng = engine_scrub(true, true, true, 64);
	struct pkt_spec s;
	struct pkt p;
	uint32_t label = 0;
	unsigned k;

	(void)state;
	for (k = 0; k < 4; k++) {
		tcp_spec(&s, 6, false, NULL, 40000, 443, k ? PKT_TCP_ACK : PKT_TCP_SYN, 10 + k, 0);
		pkt_build(&p, &s);
		set_tc_label(&p, 0, 0x11111 * (k + 1));
		through(eng, &p, CFR_DIR_OUT, T0 + k);
		if (k == 0)
			label = flow_label(&p);
		assert_int_equal(flow_label(&p), label);
		if (k == 0) {
			struct pkt_info pi;
			struct pkt in;

			parse_ok(&p, &pi);
			tcp_spec(&s, 6, true, pi.src, 443, pi.sport, PKT_TCP_SYN | PKT_TCP_ACK, 1,
			         get_ts(&p).val);
			pkt_build(&in, &s);
			through(eng, &in, CFR_DIR_IN, T0 + k);
		}
	}
	cfr_engine_free(eng);
}

/* --- each scrubber off ----------------------------------------------------- */

/*
 * With one scrubber switched off (the other three on), its field leaves
 * exactly as the subscriber sent it and its counter stays 0, while the
 * others still act: checked on one IPv4 and one IPv6 TCP SYN carrying a
 * timestamp option, TTL / hop limit 128, ID 0x1234 and label 0xabcde.
 */
static void each_scrubber_off(void **state)
{
	unsigned off, fam;

	(void)state;
	for (off = 0; off < CFR_SCRUB__COUNT; off++) {
		struct cfr_engine *eng =
		    engine_scrub(off != CFR_SCRUB_TCP_TIMESTAMPS, off != CFR_SCRUB_IP_ID,
		                 off != CFR_SCRUB_FLOW_LABEL, off == CFR_SCRUB_TTL ? 0 : 64);
		const struct cfr_stats *st = cfr_engine_stats(eng);

		for (fam = 4; fam <= 6; fam += 2) {
			struct pkt_spec s;
			struct pkt p;
			bool ts_same, ttl_same;

			tcp_spec(&s, (int)fam, false, NULL, 40000, 443, PKT_TCP_SYN, 99999, 0);
			s.ttl = 128;
			pkt_build(&p, &s);
			if (fam == 6)
				set_tc_label(&p, 0, 0xabcde);
			through(eng, &p, CFR_DIR_OUT, T0);
			ts_same = get_ts(&p).val == 99999;
			ttl_same = p.data[fam == 4 ? 8 : 7] == 128;
			assert_int_equal(ts_same, off == CFR_SCRUB_TCP_TIMESTAMPS);
			assert_int_equal(ttl_same, off == CFR_SCRUB_TTL);
			if (!ttl_same)
				assert_int_equal(p.data[fam == 4 ? 8 : 7], 64);
			if (fam == 4 && off == CFR_SCRUB_IP_ID)
				assert_int_equal(pkt_get16(p.data + 4), 0x1234);
			if (fam == 6 && off == CFR_SCRUB_FLOW_LABEL)
				assert_int_equal(flow_label(&p), 0xabcde);
		}
		assert_int_equal(st->scrubbed[CFR_SCRUB_TCP_TIMESTAMPS],
		                 off == CFR_SCRUB_TCP_TIMESTAMPS ? 0 : 2);
		assert_int_equal(st->scrubbed[CFR_SCRUB_TTL], off == CFR_SCRUB_TTL ? 0 : 2);
		assert_int_equal(st->scrubbed[CFR_SCRUB_IP_ID], off == CFR_SCRUB_IP_ID ? 0 : 1);
		assert_int_equal(st->scrubbed[CFR_SCRUB_FLOW_LABEL],
		                 off == CFR_SCRUB_FLOW_LABEL ? 0 : 1);
		cfr_engine_free(eng);
	}
}

/* Everything off: a round trip changes nothing but addresses, ports and checksums. */
static void all_scrubbers_off(void **state)
{
	struct cfr_engine *eng = engine_scrub(false, false, false, 0);
	struct pkt_spec s;
	struct pkt p, orig, whole, frags[NFRAG];
	struct pkt_info pi;
	unsigned f, i;

	(void)state;
	for (i = 0; i < 2; i++) {
		int family = i ? 6 : 4;

		tcp_spec(&s, family, false, NULL, 40000, 443, PKT_TCP_SYN, 123456, 0);
		s.ttl = 255;
		pkt_build(&orig, &s);
		if (family == 6)
			set_tc_label(&orig, 0, 0xfedcb);
		p = orig;
		through(eng, &p, CFR_DIR_OUT, T0);
		tcp_rest_unchanged(&orig, &p, false);
		assert_int_equal(get_ts(&p).val, 123456);
		if (family == 4) {
			assert_int_equal(pkt_get16(p.data + 4), 0x1234);
			assert_int_equal(p.data[8], 255);
		} else {
			assert_int_equal(flow_label(&p), 0xfedcb);
			assert_int_equal(p.data[7], 255);
		}
		parse_ok(&p, &pi);
		tcp_spec(&s, family, true, pi.src, 443, pi.sport, PKT_TCP_SYN | PKT_TCP_ACK, 1,
		         123456);
		pkt_build(&orig, &s);
		p = orig;
		through(eng, &p, CFR_DIR_IN, T0 + 1);
		assert_int_equal(get_ts(&p).ecr, 123456);
	}
	fill_big();
	udp_spec(&s, 4, 6000, big, sizeof big);
	s.ttl = 99;
	pkt_build(&whole, &s);
	assert_int_equal(pkt_fragment(&whole, 400, 0xcafe, frags, NFRAG), NFRAG);
	for (f = 0; f < NFRAG; f++) {
		through(eng, &frags[f], CFR_DIR_OUT, T0 + 10 + f);
		assert_int_equal(pkt_get16(frags[f].data + 4), 0xcafe);
		assert_int_equal(frags[f].data[8], 99);
	}
	for (i = 0; i < CFR_SCRUB__COUNT; i++)
		assert_int_equal(cfr_engine_stats(eng)->scrubbed[i], 0);
	cfr_engine_free(eng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ts_modulation4),
	    cmocka_unit_test(ts_modulation6),
	    cmocka_unit_test(ts_modulation_wraps4),
	    cmocka_unit_test(ts_modulation_wraps6),
	    cmocka_unit_test(ts_offsets_differ4),
	    cmocka_unit_test(ts_rates_differ4),
	    cmocka_unit_test(ts_tuple_reused4),
	    cmocka_unit_test(ts_tuple_reused6),
	    cmocka_unit_test(ts_rates_differ6),
	    cmocka_unit_test(ts_offsets_differ6),
	    cmocka_unit_test(ts_inbound_without_ack_untouched4),
	    cmocka_unit_test(ts_inbound_without_ack_untouched6),
	    cmocka_unit_test(ts_odd_offset4),
	    cmocka_unit_test(ts_odd_offset6),
	    cmocka_unit_test(ts_absent),
	    cmocka_unit_test(ip_id_random),
	    cmocka_unit_test(ip_id_fragments),
	    cmocka_unit_test(ip_id_duplicate_first_fragment),
	    cmocka_unit_test(ttl_cap4),
	    cmocka_unit_test(hop_limit_cap6),
	    cmocka_unit_test(flow_label_per_flow),
	    cmocka_unit_test(flow_label_tcp_constant),
	    cmocka_unit_test(each_scrubber_off),
	    cmocka_unit_test(all_scrubbers_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
