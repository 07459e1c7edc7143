/*
 * policy.c: the keyed PRF that turns a subscriber's epoch seed into aliases.
 */
#ifndef CFR_POLICY_H
#define CFR_POLICY_H

#include <stdint.h>

#include "engine-t.h"

void cfr_subscriber_key(const struct cfr_engine *eng, uint8_t family, const uint8_t *addr,
                        uint8_t key[16]);

#endif
