/*
 * frag.c: which flow a fragmented datagram belongs to. Called by
 * translate.c and engine.c (the sweep).
 */
#ifndef CFR_FRAG_H
#define CFR_FRAG_H

#include <stdint.h>

#include "engine-t.h"
#include "parse.h"

/* Allocate the fragment table for eng->cfg (0 or -ENOMEM; cfr_frag_free() either way). */
int cfr_frag_init(struct cfr_engine *eng);
void cfr_frag_free(struct cfr_engine *eng);

enum cfr_drop cfr_frag_remember(struct cfr_engine *eng, uint8_t dir, const uint8_t *buf,
                                const struct cfr_parsed *p, uint32_t flow, struct cfr_frag **out);
struct cfr_frag *cfr_frag_find(struct cfr_engine *eng, uint8_t dir, const uint8_t *buf,
                               const struct cfr_parsed *p);
void cfr_frag_arrived(struct cfr_engine *eng, struct cfr_frag *frag, const struct cfr_parsed *p);
void cfr_frag_sweep(struct cfr_engine *eng);

#endif
