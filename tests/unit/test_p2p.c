/*
 * Traffic classes, endpoint-independent and address-dependent mappings,
 * their filtering, and hairpinning (issue 17; RFC 4787 REQ-1, -4, -8, -9,
 * RFC 5382 REQ-8), on the engine with the lab's configuration and the
 * built-in classes (TCP and UDP to 443 per-flow, other UDP endpoint-
 * independent with address-dependent filtering) unless a test says
 * otherwise. Hairpinned packets, ICMP errors about them included, must
 * carry no subscriber address but their destination's.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/records/records.h"
#include "lab.h"
#include "pkt.h"

#define T0 1000000

struct fam {
	int family;
};

/* Where a packet goes and comes from, as it left the engine. */
struct ends {
	uint8_t src[16], dst[16];
	uint16_t sport, dport;
};

static struct ends ends_of(const struct pkt *p)
{
	struct pkt_info pi;
	struct ends e;

	if (pkt_parse(p->data, p->len, false, &pi))
		fail_msg("packet does not parse");
	memcpy(e.src, pi.src, 16);
	memcpy(e.dst, pi.dst, 16);
	e.sport = pi.sport;
	e.dport = pi.dport;
	return e;
}

static size_t alen(int family)
{
	return family == 4 ? 4 : 16;
}

/* The lab remote <n> (n = 0 is lab_remote()). */
static void remote_n(int family, unsigned n, uint8_t out[16])
{
	memcpy(out, lab_remote(family), 16);
	out[alen(family) - 1] = (uint8_t)(out[alen(family) - 1] + n);
}

/* A UDP (or TCP SYN) packet from <src>:<sport> to <dst>:<dport>; returns its verdict. */
static struct cfr_pkt send_from(struct cfr_engine *eng, int family, uint8_t proto,
                                const uint8_t *src, uint16_t sport, const uint8_t *dst,
                                uint16_t dport, struct pkt *out, uint64_t now)
{
	struct pkt_spec s;

	lab_spec(&s, family, proto, sport, dport);
	memcpy(s.src, src, 16);
	memcpy(s.dst, dst, 16);
	return lab_send(eng, &s, out, now);
}

/* Out from the lab subscriber, forwarded: the alias and port it left with. */
static struct ends out_ok(struct cfr_engine *eng, int family, uint8_t proto, uint16_t sport,
                          const uint8_t *dst, uint16_t dport)
{
	struct pkt out;
	struct cfr_pkt r =
	    send_from(eng, family, proto, lab_sub(family), sport, dst, dport, &out, T0);

	lab_expect_forward(&r, CFR_DIR_OUT);
	lab_expect_checksums(&out);
	return ends_of(&out);
}

/* A datagram from <src>:<sport> to alias <a>:<aport>; returns its verdict and <out>. */
static struct cfr_pkt in_from(struct cfr_engine *eng, int family, const uint8_t *src,
                              uint16_t sport, const struct ends *a, struct pkt *out)
{
	return send_from(eng, family, IPPROTO_UDP, src, sport, a->src, a->sport, out, T0);
}

