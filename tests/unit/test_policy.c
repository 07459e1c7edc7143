/*
 * Alias policies and privacy epochs (issue 3; draft R3, R4, R5): per-flow
 * keeps a flow's alias for its whole life and draws a fresh, uniformly
 * spread alias for every new flow; per-destination shares one alias per
 * (subscriber, remote) within an epoch and forgets it across epochs;
 * per-subscriber gives one alias per subscriber per epoch; an established
 * flow keeps its alias across rotations, forced or by time; IPv6 aliases
 * carry nothing of the subscriber's prefix; an ended epoch's seed is handed
 * out exactly once and reproduces the aliases it made.
 *
 * Randomised properties use fixed bounds whose false-failure probability is
 * stated next to them (all below 1e-5); a policy that leaked stickiness or
 * lost randomness fails them by a wide margin.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lab.h"

#define T0 1000

struct alias {
	uint8_t addr[16];
	uint16_t port;
};

/* The i-th remote server of a family: 203.0.113.(20+i) or 2001:db8:f::(100+i). */
static const uint8_t *remote_n(int family, unsigned i)
{
	static uint8_t buf[2][16];
	char text[64];

	if (family == 4)
		snprintf(text, sizeof text, "203.0.113.%u", 20 + i);
	else
		snprintf(text, sizeof text, "2001:db8:f::%x", 0x100 + i);
	pkt_addr(family, text, buf[family == 6]);
	return buf[family == 6];
}

/* The i-th subscriber of a family: 100.64.(i+1).2 or 2001:db8:100:(i+1)::2. */
static const uint8_t *sub_n(int family, unsigned i)
{
	static uint8_t buf[2][16];
	char text[64];

	if (family == 4)
		snprintf(text, sizeof text, "100.64.%u.2", i + 1);
	else
		snprintf(text, sizeof text, "2001:db8:100:%x::2", i + 1);
	pkt_addr(family, text, buf[family == 6]);
	return buf[family == 6];
}

static struct cfr_engine *engine_with(int policy4, int policy6)
{
	struct cfr_engine_config cfg;

	lab_config(&cfg);
	cfg.policy[CFR_FAMILY_V4] = (uint8_t)policy4;
	cfg.policy[CFR_FAMILY_V6] = (uint8_t)policy6;
	return lab_engine(&cfg);
}

static struct cfr_engine *engine_policy(int policy)
{
	return engine_with(policy, policy);
}

/*
 * Send one outbound packet (sub:sport -> remote:dport) with <flags> (TCP)
 * and return the alias it left with; fails unless it was forwarded to the
 * same remote from inside the pool with valid checksums.
 */
static struct alias send_out(struct cfr_engine *eng, int family, uint8_t proto, const uint8_t *sub,
                             uint16_t sport, const uint8_t *remote, uint16_t dport, uint8_t flags,
                             uint64_t now)
{
	struct pkt_spec s;
	struct pkt p;
	struct pkt_info pi;
	struct cfr_pkt r;
	struct alias a;

	memset(&s, 0, sizeof s);
	s.family = family;
	s.proto = proto;
	memcpy(s.src, sub, 16);
	memcpy(s.dst, remote, 16);
	s.sport = sport;
	s.dport = dport;
	s.tcp_flags = flags;
	s.seq = 1000;
	s.payload = lab_payload;
	s.payload_len = sizeof lab_payload;
	r = lab_send(eng, &s, &p, now);
	lab_expect_forward(&r, CFR_DIR_OUT);
	lab_expect_checksums(&p);
	assert_int_equal(pkt_parse(p.data, p.len, false, &pi), 0);
	if (!lab_in_pool(family, pi.src))
		fail_msg("alias outside the lab pool");
	assert_memory_equal(pi.dst, remote, 16);
	assert_int_equal(pi.dport, dport);
	memset(&a, 0, sizeof a);
	memcpy(a.addr, pi.src, 16);
	a.port = pi.sport;
	return a;
}

/* A reply from remote:rport to <a> must reach exactly sub:sport. */
static void send_in(struct cfr_engine *eng, int family, uint8_t proto, const struct alias *a,
                    const uint8_t *remote, uint16_t rport, const uint8_t *sub, uint16_t sport,
                    uint8_t flags, uint64_t now)
{
	struct pkt_spec s;
	struct pkt p;
	struct pkt_info pi;
	struct cfr_pkt r;

	memset(&s, 0, sizeof s);
	s.family = family;
	s.proto = proto;
	memcpy(s.src, remote, 16);
	memcpy(s.dst, a->addr, 16);
	s.sport = rport;
	s.dport = a->port;
	s.tcp_flags = flags;
	s.seq = 7000;
	s.ack = 1001;
	s.payload = lab_payload;
	s.payload_len = sizeof lab_payload;
	r = lab_send(eng, &s, &p, now);
	lab_expect_forward(&r, CFR_DIR_IN);
	lab_expect_checksums(&p);
	assert_int_equal(pkt_parse(p.data, p.len, false, &pi), 0);
	assert_memory_equal(pi.dst, sub, 16);
	assert_int_equal(pi.dport, sport);
	assert_memory_equal(pi.src, remote, 16);
	assert_int_equal(pi.sport, rport);
}

