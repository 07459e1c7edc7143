/*
 * The TC fast path against the engine, packet for packet: for TCP (with
 * timestamps), UDP and ICMP echo, IPv4 and IPv6, outbound and inbound, a
 * lab engine translates a packet and the fast path's program (the object
 * cfrd embeds) rewrites the same packet through BPF_PROG_TEST_RUN, from the
 * entries cfrd would install for that flow (cfrd_fastpath_entries). Both
 * must agree byte for byte (addresses, ports, checksums, TSval / TSecr,
 * flow label), but for what the two paths do differently by design: the
 * program also takes the kernel's second forwarding hop (TTL one lower) and
 * draws its own IPv4 identification (then its own header checksum, checked
 * valid). Needs root and the namespace tests/net/fastpath-equiv.sh builds
 * (devices cfr0, sub0, up0 with the routes and neighbours of the lab's
 * addresses).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>

#include "../../src/cfrd/fastpath.h"
#include "../unit/lab.h"

extern const unsigned char cfr_tc_object[];
extern const uint64_t cfr_tc_object_size;

#define T0 5000

struct bpf_side {
	struct bpf_object *obj;
	int prog, flows, config;
};

static struct bpf_side side;

static int load(void **state)
{
	struct cfr_tc_config cfg = {.ttl_cap = 0, .ip_id = 1, .id_key = {1, 2}};
	struct cfr_engine_config ecfg;
	uint32_t zero = 0;

	(void)state;
	lab_config(&ecfg);
	cfg.ttl_cap = ecfg.scrub.ttl_cap;
	side.obj = bpf_object__open_mem(cfr_tc_object, (size_t)cfr_tc_object_size, NULL);
	assert_non_null(side.obj);
	assert_int_equal(
	    bpf_map__set_max_entries(bpf_object__find_map_by_name(side.obj, "flows"), 64), 0);
	assert_int_equal(bpf_object__load(side.obj), 0);
	side.prog = bpf_program__fd(bpf_object__find_program_by_name(side.obj, "cfr_tc_ingress"));
	side.flows = bpf_object__find_map_fd_by_name(side.obj, "flows");
	side.config = bpf_object__find_map_fd_by_name(side.obj, "config");
	assert_int_equal(bpf_map_update_elem(side.config, &zero, &cfg, BPF_ANY), 0);
	return 0;
}

static int unload(void **state)
{
	(void)state;
	bpf_object__close(side.obj);
	return 0;
}

/*
 * Run <p> (an IP packet) through the program as a frame arriving on
 * <ifname>, a GSO packet of <gso_size>-byte segments if that is not 0;
 * returns the program's verdict.
 */
static int run_program_gso(const struct pkt *p, const char *ifname, uint16_t gso_size, uint8_t *out,
                           uint32_t *out_len)
{
	uint8_t frame[14 + PKT_MAX];
	struct __sk_buff ctx = {.ingress_ifindex = if_nametoindex(ifname),
	                        .ifindex = if_nametoindex(ifname),
	                        .gso_size = gso_size,
	                        .gso_segs = gso_size ? (p->len + gso_size - 1) / gso_size : 0};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = 14 + p->len,
	            .data_out = out, .data_size_out = 14 + PKT_MAX, .ctx_in = &ctx,
	            .ctx_size_in = sizeof(ctx));

	memset(frame, 0x02, 12);
	frame[12] = (p->data[0] >> 4) == 4 ? 0x08 : 0x86;
	frame[13] = (p->data[0] >> 4) == 4 ? 0x00 : 0xdd;
	memcpy(frame + 14, p->data, p->len);
	assert_int_equal(bpf_prog_test_run_opts(side.prog, &opts), 0);
	*out_len = opts.data_size_out;
	return (int)opts.retval;
}

static void run_program(const struct pkt *p, const char *ifname, uint8_t *out, uint32_t *out_len)
{
	assert_int_equal(run_program_gso(p, ifname, 0, out, out_len), TC_ACT_REDIRECT);
}

/*
 * Compare the program's frame with the engine's packet: equal but for the
 * TTL (one lower), the outbound IPv4 identification and the header
 * checksum that covers them (valid on its own).
 */
