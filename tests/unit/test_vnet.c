/*
 * cfrd's receive side of the TUN virtio_net_hdr (src/cfrd/vnet.c): a
 * partial checksum that is the packet's own TCP/UDP checksum stays partial
 * for the engine; any other partial checksum is completed in software, and
 * must then equal a full recomputation; headers the kernel would never
 * produce are refused. vnet.c is compiled in, as it has no other link-time
 * dependency than the engine's header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "../../src/cfrd/vnet.h"
#include "pkt.h"

static void build(struct pkt *p, int family, uint8_t proto, const enum pkt_ext *ext, unsigned n_ext)
{
	static const uint8_t payload[300] = {1, 2, 3, 4, 5};
	struct pkt_spec s = {.family = family, .proto = proto, .sport = 40000, .dport = 443};

	pkt_addr(family, family == 4 ? "100.64.1.2" : "2001:db8:100:1::2", s.src);
	pkt_addr(family, family == 4 ? "203.0.113.10" : "2001:db8:f::10", s.dst);
	s.tcp_flags = PKT_TCP_ACK;
	s.icmp_type = family == 4 ? 8 : 128;
	s.payload = payload;
	s.payload_len = sizeof(payload);
	for (unsigned i = 0; i < n_ext; i++)
		s.ext[i] = ext[i];
	s.n_ext = n_ext;
	pkt_build(p, &s);
}

/*
 * Turn the packet's transport checksum into what the sending stack leaves
 * for the device (CHECKSUM_PARTIAL): the folded pseudo-header sum, or 0
 * for ICMPv4, which has no pseudo-header. Returns its offset.
 */
static size_t make_partial(struct pkt *p)
{
	struct pkt_info pi;
	size_t field;
	uint32_t pseudo = 0;

	assert_int_equal(pkt_parse(p->data, p->len, false, &pi), 0);
	field = pi.l3_len + (pi.proto == IPPROTO_TCP ? 16 : pi.proto == IPPROTO_UDP ? 6 : 2);
	if (pi.proto != IPPROTO_ICMP)
		pseudo = pkt_pseudo_sum(pi.family, pi.src, pi.dst, pi.proto, p->len - pi.l3_len);
	pkt_put16(p->data + field, (uint16_t)~pkt_csum(NULL, 0, pseudo));
	return field;
}

static struct cfr_pkt as_cfr(struct pkt *p)
{
	return (struct cfr_pkt){.data = p->data, .len = p->len};
}

static void check_stays_partial(int family, uint8_t proto, const enum pkt_ext *ext, unsigned n_ext,
                                uint8_t gso)
{
	struct pkt p;
	struct cfr_pkt c;
	struct pkt_info pi;
	struct virtio_net_hdr h = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = gso};
	uint64_t completed = 0;
	size_t field;
	uint8_t before[PKT_MAX];

	build(&p, family, proto, ext, n_ext);
	field = make_partial(&p);
	assert_int_equal(pkt_parse(p.data, p.len, false, &pi), 0);
	h.csum_start = (uint16_t)pi.l3_len;
	h.csum_offset = (uint16_t)(field - pi.l3_len);
	memcpy(before, p.data, p.len);
	c = as_cfr(&p);
	assert_int_equal(cfrd_vnet_rx(&h, &c, &completed), 0);
	assert_int_equal(c.csum_partial, 1);
	assert_int_equal(completed, 0);
	assert_memory_equal(before, p.data, p.len);
	assert_int_equal(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
}

static void tcp4_partial(void **state)
{
	(void)state;
	check_stays_partial(4, IPPROTO_TCP, NULL, 0, VIRTIO_NET_HDR_GSO_TCPV4);
}

static void udp6_partial_after_ext(void **state)
{
	static const enum pkt_ext ext[] = {PKT_EXT_HOPOPTS, PKT_EXT_DSTOPTS};

	(void)state;
	check_stays_partial(6, IPPROTO_UDP, ext, 2, VIRTIO_NET_HDR_GSO_UDP_L4);
}

