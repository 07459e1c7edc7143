/*
 * rng.c: libsodium CSPRNG, buffered so a new flow costs no syscall.
 */
#ifndef CFR_RNG_H
#define CFR_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "engine-t.h"

void cfr_rng_bytes(struct cfr_engine *eng, void *out, size_t n);
uint64_t cfr_rng_below(struct cfr_engine *eng, uint64_t n);

#endif
