/*
 * anon.c: anonymity sets, distinct subscribers with live flows per alias.
 * Called by flow.c as flows come and go, and engine.c (creation).
 */
#ifndef CFR_ANON_H
#define CFR_ANON_H

#include <stdint.h>

#include "engine-t.h"

int cfr_anon_init(struct cfr_engine *eng);
void cfr_anon_free(struct cfr_engine *eng);
uint32_t cfr_anon_add(struct cfr_engine *eng, struct cfr_flow *f);
void cfr_anon_remove(struct cfr_engine *eng, const struct cfr_flow *f);
void cfr_anon_placed(struct cfr_engine *eng, uint8_t family, uint32_t set);

#endif
