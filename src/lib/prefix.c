/*
 * Address prefixes: parsing a prefix as the configuration writes it, and
 * matching addresses against one or a list. No engine state; the inline
 * match for the packet path is in prefix.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "prefix.h"

int cfr_prefix_parse(const char *text, struct cfr_prefix *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(text, '/');
	size_t alen;
	char *end;
	unsigned long len;
	unsigned bits, i;

	if (!slash || slash == text || (alen = (size_t)(slash - text)) >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = CFR_FAMILY_V4;
		bits = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = CFR_FAMILY_V6;
		bits = 128;
	} else {
		return -EINVAL;
	}
	if (slash[1] < '0' || slash[1] > '9')
		return -EINVAL;
	errno = 0;
	len = strtoul(slash + 1, &end, 10);
	if (errno || *end != '\0' || len > bits)
		return -EINVAL;
	out->len = (uint8_t)len;
	for (i = out->len; i < bits; i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
			return -EINVAL; /* host bits set: almost always a typo */
	return 0;
}

bool cfr_prefix_contains(const struct cfr_prefix *p, int family, const uint8_t *addr)
{
	return cfr_prefix_has(p, family, addr);
}

bool cfr_prefix_list_valid(const struct cfr_prefix *list, unsigned n, unsigned max, int family)
{
	unsigned i;

	if (n > max)
		return false;
	for (i = 0; i < n; i++)
		if ((family >= 0 && list[i].family != family) ||
		    list[i].len > (list[i].family == CFR_FAMILY_V4 ? 32 : 128))
			return false;
	return true;
}
