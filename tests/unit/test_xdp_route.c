/*
 * The AF_XDP fast path's decisions after the engine (src/cfrd/io_xdp.c),
 * with no socket and no privilege: which port a translated frame leaves
 * by, the subscriber MACs it learns (only from accepted packets that the
 * XDP program vouched for), replies with no learned MAC or too big for the
 * port going through TUN instead, and the second TTL hop with its IPv4
 * header checksum. io_xdp.c is compiled in, with the TUN backend it falls
 * back to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cfrd/io_tun.c"
#include "../../src/cfrd/io_xdp.c"
#include "../../src/cfrd/log.c"
#include "../../src/cfrd/vnet.c"
#include "pkt.h"

#define SUB4 "100.64.1.2"
#define SUB6 "2001:db8:100:1::2"

static const uint8_t MAC_IN[ETH_ALEN] = {2, 0, 0, 0, 0, 1};  /* the gateway's inside port */
static const uint8_t MAC_OUT[ETH_ALEN] = {2, 0, 0, 0, 0, 2}; /* its outside port */
static const uint8_t MAC_SUB[ETH_ALEN] = {2, 0, 0, 0, 1, 1}; /* the subscriber */
static const uint8_t MAC_HOP[ETH_ALEN] = {2, 0, 0, 0, 2, 2}; /* the upstream next hop */

/* Two ports (0 inside, 1 outside), one worker with a socket on each. */
struct rig {
	struct cfrd_xdp x;
	struct cfrd_xdp_worker w;
	uint8_t frames[CFRD_BURST][ETH_HLEN + PKT_MAX];
};

static int rig_setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->x.neigh_mask = 255;
	r->x.neigh = calloc(r->x.neigh_mask + 1, sizeof(*r->x.neigh));
	assert_non_null(r->x.neigh);
	r->x.n_ports = 2;
	r->x.ports[0] = (struct port){.inside = true, .mtu = 1500};
	r->x.ports[1] = (struct port){.inside = false, .mtu = 1500};
	memcpy(r->x.ports[0].mac, MAC_IN, ETH_ALEN);
	memcpy(r->x.ports[1].mac, MAC_OUT, ETH_ALEN);
	r->w.x = &r->x;
	r->w.n_socks = 2;
	r->w.socks[0].port = 0;
	r->w.socks[1].port = 1;
	r->w.sock_of_port[0] = 0;
	r->w.sock_of_port[1] = 1;
	for (unsigned p = 2; p < CFRD_XDP_MAX_PORTS; p++)
		r->w.sock_of_port[p] = -1;
	*state = r;
	return 0;
}

static int rig_teardown(void **state)
{
	struct rig *r = *state;

	free(r->x.neigh);
	free(r);
	return 0;
}

/*
 * Burst slot <k>: a UDP packet as the engine left it (already translated),
 * behind an Ethernet header <eth_src> -> <eth_dst>.
 */
static void slot(struct rig *r, unsigned k, int family, const char *src, const char *dst,
                 enum cfr_dir dir, enum cfr_verdict verdict, size_t payload_len)
{
	static const uint8_t payload[2000];
	struct pkt_spec s = {.family = family, .proto = IPPROTO_UDP, .sport = 40000, .dport = 443};
	struct pkt p;
	uint8_t *eth = r->frames[k];

	pkt_addr(family, src, s.src);
	pkt_addr(family, dst, s.dst);
	s.payload = payload;
	s.payload_len = payload_len;
	s.ttl = 64;
	pkt_build(&p, &s);
	memset(eth, 0, ETH_HLEN);
	memcpy(eth + ETH_HLEN, p.data, p.len);
	r->w.pkts[k] = (struct cfr_pkt){
	    .data = eth + ETH_HLEN, .len = p.len, .dir = (uint8_t)dir, .verdict = (uint8_t)verdict};
	r->w.learnable[k] = false;
}

