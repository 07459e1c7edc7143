/* Types of the guard (guard.c): per-subscriber limits. Functions are in guard.h. */
#ifndef CFR_GUARD_T_H
#define CFR_GUARD_T_H

#include <stdbool.h>
#include <stdint.h>

#include "cfr/cfr.h"

/* One subscriber's use of the engine, for its limits (guard.c). */
struct cfr_guard_entry {
	uint8_t key[16];
	uint8_t family;
	uint8_t idle_queued; /* on the idle queue (guard.c) */
	uint8_t pad_[2];
	uint32_t next;      /* bucket chain */
	uint32_t idle_next; /* idle queue */
	uint32_t flows[CFR_PROTO__COUNT];
	uint32_t half_open;
	uint32_t frags;        /* its datagrams in the fragment table */
	uint64_t tokens_milli; /* new-flow token bucket, in thousandths */
	uint64_t refill_ms;
};

/* Subscribers' entries, by key, and those without flows, oldest first. */
struct cfr_guard_table {
	struct cfr_guard_entry *entries; /* max_subscribers + 1 */
	uint32_t *buckets;
	uint32_t mask, fresh;
	uint32_t idle_head, idle_tail; /* entries without flows, oldest first */
	bool ingress_bound;            /* some prefix is bound to a line, or strict mode */
};

#endif