static bool same_alias(const struct alias *a, const struct alias *b)
{
	return memcmp(a->addr, b->addr, 16) == 0 && a->port == b->port;
}

static bool same_addr(const struct alias *a, const struct alias *b)
{
	return memcmp(a->addr, b->addr, 16) == 0;
}

static unsigned distinct_addrs(const struct alias *v, unsigned n)
{
	unsigned i, j, d = 0;

	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++)
			if (same_addr(&v[i], &v[j]))
				break;
		d += j == i;
	}
	return d;
}

static unsigned distinct_ports(const struct alias *v, unsigned n)
{
	unsigned i, j, d = 0;

	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++)
			if (v[i].port == v[j].port)
				break;
		d += j == i;
	}
	return d;
}

/* --- every policy: a flow keeps its alias for its life --------------------- */

/*
 * A TCP connection: SYN, SYN-ACK, then 30 exchanges both ways spread over
 * ten minutes. Every outbound packet leaves from the SYN's alias:port, every
 * inbound one reaches the subscriber's socket.
 */
static void flow_keeps_alias(int policy, int family, uint8_t proto)
{
	struct cfr_engine *eng = engine_policy(policy);
	const uint8_t *sub = lab_sub(family), *remote = lab_remote(family);
	uint8_t syn = proto == IPPROTO_TCP ? PKT_TCP_SYN : 0;
	uint8_t ack = proto == IPPROTO_TCP ? PKT_TCP_ACK : 0;
	struct alias first, a;
	unsigned i;

	first = send_out(eng, family, proto, sub, 40000, remote, 443, syn, T0);
	send_in(eng, family, proto, &first, remote, 443, sub, 40000,
	        proto == IPPROTO_TCP ? PKT_TCP_SYN | PKT_TCP_ACK : 0, T0 + 5);
	for (i = 0; i < 30; i++) {
		uint64_t now = T0 + 10 + (uint64_t)i * 20000;

		a = send_out(eng, family, proto, sub, 40000, remote, 443, ack, now);
		if (!same_alias(&a, &first))
			fail_msg("packet %u of the flow left from another alias:port", i);
		send_in(eng, family, proto, &first, remote, 443, sub, 40000, ack, now + 3);
	}
	assert_int_equal(cfr_engine_stats(eng)->flows_created, 1);
	cfr_engine_free(eng);
}

static void per_flow_keeps_alias_tcp4(void **state)
{
	(void)state;
	flow_keeps_alias(CFR_POLICY_PER_FLOW, 4, IPPROTO_TCP);
}

static void per_flow_keeps_alias_tcp6(void **state)
{
	(void)state;
	flow_keeps_alias(CFR_POLICY_PER_FLOW, 6, IPPROTO_TCP);
}

static void per_flow_keeps_alias_udp4(void **state)
{
	(void)state;
	flow_keeps_alias(CFR_POLICY_PER_FLOW, 4, IPPROTO_UDP);
}

static void per_flow_keeps_alias_udp6(void **state)
{
	(void)state;
	flow_keeps_alias(CFR_POLICY_PER_FLOW, 6, IPPROTO_UDP);
}

static void per_destination_keeps_alias_tcp4(void **state)
{
	(void)state;
	flow_keeps_alias(CFR_POLICY_PER_DESTINATION, 4, IPPROTO_TCP);
}

static void per_subscriber_keeps_alias_udp6(void **state)
{
	(void)state;
	flow_keeps_alias(CFR_POLICY_PER_SUBSCRIBER, 6, IPPROTO_UDP);
}

/* --- per-flow: new flows rotate, uniformly over the pool ------------------- */

#define NFLOWS 200

/*
 * 200 UDP flows from one subscriber to one remote:port. IPv4, over the /26:
 * expected 61.3 distinct addresses (fail below 45: p < 1e-12); counts per
 * address are Binomial(200, 1/64), mean 3.1, fail if any reaches 16
 * (p < 1e-6 over all 64); Pearson's chi-square with 63 degrees of freedom
 * has mean 63, fail above 140 (p < 1e-8). A new flow repeating the previous
 * flow's address happens 1 time in 64: fail at 15 repeats of 199. Ports:
 * uniform over 64512, so at most a couple collide (fail below 190).
 */
static void per_flow_rotates4(void **state)
{
	static struct alias v[NFLOWS];
	struct cfr_engine *eng = engine_policy(CFR_POLICY_PER_FLOW);
	unsigned count[64] = {0}, i, repeats = 0, max = 0;
	double chi2 = 0, expect = NFLOWS / 64.0;

	(void)state;
	for (i = 0; i < NFLOWS; i++) {
		v[i] = send_out(eng, 4, IPPROTO_UDP, lab_sub(4), (uint16_t)(20000 + i),
		                lab_remote(4), 53, 0, T0 + i);
		count[v[i].addr[3] & 63]++;
		if (i && same_addr(&v[i], &v[i - 1]))
			repeats++;
		if (v[i].port < LAB_PORT_MIN)
			fail_msg("alias port %u below the configured range", v[i].port);
	}
	for (i = 0; i < 64; i++) {
		chi2 += (count[i] - expect) * (count[i] - expect) / expect;
		if (count[i] > max)
			max = count[i];
	}
	print_message("per-flow IPv4: %u distinct addresses, max %u per address, chi2 %.1f, "
	              "%u repeats, %u distinct ports\n",
	              distinct_addrs(v, NFLOWS), max, chi2, repeats, distinct_ports(v, NFLOWS));
	assert_in_range(distinct_addrs(v, NFLOWS), 45, 64);
	assert_in_range(max, 1, 15);
	if (chi2 > 140)
		fail_msg("alias addresses not uniform over the /26: chi-square %.1f", chi2);
	assert_in_range(repeats, 0, 14);
	assert_in_range(distinct_ports(v, NFLOWS), 190, NFLOWS);
	assert_int_equal(cfr_engine_stats(eng)->flows_created, NFLOWS);
	cfr_engine_free(eng);
}

