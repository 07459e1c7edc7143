/*
 * cfr-audit: capture mode. The same measurements on real traffic: flows
 * read from a capture taken at the front door, matched to subscribers
 * through a capture (or a TSV) taken on the subscriber side.
 */
#ifndef CFR_AUDIT_CAPTURE_H
#define CFR_AUDIT_CAPTURE_H

#include "audit.h"

/*
 * Read <fd_pcap> and the <n_truth> files of <truth> (captures or TSVs; with
 * <per_file> each capture is one subscriber, else a subscriber is a source
 * address, an IPv6 one by its /64), fill up to two rows (the subscriber side
 * as a front door would see it without translation, when the truth is one
 * capture; then the front-door capture) and set *<n>. Returns 0 or -errno.
 */
int capture_run(const char *fd_pcap, const char *const *truth, unsigned n_truth, bool per_file,
                const struct pool_list *pools, const struct link_params *lp, uint64_t seed,
                struct row *rows, unsigned *n);

#endif
