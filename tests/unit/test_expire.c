/*
 * Flow lifetime and limits: idle flows expire after their class's timeout
 * (and not before), traffic refreshes them, TCP moves between the transitory
 * and established timeouts with its handshake and teardown (RFC 5382 REQ-5,
 * RFC 7857 2.2); the flow table and the alias pool run out with their own
 * drop reasons, and recover once flows expire.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "lab.h"

#define T0      1000
#define TRANS_S 4
#define EMBR_S  6
#define EST_S   100
#define UDP_S   2
#define ICMP_S  3

static struct cfr_engine *short_engine(uint32_t max_flows)
{
	struct cfr_engine_config cfg;

	lab_config(&cfg);
	cfg.timeout[CFR_TIMEOUT_TCP_TRANSITORY] = TRANS_S;
	cfg.timeout[CFR_TIMEOUT_TCP_EMBRYONIC] = EMBR_S;
	cfg.timeout[CFR_TIMEOUT_TCP_ESTABLISHED] = EST_S;
	cfg.timeout[CFR_TIMEOUT_UDP] = UDP_S;
	cfg.timeout[CFR_TIMEOUT_ICMP] = ICMP_S;
	if (max_flows)
		cfg.max_flows = max_flows;
	return lab_engine(&cfg);
}

static int short_setup(void **state)
{
	*state = short_engine(0);
	return 0;
}

static uint32_t active(struct cfr_engine *eng, int family, enum cfr_proto proto)
{
	return cfr_engine_stats(eng)->flows_active[lab_fam(family)][proto];
}

/* Is the flow behind <out> (as translated) still there? Asked with a reply. */
static enum cfr_verdict reply_verdict(struct cfr_engine *eng, const struct pkt *out,
                                      uint8_t tcp_flags, uint64_t now)
{
	struct pkt_spec s;
	struct pkt in;
	struct cfr_pkt r;

	lab_reply_spec(&s, out);
	if (tcp_flags)
		s.tcp_flags = tcp_flags;
	r = lab_send(eng, &s, &in, now);
	if (r.verdict == CFR_VERDICT_DROP)
		assert_int_equal(r.reason, CFR_DROP_NO_FLOW);
	return r.verdict;
}

static void idle_expiry(void **state, int family, uint8_t proto, enum cfr_proto cls,
                        uint32_t timeout_s)
{
	const struct cfr_stats *st = cfr_engine_stats(*state);
	uint64_t expired;
	struct pkt out;

	lab_open_flow(*state, family, proto, 40400, 443, &out, T0);
	assert_int_equal(active(*state, family, cls), 1);
	expired = st->flows_expired;

	cfr_engine_expire(*state, T0 + timeout_s * 1000 - 500);
	assert_int_equal(active(*state, family, cls), 1);
	assert_int_equal(st->flows_expired, expired);

	cfr_engine_expire(*state, T0 + timeout_s * 1000 + 1000);
	assert_int_equal(active(*state, family, cls), 0);
	assert_int_equal(st->flows_expired, expired + 1);
	assert_int_equal(reply_verdict(*state, &out, 0, T0 + timeout_s * 1000 + 1100),
	                 CFR_VERDICT_DROP);
}

static void udp4_expires(void **state)
{
	idle_expiry(state, 4, IPPROTO_UDP, CFR_PROTO_UDP, UDP_S);
}

static void udp6_expires(void **state)
{
	idle_expiry(state, 6, IPPROTO_UDP, CFR_PROTO_UDP, UDP_S);
}

static void icmp4_expires(void **state)
{
	idle_expiry(state, 4, IPPROTO_ICMP, CFR_PROTO_ICMP, ICMP_S);
}

static void icmp6_expires(void **state)
{
	idle_expiry(state, 6, IPPROTO_ICMPV6, CFR_PROTO_ICMP, ICMP_S);
}

/* A SYN that is never answered only holds state for the embryonic timeout. */
static void tcp4_syn_only_embryonic(void **state)
{
	idle_expiry(state, 4, IPPROTO_TCP, CFR_PROTO_TCP, EMBR_S);
}

