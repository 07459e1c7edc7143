/*
 * Fragments (RFC 4787 REQ-14, RFC 8200 4.5): the first fragment of a
 * datagram opens or finds the flow, later fragments follow it to the same
 * alias (out) or subscriber (in) with their payload untouched, and the
 * reassembled translated datagram has a valid transport checksum. Non-first
 * fragments of unknown datagrams are dropped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "lab.h"

#define T0    1000
#define NFRAG 3

static uint8_t big[1000];

static void parse_ok(const struct pkt *p, struct pkt_info *pi)
{
	assert_int_equal(pkt_parse(p->data, p->len, false, pi), 0);
}

static void fill_big(void)
{
	size_t i;

	for (i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7 + 3);
}

/*
 * Send the fragments of <whole> (split into 3) through the engine in order;
 * check each one and reassemble the result into <re>.
 */
static void send_fragments(void **state, const struct pkt *whole, uint32_t id, enum cfr_dir dir,
                           struct pkt *re)
{
	struct pkt frags[NFRAG], orig[NFRAG];
	struct pkt_info f, o, first;
	struct cfr_pkt r;
	unsigned i;

	assert_int_equal(pkt_fragment(whole, 400, id, orig, NFRAG), NFRAG);
	for (i = 0; i < NFRAG; i++) {
		frags[i] = orig[i];
		r = lab_process(*state, &frags[i], T0 + i);
		lab_expect_forward(&r, dir);
		lab_expect_checksums(&frags[i]);
		parse_ok(&frags[i], &f);
		parse_ok(&orig[i], &o);
		if (i == 0) {
			first = f;
			continue;
		}
		/* Later fragments: the same addresses as the first, payload untouched. */
		assert_memory_equal(f.src, first.src, 16);
		assert_memory_equal(f.dst, first.dst, 16);
		assert_int_equal(f.frag_off, o.frag_off);
		assert_int_equal(f.mf, o.mf);
		/* The receiver reassembles by identification: it must stay one datagram's. */
		assert_int_equal(f.frag_id, first.frag_id);
		assert_int_equal(f.l4_len, o.l4_len);
		assert_memory_equal(frags[i].data + f.l3_len, orig[i].data + o.l3_len, o.l4_len);
	}
	assert_int_equal(pkt_reassemble(frags, NFRAG, re), 0);
	lab_expect_checksums(re);
}

static void outbound_fragments(void **state, int family)
{
	struct pkt whole, re;
	struct pkt_info t, w;
	struct pkt_spec s;

	fill_big();
	lab_spec(&s, family, IPPROTO_UDP, 40200, 4433);
	s.payload = big;
	s.payload_len = sizeof big;
	pkt_build(&whole, &s);
	send_fragments(state, &whole, 0x5151, CFR_DIR_OUT, &re);
	parse_ok(&re, &t);
	parse_ok(&whole, &w);
	assert_true(lab_in_pool(family, t.src));
	assert_in_range(t.sport, LAB_PORT_MIN, LAB_PORT_MAX);
	assert_memory_equal(t.dst, w.dst, 16);
	assert_int_equal(t.dport, 4433);
	assert_memory_equal(re.data + t.l3_len + 8, big, sizeof big);
}

static void out_udp4_three_fragments(void **state)
{
	outbound_fragments(state, 4);
}

static void out_udp6_three_fragments(void **state)
{
	outbound_fragments(state, 6);
}

/* A reply too big for one packet comes back fragmented and must reach the subscriber. */
static void inbound_fragments(void **state, int family)
{
	struct pkt out, whole, re;
	struct pkt_info i;
	struct pkt_spec s;

	fill_big();
	lab_open_flow(*state, family, IPPROTO_UDP, 40201, 4433, &out, T0);
	lab_reply_spec(&s, &out);
	s.payload = big;
	s.payload_len = sizeof big;
	pkt_build(&whole, &s);
	send_fragments(state, &whole, 0x6262, CFR_DIR_IN, &re);
	parse_ok(&re, &i);
	assert_memory_equal(i.dst, lab_sub(family), 16);
	assert_int_equal(i.dport, 40201);
	assert_memory_equal(i.src, lab_remote(family), 16);
	assert_int_equal(i.sport, 4433);
	assert_memory_equal(re.data + i.l3_len + 8, big, sizeof big);
}

static void in_udp4_three_fragments(void **state)
{
	inbound_fragments(state, 4);
}

static void in_udp6_three_fragments(void **state)
{
	inbound_fragments(state, 6);
}

/* Two datagrams of one flow fragmented one after the other map to the same alias and port. */
static void second_datagram_same_flow(void **state, int family)
{
	struct pkt whole, re1, re2;
	struct pkt_info a, b;
	struct pkt_spec s;

	fill_big();
	lab_spec(&s, family, IPPROTO_UDP, 40202, 4433);
	s.payload = big;
	s.payload_len = sizeof big;
	pkt_build(&whole, &s);
	send_fragments(state, &whole, 0x7001, CFR_DIR_OUT, &re1);
	send_fragments(state, &whole, 0x7002, CFR_DIR_OUT, &re2);
	parse_ok(&re1, &a);
	parse_ok(&re2, &b);
	assert_memory_equal(a.src, b.src, 16);
	assert_int_equal(a.sport, b.sport);
}

static void out_udp4_two_datagrams_one_flow(void **state)
{
	second_datagram_same_flow(state, 4);
}

