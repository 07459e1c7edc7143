/* Types of the buffered CSPRNG (rng.c). Functions are in rng.h. */
#ifndef CFR_RNG_T_H
#define CFR_RNG_T_H

#include <stdint.h>

#define CFR_RNG_BUF 512

struct cfr_rng {
	uint32_t used;
	uint8_t buf[CFR_RNG_BUF]; /* CSPRNG output not handed out yet */
};

#endif