static void tcp6_syn_only_embryonic(void **state)
{
	idle_expiry(state, 6, IPPROTO_TCP, CFR_PROTO_TCP, EMBR_S);
}

/*
 * Outbound traffic refreshes a mapping (RFC 4787 REQ-6). Times sit on whole
 * seconds so that this tests refreshing, not clock resolution.
 */
static void udp_refreshed_survives(void **state)
{
	struct pkt out, again;
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_open_flow(*state, 4, IPPROTO_UDP, 40401, 443, &out, T0);
	lab_spec(&s, 4, IPPROTO_UDP, 40401, 443);
	r = lab_send(*state, &s, &again, T0 + 1000);
	lab_expect_forward(&r, CFR_DIR_OUT);
	/* Unrefreshed, the flow would be UDP_S idle by now. */
	cfr_engine_expire(*state, T0 + UDP_S * 1000 + 500);
	assert_int_equal(active(*state, 4, CFR_PROTO_UDP), 1);
	assert_int_equal(reply_verdict(*state, &out, 0, T0 + UDP_S * 1000 + 500),
	                 CFR_VERDICT_FORWARD);
	cfr_engine_expire(*state, T0 + (2 * UDP_S + 2) * 1000);
	assert_int_equal(active(*state, 4, CFR_PROTO_UDP), 0);
}

/*
 * A flow must stay for its whole idle timeout, whatever the clock's phase:
 * opened at 1.999 s with a 2 s timeout, it is still due at 3.1 s.
 */
static void udp_never_expires_early(void **state)
{
	struct pkt out;

	lab_open_flow(*state, 4, IPPROTO_UDP, 40405, 443, &out, 1999);
	cfr_engine_expire(*state, 3100);
	assert_int_equal(active(*state, 4, CFR_PROTO_UDP), 1);
	assert_int_equal(reply_verdict(*state, &out, 0, 3100), CFR_VERDICT_FORWARD);
}

/*
 * Callers in several threads read the clock before they get the engine, so
 * a call may carry a time a few milliseconds older than the one before: the
 * engine keeps its own clock from going backwards. A flow is neither expired
 * by nor dated with the older time.
 */
static void clock_never_goes_backwards(void **state)
{
	struct pkt first, second;
	const uint64_t t = T0 + 5000;

	lab_open_flow(*state, 4, IPPROTO_UDP, 40407, 443, &first, t);
	cfr_engine_expire(*state, t - 4000);
	assert_int_equal(active(*state, 4, CFR_PROTO_UDP), 1);
	assert_int_equal(reply_verdict(*state, &first, 0, t - 3000), CFR_VERDICT_FORWARD);
	/* Opened "before" the first, it is dated with the engine's clock: they expire together. */
	lab_open_flow(*state, 4, IPPROTO_UDP, 40408, 443, &second, t - 2000);
	cfr_engine_expire(*state, t + UDP_S * 1000 - 500);
	assert_int_equal(active(*state, 4, CFR_PROTO_UDP), 2);
	cfr_engine_expire(*state, t + (UDP_S + 2) * 1000);
	assert_int_equal(active(*state, 4, CFR_PROTO_UDP), 0);
}

/* Out SYN, in SYN-ACK, out ACK: the established timeout applies. */
static void handshake(struct cfr_engine *eng, int family, uint16_t sport, struct pkt *out)
{
	struct pkt_spec s;
	struct pkt p;
	struct cfr_pkt r;

	lab_open_flow(eng, family, IPPROTO_TCP, sport, 443, out, T0);
	assert_int_equal(reply_verdict(eng, out, PKT_TCP_SYN | PKT_TCP_ACK, T0 + 10),
	                 CFR_VERDICT_FORWARD);
	lab_spec(&s, family, IPPROTO_TCP, sport, 443);
	s.tcp_flags = PKT_TCP_ACK;
	r = lab_send(eng, &s, &p, T0 + 20);
	lab_expect_forward(&r, CFR_DIR_OUT);
}