/*
 * IPv6: every flow a fresh random interface identifier in 2001:db8:a1::/64
 * (200 draws of 64 bits never collide by chance), and nothing of the
 * subscriber's /64 or its interface identifier anywhere in the packet.
 * Every IID bit must vary across the flows (a stuck bit is a leak or a
 * biased draw; each bit stays constant by chance with p = 2^-199).
 */
static void per_flow_rotates6(void **state)
{
	static struct alias v[NFLOWS];
	struct cfr_engine *eng = engine_policy(CFR_POLICY_PER_FLOW);
	uint8_t pool[16], or_bits[8] = {0}, and_bits[8];
	unsigned i, k;

	(void)state;
	memset(and_bits, 0xff, sizeof and_bits);
	pkt_addr(6, "2001:db8:a1::", pool);
	for (i = 0; i < NFLOWS; i++) {
		v[i] = send_out(eng, 6, IPPROTO_UDP, lab_sub(6), (uint16_t)(20000 + i),
		                lab_remote(6), 53, 0, T0 + i);
		assert_memory_equal(v[i].addr, pool, 8);
		assert_memory_not_equal(v[i].addr + 8, lab_sub(6) + 8, 8);
		for (k = 0; k < 8; k++) {
			or_bits[k] |= v[i].addr[8 + k];
			and_bits[k] &= v[i].addr[8 + k];
		}
	}
	assert_int_equal(distinct_addrs(v, NFLOWS), NFLOWS);
	assert_in_range(distinct_ports(v, NFLOWS), 190, NFLOWS);
	for (k = 0; k < 8; k++)
		if (or_bits[k] != 0xff || and_bits[k] != 0)
			fail_msg("IID byte %u has bits that never change (or %02x and %02x)", k,
			         or_bits[k], and_bits[k]);
	cfr_engine_free(eng);
}

/* Search <len> bytes at <hay> for the <n> bytes at <needle>. */
static bool contains(const uint8_t *hay, size_t len, const uint8_t *needle, size_t n)
{
	size_t i;

	for (i = 0; i + n <= len; i++)
		if (memcmp(hay + i, needle, n) == 0)
			return true;
	return false;
}

/*
 * R5: the delegated prefix must not survive in any byte of what leaves the
 * gateway, under any policy, for TCP, UDP and ICMPv6 echo.
 */
static void ipv6_prefix_never_leaks(void **state)
{
	static const uint8_t protos[3] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6};
	int policy;
	unsigned i, j;

	(void)state;
	for (policy = 0; policy < CFR_POLICY__COUNT; policy++) {
		struct cfr_engine *eng = engine_policy(policy);

		for (i = 0; i < 3; i++) {
			for (j = 0; j < 5; j++) {
				struct pkt_spec s;
				struct pkt p;
				struct cfr_pkt r;

				lab_spec(&s, 6, protos[i], (uint16_t)(30000 + j), 443);
				memcpy(s.dst, remote_n(6, j), 16);
				if (protos[i] == IPPROTO_ICMPV6)
					s.sport = (uint16_t)(0x100 + j);
				r = lab_send(eng, &s, &p, T0 + j);
				lab_expect_forward(&r, CFR_DIR_OUT);
				if (contains(p.data, p.len, lab_sub(6), 8))
					fail_msg("%s: subscriber /64 found in a translated packet",
					         cfr_policy_name((enum cfr_policy)policy));
				if (contains(p.data, p.len, lab_sub(6) + 8, 8))
					fail_msg("%s: subscriber IID found in a translated packet",
					         cfr_policy_name((enum cfr_policy)policy));
			}
		}
		cfr_engine_free(eng);
	}
}

/* --- per-destination ------------------------------------------------------- */

/*
 * Within one epoch: 10 TCP flows to port 443 and 4 UDP flows to port 53 of
 * each of 16 remotes. Per remote one alias address; the TCP flows share the
 * whole outside tuple but the port, so their ports must all differ. Across
 * the 16 remotes: with a /26 about 14.2 distinct addresses expected, fail
 * below 8 (p < 1e-5); with a /64 all 16 distinct.
 */
