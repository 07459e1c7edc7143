/*
 * The virtio_net_hdr that a TUN device with IFF_VNET_HDR puts in front of
 * every packet (linux/virtio_net.h, the legacy 10-byte layout in native
 * byte order, which is what TUN uses unless told TUNSETVNETLE/BE): how it
 * maps onto cfr_pkt.csum_partial on the way in. On the way out the header
 * goes back unchanged, because translation changes neither lengths nor
 * header offsets.
 */
#ifndef CFRD_VNET_H
#define CFRD_VNET_H

#include <linux/virtio_net.h>

#include <cfr/cfr.h>

/* Older uapi headers (Debian 12's are 6.1) lack the UDP segmentation bits. */
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

#define CFRD_VNET_HDR_LEN sizeof(struct virtio_net_hdr)

/*
 * Check the header <h> read with packet <pkt> and set pkt->csum_partial.
 * A partial checksum whose csum_start/csum_offset are not the TCP or UDP
 * checksum of the packet's own transport header is completed here (and
 * NEEDS_CSUM cleared in <h>), since the engine only keeps TCP/UDP partial.
 * Returns 0, or -EINVAL for a packet to drop: a header the kernel would not
 * produce (offsets beyond the packet, GSO without a usable partial checksum).
 * <completed> counts checksums summed in software.
 */
int cfrd_vnet_rx(struct virtio_net_hdr *h, struct cfr_pkt *pkt, uint64_t *completed);

#endif