static void tcp_established(void **state, int family)
{
	struct pkt out;

	handshake(*state, family, 40402, &out);
	cfr_engine_expire(*state, T0 + (TRANS_S + 10) * 1000);
	assert_int_equal(active(*state, family, CFR_PROTO_TCP), 1);
	assert_int_equal(reply_verdict(*state, &out, PKT_TCP_ACK, T0 + (TRANS_S + 10) * 1000),
	                 CFR_VERDICT_FORWARD);
	cfr_engine_expire(*state, T0 + (TRANS_S + 10 + EST_S + 1) * 1000);
	assert_int_equal(active(*state, family, CFR_PROTO_TCP), 0);
}

static void tcp4_established_long_timeout(void **state)
{
	tcp_established(state, 4);
}

static void tcp6_established_long_timeout(void **state)
{
	tcp_established(state, 6);
}

/* After the teardown the flow falls back to the transitory timeout. */
static void tcp_teardown(void **state, int family, bool rst)
{
	struct pkt out, p;
	struct pkt_spec s;
	struct cfr_pkt r;
	uint64_t t = T0 + 100;

	handshake(*state, family, 40403, &out);
	lab_spec(&s, family, IPPROTO_TCP, 40403, 443);
	s.tcp_flags = rst ? PKT_TCP_RST : PKT_TCP_FIN | PKT_TCP_ACK;
	r = lab_send(*state, &s, &p, t);
	lab_expect_forward(&r, CFR_DIR_OUT);
	if (!rst)
		assert_int_equal(reply_verdict(*state, &out, PKT_TCP_FIN | PKT_TCP_ACK, t + 10),
		                 CFR_VERDICT_FORWARD);
	cfr_engine_expire(*state, t + (TRANS_S + 2) * 1000);
	assert_int_equal(active(*state, family, CFR_PROTO_TCP), 0);
}

static void tcp4_fin_both_ways_transitory(void **state)
{
	tcp_teardown(state, 4, false);
}

static void tcp6_fin_both_ways_transitory(void **state)
{
	tcp_teardown(state, 6, false);
}

static void tcp4_rst_transitory(void **state)
{
	tcp_teardown(state, 4, true);
}

static void tcp6_rst_transitory(void **state)
{
	tcp_teardown(state, 6, true);
}

/* Counters across expiry: created and expired move, active comes back to zero. */
static void counters_follow_expiry(void **state)
{
	const struct cfr_stats *st = cfr_engine_stats(*state);
	struct pkt out;
	uint16_t i;

	for (i = 0; i < 5; i++)
		lab_open_flow(*state, i % 2 ? 6 : 4, IPPROTO_UDP, (uint16_t)(40410 + i), 443, &out,
		              T0);
	assert_int_equal(st->flows_created, 5);
	assert_int_equal(active(*state, 4, CFR_PROTO_UDP), 3);
	assert_int_equal(active(*state, 6, CFR_PROTO_UDP), 2);
	cfr_engine_expire(*state, T0 + (UDP_S + 1) * 1000);
	assert_int_equal(st->flows_expired, 5);
	assert_int_equal(active(*state, 4, CFR_PROTO_UDP), 0);
	assert_int_equal(active(*state, 6, CFR_PROTO_UDP), 0);
}

#define SMALL 8

static void table_full(void **state)
{
	struct cfr_engine *eng = short_engine(SMALL);
	struct pkt_spec s;
	struct pkt out;
	struct cfr_pkt r;
	uint16_t i;

	(void)state;
	for (i = 0; i < SMALL; i++)
		lab_open_flow(eng, i % 2 ? 6 : 4, IPPROTO_UDP, (uint16_t)(40420 + i), 443, &out,
		              T0);
	lab_spec(&s, 4, IPPROTO_UDP, 40499, 443);
	r = lab_send(eng, &s, &out, T0 + 1);
	lab_expect_drop(&r, CFR_DROP_TABLE_FULL);
	assert_int_equal(cfr_engine_stats(eng)->drops[CFR_DROP_TABLE_FULL], 1);

	/* Existing flows still work while the table is full. */
	lab_spec(&s, 4, IPPROTO_UDP, 40420, 443);
	r = lab_send(eng, &s, &out, T0 + 2);
	lab_expect_forward(&r, CFR_DIR_OUT);

	cfr_engine_expire(eng, T0 + (UDP_S + 2) * 1000);
	lab_spec(&s, 4, IPPROTO_UDP, 40499, 443);
	r = lab_send(eng, &s, &out, T0 + (UDP_S + 2) * 1000);
	lab_expect_forward(&r, CFR_DIR_OUT);
	cfr_engine_free(eng);
}

