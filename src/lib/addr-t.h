/* The engine's address type, shared by the flow, fragment and pool modules. */
#ifndef CFR_ADDR_T_H
#define CFR_ADDR_T_H

#include <stdint.h>

/* An IPv4 address lives in the first 4 bytes, the rest stays zero. */
union cfr_addr {
	uint8_t b[16];
	uint32_t w[4];
};

#endif