static void out_udp6_two_datagrams_one_flow(void **state)
{
	second_datagram_same_flow(state, 6);
}

/* A non-first fragment whose first fragment was never seen: nothing to map it by. */
static void orphan(void **state, int family, enum cfr_dir dir)
{
	struct pkt whole, frags[NFRAG], out;
	struct pkt_spec s;
	struct cfr_pkt r;

	fill_big();
	if (dir == CFR_DIR_OUT) {
		lab_spec(&s, family, IPPROTO_UDP, 40203, 4433);
	} else {
		lab_open_flow(*state, family, IPPROTO_UDP, 40203, 4433, &out, T0);
		lab_reply_spec(&s, &out);
	}
	s.payload = big;
	s.payload_len = sizeof big;
	pkt_build(&whole, &s);
	assert_int_equal(pkt_fragment(&whole, 400, 0x4242, frags, NFRAG), NFRAG);
	r = lab_process(*state, &frags[1], T0 + 1);
	lab_expect_drop(&r, CFR_DROP_FRAG_NO_FLOW);
	r = lab_process(*state, &frags[2], T0 + 1);
	lab_expect_drop(&r, CFR_DROP_FRAG_NO_FLOW);
}

static void out_orphan_fragment4(void **state)
{
	orphan(state, 4, CFR_DIR_OUT);
}

static void out_orphan_fragment6(void **state)
{
	orphan(state, 6, CFR_DIR_OUT);
}

static void in_orphan_fragment4(void **state)
{
	orphan(state, 4, CFR_DIR_IN);
}

static void in_orphan_fragment6(void **state)
{
	orphan(state, 6, CFR_DIR_IN);
}

/*
 * Fragment tracking is keyed by the datagram (source, destination,
 * identification): a later fragment with another identification must not
 * ride on a known datagram's mapping.
 */
static void other_id(void **state, int family)
{
	struct pkt whole, frags[NFRAG], other[NFRAG];
	struct pkt_spec s;
	struct cfr_pkt r;

	fill_big();
	lab_spec(&s, family, IPPROTO_UDP, 40204, 4433);
	s.payload = big;
	s.payload_len = sizeof big;
	pkt_build(&whole, &s);
	assert_int_equal(pkt_fragment(&whole, 400, 0x1111, frags, NFRAG), NFRAG);
	assert_int_equal(pkt_fragment(&whole, 400, 0x2222, other, NFRAG), NFRAG);
	r = lab_process(*state, &frags[0], T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	r = lab_process(*state, &other[1], T0 + 1);
	lab_expect_drop(&r, CFR_DROP_FRAG_NO_FLOW);
}

static void out_fragment_other_id4(void **state)
{
	other_id(state, 4);
}

static void out_fragment_other_id6(void **state)
{
	other_id(state, 6);
}

/*
 * RFC 8200 §4.5: destination options for the final destination belong to
 * the fragmentable part, so only the first fragment carries them; every
 * fragment header names them (60) as its next header. The later fragments
 * must still follow the first (issue 12: they were keyed by 60 and dropped).
 */
static void out_udp6_dstopts_after_fragment_header(void **state)
{
	struct pkt whole, frag[2];
	struct pkt_spec s;
	struct cfr_pkt r;
	uint32_t plen, off, k;

	fill_big();
	lab_spec(&s, 6, IPPROTO_UDP, 40210, 4433);
	s.ext[0] = PKT_EXT_DSTOPTS;
	s.n_ext = 1;
	s.payload = big;
	s.payload_len = sizeof big;
	pkt_build(&whole, &s);
	plen = whole.len - 40; /* destination options, UDP header, payload */
	for (k = 0, off = 0; k < 2; k++, off += 504) {
		uint32_t chunk = k == 0 ? 504 : plen - 504;
		uint8_t *o = frag[k].data;

		memcpy(o, whole.data, 40);
		o[6] = 44;
		memset(o + 40, 0, 8);
		o[40] = 60;
		pkt_put16(o + 42, (uint16_t)(off | (k == 0 ? 1 : 0)));
		pkt_put32(o + 44, 0x6060);
		memcpy(o + 48, whole.data + 40 + off, chunk);
		pkt_put16(o + 4, (uint16_t)(8 + chunk));
		frag[k].len = 48 + chunk;
	}
	r = lab_process(*state, &frag[0], T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	r = lab_process(*state, &frag[1], T0 + 1);
	lab_expect_forward(&r, CFR_DIR_OUT);
	/* The builder's parser stops at a fragment header: read the sources directly. */
	assert_true(lab_in_pool(6, frag[0].data + 8));
	assert_memory_equal(frag[1].data + 8, frag[0].data + 8, 16);
}

#define T(f) cmocka_unit_test_setup_teardown(f, lab_setup, lab_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(out_udp4_three_fragments),
	    T(out_udp6_three_fragments),
	    T(in_udp4_three_fragments),
	    T(in_udp6_three_fragments),
	    T(out_udp4_two_datagrams_one_flow),
	    T(out_udp6_two_datagrams_one_flow),
	    T(out_orphan_fragment4),
	    T(out_orphan_fragment6),
	    T(in_orphan_fragment4),
	    T(in_orphan_fragment6),
	    T(out_fragment_other_id4),
	    T(out_fragment_other_id6),
	    T(out_udp6_dstopts_after_fragment_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
