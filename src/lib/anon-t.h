/* Types of the anonymity-set count (anon.c). Functions are in anon.h. */
#ifndef CFR_ANON_T_H
#define CFR_ANON_T_H

#include <stdint.h>

/* How many flows of one subscriber sit on one alias (the anonymity-set count). */
struct cfr_anon_pair {
	uint32_t guard; /* the subscriber, by its guard entry (alive while it has flows) */
	uint32_t alias_id;
	uint32_t flows;
	uint32_t next; /* bucket chain; free list when unused */
};

/* (subscriber, alias) pairs with live flows, by key; the set sizes live in the pool slots. */
struct cfr_anon_table {
	struct cfr_anon_pair *pairs;
	uint32_t *buckets;
	uint32_t mask, free_head, fresh;
};

#endif