/* An outbound packet from the subscriber at <sub>, as the XDP program hands it over. */
static void outbound(struct rig *r, unsigned k, int family, const char *sub, const uint8_t *sub_mac,
                     enum cfr_verdict verdict)
{
	uint8_t *eth = r->frames[k];

	slot(r, k, family, family == 4 ? "192.0.2.9" : "2001:db8:a1::9",
	     family == 4 ? "203.0.113.10" : "2001:db8:f::10", CFR_DIR_OUT, verdict, 100);
	memcpy(eth, MAC_HOP, ETH_ALEN);
	memcpy(eth + ETH_ALEN, MAC_OUT, ETH_ALEN);
	r->w.learnable[k] = true;
	memcpy(r->w.src_mac[k], sub_mac, ETH_ALEN);
	pkt_addr(family, sub, r->w.src[k] + (family == 4 ? 12 : 0));
	if (family == 4) {
		memset(r->w.src[k], 0, 10);
		r->w.src[k][10] = r->w.src[k][11] = 0xff;
	}
}

/* A reply translated back to <sub>. */
static void inbound(struct rig *r, unsigned k, int family, const char *sub, size_t payload_len)
{
	slot(r, k, family, family == 4 ? "203.0.113.10" : "2001:db8:f::10", sub, CFR_DIR_IN,
	     CFR_VERDICT_FORWARD, payload_len);
}

static void learned_subscriber_gets_its_replies(void **state)
{
	struct rig *r = *state;
	const int families[] = {4, 6};

	for (unsigned f = 0; f < 2; f++) {
		int fam = families[f];
		const char *sub = fam == 4 ? SUB4 : SUB6;

		outbound(r, 0, fam, sub, MAC_SUB, CFR_VERDICT_FORWARD);
		route(&r->w, &r->w.socks[0], 1);
		assert_int_equal(r->w.egress[0],
		                 1); /* out of the port whose MAC the program wrote */

		inbound(r, 0, fam, sub, 100);
		route(&r->w, &r->w.socks[1], 1);
		assert_int_equal(r->w.egress[0], 0);
		assert_memory_equal(r->frames[0], MAC_SUB, ETH_ALEN);
		assert_memory_equal(r->frames[0] + ETH_ALEN, MAC_IN, ETH_ALEN);
	}
	assert_int_equal(r->x.neigh_misses, 0);
}

static void only_accepted_vouched_packets_teach(void **state)
{
	struct rig *r = *state;
	static const uint8_t spoofer[ETH_ALEN] = {2, 0, 0, 0, 6, 6};

	/* Dropped by the engine: nothing learned, the reply has no way but TUN. */
	outbound(r, 0, 4, SUB4, spoofer, CFR_VERDICT_DROP);
	route(&r->w, &r->w.socks[0], 1);
	assert_int_equal(r->w.egress[0], -1);
	inbound(r, 0, 4, SUB4, 100);
	route(&r->w, &r->w.socks[1], 1);
	assert_int_equal(r->w.egress[0], -1);
	assert_int_equal(r->x.neigh_misses, 1);

	/* Forwarded but without the program's metadata (learnable false): nothing learned either.
	 */
	outbound(r, 0, 4, SUB4, spoofer, CFR_VERDICT_FORWARD);
	r->w.learnable[0] = false;
	route(&r->w, &r->w.socks[0], 1);
	inbound(r, 0, 4, SUB4, 100);
	route(&r->w, &r->w.socks[1], 1);
	assert_int_equal(r->w.egress[0], -1);
	assert_int_equal(r->x.neigh_misses, 2);
}

static void the_latest_accepted_packet_wins(void **state)
{
	struct rig *r = *state;
	static const uint8_t moved[ETH_ALEN] = {2, 0, 0, 0, 7, 7};

	outbound(r, 0, 6, SUB6, MAC_SUB, CFR_VERDICT_FORWARD);
	outbound(r, 1, 6, SUB6, moved, CFR_VERDICT_FORWARD);
	route(&r->w, &r->w.socks[0], 2);
	inbound(r, 0, 6, SUB6, 100);
	route(&r->w, &r->w.socks[1], 1);
	assert_int_equal(r->w.egress[0], 0);
	assert_memory_equal(r->frames[0], moved, ETH_ALEN);
}

