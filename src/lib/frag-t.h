/* Types of the fragment table (frag.c). Functions are in frag.h. */
#ifndef CFR_FRAG_T_H
#define CFR_FRAG_T_H

#include <stdint.h>

#include "addr-t.h"

/* Which datagram a fragment belongs to, and the flow it was translated with. */
struct cfr_frag {
	union cfr_addr src, dst;
	uint32_t id;
	uint32_t flow;
	uint32_t guard; /* the subscriber whose share it takes */
	uint32_t expires_s;
	uint32_t got, total; /* bytes of the datagram seen, its length once known (0: not yet) */
	uint8_t family, nh, dir, in_use;
	uint16_t ip_id;   /* scrubbed IPv4 identification shared by all fragments */
	uint8_t l4_proto; /* the flow's transport protocol */
	uint8_t pad_;
};

/* Open addressing, at most 8 probes per lookup (frag.c). */
struct cfr_frag_table {
	struct cfr_frag *slots;
	uint32_t mask;
};

#endif