static void per_destination_sticky(int family)
{
	struct cfr_engine *eng = engine_policy(CFR_POLICY_PER_DESTINATION);
	struct alias per_remote[16], v[14];
	unsigned r, k;

	for (r = 0; r < 16; r++) {
		for (k = 0; k < 14; k++) {
			uint8_t proto = k < 10 ? IPPROTO_TCP : IPPROTO_UDP;

			v[k] = send_out(eng, family, proto, lab_sub(family),
			                (uint16_t)(40000 + r * 16 + k), remote_n(family, r),
			                proto == IPPROTO_TCP ? 443 : 53,
			                proto == IPPROTO_TCP ? PKT_TCP_SYN : 0, T0 + r * 100 + k);
			if (!same_addr(&v[k], &v[0]))
				fail_msg("remote %u: flow %u got another alias address", r, k);
		}
		assert_int_equal(distinct_ports(v, 10), 10);
		per_remote[r] = v[0];
	}
	if (family == 4)
		assert_in_range(distinct_addrs(per_remote, 16), 8, 16);
	else
		assert_int_equal(distinct_addrs(per_remote, 16), 16);
	cfr_engine_free(eng);
}

static void per_destination_sticky4(void **state)
{
	(void)state;
	per_destination_sticky(4);
}

static void per_destination_sticky6(void **state)
{
	(void)state;
	per_destination_sticky(6);
}

/* Two subscribers talking to one remote do not share a sticky alias by design. */
static void per_destination_independent_subscribers6(void **state)
{
	struct cfr_engine *eng = engine_policy(CFR_POLICY_PER_DESTINATION);
	struct alias a, b;

	(void)state;
	a = send_out(eng, 6, IPPROTO_UDP, sub_n(6, 0), 5000, lab_remote(6), 53, 0, T0);
	b = send_out(eng, 6, IPPROTO_UDP, sub_n(6, 1), 5000, lab_remote(6), 53, 0, T0 + 1);
	assert_false(same_addr(&a, &b)); /* /64 IIDs: equal only by a 2^-64 chance */
	cfr_engine_free(eng);
}

#define NREMOTES 8
#define NROT     4

/*
 * Across rotations the (subscriber, remote) alias must change. 8 remotes,
 * 4 rotations: 32 comparisons of an epoch's alias with the next epoch's.
 * IPv4: each equal by chance with p = 1/64 (0.5 expected); fail at 6 or
 * more (p < 2e-5). If stickiness leaked across epochs all 32 would be
 * equal. IPv6: never equal. Within each new epoch the stickiness holds
 * again (a second flow gets the same alias as the first).
 */
static void per_destination_changes_across_epochs(int family)
{
	struct cfr_engine *eng = engine_policy(CFR_POLICY_PER_DESTINATION);
	struct alias prev[NREMOTES], cur, again;
	unsigned e, r, same = 0;
	uint64_t now = T0;

	for (e = 0; e <= NROT; e++) {
		if (e) {
			uint64_t before = cfr_engine_stats(eng)->epoch;

			cfr_engine_epoch_rotate(eng, now);
			assert_int_equal(cfr_engine_stats(eng)->epoch, before + 1);
		}
		for (r = 0; r < NREMOTES; r++) {
			cur = send_out(eng, family, IPPROTO_UDP, lab_sub(family),
			               (uint16_t)(1024 + e * 100 + r), remote_n(family, r), 53, 0,
			               now++);
			again = send_out(eng, family, IPPROTO_TCP, lab_sub(family),
			                 (uint16_t)(2048 + e * 100 + r), remote_n(family, r), 443,
			                 PKT_TCP_SYN, now++);
			if (!same_addr(&cur, &again))
				fail_msg("epoch %u remote %u: stickiness lost within the epoch", e,
				         r);
			if (e && same_addr(&cur, &prev[r]))
				same++;
			prev[r] = cur;
		}
	}
	print_message("per-destination IPv%d: %u of %u aliases survived a rotation\n", family, same,
	              NREMOTES * NROT);
	if (family == 4)
		assert_in_range(same, 0, 5);
	else
		assert_int_equal(same, 0);
	cfr_engine_free(eng);
}

static void per_destination_changes_across_epochs4(void **state)
{
	(void)state;
	per_destination_changes_across_epochs(4);
}

static void per_destination_changes_across_epochs6(void **state)
{
	(void)state;
	per_destination_changes_across_epochs(6);
}

/*
 * Epochs also end by time: epoch_s = 60. Flows 10 s apart stay sticky; the
 * clock moving 8 times past an epoch boundary changes the alias (fail if 6
 * or more of 8 alias pairs match: p < 1e-9 on a /26, never on a /64).
 */
static void per_destination_epoch_by_time(int family)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct alias a, b, prev;
	unsigned e, same = 0;
	uint64_t t;

	lab_config(&cfg);
	cfg.policy[CFR_FAMILY_V4] = CFR_POLICY_PER_DESTINATION;
	cfg.policy[CFR_FAMILY_V6] = CFR_POLICY_PER_DESTINATION;
	cfg.epoch_s = 60;
	eng = lab_engine(&cfg);
	memset(&prev, 0, sizeof prev);
	for (e = 0; e < 9; e++) {
		t = T0 + (uint64_t)e * 61000;
		a = send_out(eng, family, IPPROTO_UDP, lab_sub(family), (uint16_t)(3000 + e),
		             lab_remote(family), 53, 0, t);
		b = send_out(eng, family, IPPROTO_UDP, lab_sub(family), (uint16_t)(4000 + e),
		             lab_remote(family), 53, 0, t + 10000);
		if (!same_addr(&a, &b))
			fail_msg("epoch %u: flows 10 s apart got different aliases", e);
		if (e && same_addr(&a, &prev))
			same++;
		prev = a;
	}
	assert_in_range(cfr_engine_stats(eng)->epoch, 9, 9);
	if (family == 4)
		assert_in_range(same, 0, 5);
	else
		assert_int_equal(same, 0);
	cfr_engine_free(eng);
}

