/*
 * alloc.c: a new flow's alias and port, collision-checked against the
 * outside index (the draw itself is policy.c's).
 */
#ifndef CFR_ALLOC_H
#define CFR_ALLOC_H

#include <stdint.h>

#include "engine-t.h"

enum cfr_drop cfr_alloc_alias(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                              const uint8_t *sub, const uint8_t *remote, uint16_t remote_port,
                              union cfr_addr *alias, uint16_t *alias_port);

/*
 * The alias and port of a new endpoint-independent (<key> NULL) or
 * address-dependent (<key> the remote address) mapping of <sub>:<sub_port>:
 * the same draws as a flow's, with the subscriber's port parity (RFC 4787
 * REQ-4), on an alias:port no other mapping holds.
 */
enum cfr_drop cfr_alloc_mapping(struct cfr_engine *eng, uint8_t family, uint8_t proto,
                                const uint8_t *sub, uint16_t sub_port, const uint8_t *remote,
                                const uint8_t *key, union cfr_addr *alias, uint16_t *alias_port);

#endif
