/*
 * scrub.c: TCP timestamp modulation, IPv4 ID, TTL cap, IPv6 flow label.
 * Called by translate.c only.
 */
#ifndef CFR_SCRUB_H
#define CFR_SCRUB_H

#include <stdint.h>

#include "engine-t.h"
#include "parse.h"

void cfr_scrub_out(struct cfr_engine *eng, uint8_t *buf, const struct cfr_parsed *p,
                   struct cfr_flow *f, const struct cfr_frag *frag);
void cfr_scrub_in(struct cfr_engine *eng, uint8_t *buf, const struct cfr_parsed *p,
                  const struct cfr_flow *f);

#endif