static void per_destination_epoch_by_time4(void **state)
{
	(void)state;
	per_destination_epoch_by_time(4);
}

static void per_destination_epoch_by_time6(void **state)
{
	(void)state;
	per_destination_epoch_by_time(6);
}

/* --- per-subscriber -------------------------------------------------------- */

/*
 * One alias for all of a subscriber's flows in an epoch (TCP and UDP, to 20
 * remotes), another one in the next epochs (same chance bound as above,
 * over 4 subscribers and 4 rotations: 16 comparisons, fail at 5 or more,
 * p < 2e-5 on a /26).
 */
static void per_subscriber_one_alias(int family)
{
	struct cfr_engine *eng = engine_policy(CFR_POLICY_PER_SUBSCRIBER);
	struct alias first[4], prev[4], a;
	unsigned e, s, r, same = 0;
	uint64_t now = T0;

	for (e = 0; e <= NROT; e++) {
		if (e)
			cfr_engine_epoch_rotate(eng, now);
		for (s = 0; s < 4; s++) {
			for (r = 0; r < 20; r++) {
				uint8_t proto = r % 2 ? IPPROTO_TCP : IPPROTO_UDP;

				a = send_out(eng, family, proto, sub_n(family, s),
				             (uint16_t)(10000 + e * 100 + r), remote_n(family, r),
				             (uint16_t)(80 + r),
				             proto == IPPROTO_TCP ? PKT_TCP_SYN : 0, now++);
				if (r == 0)
					first[s] = a;
				else if (!same_addr(&a, &first[s]))
					fail_msg("epoch %u subscriber %u flow %u: another alias", e,
					         s, r);
			}
			if (e && same_addr(&first[s], &prev[s]))
				same++;
			prev[s] = first[s];
		}
	}
	if (family == 4)
		assert_in_range(same, 0, 4);
	else
		assert_int_equal(same, 0);
	cfr_engine_free(eng);
}

static void per_subscriber_one_alias4(void **state)
{
	(void)state;
	per_subscriber_one_alias(4);
}

static void per_subscriber_one_alias6(void **state)
{
	(void)state;
	per_subscriber_one_alias(6);
}

/*
 * An IPv6 subscriber is its /subscriber_prefix6: two hosts in one /64 share
 * the per-subscriber alias; with subscriber_prefix6 = 56 two /64s of one
 * /56 do too, while a host in another /56 gets its own alias.
 */
static void per_subscriber_prefix6(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	uint8_t h1[16], h2[16], h3[16], other[16];
	struct alias a1, a2, a3, a4;

	(void)state;
	pkt_addr(6, "2001:db8:100:1::2", h1);
	pkt_addr(6, "2001:db8:100:1:aaaa::99", h2);
	pkt_addr(6, "2001:db8:100:2::2", h3);
	pkt_addr(6, "2001:db8:100:100::2", other);

	eng = engine_policy(CFR_POLICY_PER_SUBSCRIBER);
	a1 = send_out(eng, 6, IPPROTO_UDP, h1, 1000, lab_remote(6), 53, 0, T0);
	a2 = send_out(eng, 6, IPPROTO_UDP, h2, 1000, lab_remote(6), 53, 0, T0 + 1);
	a3 = send_out(eng, 6, IPPROTO_UDP, h3, 1000, lab_remote(6), 53, 0, T0 + 2);
	assert_true(same_addr(&a1, &a2));
	assert_false(same_addr(&a1, &a3));
	assert_int_equal(cfr_engine_stats(eng)->subscribers_active, 2);
	cfr_engine_free(eng);

	lab_config(&cfg);
	cfg.policy[CFR_FAMILY_V6] = CFR_POLICY_PER_SUBSCRIBER;
	cfg.subscriber_prefix6 = 56;
	eng = lab_engine(&cfg);
	a1 = send_out(eng, 6, IPPROTO_UDP, h1, 1000, lab_remote(6), 53, 0, T0);
	a3 = send_out(eng, 6, IPPROTO_UDP, h3, 1000, lab_remote(6), 53, 0, T0 + 1);
	a4 = send_out(eng, 6, IPPROTO_UDP, other, 1000, lab_remote(6), 53, 0, T0 + 2);
	assert_true(same_addr(&a1, &a3));
	assert_false(same_addr(&a1, &a4));
	assert_int_equal(cfr_engine_stats(eng)->subscribers_active, 2);
	cfr_engine_free(eng);

	/* A prefix of its own length ([line] subscriber-prefix6) wins over the default. */
	cfg.subscriber_ident6[1] = 64;
	eng = lab_engine(&cfg);
	a1 = send_out(eng, 6, IPPROTO_UDP, h1, 1000, lab_remote(6), 53, 0, T0);
	a3 = send_out(eng, 6, IPPROTO_UDP, h3, 1000, lab_remote(6), 53, 0, T0 + 1);
	assert_false(same_addr(&a1, &a3));
	assert_int_equal(cfr_engine_stats(eng)->subscribers_active, 2);
	cfr_engine_free(eng);
}

