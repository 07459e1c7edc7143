/*
 * guard.c: martian and spoofed sources, ingress binding and per-subscriber
 * limits. Called by engine.c (every packet), translate.c (admission, ICMP
 * error senders), flow.c and frag.c (a subscriber's share) and acct.c
 * (whether a subscriber still has flows).
 */
#ifndef CFR_GUARD_H
#define CFR_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine-t.h"
#include "parse.h"

int cfr_guard_init(struct cfr_engine *eng);
/* eng->cfg changed (a reload): whether any prefix is bound to a line now. */
void cfr_guard_config_changed(struct cfr_engine *eng);
void cfr_guard_free(struct cfr_engine *eng);
enum cfr_drop cfr_guard_packet(struct cfr_engine *eng, const struct cfr_pkt *pkt,
                               const struct cfr_parsed *p);
enum cfr_drop cfr_guard_admit(struct cfr_engine *eng, uint8_t family, const uint8_t *sub,
                              uint8_t proto_idx, uint32_t *guard);
void cfr_guard_flow_added(struct cfr_engine *eng, const struct cfr_flow *f, uint8_t proto_idx);
void cfr_guard_flow_removed(struct cfr_engine *eng, const struct cfr_flow *f, uint8_t proto_idx);
enum cfr_drop cfr_guard_error_sender(const struct cfr_engine *eng, const struct cfr_pkt *pkt,
                                     const struct cfr_parsed *p, const uint8_t *sub);
bool cfr_guard_has_flows(struct cfr_engine *eng, uint8_t family, const uint8_t key[16]);
void cfr_guard_frags(struct cfr_engine *eng, uint32_t guard, int delta);
void cfr_guard_release(struct cfr_engine *eng, uint32_t guard);
void cfr_guard_half_open(struct cfr_engine *eng, const struct cfr_flow *f, int delta);
uint8_t cfr_proto_index(uint8_t proto);

#endif
