/*
 * translate.c: outbound, inbound, later fragments and ICMP errors.
 * Called by engine.c only.
 */
#ifndef CFR_TRANSLATE_H
#define CFR_TRANSLATE_H

#include "engine-t.h"
#include "parse.h"

enum cfr_drop cfr_translate(struct cfr_engine *eng, struct cfr_pkt *pkt,
                            const struct cfr_parsed *p);

/* A subscriber's packet to an alias (pkt->dir is IN on return when translated). */
enum cfr_drop cfr_translate_hairpin(struct cfr_engine *eng, struct cfr_pkt *pkt,
                                    const struct cfr_parsed *p);

#endif
