/*
 * cfr-lookup's search: which segments and epochs cover a complaint, and
 * which subscribers' regenerated allocations match it.
 */
#ifndef CFR_LOOKUP_SEARCH_H
#define CFR_LOOKUP_SEARCH_H

#include "../../records/records.h"

struct lookup_query {
	const char *dir;
	uint8_t pk[CFR_KEY_BYTES], sk[CFR_KEY_BYTES];
	struct cfr_complaint c;
};

struct lookup_candidate {
	uint8_t family, prefix6;
	uint8_t subscriber[16];
	uint64_t epoch;
	uint32_t counter;
	uint64_t from_ms, to_ms;
	char segment[64];
};

struct lookup_result {
	struct lookup_candidate *cand;
	size_t n_cand, cap_cand;
	size_t n_subscribers; /* distinct subscribers among the candidates */
	unsigned segments_total, segments_read, epochs_read;
	uint64_t records_read, allocations;
	/* Problems that may hide a match: damaged or unreadable segments, incomplete epochs. */
	char **warnings;
	size_t n_warnings;
};

/*
 * Search <q->dir>. Returns 0 (whatever was found), or -errno for a problem
 * that stops the whole search (<err> says what: no directory, the policy
 * needs --remote, out of memory).
 */
int lookup_search(const struct lookup_query *q, struct lookup_result *res,
                  struct cfr_rec_error *err);
void lookup_result_free(struct lookup_result *res);

#endif