static void expect_same(const uint8_t *frame, uint32_t frame_len, const struct pkt *engine,
                        const uint8_t *original, enum cfr_dir dir)
{
	const uint8_t *b = frame + 14;
	uint8_t e[PKT_MAX], mine[PKT_MAX];
	bool v4 = (engine->data[0] >> 4) == 4;
	unsigned ttl_off = v4 ? 8 : 7;

	assert_int_equal(frame_len - 14, engine->len);
	memcpy(e, engine->data, engine->len);
	memcpy(mine, b, engine->len);
	assert_int_equal(mine[ttl_off] + 1, e[ttl_off]);
	mine[ttl_off] = e[ttl_off];
	if (v4) {
		assert_int_equal(pkt_csum(b, 20, 0), 0); /* the program's header checksum holds */
		if (dir == CFR_DIR_OUT) { /* a fresh identification on the way out only */
			assert_memory_not_equal(b + 4, original + 4, 2);
			memcpy(mine + 4, e + 4, 2);
		}
		memcpy(mine + 10, e + 10, 2);
	}
	assert_memory_equal(mine, e, engine->len);
	lab_expect_checksums(engine);
}

/*
 * Install flow <id> as cfrd would, routed as written to cfr0; a peer of a
 * mapping that admits every port of its remote, with <remote_port>.
 */
static void install(struct cfr_engine *eng, uint32_t id, uint16_t remote_port)
{
	struct cfrd_fastpath_entry e[2];
	struct cfr_flow_view v;

	assert_true(cfr_engine_flow_view(eng, id, &v));
	if (v.proto == IPPROTO_UDP && v.remote_port == 0)
		v.remote_port = remote_port;
	cfrd_fastpath_entries(&v, id, if_nametoindex("cfr0"), e);
	for (int i = 0; i < 2; i++)
		assert_int_equal(bpf_map_update_elem(side.flows, &e[i].key, &e[i].value, BPF_ANY),
		                 0);
}

/* <sent> through the engine with the TTL the kernel hands TUN, and through the program as sent. */
static void both(struct cfr_engine *eng, const struct pkt *sent, const char *ifname,
                 enum cfr_dir dir, struct pkt *engine_out)
{
	uint8_t frame[14 + PKT_MAX];
	bool v4 = (sent->data[0] >> 4) == 4;
	uint32_t len;
	struct cfr_pkt r;

	*engine_out = *sent;
	engine_out->data[v4 ? 8 : 7]--;
	if (v4)
		pkt_fix_ip4_csum(engine_out->data);
	r = lab_process(eng, engine_out, T0 + 1000);
	lab_expect_forward(&r, dir);
	run_program(sent, ifname, frame, &len);
	expect_same(frame, len, engine_out, sent->data, dir);
}

/*
 * <s> built, a TCP segment's options laid out as nearly every one after the
 * handshake is (NOP, NOP, timestamps: RFC 7323 App. A), the rest NOPs.
 */
static void build(struct pkt *p, const struct pkt_spec *s)
{
	struct pkt_info pi;
	uint8_t *o;

	pkt_build(p, s);
	if (!s->tcp_ts)
		return;
	assert_int_equal(pkt_parse(p->data, p->len, false, &pi), 0);
	o = p->data + pi.l3_len + 20;
	memset(o, 1, 20);
	o[2] = 8;
	o[3] = 10;
	pkt_put32(o + 4, s->tsval);
	pkt_put32(o + 8, s->tsecr);
	pkt_fix_l4_csum(p->data, p->len);
}

struct ecase {
	int family;
	uint8_t proto;
	/* 443: a per-flow flow; another UDP port: a peer of an endpoint-independent mapping */
	uint16_t dport;
};

/* Open a flow of <c> from the subscriber, established, and install it; <out> as it left. */
static void open_installed(struct cfr_engine *eng, const struct ecase *c, struct pkt *out)
{
	struct pkt_spec s;
	struct pkt in;
	struct cfr_pkt r;

	lab_spec(&s, c->family, c->proto, 40000, c->dport);
	s.tcp_ts = c->proto == IPPROTO_TCP;
	s.tsval = 777000;
	s.ttl = 64;
	r = lab_send(eng, &s, out, T0);
	lab_expect_forward(&r, CFR_DIR_OUT);
	if (c->proto == IPPROTO_TCP) { /* established: the remote answered */
		lab_reply_spec(&s, out);
		s.tcp_ts = true;
		s.tsval = 1;
		r = lab_send(eng, &s, &in, T0);
		lab_expect_forward(&r, CFR_DIR_IN);
	}
	assert_int_not_equal(r.flow, 0);
	install(eng, r.flow, c->dport);
}

