/*
 * The seed of the unit tests' statistical checks. CFR_TEST_SEED=N (a
 * decimal number) replays a run; unset, it is 0, the fixed seed the
 * thresholds were chosen with, so a plain run is deterministic. A failing
 * statistical check prints test_seed_note() so its run can be replayed.
 */
#ifndef CFR_TEST_SEED_H
#define CFR_TEST_SEED_H

#include <stdint.h>

uint64_t test_seed(void);

/* "CFR_TEST_SEED=N": how to run the same draws again. */
const char *test_seed_note(void);

#endif