/*
 * Issue 12: a customer with a delegated /56 is one subscriber, with one
 * set of limits, whichever of its 256 /64s it sends from (the default).
 */
static void delegated_prefix_one_set_of_limits(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	struct pkt_spec s;
	struct pkt p;
	struct cfr_pkt r;
	unsigned i, admitted = 0;

	(void)state;
	cfr_engine_config_defaults(&cfg);
	assert_int_equal(cfg.subscriber_prefix6, 56);
	lab_config(&cfg);
	cfg.subscriber_prefix6 = 56;
	cfg.limits.flows_per_subscriber[CFR_PROTO_UDP] = 4;
	eng = lab_engine(&cfg);
	for (i = 0; i < 16; i++) {
		lab_spec(&s, 6, IPPROTO_UDP, (uint16_t)(40000 + i), 443);
		s.src[7] = (uint8_t)i; /* 2001:db8:100:I::2: sixteen /64s of one /56 */
		r = lab_send(eng, &s, &p, T0 + i);
		if (r.verdict == CFR_VERDICT_FORWARD)
			admitted++;
		else
			lab_expect_drop(&r, CFR_DROP_SUBSCRIBER_FLOW_LIMIT);
	}
	assert_int_equal(admitted, 4);
	assert_int_equal(cfr_engine_stats(eng)->subscribers_active, 1);
	cfr_engine_free(eng);
}

/* Policies are per family: per-subscriber IPv4 next to per-flow IPv6. */
static void policies_per_family(void **state)
{
	struct cfr_engine *eng = engine_with(CFR_POLICY_PER_SUBSCRIBER, CFR_POLICY_PER_FLOW);
	struct alias v4[20], v6[20];
	unsigned i;

	(void)state;
	for (i = 0; i < 20; i++) {
		v4[i] = send_out(eng, 4, IPPROTO_UDP, lab_sub(4), (uint16_t)(5000 + i),
		                 lab_remote(4), 53, 0, T0 + i);
		v6[i] = send_out(eng, 6, IPPROTO_UDP, lab_sub(6), (uint16_t)(5000 + i),
		                 lab_remote(6), 53, 0, T0 + i);
	}
	assert_int_equal(distinct_addrs(v4, 20), 1);
	assert_int_equal(distinct_addrs(v6, 20), 20);
	cfr_engine_free(eng);
}

/* --- R4: rotation never touches an established flow ------------------------ */

/*
 * A TCP connection and a UDP flow opened in epoch 1 keep alias:port and keep
 * delivering replies through 3 forced rotations and 2 time-driven ones,
 * while a new flow to the same remote after the rotations is a new mapping.
 */
static void established_survives_rotation(int policy, int family)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	const uint8_t *sub = lab_sub(family), *remote = lab_remote(family);
	struct alias tcp, udp, a;
	uint64_t now = T0;
	unsigned i;

	lab_config(&cfg);
	cfg.policy[CFR_FAMILY_V4] = (uint8_t)policy;
	cfg.policy[CFR_FAMILY_V6] = (uint8_t)policy;
	cfg.epoch_s = 30;
	eng = lab_engine(&cfg);
	tcp = send_out(eng, family, IPPROTO_TCP, sub, 41000, remote, 443, PKT_TCP_SYN, now);
	send_in(eng, family, IPPROTO_TCP, &tcp, remote, 443, sub, 41000, PKT_TCP_SYN | PKT_TCP_ACK,
	        now + 1);
	udp = send_out(eng, family, IPPROTO_UDP, sub, 41001, remote, 443, 0, now + 2);
	send_in(eng, family, IPPROTO_UDP, &udp, remote, 443, sub, 41001, 0, now + 3);
	for (i = 0; i < 5; i++) {
		if (i < 3)
			cfr_engine_epoch_rotate(eng, now += 1000);
		else
			now += 31000; /* past epoch_s: the next packet ends the epoch */
		a = send_out(eng, family, IPPROTO_TCP, sub, 41000, remote, 443, PKT_TCP_ACK,
		             now + 10);
		if (!same_alias(&a, &tcp))
			fail_msg("%s: TCP flow changed alias after rotation %u",
			         cfr_policy_name((enum cfr_policy)policy), i + 1);
		send_in(eng, family, IPPROTO_TCP, &tcp, remote, 443, sub, 41000, PKT_TCP_ACK,
		        now + 11);
		a = send_out(eng, family, IPPROTO_UDP, sub, 41001, remote, 443, 0, now + 12);
		if (!same_alias(&a, &udp))
			fail_msg("%s: UDP flow changed alias after rotation %u",
			         cfr_policy_name((enum cfr_policy)policy), i + 1);
		send_in(eng, family, IPPROTO_UDP, &udp, remote, 443, sub, 41001, 0, now + 13);
	}
	assert_int_equal(cfr_engine_stats(eng)->epoch, 6);
	assert_int_equal(cfr_engine_stats(eng)->epochs_rotated, 5);
	assert_int_equal(cfr_engine_stats(eng)->flows_created, 2);
	/* A new flow after the rotations is a new mapping (port always fresh). */
	a = send_out(eng, family, IPPROTO_TCP, sub, 41002, remote, 443, PKT_TCP_SYN, now + 20);
	assert_false(same_alias(&a, &tcp));
	assert_int_equal(cfr_engine_stats(eng)->flows_created, 3);
	cfr_engine_free(eng);
}