static void tcp6_partial(void **state)
{
	(void)state;
	check_stays_partial(6, IPPROTO_TCP, NULL, 0, VIRTIO_NET_HDR_GSO_NONE);
}

/* Not a place the engine can keep partial: summed here, and it must verify in full. */
static void check_completed(int family, uint8_t proto, const enum pkt_ext *ext, unsigned n_ext)
{
	struct pkt p;
	struct cfr_pkt c;
	struct pkt_info pi;
	struct virtio_net_hdr h = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM};
	uint64_t completed = 0;
	size_t field;
	char why[160];

	build(&p, family, proto, ext, n_ext);
	field = make_partial(&p);
	assert_int_equal(pkt_parse(p.data, p.len, false, &pi), 0);
	h.csum_start = (uint16_t)pi.l3_len;
	h.csum_offset = (uint16_t)(field - pi.l3_len);
	c = as_cfr(&p);
	assert_int_equal(cfrd_vnet_rx(&h, &c, &completed), 0);
	assert_int_equal(c.csum_partial, 0);
	assert_int_equal(completed, 1);
	assert_int_equal(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, 0);
	assert_int_equal(pkt_verify_checksums(p.data, p.len, why, sizeof(why)), 0);
}

static void icmp4_completed(void **state)
{
	(void)state;
	check_completed(4, IPPROTO_ICMP, NULL, 0);
}

static void icmp6_completed(void **state)
{
	(void)state;
	check_completed(6, IPPROTO_ICMPV6, NULL, 0);
}

/* An atomic fragment: the engine tracks it as a fragment, so it gets a full checksum. */
static void udp6_atomic_fragment_completed(void **state)
{
	static const enum pkt_ext ext[] = {PKT_EXT_FRAG};

	(void)state;
	check_completed(6, IPPROTO_UDP, ext, 1);
}

static void refused(void **state)
{
	struct pkt p;
	struct cfr_pkt c;
	uint64_t completed = 0;
	struct virtio_net_hdr gso_full = {.gso_type = VIRTIO_NET_HDR_GSO_TCPV4};
	struct virtio_net_hdr gso_icmp = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
	                                  .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
	                                  .csum_start = 20,
	                                  .csum_offset = 2};
	struct virtio_net_hdr beyond = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 20};

	(void)state;
	build(&p, 4, IPPROTO_TCP, NULL, 0);
	c = as_cfr(&p);
	/* GSO always comes with a partial checksum (virtio_net_hdr_from_skb()). */
	assert_int_equal(cfrd_vnet_rx(&gso_full, &c, &completed), -EINVAL);
	build(&p, 4, IPPROTO_ICMP, NULL, 0);
	c = as_cfr(&p);
	assert_int_equal(cfrd_vnet_rx(&gso_icmp, &c, &completed), -EINVAL);
	beyond.csum_offset = (uint16_t)(p.len - 20 - 1);
	assert_int_equal(cfrd_vnet_rx(&beyond, &c, &completed), -EINVAL);
	beyond.csum_start = (uint16_t)(p.len + 1);
	beyond.csum_offset = 0;
	assert_int_equal(cfrd_vnet_rx(&beyond, &c, &completed), -EINVAL);
	assert_int_equal(completed, 0);
}

static void data_valid(void **state)
{
	struct pkt p;
	struct cfr_pkt c;
	uint64_t completed = 0;
	struct virtio_net_hdr h = {.flags = VIRTIO_NET_HDR_F_DATA_VALID};

	(void)state;
	build(&p, 6, IPPROTO_UDP, NULL, 0);
	c = as_cfr(&p);
	c.csum_partial = 1;
	assert_int_equal(cfrd_vnet_rx(&h, &c, &completed), 0);
	assert_int_equal(c.csum_partial, 0);
}

#define T(f) cmocka_unit_test(f)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(tcp4_partial),    T(udp6_partial_after_ext),
	    T(tcp6_partial),    T(icmp4_completed),
	    T(icmp6_completed), T(udp6_atomic_fragment_completed),
	    T(refused),         T(data_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
