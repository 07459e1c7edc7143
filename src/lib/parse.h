/*
 * Packet parsing: IPv4/IPv6 with extension headers, TCP, UDP, ICMP, ICMPv6.
 *
 * The parser only reads; it records where the fields the engine rewrites
 * live (offsets from the start of the buffer) and validates every length
 * before it is used. It never decides policy.
 */
#ifndef CFR_PARSE_H
#define CFR_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "cfr/cfr.h"

#define CFR_IPPROTO_ICMP   1
#define CFR_IPPROTO_TCP    6
#define CFR_IPPROTO_UDP    17
#define CFR_IPPROTO_ICMPV6 58

/* Bound on the IPv6 extension header walk: a hostile chain costs us at most this. */
#define CFR_MAX_EXT_HDRS 8

enum cfr_icmp_kind {
	CFR_ICMP_NONE = 0,
	CFR_ICMP_ECHO_REQUEST,
	CFR_ICMP_ECHO_REPLY,
	CFR_ICMP_ERROR,
};

struct cfr_parsed {
	uint8_t family;    /* CFR_FAMILY_V4 / V6 */
	uint8_t proto;     /* IPPROTO number of the transport */
	uint8_t addr_len;  /* 4 or 16 */
	uint8_t icmp_kind; /* enum cfr_icmp_kind */
	uint8_t tcp_flags;
	uint8_t frag_nh;   /* what every fragment of the datagram names as its next header */
	bool frag;         /* part of a fragmented datagram */
	bool frag_more;    /* ... and more fragments follow this one (MF) */
	bool has_l4;       /* the transport header is here (not a later fragment) */
	bool csum_partial; /* the transport checksum holds the pseudo-header sum only */
	bool bucket_known; /* <bucket>: the flow index bucket, computed while prefetching */
	uint32_t bucket;
	uint32_t frag_id;
	uint32_t frag_off;         /* byte offset of this fragment's data in the datagram */
	uint32_t frag_data_off;    /* where the fragmentable part starts in this packet */
	uint32_t src_off, dst_off; /* address fields */
	uint32_t l4_off;           /* transport header */
	uint32_t end;              /* end of this IP packet inside the buffer */
	/*
	 * Ports, or for ICMP queries the identifier in both. Offsets are 0 when
	 * absent. Values are numeric (host order).
	 */
	uint32_t sport_off, dport_off;
	uint16_t sport, dport;
	uint32_t csum_off; /* transport checksum field, 0 when absent or unused */
};

/*
 * Parse the packet at <buf>[0..<len>). When <quoted> is set the packet is the
 * one an ICMP error quotes: it may be truncated after the first 8 bytes of its
 * transport header, and its header checksum is not verified.
 * Returns CFR_DROP_NONE or the reason the packet cannot be translated.
 */
enum cfr_drop cfr_parse(const uint8_t *buf, uint32_t len, bool quoted, struct cfr_parsed *p);

#endif