/* One alias address, 8 ports. */
static struct cfr_engine *tiny_pool_engine(void)
{
	struct cfr_engine_config cfg;

	lab_config(&cfg);
	assert_int_equal(cfr_prefix_parse("192.0.2.1/32", &cfg.pool4[0]), 0);
	cfg.port_min = 1024;
	cfg.port_max = 1031;
	cfg.timeout[CFR_TIMEOUT_UDP] = UDP_S;
	return lab_engine(&cfg);
}

/*
 * The outside tuple includes the remote, so 8 ports serve 8 flows per
 * remote endpoint: the 9th to the same remote:port finds no tuple, while a
 * different remote can reuse every port. A random port choice must still
 * find the last free port (RFC 6056 algorithm 1 searches on).
 */
static void pool_exhausted(void **state)
{
	struct cfr_engine *eng = tiny_pool_engine();
	bool used[8] = {false};
	struct pkt_info t;
	struct pkt_spec s;
	struct pkt out;
	struct cfr_pkt r;
	uint16_t i;

	(void)state;
	for (i = 0; i < 8; i++) {
		lab_open_flow(eng, 4, IPPROTO_UDP, (uint16_t)(40430 + i), 443, &out, T0);
		assert_int_equal(pkt_parse(out.data, out.len, false, &t), 0);
		assert_in_range(t.sport, 1024, 1031);
		assert_false(used[t.sport - 1024]);
		used[t.sport - 1024] = true;
	}
	lab_spec(&s, 4, IPPROTO_UDP, 40438, 443);
	r = lab_send(eng, &s, &out, T0 + 1);
	lab_expect_drop(&r, CFR_DROP_POOL_EXHAUSTED);

	/* Another remote port, another remote address: the tuples are free again. */
	s.dport = 444;
	r = lab_send(eng, &s, &out, T0 + 2);
	lab_expect_forward(&r, CFR_DIR_OUT);
	lab_spec(&s, 4, IPPROTO_UDP, 40439, 443);
	pkt_addr(4, "198.51.100.8", s.dst);
	r = lab_send(eng, &s, &out, T0 + 3);
	lab_expect_forward(&r, CFR_DIR_OUT);

	/* Expiry frees them for the first remote too. */
	cfr_engine_expire(eng, T0 + (UDP_S + 2) * 1000);
	lab_spec(&s, 4, IPPROTO_UDP, 40438, 443);
	r = lab_send(eng, &s, &out, T0 + (UDP_S + 2) * 1000);
	lab_expect_forward(&r, CFR_DIR_OUT);
	cfr_engine_free(eng);
}

#define T(f) cmocka_unit_test_setup_teardown(f, short_setup, lab_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(udp4_expires),
	    T(udp6_expires),
	    T(icmp4_expires),
	    T(icmp6_expires),
	    T(tcp4_syn_only_embryonic),
	    T(tcp6_syn_only_embryonic),
	    T(udp_refreshed_survives),
	    T(udp_never_expires_early),
	    T(clock_never_goes_backwards),
	    T(tcp4_established_long_timeout),
	    T(tcp6_established_long_timeout),
	    T(tcp4_fin_both_ways_transitory),
	    T(tcp6_fin_both_ways_transitory),
	    T(tcp4_rst_transitory),
	    T(tcp6_rst_transitory),
	    T(counters_follow_expiry),
	    cmocka_unit_test(table_full),
	    cmocka_unit_test(pool_exhausted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
