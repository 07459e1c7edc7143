/*
 * The fail-closed egress guard: an nftables table cfrd installs in its
 * namespace at start and leaves in place when it stops or crashes, so that
 * no packet carrying a subscriber address (as its source, or quoted in an
 * ICMP error) leaves the gateway by any other way than through cfrd, and
 * the gateway's own ICMP errors about subscribers are marked for the route
 * that hands them to cfrd (docs/engine.md, "The kernel speaks after cfrd").
 */
#ifndef CFRD_EGRESS_GUARD_H
#define CFRD_EGRESS_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The table's name, for operators: `nft list table inet cfr_guard`. */
#define CFRD_GUARD_TABLE "cfr_guard"

/*
 * Write the guard's nftables script for <cfg> into <out> (<size> bytes).
 * Returns its length, or -ENOSPC if it does not fit. Pure: no I/O.
 */
int cfrd_egress_guard_script(const struct cfrd_config *cfg, char *out, size_t size);

/*
 * The same, with <n_pools> more pool prefixes in the pool sets (those a
 * running cfrd still drains: a reload must not cut their flows off).
 */
int cfrd_egress_guard_script_more(const struct cfrd_config *cfg, const struct cfr_prefix *pools,
                                  unsigned n_pools, char *out, size_t size);

/*
 * Replace the guard table atomically with the one for <cfg>. Returns 0, or
 * -errno with one line of nft's own error logged.
 */
int cfrd_egress_guard_install(const struct cfrd_config *cfg);
int cfrd_egress_guard_install_more(const struct cfrd_config *cfg, const struct cfr_prefix *pools,
                                   unsigned n_pools);

/*
 * What names the table for <cfg> (a hash of its script without extra
 * pools): cfrd compares it on reload with the one last installed, to warn
 * when the table was made for other prefixes or devices. Returns 0 or
 * -ENOSPC.
 */
#define CFRD_GUARD_DIGEST_BYTES 16
#define CFRD_GUARD_SCRIPT_MAX   16384
int cfrd_egress_guard_digest(const struct cfrd_config *cfg,
                             uint8_t digest[CFRD_GUARD_DIGEST_BYTES]);

#endif
