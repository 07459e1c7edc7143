/*
 * Types of the accounting module (acct.c): privacy epochs, per-subscriber
 * seeds, counters and timelines, and the records waiting to be sealed.
 * Functions are in acct.h.
 */
#ifndef CFR_ACCT_T_H
#define CFR_ACCT_T_H

#include <stdint.h>

#include "cfr/cfr.h"

/* Records sealed early, waiting for the daemon: beyond this, newcomers wait too (acct.c). */
#define CFR_EARLY_QUEUE 256

/*
 * A subscriber's state in one epoch: its secret seed, the allocation
 * counter, and the timeline of when the counter moved (see acct.c).
 */
struct cfr_sub_state {
	uint8_t key[16];
	uint8_t family, in_use;
	uint16_t tl_len;
	uint32_t next; /* bucket chain */
	uint32_t counter;
	uint32_t prev_end;                       /* end second of the last flushed entry */
	uint32_t pend_from, pend_to, pend_count; /* the entry being built */
	uint8_t seed[CFR_SEED_BYTES];
	uint8_t timeline[CFR_TIMELINE_BYTES];
	/* The write-ahead journal (acct.c): what the daemon has not been handed yet. */
	uint32_t slot;           /* this record's number in the epoch, from 1 */
	uint32_t jr_gen;         /* journal generation of its last snapshot; 0: none yet */
	uint32_t jr_counter;     /* counter when last handed out */
	uint32_t jr_from, jr_to; /* seconds of the draws since then */
	uint32_t dirty_pos;      /* 1 + its place in the table's dirty list; 0: not on it */
};

struct cfr_sub_table {
	struct cfr_sub_state *s; /* max_subscribers + 1; index 0 means none */
	uint32_t *buckets;
	uint32_t *used; /* indexes in use, in order of arrival */
	uint32_t n_used, drained;
	uint32_t cursor; /* where the search for an idle subscriber goes on (acct.c) */
	uint64_t epoch, start_ms, end_ms;
	uint32_t *dirty; /* subscribers whose counter moved since the journal last saw them */
	uint32_t n_dirty;
	uint32_t next_slot;
	uint32_t reseed; /* journal restart: position in used[] of the next snapshot */
};

/* The current epoch's subscriber table, the ended one being drained, and early records. */
struct cfr_acct {
	uint32_t epoch_start_s;
	uint64_t epoch_start_ms;
	struct cfr_sub_table subs[2];   /* current epoch, and the ended one being drained */
	struct cfr_epoch_record *early; /* sealed before their epoch ended, to drain (acct.c) */
	uint32_t early_head, early_count;
	uint32_t jr_gen; /* journal generation: a subscriber not snapshotted in it gets one */
	uint8_t cur_subs;
	uint32_t sub_mask;
};

#endif
