/*
 * Receive side of the virtio_net_hdr of a TUN device with offloads.
 *
 * The kernel fills the header from the skb (virtio_net_hdr_from_skb()):
 * CHECKSUM_PARTIAL becomes VIRTIO_NET_HDR_F_NEEDS_CSUM with csum_start (from
 * the IP header, a TUN device has no link header) and csum_offset (from
 * csum_start to the checksum field), and the field itself then holds the
 * folded, not complemented, pseudo-header sum; CHECKSUM_UNNECESSARY becomes
 * VIRTIO_NET_HDR_F_DATA_VALID; a GSO packet always comes with NEEDS_CSUM.
 * The engine keeps a partial TCP/UDP checksum partial through translation,
 * so the common case costs a few compares here. Anything else partial is
 * completed in software, as skb_checksum_help() would have done before
 * handing it to a device without checksum offload.
 *
 * Never allocates, never touches a descriptor.
 */
#include "vnet.h"

#include <errno.h>

#include "cfr/internal/csum.h"

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_TCP_     6
#define IPPROTO_UDP_     17
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAG_    44
#define IPPROTO_DSTOPTS_ 60

/* Extension headers walked before giving up: the engine's own limit is lower. */
#define MAX_EXT_HDRS 8

/*
 * Offset of the transport header of the whole (unfragmented) IP packet at
 * <p>, with its protocol in <proto>; 0 when there is none to find.
 */
static uint32_t transport_offset(const uint8_t *p, uint32_t len, uint8_t *proto)
{
	uint32_t off;
	uint8_t nh;

	if (len >= 20 && p[0] >> 4 == 4) {
		off = (uint32_t)(p[0] & 0x0f) * 4;
		/* MF or a fragment offset: only a whole datagram has its checksum here. */
		if (off < 20 || off > len || ((p[6] & 0x3f) | p[7]) != 0)
			return 0;
		*proto = p[9];
		return off;
	}
	if (len < 40 || p[0] >> 4 != 6)
		return 0;
	nh = p[6];
	off = 40;
	for (int i = 0; i < MAX_EXT_HDRS; i++) {
		if (nh != IPPROTO_HOPOPTS_ && nh != IPPROTO_ROUTING_ && nh != IPPROTO_DSTOPTS_)
			break;
		if (off + 2 > len)
			return 0;
		nh = p[off];
		off += ((uint32_t)p[off + 1] + 1) * 8;
	}
	if (nh == IPPROTO_FRAG_ || off > len)
		return 0;
	*proto = nh;
	return off;
}

int cfrd_vnet_rx(struct virtio_net_hdr *h, struct cfr_pkt *pkt, uint64_t *completed)
{
	uint32_t start, off, l4;
	uint8_t proto = 0;
	uint16_t csum;

	pkt->csum_partial = 0;
	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) {
		/* DATA_VALID or nothing: the checksums in the packet are complete. */
		if (__builtin_expect(h->gso_type != VIRTIO_NET_HDR_GSO_NONE, 0))
			return -EINVAL;
		return 0;
	}
	start = h->csum_start;
	off = h->csum_offset;
	if (__builtin_expect(start > pkt->len || off + 2 > pkt->len - start, 0))
		return -EINVAL;
	l4 = transport_offset(pkt->data, pkt->len, &proto);
	if (__builtin_expect(l4 == start && ((proto == IPPROTO_TCP_ && off == 16) ||
	                                     (proto == IPPROTO_UDP_ && off == 6)),
	                     1)) {
		pkt->csum_partial = 1;
		return 0;
	}
	/*
	 * A super-packet must stay partial (the kernel sums each segment after
	 * cutting it): one the engine cannot keep partial is dropped.
	 */
	if (h->gso_type != VIRTIO_NET_HDR_GSO_NONE)
		return -EINVAL;
	/*
	 * skb_checksum_help(): sum from csum_start to the end over the field,
	 * which already holds the pseudo-header sum, and store the complement;
	 * 0 goes out as 0xffff (CSUM_MANGLED_0), which UDP requires and every
	 * other one's-complement checksum reads the same.
	 */
	csum = csum_fold(csum_add(0, pkt->data + start, pkt->len - start));
	if (csum == 0)
		csum = 0xffff;
	put16(pkt->data + start + off, csum);
	h->flags &= (uint8_t)~VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h->csum_start = 0;
	h->csum_offset = 0;
	(*completed)++;
	return 0;
}