static void established_survives_rotation_per_flow4(void **state)
{
	(void)state;
	established_survives_rotation(CFR_POLICY_PER_FLOW, 4);
}

static void established_survives_rotation_per_flow6(void **state)
{
	(void)state;
	established_survives_rotation(CFR_POLICY_PER_FLOW, 6);
}

static void established_survives_rotation_per_destination4(void **state)
{
	(void)state;
	established_survives_rotation(CFR_POLICY_PER_DESTINATION, 4);
}

static void established_survives_rotation_per_destination6(void **state)
{
	(void)state;
	established_survives_rotation(CFR_POLICY_PER_DESTINATION, 6);
}

static void established_survives_rotation_per_subscriber4(void **state)
{
	(void)state;
	established_survives_rotation(CFR_POLICY_PER_SUBSCRIBER, 4);
}

static void established_survives_rotation_per_subscriber6(void **state)
{
	(void)state;
	established_survives_rotation(CFR_POLICY_PER_SUBSCRIBER, 6);
}

/* --- epoch records: the seed is handed out once, then gone ----------------- */

#define MAX_RECS 16

struct rec_sink {
	unsigned n;
	struct cfr_epoch_record rec[MAX_RECS];
};

static void collect(void *ctx, const struct cfr_epoch_record *rec)
{
	struct rec_sink *sink = ctx;

	if (sink->n >= MAX_RECS)
		fail_msg("more records than subscribers");
	sink->rec[sink->n++] = *rec;
}

static const struct cfr_epoch_record *find_rec(const struct rec_sink *sink, int family,
                                               const uint8_t *key)
{
	unsigned i;

	for (i = 0; i < sink->n; i++)
		if (sink->rec[i].family == lab_fam(family) &&
		    memcmp(sink->rec[i].subscriber, key, family == 4 ? 4 : 8) == 0)
			return &sink->rec[i];
	return NULL;
}