/* RFC 4787 REQ-1: one alias and port for every destination of one socket. */
static void eim_one_mapping_for_all(void **state)
{
	const struct lab_case *lc = *state;
	int f = ((const struct fam *)lc->params)->family;
	const struct cfr_stats *st = cfr_engine_stats(lc->eng);
	uint8_t r1[16], r2[16];
	struct ends a, b, c, d;

	remote_n(f, 1, r1);
	remote_n(f, 2, r2);
	a = out_ok(lc->eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	b = out_ok(lc->eng, f, IPPROTO_UDP, 5000, r1, 3479);
	c = out_ok(lc->eng, f, IPPROTO_UDP, 5000, r2, 9);
	assert_true(lab_in_pool(f, a.src));
	assert_memory_equal(a.src, b.src, alen(f));
	assert_memory_equal(a.src, c.src, alen(f));
	assert_int_equal(a.sport, b.sport);
	assert_int_equal(a.sport, c.sport);
	/* Another socket, another draw. */
	d = out_ok(lc->eng, f, IPPROTO_UDP, 5002, lab_remote(f), 3478);
	assert_true(d.sport != a.sport || memcmp(d.src, a.src, alen(f)) != 0);
	/* One mapping each; the flows are its remotes. */
	assert_int_equal(st->mappings_created, 2);
	assert_int_equal(st->flows_created, 4);
	assert_int_equal(st->flows_active[lab_fam(f)][CFR_PROTO_UDP], 4);
}

/* TLS and QUIC keep per-flow aliases: the same socket to two remotes, two aliases. */
static void per_flow_class_unchanged(void **state)
{
	const struct lab_case *lc = *state;
	int f = ((const struct fam *)lc->params)->family;
	uint8_t r1[16];
	unsigned same = 0;

	remote_n(f, 1, r1);
	for (uint16_t i = 0; i < 8; i++) {
		struct ends a =
		    out_ok(lc->eng, f, IPPROTO_UDP, (uint16_t)(6000 + i), lab_remote(f), 443);
		struct ends b = out_ok(lc->eng, f, IPPROTO_UDP, (uint16_t)(6000 + i), r1, 443);
		struct ends c =
		    out_ok(lc->eng, f, IPPROTO_TCP, (uint16_t)(7000 + i), lab_remote(f), 443);
		struct ends d = out_ok(lc->eng, f, IPPROTO_TCP, (uint16_t)(7000 + i), r1, 443);

		same += a.sport == b.sport && memcmp(a.src, b.src, alen(f)) == 0;
		same += c.sport == d.sport && memcmp(c.src, d.src, alen(f)) == 0;
	}
	assert_int_equal(same, 0);
	assert_int_equal(cfr_engine_stats(lc->eng)->mappings_created, 0);
}

/* RFC 4787 REQ-8: address-dependent filtering, the built-in one. */
static void adf_filtering(void **state)
{
	const struct lab_case *lc = *state;
	int f = ((const struct fam *)lc->params)->family;
	uint8_t r1[16];
	struct ends a, got;
	struct cfr_pkt r;
	struct pkt p;

	remote_n(f, 1, r1);
	a = out_ok(lc->eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	/* Another port of the same remote: in (RFC 5780's "change port" test). */
	r = in_from(lc->eng, f, lab_remote(f), 3479, &a, &p);
	lab_expect_forward(&r, CFR_DIR_IN);
	lab_expect_checksums(&p);
	got = ends_of(&p);
	assert_memory_equal(got.dst, lab_sub(f), alen(f));
	assert_int_equal(got.dport, 5000);
	/* Another address: filtered, until the subscriber sends to it. */
	r = in_from(lc->eng, f, r1, 3478, &a, &p);
	lab_expect_drop(&r, CFR_DROP_FILTERED);
	out_ok(lc->eng, f, IPPROTO_UDP, 5000, r1, 9999);
	r = in_from(lc->eng, f, r1, 3478, &a, &p);
	lab_expect_forward(&r, CFR_DIR_IN);
	/* An alias port nobody holds is no flow at all. */
	a.sport = (uint16_t)(a.sport ^ 2);
	r = in_from(lc->eng, f, lab_remote(f), 3478, &a, &p);
	lab_expect_drop(&r, CFR_DROP_NO_FLOW);
}

static struct cfr_engine *class_engine(enum cfr_mapping m, enum cfr_filtering flt)
{
	struct cfr_engine_config cfg;

	lab_config(&cfg);
	cfg.classes[1].mapping = (uint8_t)m;
	cfg.classes[1].filtering = (uint8_t)flt;
	return lab_engine(&cfg);
}

/* Endpoint-independent filtering: anyone; address-and-port-dependent: that port only. */
static void eif_and_apdf_filtering(void **state)
{
	int f = ((const struct fam *)((const struct lab_case *)*state)->params)->family;
	struct cfr_engine *eng;
	uint8_t r1[16];
	struct ends a;
	struct cfr_pkt r;
	struct pkt p;

	remote_n(f, 1, r1);
	eng = class_engine(CFR_MAPPING_ENDPOINT_INDEPENDENT, CFR_FILTERING_ENDPOINT_INDEPENDENT);
	a = out_ok(eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	r = in_from(eng, f, r1, 4444, &a, &p);
	lab_expect_forward(&r, CFR_DIR_IN);
	assert_int_equal(ends_of(&p).dport, 5000);
	/* No peer records: the mapping is the flow. */
	assert_int_equal(cfr_engine_stats(eng)->flows_created, 1);
	cfr_engine_free(eng);

	eng = class_engine(CFR_MAPPING_ENDPOINT_INDEPENDENT, CFR_FILTERING_ADDRESS_PORT_DEPENDENT);
	a = out_ok(eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	r = in_from(eng, f, lab_remote(f), 3479, &a, &p);
	lab_expect_drop(&r, CFR_DROP_FILTERED);
	r = in_from(eng, f, lab_remote(f), 3478, &a, &p);
	lab_expect_forward(&r, CFR_DIR_IN);
	/* Still one mapping for every destination. */
	assert_int_equal(out_ok(eng, f, IPPROTO_UDP, 5000, r1, 53).sport, a.sport);
	cfr_engine_free(eng);
}

/* Address-dependent mapping: one alias:port per remote address, whatever its port. */
static void adm_mapping(void **state)
{
	int f = ((const struct fam *)((const struct lab_case *)*state)->params)->family;
	struct cfr_engine *eng =
	    class_engine(CFR_MAPPING_ADDRESS_DEPENDENT, CFR_FILTERING_ADDRESS_DEPENDENT);
	unsigned same = 0;
	struct cfr_pkt r;
	struct pkt p;

	for (unsigned i = 1; i <= 8; i++) {
		uint8_t ri[16];
		struct ends a, b;

		remote_n(f, i, ri);
		a = out_ok(eng, f, IPPROTO_UDP, 5000, ri, 3478);
		b = out_ok(eng, f, IPPROTO_UDP, 5000, ri, 3479);
		assert_memory_equal(a.src, b.src, alen(f));
		assert_int_equal(a.sport, b.sport);
		r = in_from(eng, f, ri, 7, &a, &p);
		lab_expect_forward(&r, CFR_DIR_IN);
		if (i > 1) {
			struct ends c = out_ok(eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);

			same += c.sport == a.sport && memcmp(c.src, a.src, alen(f)) == 0;
		}
	}
	assert_int_equal(same, 0);
	cfr_engine_free(eng);
}

/* RFC 4787 REQ-4: the alias port has the subscriber port's parity. */
static void port_parity(void **state)
{
	const struct lab_case *lc = *state;
	int f = ((const struct fam *)lc->params)->family;
	unsigned odd = 0;

	for (uint16_t i = 0; i < 200; i++) {
		struct ends a =
		    out_ok(lc->eng, f, IPPROTO_UDP, (uint16_t)(10000 + i), lab_remote(f), 3478);

		assert_int_equal(a.sport & 1, i & 1);
		odd += a.sport & 1;
	}
	assert_int_equal(odd, 100);
}

/*
 * A mapping's alias:port is its own: with one alias and two ports, the
 * mapping takes one and every per-flow flow the other.
 */
static void mapping_never_shared_with_per_flow(void **state)
{
	int f = ((const struct fam *)((const struct lab_case *)*state)->params)->family;
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct ends m;

	lab_config(&cfg);
	assert_int_equal(cfr_prefix_parse(f == 4 ? "192.0.2.1/32" : "2001:db8:a1::/120",
	                                  f == 4 ? &cfg.pool4[0] : &cfg.pool6[0]),
	                 0);
	cfg.port_min = 1024;
	cfg.port_max = 1025;
	eng = lab_engine(&cfg);
	m = out_ok(eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	assert_int_equal(m.sport, 1024); /* even, as 5000 */
	for (unsigned i = 1; i <= 16; i++) {
		uint8_t ri[16];
		struct ends a;

		remote_n(f, i, ri);
		a = out_ok(eng, f, IPPROTO_UDP, (uint16_t)(6000 + i), ri, 443);
		assert_false(a.sport == m.sport && memcmp(a.src, m.src, alen(f)) == 0);
	}
	cfr_engine_free(eng);
}

/* A mapping keeps its alias across an epoch; new mappings draw from the new seed. */
static void mapping_across_epochs(void **state)
{
	const struct lab_case *lc = *state;
	int f = ((const struct fam *)lc->params)->family;
	struct ends a, b;

	a = out_ok(lc->eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	cfr_engine_epoch_rotate(lc->eng, T0 + 1000);
	b = out_ok(lc->eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	assert_memory_equal(a.src, b.src, alen(f));
	assert_int_equal(a.sport, b.sport);
	assert_int_equal(cfr_engine_stats(lc->eng)->mappings_created, 1);
}

/* No byte string of <addr> (4 or 16 bytes) anywhere in the packet but at <allowed>. */
static void expect_absent(const struct pkt *p, const uint8_t *addr, size_t len, size_t allowed)
{
	for (size_t i = 0; i + len <= p->len; i++)
		if (i != allowed && memcmp(p->data + i, addr, len) == 0)
			fail_msg("subscriber address at offset %zu of a hairpinned packet", i);
}

static size_t dst_off(int family)
{
	return family == 4 ? 16 : 24;
}

/*
 * RFC 4787 REQ-9: two subscribers behind the gateway punch a hole to each
 * other through their aliases (the way ICE does it) and exchange data; each
 * sees only the other's alias.
 */
static void hairpin_hole_punch(void **state)
{
	const struct lab_case *lc = *state;
	int f = ((const struct fam *)lc->params)->family;
	const struct cfr_stats *st = cfr_engine_stats(lc->eng);
	struct ends a, b, got;
	struct cfr_pkt r;
	struct pkt p;

	/* Both learn their mappings from a STUN server. */
	a = out_ok(lc->eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	r = send_from(lc->eng, f, IPPROTO_UDP, lab_sub2(f), 6000, lab_remote(f), 3478, &p, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	b = ends_of(&p);
	/* The first punch is filtered at the other end, and opens this end. */
	r = send_from(lc->eng, f, IPPROTO_UDP, lab_sub(f), 5000, b.src, b.sport, &p, T0);
	lab_expect_drop(&r, CFR_DROP_FILTERED);
	assert_int_equal(r.dir, CFR_DIR_OUT);
	/* The second goes through, from the sender's alias. */
	r = send_from(lc->eng, f, IPPROTO_UDP, lab_sub2(f), 6000, a.src, a.sport, &p, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	lab_expect_checksums(&p);
	got = ends_of(&p);
	assert_memory_equal(got.src, b.src, alen(f));
	assert_int_equal(got.sport, b.sport);
	assert_memory_equal(got.dst, lab_sub(f), alen(f));
	assert_int_equal(got.dport, 5000);
	expect_absent(&p, lab_sub2(f), alen(f), (size_t)-1);
	/* And back. */
	r = send_from(lc->eng, f, IPPROTO_UDP, lab_sub(f), 5000, b.src, b.sport, &p, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	lab_expect_checksums(&p);
	got = ends_of(&p);
	assert_memory_equal(got.src, a.src, alen(f));
	assert_int_equal(got.sport, a.sport);
	assert_memory_equal(got.dst, lab_sub2(f), alen(f));
	assert_int_equal(got.dport, 6000);
	expect_absent(&p, lab_sub(f), alen(f), (size_t)-1);
	assert_int_equal(st->hairpinned, 2);
}

/*
 * A subscriber's own hairpin: from the mapping's socket to its own alias,
 * and from a second socket (RFC 5780's hairpinning test): a subscriber's
 * mappings are not filtered from each other. Its alias is the source.
 */
static void hairpin_to_self(void **state)
{
	const struct lab_case *lc = *state;
	int f = ((const struct fam *)lc->params)->family;
	struct ends a, got;
	struct cfr_pkt r;
	struct pkt p;

	a = out_ok(lc->eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	r = send_from(lc->eng, f, IPPROTO_UDP, lab_sub(f), 5002, a.src, a.sport, &p, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	got = ends_of(&p);
	assert_true(lab_in_pool(f, got.src));
	assert_int_equal(got.dport, 5000);
	expect_absent(&p, lab_sub(f), alen(f), dst_off(f));
	r = send_from(lc->eng, f, IPPROTO_UDP, lab_sub(f), 5000, a.src, a.sport, &p, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	got = ends_of(&p);
	assert_memory_equal(got.src, a.src, alen(f));
	assert_int_equal(got.sport, a.sport);
	assert_memory_equal(got.dst, lab_sub(f), alen(f));
	assert_int_equal(got.dport, 5000);
	expect_absent(&p, lab_sub(f), alen(f), dst_off(f));
}

/*
 * Per-flow classes hairpin too: the sender's per-flow alias reaches a
 * mapping that filters nobody out; the receiver's answer, per-flow as
 * well, leaves from a fresh alias the sender's flow does not know, and is
 * dropped like any reply from a stranger. A TCP SYN to an alias no flow
 * of that remote holds is dropped as a hairpin.
 */
static void hairpin_per_flow(void **state)
{
	int f = ((const struct fam *)((const struct lab_case *)*state)->params)->family;
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct ends b, got;
	struct cfr_pkt r;
	struct pkt p;

	lab_config(&cfg);
	cfg.port_min = 4000; /* no alias port falls in the mapping's class */
	cfg.classes[1] = (struct cfr_class){.proto = CFR_PROTO_UDP,
	                                    .mapping = CFR_MAPPING_ENDPOINT_INDEPENDENT,
	                                    .filtering = CFR_FILTERING_ENDPOINT_INDEPENDENT,
	                                    .port_min = 3478,
	                                    .port_max = 3478};
	eng = lab_engine(&cfg);
	r = send_from(eng, f, IPPROTO_UDP, lab_sub2(f), 6000, lab_remote(f), 3478, &p, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	b = ends_of(&p);
	r = send_from(eng, f, IPPROTO_UDP, lab_sub(f), 5000, b.src, b.sport, &p, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	lab_expect_checksums(&p);
	got = ends_of(&p);
	assert_true(lab_in_pool(f, got.src));
	assert_memory_equal(got.dst, lab_sub2(f), alen(f));
	expect_absent(&p, lab_sub(f), alen(f), (size_t)-1);
	/* The next datagram finds the same flow: the same alias and port. */
	r = send_from(eng, f, IPPROTO_UDP, lab_sub(f), 5000, b.src, b.sport, &p, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	assert_memory_equal(ends_of(&p).src, got.src, alen(f));
	assert_int_equal(ends_of(&p).sport, got.sport);
	assert_int_equal(cfr_engine_stats(eng)->flows_created, 2);
	/* The answer: a new per-flow alias, which the sender's flow does not accept. */
	r = send_from(eng, f, IPPROTO_UDP, lab_sub2(f), 6000, got.src, got.sport, &p, T0);
	lab_expect_drop(&r, CFR_DROP_HAIRPIN);
	/* TCP: translated out, refused in, nothing delivered. */
	r = send_from(eng, f, IPPROTO_TCP, lab_sub(f), 5001, b.src, b.sport, &p, T0);
	lab_expect_drop(&r, CFR_DROP_HAIRPIN);
	assert_int_equal(r.dir, CFR_DIR_OUT);
	cfr_engine_free(eng);
}

/*
 * ICMP errors about hairpinned packets, from the receiving subscriber and
 * from the gateway's own stack: they reach the sender with the receiver's
 * alias in the quote, and the receiver's address nowhere.
 */
static void hairpin_icmp_errors(void **state)
{
	const struct lab_case *lc = *state;
	int f = ((const struct fam *)lc->params)->family;
	uint8_t gw[16] = {0};
	struct ends a, b;
	struct cfr_pkt r;
	struct pkt p, e;
	struct pkt_info pi, qi;
	const uint8_t *senders[2];

	pkt_addr(f, f == 4 ? "198.51.100.1" : "2001:db8:ffff::1", gw);
	senders[0] = lab_sub2(f);
	senders[1] = gw;
	a = out_ok(lc->eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	r = send_from(lc->eng, f, IPPROTO_UDP, lab_sub2(f), 6000, lab_remote(f), 3478, &p, T0);
	b = ends_of(&p);
	r = send_from(lc->eng, f, IPPROTO_UDP, lab_sub2(f), 6000, a.src, a.sport, &p, T0);
	lab_expect_drop(&r, CFR_DROP_FILTERED);
	for (unsigned k = 0; k < 2; k++) {
		/* sub1 to sub2 through the hole: what sub2 receives ... */
		r = send_from(lc->eng, f, IPPROTO_UDP, lab_sub(f), 5000, b.src, b.sport, &p, T0);
		lab_expect_forward(&r, CFR_DIR_IN);
		/* ... and the port unreachable about it, from sub2 or the gateway. */
		pkt_build_icmp_error(&e, f, senders[k], a.src, f == 4 ? 3 : 1, f == 4 ? 3 : 4, 0,
		                     p.data, p.len);
		r = lab_process(lc->eng, &e, T0);
		lab_expect_forward(&r, CFR_DIR_IN);
		lab_expect_checksums(&e);
		assert_int_equal(pkt_parse(e.data, e.len, false, &pi), 0);
		assert_true(pi.icmp_error);
		assert_memory_equal(pi.src, b.src, alen(f));
		assert_memory_equal(pi.dst, lab_sub(f), alen(f));
		assert_int_equal(
		    pkt_parse(e.data + pkt_inner_off(&pi), e.len - pkt_inner_off(&pi), true, &qi),
		    0);
		assert_memory_equal(qi.src, lab_sub(f), alen(f));
		assert_int_equal(qi.sport, 5000);
		assert_memory_equal(qi.dst, b.src, alen(f));
		assert_int_equal(qi.dport, b.sport);
		expect_absent(&e, lab_sub2(f), alen(f), (size_t)-1);
	}
}

/* An error quoting a packet to a remote the mapping never sent to: filtered as that packet. */
static void icmp_error_filtered(void **state)
{
	const struct lab_case *lc = *state;
	int f = ((const struct fam *)lc->params)->family;
	struct pkt_spec s;
	struct pkt q, e;
	struct ends a;
	uint8_t r1[16];
	struct cfr_pkt r;

	remote_n(f, 1, r1);
	a = out_ok(lc->eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	/* The packet the mapping would have sent to r1. */
	lab_spec(&s, f, IPPROTO_UDP, a.sport, 3478);
	memcpy(s.src, a.src, 16);
	memcpy(s.dst, r1, 16);
	pkt_build(&q, &s);
	pkt_build_icmp_error(&e, f, r1, a.src, f == 4 ? 3 : 1, f == 4 ? 3 : 4, 0, q.data, q.len);
	r = lab_process(lc->eng, &e, T0);
	lab_expect_drop(&r, CFR_DROP_ICMP_NO_FLOW);
	/* About the packet to the STUN server, from a router on the way: in. */
	memcpy(s.dst, lab_remote(f), 16);
	pkt_build(&q, &s);
	pkt_build_icmp_error(&e, f, r1, a.src, f == 4 ? 3 : 1, f == 4 ? 3 : 4, 0, q.data, q.len);
	r = lab_process(lc->eng, &e, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
}

/* Mappings time out like UDP flows, and their peers with them. */
static void mapping_expires(void **state)
{
	const struct lab_case *lc = *state;
	int f = ((const struct fam *)lc->params)->family;
	const struct cfr_stats *st = cfr_engine_stats(lc->eng);
	struct ends a, b;
	struct cfr_pkt r;
	struct pkt p;

	a = out_ok(lc->eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	cfr_engine_expire(lc->eng, T0 + 200 * 1000);
	/* A packet in keeps it (RFC 4787 REQ-6 allows inbound refresh). */
	r = in_from(lc->eng, f, lab_remote(f), 3479, &a, &p);
	lab_expect_forward(&r, CFR_DIR_IN);
	cfr_engine_expire(lc->eng, T0 + 400 * 1000);
	assert_int_equal(st->flows_active[lab_fam(f)][CFR_PROTO_UDP], 1);
	cfr_engine_expire(lc->eng, T0 + 800 * 1000);
	assert_int_equal(st->flows_active[lab_fam(f)][CFR_PROTO_UDP], 0);
	r = in_from(lc->eng, f, lab_remote(f), 3479, &a, &p);
	lab_expect_drop(&r, CFR_DROP_NO_FLOW);
	b = out_ok(lc->eng, f, IPPROTO_UDP, 5000, lab_remote(f), 3478);
	assert_int_equal(st->mappings_created, 2);
	(void)b;
}

struct recs {
	unsigned n;
	struct cfr_epoch_record rec[4];
};

static void keep_rec(void *ctx, const struct cfr_epoch_record *rec)
{
	struct recs *r = ctx;

	if (r->n < 4)
		r->rec[r->n++] = *rec;
}

static void count_match(void *ctx, const struct cfr_epoch_record *rec, const struct cfr_match *m)
{
	(void)rec;
	(void)m;
	(*(unsigned *)ctx)++;
}

/*
 * The sealed records attribute a mapping: a complaint about its alias and
 * port (either parity of the draw, as the port keeps the subscriber's)
 * names its subscriber's record and not the other's.
 */
static void records_attribute_mappings(void **state)
{
	const struct lab_case *lc = *state;
	int f = ((const struct fam *)lc->params)->family;
	struct cfr_engine_config cfg;
	static struct recs got;
	struct ends m[2];
	struct cfr_pkt r;
	struct pkt p;

	lab_config(&cfg);
	m[0] = out_ok(lc->eng, f, IPPROTO_UDP, 5001, lab_remote(f), 3478);
	r = send_from(lc->eng, f, IPPROTO_UDP, lab_sub2(f), 6000, lab_remote(f), 3478, &p, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	m[1] = ends_of(&p);
	cfr_engine_epoch_rotate(lc->eng, T0 + 2000);
	memset(&got, 0, sizeof(got));
	assert_int_equal(cfr_engine_drain_records(lc->eng, keep_rec, &got, 4), 0);
	assert_int_equal(got.n, 2);
	for (unsigned i = 0; i < 2; i++) {
		struct cfr_complaint q = {
		    .family = (uint8_t)lab_fam(f), .port = m[i].sport, .to_ms = UINT64_MAX};
		const uint8_t *who = i == 0 ? lab_sub(f) : lab_sub2(f);

		memcpy(q.alias, m[i].src, 16);
		for (unsigned k = 0; k < got.n; k++) {
			unsigned hits = 0;
			bool mine = memcmp(got.rec[k].subscriber, who, f == 4 ? 4 : 8) == 0;

			assert_true(cfr_record_match(&cfg, &got.rec[k], &q, count_match, &hits) >=
			            0);
			assert_int_equal(hits, mine ? 1 : 0);
		}
	}
}

/* A TCP segment from <src>:<sport> to <dst>:<dport> with <flags>; returns its verdict. */
static struct cfr_pkt tcp_from(struct cfr_engine *eng, int family, const uint8_t *src,
                               uint16_t sport, const uint8_t *dst, uint16_t dport, uint8_t flags,
                               struct pkt *out, uint64_t now)
{
	struct pkt_spec s;

	lab_spec(&s, family, IPPROTO_TCP, sport, dport);
	memcpy(s.src, src, 16);
	memcpy(s.dst, dst, 16);
	s.tcp_flags = flags;
	if (flags & PKT_TCP_ACK)
		s.ack = 1;
	/* Timestamps on: the scrubber's fields share a peer record with its mapping's. */
	s.tcp_ts = true;
	s.tsval = 0x9e3779b9u + sport; /* far past any flow index */
	s.tsecr = flags & PKT_TCP_ACK ? 7 : 0;
	return lab_send(eng, &s, out, now);
}

/* A SYN with timestamps from the lab subscriber, forwarded: the alias and port it left with. */
static struct ends tcp_out(struct cfr_engine *eng, int family, uint16_t sport, const uint8_t *dst,
                           uint16_t dport)
{
	struct pkt out;
	struct cfr_pkt r =
	    tcp_from(eng, family, lab_sub(family), sport, dst, dport, PKT_TCP_SYN, &out, T0);

	lab_expect_forward(&r, CFR_DIR_OUT);
	lab_expect_checksums(&out);
	return ends_of(&out);
}

static struct cfr_engine *tcp_class_engine(void)
{
	struct cfr_engine_config cfg;

	lab_config(&cfg);
	cfg.classes[2] = (struct cfr_class){
	    .proto = CFR_PROTO_TCP,
	    .mapping = CFR_MAPPING_ENDPOINT_INDEPENDENT,
	    .filtering = CFR_FILTERING_ADDRESS_PORT_DEPENDENT,
	    .port_min = 1024, /* every alias port: a punch to one is in the class */
	    .port_max = 65535};
	cfg.n_classes = 3;
	return lab_engine(&cfg);
}

/*
 * A TCP class with an endpoint-independent mapping (RFC 5382 REQ-1),
 * filtered by address and port: one alias:port for every remote, each
 * connection opened by the subscriber's SYN, a stranger's SYN refused, and
 * the mapping kept as long as an established connection may idle.
 */
static void tcp_mapping(void **state)
{
	int f = ((const struct fam *)((const struct lab_case *)*state)->params)->family;
	struct cfr_engine *eng = tcp_class_engine();
	const struct cfr_stats *st = cfr_engine_stats(eng);
	uint8_t r1[16], r2[16];
	struct ends a, b;
	struct cfr_pkt r;
	struct pkt p;

	remote_n(f, 1, r1);
	remote_n(f, 2, r2);
	r = tcp_from(eng, f, lab_sub(f), 6000, lab_remote(f), 5222, PKT_TCP_ACK, &p, T0);
	lab_expect_drop(&r, CFR_DROP_TCP_NOT_SYN);
	a = tcp_out(eng, f, 6000, lab_remote(f), 5222);
	b = tcp_out(eng, f, 6000, r1, 6881);
	assert_memory_equal(a.src, b.src, alen(f));
	assert_int_equal(a.sport, b.sport);
	assert_int_equal(a.sport & 1, 0);
	/* TCP to 443 stays per-flow from the same port. */
	b = tcp_out(eng, f, 6000, r1, 443);
	assert_false(a.sport == b.sport && memcmp(a.src, b.src, alen(f)) == 0);
	/* The SYN-ACK of the remote it sent to: in; a stranger's SYN: filtered. */
	r = tcp_from(eng, f, lab_remote(f), 5222, a.src, a.sport, PKT_TCP_SYN | PKT_TCP_ACK, &p,
	             T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	assert_int_equal(ends_of(&p).dport, 6000);
	r = tcp_from(eng, f, r2, 5222, a.src, a.sport, PKT_TCP_SYN, &p, T0);
	lab_expect_drop(&r, CFR_DROP_FILTERED);
	assert_int_equal(st->mappings_created, 1);
	/* Established and idle for an hour: both the connection and its mapping live. */
	cfr_engine_expire(eng, T0 + 3600 * 1000);
	r = tcp_from(eng, f, lab_remote(f), 5222, a.src, a.sport, PKT_TCP_ACK, &p,
	             T0 + 3600 * 1000);
	lab_expect_forward(&r, CFR_DIR_IN);
	b = tcp_out(eng, f, 6000, r2, 6882);
	assert_int_equal(b.sport, a.sport);
	assert_int_equal(st->mappings_created, 1);
	cfr_engine_free(eng);
}

/*
 * TCP hole punching between two subscribers through their mappings
 * (simultaneous open, hairpinned): the first SYN is filtered and opens its
 * sender's side, the second arrives, and the SYN-ACKs establish both.
 */
static void tcp_hairpin_simultaneous_open(void **state)
{
	int f = ((const struct fam *)((const struct lab_case *)*state)->params)->family;
	struct cfr_engine *eng = tcp_class_engine();
	struct ends a, b, got;
	struct cfr_pkt r;
	struct pkt p;

	a = tcp_out(eng, f, 6000, lab_remote(f), 5222);
	r = tcp_from(eng, f, lab_sub2(f), 7000, lab_remote(f), 5222, PKT_TCP_SYN, &p, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	b = ends_of(&p);
	r = tcp_from(eng, f, lab_sub(f), 6000, b.src, b.sport, PKT_TCP_SYN, &p, T0);
	lab_expect_drop(&r, CFR_DROP_FILTERED);
	r = tcp_from(eng, f, lab_sub2(f), 7000, a.src, a.sport, PKT_TCP_SYN, &p, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	lab_expect_checksums(&p);
	got = ends_of(&p);
	assert_memory_equal(got.src, b.src, alen(f));
	assert_int_equal(got.sport, b.sport);
	assert_memory_equal(got.dst, lab_sub(f), alen(f));
	assert_int_equal(got.dport, 6000);
	expect_absent(&p, lab_sub2(f), alen(f), (size_t)-1);
	r = tcp_from(eng, f, lab_sub(f), 6000, b.src, b.sport, PKT_TCP_SYN | PKT_TCP_ACK, &p, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	got = ends_of(&p);
	assert_memory_equal(got.src, a.src, alen(f));
	assert_memory_equal(got.dst, lab_sub2(f), alen(f));
	assert_int_equal(got.dport, 7000);
	expect_absent(&p, lab_sub(f), alen(f), (size_t)-1);
	r = tcp_from(eng, f, lab_sub2(f), 7000, a.src, a.sport, PKT_TCP_SYN | PKT_TCP_ACK, &p, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	cfr_engine_free(eng);
}

/* Classes the engine refuses. */
static void classes_checked(void **state)
{
	struct cfr_engine_config cfg;
	const char *why;

	(void)state;
	lab_config(&cfg);
	assert_int_equal(cfr_engine_config_check(&cfg, &why), 0);
	cfg.classes[0] = (struct cfr_class){
	    .proto = CFR_PROTO_TCP, .mapping = CFR_MAPPING_ENDPOINT_INDEPENDENT, .port_max = 65535};
	assert_int_equal(cfr_engine_config_check(&cfg, &why), 0);
	cfg.classes[0].filtering = CFR_FILTERING_ADDRESS_DEPENDENT;
	assert_int_equal(cfr_engine_config_check(&cfg, &why), -EINVAL);
	cfg.classes[0] = (struct cfr_class){.proto = CFR_PROTO_UDP,
	                                    .mapping = CFR_MAPPING_PER_FLOW,
	                                    .filtering = CFR_FILTERING_ADDRESS_DEPENDENT,
	                                    .port_max = 65535};
	assert_int_equal(cfr_engine_config_check(&cfg, &why), -EINVAL);
	cfg.classes[0] = (struct cfr_class){.proto = CFR_PROTO_UDP,
	                                    .mapping = CFR_MAPPING_ADDRESS_DEPENDENT,
	                                    .filtering = CFR_FILTERING_ENDPOINT_INDEPENDENT,
	                                    .port_max = 65535};
	assert_int_equal(cfr_engine_config_check(&cfg, &why), -EINVAL);
	cfg.classes[0] = (struct cfr_class){.proto = CFR_PROTO_UDP, .port_min = 9, .port_max = 8};
	assert_int_equal(cfr_engine_config_check(&cfg, &why), -EINVAL);
	cfg.n_classes = CFR_MAX_CLASSES + 1;
	assert_int_equal(cfr_engine_config_check(&cfg, &why), -EINVAL);
	assert_string_equal(cfr_mapping_name(CFR_MAPPING_ENDPOINT_INDEPENDENT),
	                    "endpoint-independent");
	assert_string_equal(cfr_filtering_name(CFR_FILTERING_ADDRESS_PORT_DEPENDENT),
	                    "address-and-port-dependent");
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
	    LAB_CASE(eim_one_mapping_for_all4,       eim_one_mapping_for_all,       struct fam, 4),
	    LAB_CASE(eim_one_mapping_for_all6,       eim_one_mapping_for_all,       struct fam, 6),
	    LAB_CASE(per_flow_class_unchanged4,      per_flow_class_unchanged,      struct fam, 4),
	    LAB_CASE(per_flow_class_unchanged6,      per_flow_class_unchanged,      struct fam, 6),
	    LAB_CASE(adf_filtering4,                 adf_filtering,                 struct fam, 4),
	    LAB_CASE(adf_filtering6,                 adf_filtering,                 struct fam, 6),
	    LAB_CASE(eif_and_apdf_filtering4,        eif_and_apdf_filtering,        struct fam, 4),
	    LAB_CASE(eif_and_apdf_filtering6,        eif_and_apdf_filtering,        struct fam, 6),
	    LAB_CASE(adm_mapping4,                   adm_mapping,                   struct fam, 4),
	    LAB_CASE(adm_mapping6,                   adm_mapping,                   struct fam, 6),
	    LAB_CASE(port_parity4,                   port_parity,                   struct fam, 4),
	    LAB_CASE(port_parity6,                   port_parity,                   struct fam, 6),
	    LAB_CASE(mapping_never_shared4,          mapping_never_shared_with_per_flow, struct fam, 4),
	    LAB_CASE(mapping_never_shared6,          mapping_never_shared_with_per_flow, struct fam, 6),
	    LAB_CASE(mapping_across_epochs4,         mapping_across_epochs,         struct fam, 4),
	    LAB_CASE(mapping_across_epochs6,         mapping_across_epochs,         struct fam, 6),
	    LAB_CASE(hairpin_hole_punch4,            hairpin_hole_punch,            struct fam, 4),
	    LAB_CASE(hairpin_hole_punch6,            hairpin_hole_punch,            struct fam, 6),
	    LAB_CASE(hairpin_to_self4,               hairpin_to_self,               struct fam, 4),
	    LAB_CASE(hairpin_to_self6,               hairpin_to_self,               struct fam, 6),
	    LAB_CASE(hairpin_per_flow4,              hairpin_per_flow,              struct fam, 4),
	    LAB_CASE(hairpin_per_flow6,              hairpin_per_flow,              struct fam, 6),
	    LAB_CASE(hairpin_icmp_errors4,           hairpin_icmp_errors,           struct fam, 4),
	    LAB_CASE(hairpin_icmp_errors6,           hairpin_icmp_errors,           struct fam, 6),
	    LAB_CASE(icmp_error_filtered4,           icmp_error_filtered,           struct fam, 4),
	    LAB_CASE(icmp_error_filtered6,           icmp_error_filtered,           struct fam, 6),
	    LAB_CASE(mapping_expires4,               mapping_expires,               struct fam, 4),
	    LAB_CASE(mapping_expires6,               mapping_expires,               struct fam, 6),
	    LAB_CASE(records_attribute_mappings4,    records_attribute_mappings,    struct fam, 4),
	    LAB_CASE(records_attribute_mappings6,    records_attribute_mappings,    struct fam, 6),
	    LAB_CASE(tcp_mapping4,                   tcp_mapping,                   struct fam, 4),
	    LAB_CASE(tcp_mapping6,                   tcp_mapping,                   struct fam, 6),
	    LAB_CASE(tcp_hairpin_simultaneous_open4, tcp_hairpin_simultaneous_open, struct fam, 4),
	    LAB_CASE(tcp_hairpin_simultaneous_open6, tcp_hairpin_simultaneous_open, struct fam, 6),
	    cmocka_unit_test(classes_checked),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
