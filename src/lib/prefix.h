/*
 * Address prefixes (prefix.c): parsing (cfr_prefix_parse() in cfr.h),
 * matching, and checking a configured list. No engine state: any module
 * may call these.
 */
#ifndef CFR_PREFIX_H
#define CFR_PREFIX_H

#include <stdbool.h>
#include <stdint.h>

#include "cfr/cfr.h"
#include "cfr/internal/csum.h"

/*
 * cfr_prefix_contains(), inline for the packet path (two or three prefix
 * checks per packet): whole 32-bit words compare equal, then the last
 * partial word under its mask.
 */
static inline bool cfr_prefix_has(const struct cfr_prefix *p, int family, const uint8_t *addr)
{
	unsigned words = p->len / 32, rest = p->len % 32, i;

	if (p->family != family)
		return false;
	for (i = 0; i < words; i++)
		if (get32(p->addr + 4 * i) != get32(addr + 4 * i))
			return false;
	return rest == 0 ||
	       ((get32(p->addr + 4 * i) ^ get32(addr + 4 * i)) & (0xffffffffu << (32 - rest))) == 0;
}

/* Is <addr> of <family> inside one of the <n> prefixes of <list>? Inline: once per packet. */
static inline bool cfr_prefix_list_has(const struct cfr_prefix *list, unsigned n, int family,
                                       const uint8_t *addr)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (cfr_prefix_has(&list[i], family, addr))
			return true;
	return false;
}

/*
 * At most <max> prefixes, each of <family> (any family when negative) and
 * no longer than its family's address.
 */
bool cfr_prefix_list_valid(const struct cfr_prefix *list, unsigned n, unsigned max, int family);

#endif
