/*
 * The engine's side of an offload (cfr.h, struct cfr_offload): which flows
 * may be carried outside the engine and with what (cfr_engine_flow_view),
 * the flow each translated packet belongs to (cfr_pkt.flow), expiry that
 * asks the offload before ending a flow it carries, and the notice when a
 * flow ends.
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
#define UDP_S 30

struct fcase {
	int family;
};

/* A fake offload: says it saw flow <only> (0: every flow) at <seen_s>, and counts removals. */
struct fake_offload {
	uint32_t seen_s;
	uint32_t only;
	unsigned removed;
	uint32_t removed_id;
	struct cfr_flow_view removed_view;
};

static uint32_t fake_last_seen(void *ctx, uint32_t id, const struct cfr_flow_view *v)
{
	const struct fake_offload *o = ctx;

	(void)v;
	return o->only == 0 || o->only == id ? o->seen_s : 0;
}

static void fake_removed(void *ctx, uint32_t id, const struct cfr_flow_view *v)
{
	struct fake_offload *o = ctx;

	o->removed++;
	o->removed_id = id;
	o->removed_view = *v;
}

/* An engine with a UDP_S timeout for UDP and <fake> as its offload. */
static struct cfr_engine *offloaded_engine(struct fake_offload *fake)
{
	const struct cfr_offload o = {
	    .ctx = fake, .last_seen = fake_last_seen, .removed = fake_removed};
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;

	lab_config(&cfg);
	cfg.timeout[CFR_TIMEOUT_UDP] = UDP_S;
	eng = lab_engine(&cfg);
	cfr_engine_set_offload(eng, &o);
	return eng;
}

/* The flow of a UDP datagram from <sport> to <dport> at T0; <s> as built, <out> as it left. */
static uint32_t udp_out(struct cfr_engine *eng, int family, uint16_t sport, uint16_t dport,
                        struct pkt_spec *s, struct pkt *out)
{
	struct cfr_pkt r;

	lab_spec(s, family, IPPROTO_UDP, sport, dport);
	r = lab_send(eng, s, out, T0 * 1000);
	lab_expect_forward(&r, CFR_DIR_OUT);
	return r.flow;
}