static void equal_to_engine(void **state)
{
	const struct ecase *c = ((const struct lab_case *)*state)->params;
	struct cfr_engine *eng = ((const struct lab_case *)*state)->eng;
	struct pkt_spec s;
	struct pkt out, in, sent;

	open_installed(eng, c, &out);

	/* Outbound: data after the handshake (ACK, timestamps, payload). */
	lab_spec(&s, c->family, c->proto, 40000, c->dport);
	if (c->proto == IPPROTO_TCP) {
		s.tcp_flags = PKT_TCP_ACK | PKT_TCP_PSH;
		s.tcp_ts = true;
		s.tsval = 777000 + 12345;
		s.tsecr = 1;
	}
	s.ttl = 64;
	build(&sent, &s);
	both(eng, &sent, "sub0", CFR_DIR_OUT, &out);

	/* Inbound: the remote's answer to it, echoing its TSval. */
	lab_reply_spec(&s, &out);
	if (c->proto == IPPROTO_TCP) {
		struct pkt_info pi;

		assert_int_equal(pkt_parse(out.data, out.len, false, &pi), 0);
		s.tcp_flags = PKT_TCP_ACK;
		s.tcp_ts = true;
		s.tsval = 2;
		s.tsecr = pkt_get32(out.data + pi.l3_len + 24); /* NOP NOP TS: TSval at 24 */
	}
	s.ttl = 60;
	build(&sent, &s);
	both(eng, &sent, "up0", CFR_DIR_IN, &in);
}

/*
 * A segment too big for the 1500-byte upstream link goes to the kernel
 * (which answers in alias form through cfrd); the same bytes as a GSO
 * packet of 1500-byte segments fit, and are
 * rewritten as the engine would.
 */
static void gso_fits_by_segment(void **state)
{
	const struct ecase *c = ((const struct lab_case *)*state)->params;
	struct cfr_engine *eng = ((const struct lab_case *)*state)->eng;
	static uint8_t big[3000];
	uint8_t frame[14 + PKT_MAX];
	struct pkt out, sent, engine_out;
	struct pkt_spec s;
	uint32_t len;
	struct cfr_pkt r;

	open_installed(eng, c, &out);
	lab_spec(&s, c->family, IPPROTO_TCP, 40000, 443);
	s.tcp_flags = PKT_TCP_ACK;
	s.tcp_ts = true;
	s.tsval = 777000 + 5;
	s.tsecr = 1;
	s.payload = big;
	s.payload_len = sizeof(big);
	build(&sent, &s);
	assert_int_equal(run_program_gso(&sent, "sub0", 0, frame, &len), TC_ACT_OK);
	/* Segments of 1500 bytes: the IP header, the 40-byte TCP header, the rest payload. */
	assert_int_equal(run_program_gso(&sent, "sub0", c->family == 4 ? 1440 : 1420, frame, &len),
	                 TC_ACT_REDIRECT);
	engine_out = sent;
	engine_out.data[c->family == 4 ? 8 : 7]--;
	if (c->family == 4)
		pkt_fix_ip4_csum(engine_out.data);
	r = lab_process(eng, &engine_out, T0 + 1000);
	lab_expect_forward(&r, CFR_DIR_OUT);
	expect_same(frame, len, &engine_out, sent.data, CFR_DIR_OUT);
}

#define C(name, fam, prot, port)                                                                   \
	LAB_CASE(name, equal_to_engine, struct ecase, .family = (fam), .proto = IPPROTO_##prot,    \
	         .dport = (port))

int main(int argc, char **argv)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
	    C(tcp4,  4, TCP,  443),
	    C(udp4,  4, UDP,  443),
	    C(peer4, 4, UDP,  3478),
	    C(echo4, 4, ICMP, 443),
	    C(tcp6,  6, TCP,  443),
	    C(udp6,  6, UDP,  443),
	    C(peer6, 6, UDP,  3478),
	    C(echo6, 6, ICMP, 443),
	    LAB_CASE(gso4, gso_fits_by_segment, struct ecase, .family = 4, .proto = IPPROTO_TCP,
	             .dport = 443),
	    LAB_CASE(gso6, gso_fits_by_segment, struct ecase, .family = 6, .proto = IPPROTO_TCP,
	             .dport = 443),
	};
	/* clang-format on */

	/* --load-only: does the object load with this process's capabilities? */
	if (argc > 1 && strcmp(argv[1], "--load-only") == 0) {
		struct bpf_object *obj =
		    bpf_object__open_mem(cfr_tc_object, (size_t)cfr_tc_object_size, NULL);
		int ret = obj ? bpf_object__load(obj) : -1;

		bpf_object__close(obj);
		return ret < 0 ? 1 : 0;
	}
	return cmocka_run_group_tests(tests, load, unload);
}