static bool all_zero(const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/*
 * Three subscribers (two IPv4, one IPv6) open flows under per-destination.
 * After a rotation one record per subscriber comes out, exactly once: it
 * carries the ended epoch's number, a non-zero seed and the counter, and
 * cfr_derive_alias() with that seed reproduces every alias the subscriber
 * got. A second drain hands out nothing. Seeds differ between subscribers
 * and between epochs.
 */
static void epoch_records_drained_once(void **state)
{
	struct cfr_engine_config cfg;
	struct cfr_engine *eng;
	static struct rec_sink sink, sink2, sink3;
	struct alias got[3][4];
	const struct cfr_stats *st;
	const struct cfr_epoch_record *rec;
	uint8_t key6[16] = {0};
	unsigned s, k;
	uint64_t epoch;

	(void)state;
	lab_config(&cfg);
	cfg.policy[CFR_FAMILY_V4] = CFR_POLICY_PER_DESTINATION;
	cfg.policy[CFR_FAMILY_V6] = CFR_POLICY_PER_DESTINATION;
	eng = lab_engine(&cfg);
	for (s = 0; s < 3; s++) {
		int family = s < 2 ? 4 : 6;

		for (k = 0; k < 4; k++)
			got[s][k] = send_out(eng, family, IPPROTO_UDP, sub_n(family, s),
			                     (uint16_t)(6000 + k), remote_n(family, k), 53, 0,
			                     T0 + s * 10 + k);
	}
	st = cfr_engine_stats(eng);
	epoch = st->epoch;
	assert_int_equal(st->subscribers_active, 3);
	/* Nothing ended yet: nothing to drain. */
	memset(&sink, 0, sizeof sink);
	assert_int_equal(cfr_engine_drain_records(eng, collect, &sink, MAX_RECS), 0);
	assert_int_equal(sink.n, 0);

	cfr_engine_epoch_rotate(eng, T0 + 5000);
	assert_int_equal(st->epoch, epoch + 1);
	assert_int_equal(st->subscribers_active, 0);
	/* One at a time: the return value counts what still waits. */
	memset(&sink, 0, sizeof sink);
	assert_int_equal(cfr_engine_drain_records(eng, collect, &sink, 1), 2);
	assert_int_equal(cfr_engine_drain_records(eng, collect, &sink, MAX_RECS), 0);
	assert_int_equal(sink.n, 3);
	assert_int_equal(st->records_sealed, 3);
	memset(&sink2, 0, sizeof sink2);
	assert_int_equal(cfr_engine_drain_records(eng, collect, &sink2, MAX_RECS), 0);
	assert_int_equal(sink2.n, 0);
	assert_int_equal(st->records_sealed, 3);

	memcpy(key6, sub_n(6, 2), 8);
	for (s = 0; s < 3; s++) {
		int family = s < 2 ? 4 : 6;

		rec = find_rec(&sink, family, family == 4 ? sub_n(4, s) : key6);
		if (!rec)
			fail_msg("no record for subscriber %u", s);
		assert_int_equal(rec->epoch, epoch);
		assert_true(rec->end_ms >= rec->start_ms);
		assert_false(all_zero(rec->seed, CFR_SEED_BYTES));
		if (family == 6)
			assert_true(all_zero(rec->subscriber + 8, 8)); /* the /64, not the host */
		assert_int_equal(rec->counter, 4);
		for (k = 0; k < 4; k++) {
			uint8_t alias[16];
			uint16_t port;

			cfr_derive_alias(&cfg, rec->seed, (uint8_t)lab_fam(family), k,
			                 remote_n(family, k), alias, &port);
			assert_memory_equal(alias, got[s][k].addr, family == 4 ? 4 : 16);
			/*
			 * UDP to 53 is in the default endpoint-independent class:
			 * the mapping keeps the subscriber port's parity (RFC 4787
			 * REQ-4), the one bit that is not the draw's.
			 */
			assert_int_equal(port | 1, got[s][k].port | 1);
			assert_int_equal(got[s][k].port & 1, (6000 + k) & 1);
		}
	}
	assert_memory_not_equal(sink.rec[0].seed, sink.rec[1].seed, CFR_SEED_BYTES);

	/* The same subscriber in the next epoch gets a new seed. */
	send_out(eng, 4, IPPROTO_UDP, sub_n(4, 0), 7000, lab_remote(4), 53, 0, T0 + 6000);
	cfr_engine_epoch_rotate(eng, T0 + 7000);
	memset(&sink3, 0, sizeof sink3);
	assert_int_equal(cfr_engine_drain_records(eng, collect, &sink3, MAX_RECS), 0);
	assert_int_equal(sink3.n, 1);
	assert_int_equal(sink3.rec[0].epoch, epoch + 1);
	rec = find_rec(&sink, 4, sub_n(4, 0));
	assert_non_null(rec);
	assert_memory_not_equal(sink3.rec[0].seed, rec->seed, CFR_SEED_BYTES);
	assert_int_equal(st->records_lost, 0);
	cfr_engine_free(eng);
}

/*
 * Records not drained before the next epoch ends are wiped and counted
 * lost, never handed out late.
 */
static void undrained_records_lost(void **state)
{
	struct cfr_engine *eng = engine_policy(CFR_POLICY_PER_FLOW);
	static struct rec_sink sink;
	const struct cfr_stats *st = cfr_engine_stats(eng);

	(void)state;
	send_out(eng, 4, IPPROTO_UDP, sub_n(4, 0), 1000, lab_remote(4), 53, 0, T0);
	send_out(eng, 4, IPPROTO_UDP, sub_n(4, 1), 1000, lab_remote(4), 53, 0, T0 + 1);
	cfr_engine_epoch_rotate(eng, T0 + 100);
	cfr_engine_epoch_rotate(eng, T0 + 200);
	assert_int_equal(st->records_lost, 2);
	memset(&sink, 0, sizeof sink);
	assert_int_equal(cfr_engine_drain_records(eng, collect, &sink, MAX_RECS), 0);
	assert_int_equal(sink.n, 0);
	assert_int_equal(st->records_sealed, 0);
	assert_int_equal(st->epochs_rotated, 2);
	cfr_engine_free(eng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(per_flow_keeps_alias_tcp4),
	    cmocka_unit_test(per_flow_keeps_alias_tcp6),
	    cmocka_unit_test(per_flow_keeps_alias_udp4),
	    cmocka_unit_test(per_flow_keeps_alias_udp6),
	    cmocka_unit_test(per_destination_keeps_alias_tcp4),
	    cmocka_unit_test(per_subscriber_keeps_alias_udp6),
	    cmocka_unit_test(per_flow_rotates4),
	    cmocka_unit_test(per_flow_rotates6),
	    cmocka_unit_test(ipv6_prefix_never_leaks),
	    cmocka_unit_test(per_destination_sticky4),
	    cmocka_unit_test(per_destination_sticky6),
	    cmocka_unit_test(per_destination_independent_subscribers6),
	    cmocka_unit_test(per_destination_changes_across_epochs4),
	    cmocka_unit_test(per_destination_changes_across_epochs6),
	    cmocka_unit_test(per_destination_epoch_by_time4),
	    cmocka_unit_test(per_destination_epoch_by_time6),
	    cmocka_unit_test(per_subscriber_one_alias4),
	    cmocka_unit_test(per_subscriber_one_alias6),
	    cmocka_unit_test(per_subscriber_prefix6),
	    cmocka_unit_test(delegated_prefix_one_set_of_limits),
	    cmocka_unit_test(policies_per_family),
	    cmocka_unit_test(established_survives_rotation_per_flow4),
	    cmocka_unit_test(established_survives_rotation_per_flow6),
	    cmocka_unit_test(established_survives_rotation_per_destination4),
	    cmocka_unit_test(established_survives_rotation_per_destination6),
	    cmocka_unit_test(established_survives_rotation_per_subscriber4),
	    cmocka_unit_test(established_survives_rotation_per_subscriber6),
	    cmocka_unit_test(epoch_records_drained_once),
	    cmocka_unit_test(undrained_records_lost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