/* A translated packet names its flow, and the view is the flow's tuple as translated. */
static void view_matches_translation(void **state)
{
	const struct lab_case *c = *state;
	const struct fcase *p = c->params;
	size_t alen = p->family == 4 ? 4 : 16;
	struct cfr_engine *eng = c->eng;
	struct cfr_flow_view v;
	struct pkt_info pi;
	struct pkt_spec s;
	struct pkt out;
	struct cfr_pkt r;

	lab_spec(&s, p->family, IPPROTO_UDP, 40000, 443);
	r = lab_send(eng, &s, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_not_equal(r.flow, 0);
	assert_true(cfr_engine_flow_view(eng, r.flow, &v));
	assert_int_equal(pkt_parse(out.data, out.len, false, &pi), 0);
	assert_int_equal(v.proto, IPPROTO_UDP);
	assert_memory_equal(v.sub, lab_sub(p->family), alen);
	assert_memory_equal(v.remote, lab_remote(p->family), alen);
	assert_memory_equal(v.alias, pi.src, alen);
	assert_int_equal(v.alias_port, pi.sport);
	assert_int_equal(v.sub_port, 40000);
	assert_int_equal(v.remote_port, 443);
	assert_false(cfr_engine_flow_view(eng, 0, &v));
	assert_false(cfr_engine_flow_view(eng, r.flow + 1, &v));
}

/*
 * TCP is carried only between the handshake and the first FIN or RST: the
 * engine sees every packet that changes the connection's timeout class.
 */
static void tcp_established_only(void **state)
{
	const struct lab_case *c = *state;
	const struct fcase *p = c->params;
	struct cfr_engine *eng = c->eng;
	struct cfr_flow_view v;
	struct pkt_spec s;
	struct pkt out, in;
	struct cfr_pkt r;

	lab_spec(&s, p->family, IPPROTO_TCP, 40001, 443);
	s.tcp_ts = true;
	s.tsval = 5000;
	r = lab_send(eng, &s, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_false(cfr_engine_flow_view(eng, r.flow, &v)); /* embryonic */
	lab_reply_spec(&s, &out);
	r = lab_send(eng, &s, &in, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	assert_true(cfr_engine_flow_view(eng, r.flow, &v));
	assert_true(v.ts_scrub);
	assert_int_equal(v.ts_base, 5000);
	s.tcp_flags = PKT_TCP_FIN | PKT_TCP_ACK;
	r = lab_send(eng, &s, &in, T0);
	lab_expect_forward(&r, CFR_DIR_IN);
	assert_false(cfr_engine_flow_view(eng, r.flow, &v));
}

/* An ICMP echo flow may be carried: the identifier is its port, the remote's is 0. */
static void echo_offloaded(void **state)
{
	const struct lab_case *c = *state;
	const struct fcase *p = c->params;
	struct cfr_flow_view v;
	struct pkt_spec s;
	struct pkt out;
	struct cfr_pkt r;

	lab_spec(&s, p->family, IPPROTO_ICMP, 7, 0);
	r = lab_send(c->eng, &s, &out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_not_equal(r.flow, 0);
	assert_true(cfr_engine_flow_view(c->eng, r.flow, &v));
	assert_int_equal(v.sub_port, 7);
	assert_int_equal(v.remote_port, 0);
	assert_int_not_equal(v.alias_port, 0);
}

/*
 * A flow the offload carries outlives the engine's own last sight of it
 * for as long as the offload keeps seeing it, then ends on time, and the
 * offload is told which flow ended.
 */
static void expiry_asks_offload(void **state)
{
	const struct fcase *p = ((const struct lab_case *)*state)->params;
	struct fake_offload fake = {0};
	struct cfr_engine *eng = offloaded_engine(&fake);
	struct cfr_flow_view v;
	struct pkt out;
	struct pkt_spec s;
	uint32_t id = udp_out(eng, p->family, 40002, 443, &s, &out);

	/* Past the timeout, but the offload saw it 10 s ago: kept. */
	fake.seen_s = T0 + UDP_S;
	cfr_engine_expire(eng, (T0 + UDP_S + 10) * 1000ull);
	assert_true(cfr_engine_flow_view(eng, id, &v));
	assert_int_equal(fake.removed, 0);
	/* Not a second before its timeout after the offload's last packet. */
	cfr_engine_expire(eng, (T0 + 2 * UDP_S) * 1000ull);
	assert_true(cfr_engine_flow_view(eng, id, &v));
	/* The offload saw nothing since: it ends, and the offload hears of it. */
	cfr_engine_expire(eng, (T0 + 2 * UDP_S + 2) * 1000ull);
	assert_false(cfr_engine_flow_view(eng, id, &v));
	assert_int_equal(fake.removed, 1);
	assert_int_equal(fake.removed_id, id);
	assert_int_equal(fake.removed_view.sub_port, 40002);
	assert_int_equal(cfr_engine_stats(eng)->flows_active[lab_fam(p->family)][CFR_PROTO_UDP], 0);
	cfr_engine_free(eng);
}

/*
 * UDP outside QUIC's port has an endpoint-independent mapping with an
 * address-dependent filter (the built-in class): each remote address is a
 * peer record on the mapping's alias:port. A peer may be carried (its
 * remote port is 0: the offload takes it from the packet); while it is,
 * it keeps its mapping, so the alias:port cannot go to another subscriber
 * under the offload's entries. Both end on time once the offload stops
 * seeing the peer. The mapping record itself is never offloaded.
 */
static void peer_offloaded_keeps_its_mapping(void **state)
{
	const struct fcase *p = ((const struct lab_case *)*state)->params;
	struct fake_offload fake = {0};
	struct cfr_engine *eng = offloaded_engine(&fake);
	struct cfr_flow_view v;
	struct pkt out, in, other;
	struct pkt_info a, b;
	struct pkt_spec s, back;
	struct cfr_pkt r;
	uint32_t id = udp_out(eng, p->family, 40003, 3478, &s, &out);
	assert_int_not_equal(id, 0);
	fake.only = id; /* the offload carries the peer, and knows nothing of the mapping */
	assert_true(cfr_engine_flow_view(eng, id, &v));
	assert_int_equal(v.sub_port, 40003);
	assert_int_equal(v.remote_port, 0); /* any port of the remote: the offload's to fill */
	assert_memory_equal(v.remote, lab_remote(p->family), p->family == 4 ? 4 : 16);
	/* Its replies name the same record. */
	lab_reply_spec(&back, &out);
	r = lab_send(eng, &back, &in, T0 * 1000);
	lab_expect_forward(&r, CFR_DIR_IN);
	assert_int_equal(r.flow, id);

	/* Carried for three timeouts: the peer and its mapping stay. */
	for (uint32_t t = 1; t <= 3; t++) {
		fake.seen_s = T0 + t * UDP_S;
		cfr_engine_expire(eng, (T0 + t * UDP_S + 10) * 1000ull);
		assert_true(cfr_engine_flow_view(eng, id, &v));
	}
	assert_int_equal(fake.removed, 0);
	/* The mapping is alive: the socket's datagram to another remote leaves from its alias:port.
	 */
	s.dst[p->family == 4 ? 3 : 15] ^= 1;
	r = lab_send(eng, &s, &other, (T0 + 3 * UDP_S + 10) * 1000ull);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_not_equal(r.flow, id); /* a peer of its own */
	assert_int_equal(pkt_parse(out.data, out.len, false, &a), 0);
	assert_int_equal(pkt_parse(other.data, other.len, false, &b), 0);
	assert_memory_equal(a.src, b.src, p->family == 4 ? 4 : 16);
	assert_int_equal(a.sport, b.sport);
	/* The remote's other ports get in too, to the same peer (the engine's, not the offload's).
	 */
	back.sport = (uint16_t)(back.sport + 1);
	r = lab_send(eng, &back, &in, (T0 + 3 * UDP_S + 10) * 1000ull);
	lab_expect_forward(&r, CFR_DIR_IN);
	assert_int_equal(r.flow, id);
	/*
	 * Quiet since: the peers end, the mapping after them (judged again a
	 * second later if it came up first), and a reply finds nothing.
	 */
	cfr_engine_expire(eng, (T0 + 5 * UDP_S) * 1000ull);
	assert_false(cfr_engine_flow_view(eng, id, &v));
	cfr_engine_expire(eng, (T0 + 5 * UDP_S + 2) * 1000ull);
	assert_int_equal(fake.removed, 3); /* both peers and their mapping */
	assert_int_equal(cfr_engine_stats(eng)->flows_active[lab_fam(p->family)][CFR_PROTO_UDP], 0);
	r = lab_send(eng, &back, &in, (T0 + 5 * UDP_S + 2) * 1000ull);
	lab_expect_drop(&r, CFR_DROP_NO_FLOW);
	cfr_engine_free(eng);
}

/* With an endpoint-independent filter the mapping record is the flow of every remote: not carried.
 */
static void mapping_record_stays(void **state)
{
	const struct fcase *p = ((const struct lab_case *)*state)->params;
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct cfr_flow_view v;
	struct pkt_spec s;
	struct pkt out;
	struct cfr_pkt r;

	lab_config(&cfg);
	cfg.classes[1].filtering = CFR_FILTERING_ENDPOINT_INDEPENDENT; /* the built-in mapping */
	eng = lab_engine(&cfg);
	lab_spec(&s, p->family, IPPROTO_UDP, 40004, 3478);
	r = lab_send(eng, &s, &out, T0 * 1000);
	lab_expect_forward(&r, CFR_DIR_OUT);
	assert_int_equal(r.flow, 0);
	for (uint32_t id = 1; id <= 4; id++)
		assert_false(cfr_engine_flow_view(eng, id, &v));
	cfr_engine_free(eng);
}

#define C(name, test, fam) LAB_CASE(name, test, struct fcase, .family = (fam))

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
	    C(view_matches_translation4, view_matches_translation, 4),
	    C(view_matches_translation6, view_matches_translation, 6),
	    C(tcp_established_only4,     tcp_established_only,     4),
	    C(tcp_established_only6,     tcp_established_only,     6),
	    C(echo_offloaded4,           echo_offloaded,           4),
	    C(echo_offloaded6,           echo_offloaded,           6),
	    C(expiry_asks_offload4,      expiry_asks_offload,      4),
	    C(expiry_asks_offload6,      expiry_asks_offload,      6),
	    C(peer_offloaded4,           peer_offloaded_keeps_its_mapping, 4),
	    C(peer_offloaded6,           peer_offloaded_keeps_its_mapping, 6),
	    C(mapping_record_stays4,     mapping_record_stays,     4),
	    C(mapping_record_stays6,     mapping_record_stays,     6),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
