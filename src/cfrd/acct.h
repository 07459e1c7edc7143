/*
 * cfrd's side of accountability: hands each ended epoch's records from the
 * engine to the segment writer (src/records), a bounded number per loop
 * iteration, and seals the current epoch too when cfrd stops.
 */
#ifndef CFRD_ACCT_H
#define CFRD_ACCT_H

#include <stdbool.h>
#include <stdint.h>

#include <cfr/cfr.h>

#include "config.h"

struct cfrd_acct {
	struct cfr_recw *writer; /* NULL: no [accounting], records are wiped unread */
};

/* Read the public key, open the records directory, apply retention. Before the sandbox. */
int cfrd_acct_open(struct cfrd_acct *a, const struct cfrd_config *cfg);

/* Seal some waiting records; true while more wait (the loop should not sleep). */
bool cfrd_acct_drain(struct cfrd_acct *a, struct cfr_engine *eng, uint64_t now_ms);

/* End the current epoch, seal every record, close the segment, wipe its key. */
void cfrd_acct_close(struct cfrd_acct *a, struct cfr_engine *eng, uint64_t now_ms);

#endif
