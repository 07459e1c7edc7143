/*
 * acct.c: privacy epochs, per-subscriber seeds, counters and timelines.
 * Called by alloc.c (a draw) and engine.c (creation, the clock).
 */
#ifndef CFR_ACCT_H
#define CFR_ACCT_H

#include <stdint.h>

#include "engine-t.h"

int cfr_acct_init(struct cfr_engine *eng);
void cfr_acct_free(struct cfr_engine *eng);
struct cfr_sub_state *cfr_acct_subscriber(struct cfr_engine *eng, uint8_t family,
                                          const uint8_t *addr);
void cfr_acct_drew(struct cfr_engine *eng, struct cfr_sub_state *s);
void cfr_acct_forget_new(struct cfr_engine *eng, struct cfr_sub_state *s);
void cfr_epoch_new(struct cfr_engine *eng, uint64_t now_ms);
void cfr_epoch_check(struct cfr_engine *eng, uint64_t now_ms);

#endif