static void a_reply_larger_than_the_port_goes_through_tun(void **state)
{
	struct rig *r = *state;

	r->x.ports[0].mtu = 1280;
	outbound(r, 0, 4, SUB4, MAC_SUB, CFR_VERDICT_FORWARD);
	route(&r->w, &r->w.socks[0], 1);
	inbound(r, 0, 4, SUB4, 1280 - 28);
	route(&r->w, &r->w.socks[1], 1);
	assert_int_equal(r->w.egress[0], 0); /* exactly the MTU: fits */
	inbound(r, 0, 4, SUB4, 1280 - 28 + 1);
	route(&r->w, &r->w.socks[1], 1);
	assert_int_equal(r->w.egress[0], -1); /* the kernel sends Packet Too Big */
}

static void a_reply_to_a_port_without_socket_goes_through_tun(void **state)
{
	struct rig *r = *state;

	outbound(r, 0, 4, SUB4, MAC_SUB, CFR_VERDICT_FORWARD);
	route(&r->w, &r->w.socks[0], 1);
	r->w.sock_of_port[0] = -1; /* this worker's queue does not exist on the inside port */
	inbound(r, 0, 4, SUB4, 100);
	route(&r->w, &r->w.socks[1], 1);
	assert_int_equal(r->w.egress[0], -1);
}

static uint16_t ip4_header_sum(const uint8_t *ip)
{
	uint32_t sum = 0;

	for (unsigned i = 0; i < (ip[0] & 0xfu) * 4u; i += 2)
		sum += (uint32_t)ip[i] << 8 | ip[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Every TTL and many IDs: the updated header still sums to 0xffff, as a receiver checks. */
static void hop_decrement_keeps_the_header_checksum(void **state)
{
	struct pkt_spec s = {.family = 4, .proto = IPPROTO_UDP, .sport = 1, .dport = 2};
	struct pkt p;

	(void)state;
	pkt_addr(4, SUB4, s.src);
	pkt_addr(4, "203.0.113.10", s.dst);
	for (unsigned ttl = 3; ttl < 256; ttl++) {
		for (unsigned id = 0; id < 65536; id += 251) {
			s.ttl = (uint8_t)ttl;
			s.ip_id = (uint16_t)id;
			pkt_build(&p, &s);
			assert_int_equal(ip4_header_sum(p.data), 0xffff);
			hop_decrement(p.data);
			assert_int_equal(p.data[8], ttl - 1);
			assert_int_equal(ip4_header_sum(p.data), 0xffff);
		}
	}
	s.family = 6;
	pkt_addr(6, SUB6, s.src);
	pkt_addr(6, "2001:db8:f::10", s.dst);
	s.ttl = 64;
	pkt_build(&p, &s);
	hop_decrement(p.data);
	assert_int_equal(p.data[7], 63);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(learned_subscriber_gets_its_replies, rig_setup,
	                                    rig_teardown),
	    cmocka_unit_test_setup_teardown(only_accepted_vouched_packets_teach, rig_setup,
	                                    rig_teardown),
	    cmocka_unit_test_setup_teardown(the_latest_accepted_packet_wins, rig_setup,
	                                    rig_teardown),
	    cmocka_unit_test_setup_teardown(a_reply_larger_than_the_port_goes_through_tun,
	                                    rig_setup, rig_teardown),
	    cmocka_unit_test_setup_teardown(a_reply_to_a_port_without_socket_goes_through_tun,
	                                    rig_setup, rig_teardown),
	    cmocka_unit_test(hop_decrement_keeps_the_header_checksum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
