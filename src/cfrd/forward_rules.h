/* Forwarding rules a fast path would skip (forward_rules.c). */
#ifndef CFRD_FORWARD_RULES_H
#define CFRD_FORWARD_RULES_H

#include <stddef.h>

/*
 * How many rules outside cfrd's own guard table sit in netfilter hooks a
 * fast-path packet skips (every chain at forward, filter chains at
 * prerouting and postrouting; a base chain whose policy is drop counts as
 * one); <what> names the first chain with any. -errno if the ruleset
 * cannot be read.
 */
int cfrd_forward_rules_count(char *what, size_t what_size);

/* The same count in <json>, a listing as `nft -j list ruleset` prints it (-EINVAL if not one). */
int cfrd_forward_rules_in(const char *json, char *what, size_t what_size);

#endif
