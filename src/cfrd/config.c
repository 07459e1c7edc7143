/*
 * cfrd configuration parser. inih does the INI syntax; this file only maps
 * keys to fields and validates values, and reports the first error with
 * its line. Every entry point goes through cfrd_config_parse_buffer() so
 * the fuzz target exercises exactly what the daemon runs.
 *
 * The keys are one table, cfrd_config_keys[]: integers, booleans, interface
 * names and paths are parsed by type into the field the row names; prefixes,
 * ports, choices and [line NAME] keys have a setter of their own. The same
 * table prints cfrd --help-config and is checked against cfrd.conf(5).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A config file is a few dozen lines; refuse anything absurd before reading it. */
#define CONFIG_MAX_BYTES (1u << 20)

/*
 * Timeouts longer than a week are almost certainly milliseconds typed where
 * seconds were meant; refusing them beats holding flows for months.
 */
#define TIMEOUT_MAX_S (7u * 24 * 3600)

/*
 * A million new flows per second from one subscriber is far beyond any
 * host; the ceiling also keeps the engine's token arithmetic far from
 * overflow.
 */
#define NEW_FLOWS_MAX 1000000u

/* Keys in all sections, with room to grow: the parse state's seen[] is indexed by key. */
#define KEYS_MAX 64

struct cfrd_config_parse {
	/* reader cursor over the input; <line> is the line inih is working on */
	const char *pos, *end;
	const char *line_start; /* raw text of <line> */
	int line;
	struct cfrd_config *cfg;
	struct cfrd_config_error *err;
	struct cfrd_line *cur_line; /* the [line NAME] section being read */
	/* where each key was first set: row 0 for plain sections, i + 1 for [line] i */
	int seen[CFRD_MAX_LINES + 1][KEYS_MAX];
	int line_seen[CFRD_MAX_LINES]; /* where each [line NAME] first appeared */
	int line_tun_seen[CFRD_MAX_LINES];
	bool classes_set; /* a class line replaced the built-in classes */
};

__attribute__((format(printf, 3, 4))) static int fail(struct cfrd_config_error *err, int line,
                                                      const char *fmt, ...)
{
	va_list ap;

	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Only the first error is kept: later ones are often consequences of it. */
__attribute__((format(printf, 2, 3))) static int bad(struct cfrd_config_parse *st, const char *fmt,
                                                     ...)
{
	va_list ap;

	if (st->err->msg[0] != '\0')
		return -EINVAL;
	st->err->line = st->line;
	va_start(ap, fmt);
	vsnprintf(st->err->msg, sizeof(st->err->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A decimal integer in [min, max], nothing else (no sign, no suffix). */
static int parse_u32(const char *text, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static void *field(const struct cfrd_config_parse *st, const struct cfrd_config_key *k)
{
	return (char *)st->cfg + k->offset;
}

/* <value> as <k>'s integer, or the error naming its unit and range. */
static int key_u32(struct cfrd_config_parse *st, const struct cfrd_config_key *k, const char *value,
                   uint32_t *out)
{
	if (parse_u32(value, k->min, k->max, out) < 0)
		return bad(st, "invalid %s '%s': expected %s from %u%s%s%s to %u", k->name, value,
		           k->unit, k->min, k->zero ? " (" : "", k->zero ? k->zero : "",
		           k->zero ? ")" : "", k->max);
	return 0;
}

static int set_uint(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                    const char *value)
{
	uint32_t v = 0;

	if (key_u32(st, k, value, &v) < 0)
		return -EINVAL;
	switch (k->size) {
	case 1:
		*(uint8_t *)field(st, k) = (uint8_t)v;
		break;
	case 2:
		*(uint16_t *)field(st, k) = (uint16_t)v;
		break;
	default:
		*(uint32_t *)field(st, k) = v;
		break;
	}
	return 0;
}

static int parse_bool(struct cfrd_config_parse *st, const char *value, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on"}, *const no[] = {"no", "false",
	                                                                       "off"};

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
			*out = strcmp(value, yes[i]) == 0;
			return 0;
		}
	}
	return bad(st, "invalid boolean '%s': expected yes or no", value);
}

static int set_bool(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                    const char *value)
{
	return parse_bool(st, value, field(st, k));
}

/* The kernel's dev_valid_name() rules, checked here to point at the line. */
static bool valid_ifname(const char *value)
{
	size_t len = strlen(value);

	return len > 0 && len < IFNAMSIZ && strcmp(value, ".") != 0 && strcmp(value, "..") != 0 &&
	       strpbrk(value, "/: \t") == NULL;
}

static int check_ifname(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                        const char *value)
{
	if (!valid_ifname(value))
		return bad(st, "invalid %s '%s': expected an interface name of 1 to %d characters",
		           k->name, value, IFNAMSIZ - 1);
	return 0;
}

static int set_ifname(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                      const char *value)
{
	if (check_ifname(st, k, value) < 0)
		return -EINVAL;
	snprintf(field(st, k), k->size, "%s", value);
	return 0;
}

/*
 * Absolute, because cfrd's working directory is nobody's business in a
 * config file, and means nothing to cfrctl.
 */
static int set_path(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                    const char *value)
{
	size_t len = strlen(value);

	if (value[0] != '/' || len >= k->size)
		return bad(st, "invalid %s '%s': expected an absolute path under %zu bytes",
		           k->name, value, k->size);
	memcpy(field(st, k), value, len + 1);
	return 0;
}

static int add_xdp_port(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                        const char *value, bool inside, uint16_t ingress)
{
	struct cfrd_config *cfg = st->cfg;

	if (check_ifname(st, k, value) < 0)
		return -EINVAL;
	if (cfg->n_xdp_ports == CFRD_XDP_MAX_PORTS)
		return bad(st, "too many [xdp] ports (at most %d)", CFRD_XDP_MAX_PORTS);
	for (unsigned i = 0; i < cfg->n_xdp_ports; i++)
		if (strcmp(cfg->xdp_ports[i].name, value) == 0)
			return bad(st, "[xdp] port '%s' is already listed", value);
	snprintf(cfg->xdp_ports[cfg->n_xdp_ports].name, IFNAMSIZ, "%s", value);
	cfg->xdp_ports[cfg->n_xdp_ports].ingress = ingress;
	cfg->xdp_ports[cfg->n_xdp_ports++].inside = inside;
	return 0;
}

static int set_xdp_inside(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                          const char *value)
{
	return add_xdp_port(st, k, value, true, 0);
}

static int set_xdp_outside(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                           const char *value)
{
	return add_xdp_port(st, k, value, false, 0);
}

static int add_fastpath_if(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                           const char *value)
{
	struct cfrd_config *cfg = st->cfg;

	if (check_ifname(st, k, value) < 0)
		return -EINVAL;
	if (cfg->n_fastpath_ifs == CFRD_FASTPATH_MAX_IFS)
		return bad(st, "too many [fastpath] interfaces (at most %d)",
		           CFRD_FASTPATH_MAX_IFS);
	for (unsigned i = 0; i < cfg->n_fastpath_ifs; i++)
		if (strcmp(cfg->fastpath_ifs[i], value) == 0)
			return bad(st, "[fastpath] interface '%s' is already listed", value);
	snprintf(cfg->fastpath_ifs[cfg->n_fastpath_ifs++], IFNAMSIZ, "%s", value);
	return 0;
}

static int set_log_level(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                         const char *value)
{
	if (cfrd_log_level_parse(value, &st->cfg->log_level) < 0)
		return bad(st, "invalid %s '%s': expected error, warn, info or debug", k->name,
		           value);
	return 0;
}

static const char *family_name(int family)
{
	return family == CFR_FAMILY_V4 ? "IPv4" : "IPv6";
}

/*
 * cfr_prefix_parse() says only "invalid"; the most common mistake by far is
 * an address with host bits, so recognise it and suggest the fix.
 */
static int bad_prefix(struct cfrd_config_parse *st, const char *value)
{
	unsigned char addr[16];
	char addr_text[INET6_ADDRSTRLEN], fixed[INET6_ADDRSTRLEN];
	const char *slash = strchr(value, '/');
	int af, bits;
	uint32_t len;

	if (slash == NULL || (size_t)(slash - value) >= sizeof(addr_text))
		goto invalid;
	memcpy(addr_text, value, (size_t)(slash - value));
	addr_text[slash - value] = '\0';
	af = strchr(addr_text, ':') != NULL ? AF_INET6 : AF_INET;
	bits = af == AF_INET6 ? 128 : 32;
	if (inet_pton(af, addr_text, addr) != 1 ||
	    parse_u32(slash + 1, 0, (uint32_t)bits, &len) < 0)
		goto invalid;
	for (int i = 0; i < bits / 8; i++) {
		int keep = (int)len - i * 8;

		addr[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
	}
	if (inet_ntop(af, addr, fixed, sizeof(fixed)) == NULL)
		goto invalid;
	return bad(st, "prefix %s has host bits set (did you mean %s/%u?)", value, fixed, len);
invalid:
	return bad(st, "invalid prefix '%s': expected ADDRESS/LENGTH", value);
}

static void format_prefix(const struct cfr_prefix *p, char *out, size_t size)
{
	char addr[INET6_ADDRSTRLEN] = "?";

	inet_ntop(p->family == CFR_FAMILY_V4 ? AF_INET : AF_INET6, p->addr, addr, sizeof(addr));
	snprintf(out, size, "%s/%u", addr, p->len);
}

static bool prefixes_overlap(const struct cfr_prefix *a, const struct cfr_prefix *b)
{
	const struct cfr_prefix *shorter = a->len <= b->len ? a : b;
	const struct cfr_prefix *longer = shorter == a ? b : a;

	return a->family == b->family && cfr_prefix_contains(shorter, longer->family, longer->addr);
}

/*
 * A pool prefix inside a subscriber prefix would make the relay translate
 * its own aliases; refuse it here, where the line is still known.
 */
static int check_overlap(struct cfrd_config_parse *st, const struct cfr_prefix *p,
                         const struct cfr_prefix *others, unsigned n, const char *what)
{
	char a[INET6_ADDRSTRLEN + 4], b[INET6_ADDRSTRLEN + 4];

	for (unsigned i = 0; i < n; i++) {
		if (!prefixes_overlap(p, &others[i]))
			continue;
		format_prefix(p, a, sizeof(a));
		format_prefix(&others[i], b, sizeof(b));
		return bad(st, "prefix %s overlaps %s prefix %s", a, what, b);
	}
	return 0;
}

static int add_prefix(struct cfrd_config_parse *st, const char *value, int family,
                      struct cfr_prefix *list, unsigned *n, unsigned max)
{
	struct cfr_prefix p;

	if (cfr_prefix_parse(value, &p) < 0)
		return bad_prefix(st, value);
	if (family >= 0 && p.family != family)
		return bad(st, "%s is not an %s prefix", value, family_name(family));
	if (*n >= max)
		return bad(st, "too many prefixes of this kind (at most %u)", max);
	list[(*n)++] = p;
	return 0;
}

static int set_pool4(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                     const char *value)
{
	struct cfr_engine_config *e = &st->cfg->engine;
	uint64_t addresses = 0;

	(void)k;
	if (add_prefix(st, value, CFR_FAMILY_V4, e->pool4, &e->n_pool4, CFR_MAX_POOL_PREFIXES) < 0)
		return -EINVAL;
	/* The engine keeps one anonymity counter per IPv4 alias address. */
	for (unsigned i = 0; i < e->n_pool4; i++)
		addresses += 1ull << (32 - e->pool4[i].len);
	if (addresses > CFR_MAX_POOL4_ADDRESSES)
		return bad(st, "ipv4 pool larger than %u addresses in all",
		           CFR_MAX_POOL4_ADDRESSES);
	return check_overlap(st, &e->pool4[e->n_pool4 - 1], e->subscribers, e->n_subscribers,
	                     "subscriber");
}

static int set_pool6(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                     const char *value)
{
	struct cfr_engine_config *e = &st->cfg->engine;

	(void)k;
	if (add_prefix(st, value, CFR_FAMILY_V6, e->pool6, &e->n_pool6, CFR_MAX_POOL_PREFIXES) < 0)
		return -EINVAL;
	if (e->pool6[e->n_pool6 - 1].len > CFR_POOL6_MAX_LEN)
		return bad(st, "ipv6 pool %s is too small to hide anyone in (at most /%u)", value,
		           CFR_POOL6_MAX_LEN);
	return check_overlap(st, &e->pool6[e->n_pool6 - 1], e->subscribers, e->n_subscribers,
	                     "subscriber");
}

static int set_subscriber(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                          const char *value)
{
	struct cfr_engine_config *e = &st->cfg->engine;
	const struct cfr_prefix *p;

	(void)k;
	if (add_prefix(st, value, -1, e->subscribers, &e->n_subscribers,
	               CFR_MAX_SUBSCRIBER_PREFIXES) < 0)
		return -EINVAL;
	p = &e->subscribers[e->n_subscribers - 1];
	if (p->family == CFR_FAMILY_V4)
		return check_overlap(st, p, e->pool4, e->n_pool4, "ipv4 pool");
	return check_overlap(st, p, e->pool6, e->n_pool6, "ipv6 pool");
}

static int set_ports(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                     const char *value)
{
	char first[8];
	const char *dash = strchr(value, '-');
	uint32_t lo, hi;

	if (dash == NULL || (size_t)(dash - value) >= sizeof(first))
		goto invalid;
	memcpy(first, value, (size_t)(dash - value));
	first[dash - value] = '\0';
	if (parse_u32(first, 1, 65535, &lo) < 0 || parse_u32(dash + 1, 1, 65535, &hi) < 0)
		goto invalid;
	if (lo > hi)
		return bad(st, "port range %s is reversed (did you mean %u-%u?)", value, hi, lo);
	st->cfg->engine.port_min = (uint16_t)lo;
	st->cfg->engine.port_max = (uint16_t)hi;
	return 0;
invalid:
	return bad(st, "invalid %s '%s': expected FIRST-LAST, from 1 to 65535", k->name, value);
}

static int set_policy(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                      const char *value)
{
	for (int p = 0; p < CFR_POLICY__COUNT; p++) {
		if (strcmp(value, cfr_policy_name((enum cfr_policy)p)) == 0) {
			*(uint8_t *)field(st, k) = (uint8_t)p;
			return 0;
		}
	}
	return bad(st, "invalid %s '%s': expected per-flow, per-destination or per-subscriber",
	           k->name, value);
}

/*
 * [privacy] class = PROTO PORTS MAPPING [FILTERING]: one traffic class
 * (issue 17), e.g. "udp 3478 endpoint-independent address-dependent". The
 * first class line of a file replaces the built-in classes; the filtering
 * defaults to the strictest the mapping allows to widen.
 */
static int set_class(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                     const char *value)
{
	struct cfr_engine_config *e = &st->cfg->engine;
	char proto[8], ports[16], mapping[32], filtering[32] = "", more;
	struct cfr_class c = {0};
	uint32_t lo, hi;
	char *dash;
	int n, i;

	n = sscanf(value, "%7s %15s %31s %31s %c", proto, ports, mapping, filtering, &more);
	if (n < 3 || n > 4)
		return bad(st, "invalid %s '%s': expected tcp|udp PORTS MAPPING [FILTERING]",
		           k->name, value);
	if (strcmp(proto, "tcp") == 0)
		c.proto = CFR_PROTO_TCP;
	else if (strcmp(proto, "udp") == 0)
		c.proto = CFR_PROTO_UDP;
	else
		return bad(st, "invalid %s '%s': the protocol is tcp or udp", k->name, value);
	dash = strchr(ports, '-');
	if (dash)
		*dash = '\0';
	if (parse_u32(ports, 0, 65535, &lo) < 0 ||
	    parse_u32(dash ? dash + 1 : ports, 0, 65535, &hi) < 0 || lo > hi)
		return bad(st, "invalid %s '%s': ports are PORT or FIRST-LAST, from 0 to 65535",
		           k->name, value);
	c.port_min = (uint16_t)lo;
	c.port_max = (uint16_t)hi;
	for (i = 0; i < CFR_MAPPING__COUNT; i++)
		if (strcmp(mapping, cfr_mapping_name((enum cfr_mapping)i)) == 0)
			break;
	if (i == CFR_MAPPING__COUNT)
		return bad(st,
		           "invalid %s '%s': the mapping is per-flow, endpoint-independent or "
		           "address-dependent",
		           k->name, value);
	c.mapping = (uint8_t)i;
	c.filtering = c.mapping == CFR_MAPPING_PER_FLOW || c.proto == CFR_PROTO_TCP
	                  ? CFR_FILTERING_ADDRESS_PORT_DEPENDENT
	                  : CFR_FILTERING_ADDRESS_DEPENDENT;
	if (filtering[0]) {
		for (i = 0; i < CFR_FILTERING__COUNT; i++)
			if (strcmp(filtering, cfr_filtering_name((enum cfr_filtering)i)) == 0)
				break;
		if (i == CFR_FILTERING__COUNT)
			return bad(st,
			           "invalid %s '%s': the filtering is endpoint-independent, "
			           "address-dependent or address-and-port-dependent",
			           k->name, value);
		c.filtering = (uint8_t)i;
	}
	if (c.mapping != CFR_MAPPING_PER_FLOW && c.proto == CFR_PROTO_TCP &&
	    c.filtering != CFR_FILTERING_ADDRESS_PORT_DEPENDENT)
		return bad(st,
		           "invalid %s '%s': a TCP class with a mapping filters by address and "
		           "port only (address-and-port-dependent)",
		           k->name, value);
	if ((c.mapping == CFR_MAPPING_PER_FLOW &&
	     c.filtering != CFR_FILTERING_ADDRESS_PORT_DEPENDENT) ||
	    (c.mapping == CFR_MAPPING_ADDRESS_DEPENDENT &&
	     c.filtering == CFR_FILTERING_ENDPOINT_INDEPENDENT))
		return bad(st, "invalid %s '%s': the filtering lets in more than the mapping holds",
		           k->name, value);
	if (!st->classes_set) {
		e->n_classes = 0;
		st->classes_set = true;
	}
	if (e->n_classes >= CFR_MAX_CLASSES)
		return bad(st, "too many classes (at most %d)", CFR_MAX_CLASSES);
	e->classes[e->n_classes++] = c;
	return 0;
}

static int set_fsync(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                     const char *value)
{
	if (strcmp(value, "epoch") != 0 && strcmp(value, "segment") != 0)
		return bad(st, "invalid %s '%s': expected epoch or segment", k->name, value);
	st->cfg->acct.fsync_segment = strcmp(value, "segment") == 0;
	return 0;
}

static int set_seccomp(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                       const char *value)
{
	bool on = true;

	if (strcmp(value, "log") == 0) {
		st->cfg->seccomp = CFRD_SECCOMP_LOG;
		return 0;
	}
	if (parse_bool(st, value, &on) < 0) {
		/* parse_bool kept its own message; say what else is allowed. */
		st->err->msg[0] = '\0';
		return bad(st, "invalid %s '%s': expected yes, no or log", k->name, value);
	}
	st->cfg->seccomp = on ? CFRD_SECCOMP_KILL : CFRD_SECCOMP_OFF;
	return 0;
}

/*
 * Only the name's syntax here (the portable set, as useradd takes it):
 * whether the user exists is for cfrd to find out when it starts.
 */
static int set_user(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                    const char *value)
{
	size_t len = strlen(value);

	if (len == 0 || len >= sizeof(st->cfg->user) || value[0] == '-' ||
	    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
	        len)
		return bad(st,
		           "invalid %s '%s': expected a user name of letters, digits, '.', "
		           "'_' and '-' (not first), under %zu characters",
		           k->name, value, sizeof(st->cfg->user));
	memcpy(st->cfg->user, value, len + 1);
	return 0;
}

static int set_source_check(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                            const char *value)
{
	if (strcmp(value, "kernel") == 0 || strcmp(value, "external") == 0) {
		st->cfg->source_check = strcmp(value, "kernel") == 0;
		return 0;
	}
	return bad(st,
	           "invalid %s '%s': expected kernel (cfrd binds each subscriber address to its "
	           "access interface) or external (a BNG does)",
	           k->name, value);
}

static int set_error_mark(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                          const char *value)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(value, &end, 0);
	if (errno || end == value || *end != '\0' || v == 0 || v > 0xffffffffu)
		return bad(st, "invalid %s '%s': expected a non-zero 32-bit firewall mark", k->name,
		           value);
	st->cfg->error_mark = (uint32_t)v;
	return 0;
}

static int set_workers(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                       const char *value)
{
	if (strcmp(value, "auto") == 0) {
		st->cfg->workers = 0;
		return 0;
	}
	if (parse_u32(value, k->min, k->max, &st->cfg->workers) < 0)
		return bad(st, "invalid %s '%s': expected auto or %u to %u", k->name, value, k->min,
		           k->max);
	return 0;
}

/*
 * [line NAME] keys: <st->cur_line> is the section's line; its ingress id is
 * its index + 1.
 */
static uint16_t cur_ingress(const struct cfrd_config_parse *st)
{
	return (uint16_t)(st->cur_line - st->cfg->lines + 1);
}

static int set_line_tun(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                        const char *value)
{
	struct cfrd_line *l = st->cur_line;

	st->line_tun_seen[cur_ingress(st) - 1] = st->line;
	if (check_ifname(st, k, value) < 0)
		return -EINVAL;
	snprintf(l->tun, sizeof(l->tun), "%s", value);
	return 0;
}

static int set_line_prefix(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                           const char *value)
{
	struct cfr_engine_config *e = &st->cfg->engine;

	if (set_subscriber(st, k, value) < 0)
		return -EINVAL;
	e->subscriber_ingress[e->n_subscribers - 1] = cur_ingress(st);
	st->cur_line->n_prefixes++;
	return 0;
}

static int set_line_inside(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                           const char *value)
{
	return add_xdp_port(st, k, value, true, cur_ingress(st));
}

static int set_line_prefix6(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                            const char *value)
{
	uint32_t v = 0;

	if (key_u32(st, k, value, &v) < 0)
		return -EINVAL;
	st->cur_line->ident6 = (uint8_t)v;
	return 0;
}

#define FIELD(f)                                                                                   \
	.offset = offsetof(struct cfrd_config, f), .size = sizeof(((struct cfrd_config *)0)->f)
#define UINT(f, lo, hi) .type = CFRD_KEY_UINT, FIELD(f), .min = (lo), .max = (hi), .set = set_uint
#define BOOL(f)         .type = CFRD_KEY_BOOL, FIELD(f), .unit = "yes|no", .set = set_bool
#define IFNAME(f)       .type = CFRD_KEY_IFNAME, FIELD(f), .unit = "name", .set = set_ifname
#define PATH(f, what)   .type = CFRD_KEY_PATH, FIELD(f), .unit = (what), .set = set_path
#define CUSTOM(fn, syn) .type = CFRD_KEY_CUSTOM, .set = (fn), .unit = (syn)

/*
 * Every key, in the order of cfrd.conf(5). The defaults are those of
 * cfrd_config_parse_buffer() and cfr_engine_config_defaults(), written as
 * values; tests/unit/test_config.c checks that they are.
 */
const struct cfrd_config_key cfrd_config_keys[] = {
    {"cfrd", "tun", IFNAME(tun), .def = CFRD_DEFAULT_TUN,
     .help = "the TUN device; created if it does not exist"},
    {"cfrd", "mtu", UINT(mtu, 1280, 65535), .unit = "bytes", .def = "1500",
     .help = "MTU of the TUN devices (1280: the IPv6 minimum)"},
    {"cfrd", "offload", BOOL(offload), .def = "yes",
     .help = "TUN with virtio headers: checksum and segmentation offloads"},
    {"cfrd", "busy-poll", UINT(busy_poll_us, 0, 1000000), .unit = "microseconds", .zero = "off",
     .def = "0", .help = "keep polling this long after traffic before sleeping"},
    {"cfrd", "workers", CUSTOM(set_workers, "auto|count"), .min = 1, .max = CFRD_MAX_WORKERS,
     .def = "auto", .help = "packet threads, one queue of each device each; auto: one per CPU"},
    {"cfrd", "control", PATH(control, "path"), .def = CFRD_DEFAULT_CONTROL,
     .help = "the control socket cfrctl talks to"},
    {"cfrd", "log-level", CUSTOM(set_log_level, "error|warn|info|debug"), .def = "info",
     .help = "the least severe messages logged"},
    {"cfrd", "egress-guard", BOOL(egress_guard), .def = "yes",
     .help = "the guard table's egress chain: nothing leaves untranslated"},
    {"cfrd", "source-check", CUSTOM(set_source_check, "kernel|external"), .def = "kernel",
     .help = "who binds a subscriber address to its access interface: cfrd or a BNG"},
    {"cfrd", "error-mark", CUSTOM(set_error_mark, "mark"), .def = "0xcf",
     .help = "firewall mark of the gateway's own ICMP errors about subscribers"},
    {"cfrd", "seccomp", CUSTOM(set_seccomp, "yes|no|log"), .def = "yes",
     .help = "system call filter: kill on a syscall cfrd does not use, or log it"},
    {"cfrd", "user", CUSTOM(set_user, "name"), .def = CFRD_DEFAULT_USER,
     .help = "the user cfrd becomes once set up (root: stay uid 0)"},
    {"pool", "ipv4", CUSTOM(set_pool4, "prefix"), .repeatable = true,
     .help = "IPv4 alias pool prefix"},
    {"pool", "ipv6", CUSTOM(set_pool6, "prefix"), .repeatable = true,
     .help = "IPv6 alias pool prefix (at most /120)"},
    {"pool", "ports", CUSTOM(set_ports, "first-last"), .def = "1024-65535", .help = "alias ports"},
    {"subscribers", "prefix", CUSTOM(set_subscriber, "prefix"), .repeatable = true,
     .help = "subscriber prefix on the main TUN device"},
    {"subscribers", "strict-ingress", BOOL(engine.strict_ingress), .def = "no",
     .help = "drop a subscriber's packet that comes in through another line's device"},
    {"line", "tun", CUSTOM(set_line_tun, "name"), .help = "the line's own TUN device"},
    {"line", "prefix", CUSTOM(set_line_prefix, "prefix"), .repeatable = true,
     .help = "subscriber prefix of this line"},
    {"line", "inside", CUSTOM(set_line_inside, "name"), .repeatable = true,
     .help = "an [xdp] inside port of this line"},
    {"line", "subscriber-prefix6", CUSTOM(set_line_prefix6, "a length"), .min = 1, .max = 128,
     .help = "the line's IPv6 subscriber prefix length (default: the [privacy] one)"},
    {"xdp", "inside", CUSTOM(set_xdp_inside, "name"), .repeatable = true,
     .help = "AF_XDP port facing subscribers"},
    {"xdp", "outside", CUSTOM(set_xdp_outside, "name"), .repeatable = true,
     .help = "AF_XDP port facing the internet"},
    {"xdp", "ignore-forward-rules", BOOL(xdp_ignore_forward_rules), .def = "no",
     .help = "start although forward rules would be skipped by the fast path"},
    {"fastpath", "enable", BOOL(fastpath), .def = "yes",
     .help = "carry established flows in the kernel (TC BPF) where it can"},
    {"fastpath", "interface", CUSTOM(add_fastpath_if, "name"), .repeatable = true,
     .help = "an interface to attach to (default: all but loopback and TUN)"},
    {"fastpath", "ignore-forward-rules", BOOL(fastpath_ignore_forward_rules), .def = "no",
     .help = "run the fast path although forward rules would not see its packets"},
    {"timeouts", "tcp-established",
     UINT(engine.timeout[CFR_TIMEOUT_TCP_ESTABLISHED], 1, TIMEOUT_MAX_S), .unit = "seconds",
     .def = "7440", .help = "idle timeout of an established TCP flow"},
    {"timeouts", "tcp-transitory",
     UINT(engine.timeout[CFR_TIMEOUT_TCP_TRANSITORY], 1, TIMEOUT_MAX_S), .unit = "seconds",
     .def = "240", .help = "idle timeout of a closing TCP flow"},
    {"timeouts", "udp", UINT(engine.timeout[CFR_TIMEOUT_UDP], 1, TIMEOUT_MAX_S), .unit = "seconds",
     .def = "300", .help = "idle timeout of a UDP flow"},
    {"timeouts", "icmp", UINT(engine.timeout[CFR_TIMEOUT_ICMP], 1, TIMEOUT_MAX_S),
     .unit = "seconds", .def = "60", .help = "idle timeout of an ICMP query"},
    {"timeouts", "tcp-embryonic", UINT(engine.timeout[CFR_TIMEOUT_TCP_EMBRYONIC], 1, TIMEOUT_MAX_S),
     .unit = "seconds", .def = "240", .help = "timeout of a TCP flow whose SYN is unanswered"},
    {"limits", "max-flows", UINT(engine.max_flows, 1, CFR_MAX_FLOWS), .unit = "an integer",
     .def = "1048576", .help = "flows in the table"},
    {"limits", "max-fragments", UINT(engine.max_frags, 1, CFR_MAX_FRAGS), .unit = "an integer",
     .def = "4096", .help = "fragmented datagrams in flight"},
    {"limits", "tcp-per-subscriber",
     UINT(engine.limits.flows_per_subscriber[CFR_PROTO_TCP], 0, CFR_MAX_FLOWS),
     .unit = "an integer", .zero = "no limit", .def = "8192",
     .help = "concurrent TCP flows of one subscriber"},
    {"limits", "udp-per-subscriber",
     UINT(engine.limits.flows_per_subscriber[CFR_PROTO_UDP], 0, CFR_MAX_FLOWS),
     .unit = "an integer", .zero = "no limit", .def = "8192",
     .help = "concurrent UDP flows of one subscriber"},
    {"limits", "icmp-per-subscriber",
     UINT(engine.limits.flows_per_subscriber[CFR_PROTO_ICMP], 0, CFR_MAX_FLOWS),
     .unit = "an integer", .zero = "no limit", .def = "256",
     .help = "concurrent ICMP queries of one subscriber"},
    {"limits", "half-open-per-subscriber",
     UINT(engine.limits.half_open_per_subscriber, 0, CFR_MAX_FLOWS), .unit = "an integer",
     .zero = "no limit", .def = "512", .help = "unanswered TCP SYNs of one subscriber"},
    {"limits", "new-flows-per-second", UINT(engine.limits.new_flows_per_s, 0, NEW_FLOWS_MAX),
     .unit = "an integer", .zero = "no limit", .def = "500",
     .help = "refill rate of a subscriber's new-flow token bucket"},
    {"limits", "new-flows-burst", UINT(engine.limits.new_flows_burst, 0, NEW_FLOWS_MAX),
     .unit = "an integer", .zero = "no limit", .def = "2000",
     .help = "size of a subscriber's new-flow token bucket"},
    {"limits", "max-subscribers", UINT(engine.max_subscribers, 1, CFR_MAX_SUBSCRIBERS),
     .unit = "an integer", .def = "262144", .help = "subscribers with state at once"},
    {"limits", "fragments-per-subscriber",
     UINT(engine.limits.frags_per_subscriber, 0, CFR_MAX_FRAGS), .unit = "an integer",
     .zero = "no limit", .def = "64", .help = "fragmented datagrams of one subscriber"},
    {"privacy", "ipv4-policy", CUSTOM(set_policy, "per-flow|per-destination|per-subscriber"),
     FIELD(engine.policy[CFR_FAMILY_V4]), .def = "per-flow",
     .help = "when an IPv4 flow gets a new alias"},
    {"privacy", "ipv6-policy", CUSTOM(set_policy, "per-flow|per-destination|per-subscriber"),
     FIELD(engine.policy[CFR_FAMILY_V6]), .def = "per-flow",
     .help = "when an IPv6 flow gets a new alias"},
    {"privacy", "class", CUSTOM(set_class, "proto ports mapping [filtering]"), .repeatable = true,
     .help = "a traffic class and its mapping (default: udp 443 per-flow; "
             "udp 0-65535 endpoint-independent address-dependent)"},
    {"privacy", "epoch", UINT(engine.epoch_s, 1, TIMEOUT_MAX_S), .unit = "seconds", .def = "600",
     .help = "how often the alias keys change"},
    {"privacy", "subscriber-prefix6", UINT(engine.subscriber_prefix6, 1, 128), .unit = "a length",
     .def = "56", .help = "length of the IPv6 prefix one subscriber has"},
    {"privacy", "anonymity-k", UINT(engine.anon_k, 0, UINT32_MAX), .unit = "an integer",
     .zero = "off", .def = "8", .help = "count new flows on an alias fewer subscribers are using"},
    {"privacy", "anonymity-warn-percent", UINT(anon_warn_percent, 0, 100), .unit = "a percentage",
     .def = "50", .help = "warn when more new flows than this land below anonymity-k"},
    {"scrub", "tcp-timestamps", BOOL(engine.scrub.tcp_timestamps), .def = "yes",
     .help = "TCP timestamps from a clock of each flow's own"},
    {"scrub", "tcp-timestamp-rate", BOOL(engine.scrub.tcp_timestamp_rate), .def = "yes",
     .help = "and at a rate of each flow's own (hides clock skew)"},
    {"scrub", "ip-id", BOOL(engine.scrub.ip_id), .def = "yes", .help = "random IPv4 IDs"},
    {"scrub", "flow-label", BOOL(engine.scrub.flow_label), .def = "yes",
     .help = "IPv6 flow labels from a key of each flow's own"},
    {"scrub", "ttl-cap", UINT(engine.scrub.ttl_cap, 0, 255), .unit = "hops", .zero = "off",
     .def = "56", .help = "cap on outgoing TTL and hop limit"},
    {"accounting", "public-key", PATH(acct.public_key, "file"),
     .help = "the operator's key from cfr-keygen; with records, turns accounting on"},
    {"accounting", "records", PATH(acct.records, "directory"),
     .help = "directory of the sealed record segments"},
    /* A segment longer than a week would keep its oldest records a week past retention. */
    {"accounting", "segment", UINT(acct.segment_s, 1, 7 * 86400), .unit = "seconds", .def = "3600",
     .help = "time covered by one segment file"},
    {"accounting", "retention", UINT(acct.retention_s, 1, 10 * 366 * 86400), .unit = "seconds",
     .def = "15552000", .help = "how long segments are kept (at most ten years)"},
    {"accounting", "fsync", CUSTOM(set_fsync, "epoch|segment"), .def = "epoch",
     .help = "flush records to disk once per epoch or once per segment"},
};

const size_t cfrd_config_n_keys = ARRAY_SIZE(cfrd_config_keys);

_Static_assert(ARRAY_SIZE(cfrd_config_keys) <= KEYS_MAX, "seen[] must cover every key");

static bool known_section(const char *section)
{
	for (size_t i = 0; i < ARRAY_SIZE(cfrd_config_keys); i++) {
		if (strcmp(cfrd_config_keys[i].section, section) == 0)
			return true;
	}
	return false;
}

/* "a, b or c": the keys of <section>, for an error message. */
static void list_keys(const char *section, char *out, size_t size)
{
	size_t n = 0, len = 0, total = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cfrd_config_keys); i++)
		total += strcmp(cfrd_config_keys[i].section, section) == 0;
	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(cfrd_config_keys) && len < size; i++) {
		if (strcmp(cfrd_config_keys[i].section, section) != 0)
			continue;
		n++;
		len += (size_t)snprintf(out + len, size - len, "%s%s",
		                        n == 1       ? ""
		                        : n == total ? " or "
		                                     : ", ",
		                        cfrd_config_keys[i].name);
	}
}

/*
 * [line NAME]: an access line with its own TUN device. Its prefixes are
 * subscriber prefixes bound to the line's ingress id (index + 1), so that
 * with strict-ingress one line cannot send as another (MISSION R8).
 */
static struct cfrd_line *line_for(struct cfrd_config_parse *st, const char *name)
{
	struct cfrd_config *cfg = st->cfg;
	size_t len = strlen(name);
	unsigned i;

	if (len == 0 || len >= CFRD_LINE_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
	        len) {
		bad(st, "invalid line name '%s': expected 1 to %d letters, digits, '.', '_' or '-'",
		    name, CFRD_LINE_NAME_MAX - 1);
		return NULL;
	}
	for (i = 0; i < cfg->n_lines; i++)
		if (strcmp(cfg->lines[i].name, name) == 0)
			return &cfg->lines[i];
	if (cfg->n_lines >= CFRD_MAX_LINES) {
		bad(st, "too many [line] sections (at most %d)", CFRD_MAX_LINES);
		return NULL;
	}
	memcpy(cfg->lines[i].name, name, len + 1);
	st->line_seen[i] = st->line;
	cfg->n_lines++;
	return &cfg->lines[i];
}

/* Whole-file rules for [line] sections, checked once every key is known. */
static int check_lines_config(const struct cfrd_config_parse *st)
{
	const struct cfrd_config *cfg = st->cfg;
	const struct cfr_engine_config *e = &cfg->engine;

	for (unsigned i = 0; i < cfg->n_lines; i++) {
		const struct cfrd_line *l = &cfg->lines[i];

		if (l->tun[0] == '\0')
			return fail(st->err, st->line_seen[i], "[line %s] needs a tun device",
			            l->name);
		if (l->n_prefixes == 0)
			return fail(st->err, st->line_seen[i],
			            "[line %s] needs at least one subscriber prefix", l->name);
		if (strcmp(l->tun, cfg->tun) == 0)
			return fail(st->err, st->line_tun_seen[i],
			            "[line %s] uses tun %s, which is already the main tun device",
			            l->name, l->tun);
		for (unsigned j = 0; j < i; j++)
			if (strcmp(l->tun, cfg->lines[j].tun) == 0)
				return fail(st->err, st->line_tun_seen[i],
				            "[line %s] uses tun %s, already used by [line %s]",
				            l->name, l->tun, cfg->lines[j].name);
	}
	/*
	 * The engine binds a packet by the first prefix that holds its source,
	 * so nested prefixes on different devices would bind one line's
	 * subscribers to another: refuse them.
	 */
	for (unsigned i = 0; i < e->n_subscribers; i++)
		for (unsigned j = 0; j < i; j++) {
			char a[INET6_ADDRSTRLEN + 4], b[INET6_ADDRSTRLEN + 4];

			if (e->subscriber_ingress[i] == e->subscriber_ingress[j] ||
			    !prefixes_overlap(&e->subscribers[i], &e->subscribers[j]))
				continue;
			format_prefix(&e->subscribers[j], a, sizeof(a));
			format_prefix(&e->subscribers[i], b, sizeof(b));
			return fail(st->err, 0,
			            "subscriber prefixes %s and %s overlap but belong to different "
			            "devices ([subscribers] or [line])",
			            a, b);
		}
	return 0;
}

/* inih callback: nonzero means "fine, go on". */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct cfrd_config_parse *st = user;
	const char *table_section = section;
	unsigned row = 0; /* of st->seen: 0, or the [line] section's ingress id */
	char expected[128];

	/*
	 * inih reads an indented line as a continuation of the previous value
	 * (Python configparser style), which nobody means here: refuse any
	 * indented key so the rule is simple.
	 */
	if (st->line_start[0] == ' ' || st->line_start[0] == '\t')
		return bad(st, "indented line: remove the indentation (it would continue the "
		               "previous value)") == 0;
	if (section[0] == '\0')
		return bad(st, "key '%s' outside any section", name) == 0;
	if (strncmp(section, "line ", 5) == 0) {
		st->cur_line = line_for(st, section + 5);
		if (st->cur_line == NULL)
			return 0;
		table_section = "line";
		row = cur_ingress(st);
	} else if (strcmp(section, "line") == 0 || !known_section(section)) {
		return bad(st, "unknown section [%s]", section) == 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cfrd_config_keys); i++) {
		const struct cfrd_config_key *k = &cfrd_config_keys[i];

		if (strcmp(k->section, table_section) != 0 || strcmp(k->name, name) != 0)
			continue;
		if (!k->repeatable && st->seen[row][i] != 0)
			return bad(st, "duplicate key '%s' (already set on line %d)", name,
			           st->seen[row][i]) == 0;
		st->seen[row][i] = st->line;
		return k->set(st, k, value) == 0;
	}
	if (row == 0)
		return bad(st, "unknown key '%s' in [%s]", name, section) == 0;
	list_keys("line", expected, sizeof(expected));
	return bad(st, "unknown key '%s' in [%s]: expected %s", name, section, expected) == 0;
}

/*
 * fgets() over the buffer. Lines were checked to fit inih's line buffer,
 * so each call returns exactly one line and <line> stays exact.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct cfrd_config_parse *st = stream;
	const char *nl;
	size_t len;

	if (st->pos >= st->end)
		return NULL;
	nl = memchr(st->pos, '\n', (size_t)(st->end - st->pos));
	len = nl != NULL ? (size_t)(nl - st->pos) + 1 : (size_t)(st->end - st->pos);
	if (len > (size_t)num - 1)
		len = (size_t)num - 1;
	memcpy(str, st->pos, len);
	str[len] = '\0';
	st->line_start = st->pos;
	st->pos += len;
	st->line++;
	return str;
}

/* Reject what inih would silently mangle: NUL bytes and lines it would split. */
static int check_lines(const char *buf, size_t len, struct cfrd_config_error *err, int *n_lines)
{
	/* inih needs room for "\r\n\0" after the longest line */
	const size_t max = INI_MAX_LINE - 3;
	size_t start = 0;
	int line = 1;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && buf[i] == '\0')
			return fail(err, line, "NUL byte in configuration");
		if (i < len && buf[i] != '\n')
			continue;
		if (i - start > max + (i > start && buf[i - 1] == '\r'))
			return fail(err, line, "line longer than %zu characters", max);
		start = i + 1;
		if (i < len)
			line++;
	}
	*n_lines = len > 0 && buf[len - 1] == '\n' ? line - 1 : line;
	return 0;
}

/* The XDP program forwards between the two sides: one without the other has nothing to do. */
static int check_xdp_ports(const struct cfrd_config *cfg, struct cfrd_config_error *err,
                           int n_lines)
{
	unsigned inside = 0;

	for (unsigned i = 0; i < cfg->n_xdp_ports; i++)
		inside += cfg->xdp_ports[i].inside;
	if (cfg->n_xdp_ports > 0 && (inside == 0 || inside == cfg->n_xdp_ports))
		return fail(err, n_lines,
		            "[xdp] needs at least one inside and one outside port (or neither, "
		            "and cfrd uses its TUN devices only)");
	return 0;
}

int cfrd_config_parse_buffer(const char *buf, size_t len, struct cfrd_config *cfg,
                             struct cfrd_config_error *err)
{
	struct cfrd_config_parse st = {.pos = buf, .end = buf + len, .cfg = cfg, .err = err};
	const char *why;
	int ret, n_lines = 0;

	memset(cfg, 0, sizeof(*cfg));
	memset(err, 0, sizeof(*err));
	snprintf(cfg->tun, sizeof(cfg->tun), "%s", CFRD_DEFAULT_TUN);
	cfg->mtu = CFRD_DEFAULT_MTU;
	snprintf(cfg->control, sizeof(cfg->control), "%s", CFRD_DEFAULT_CONTROL);
	cfg->log_level = CFRD_LOG_INFO;
	cfg->seccomp = CFRD_SECCOMP_KILL;
	snprintf(cfg->user, sizeof(cfg->user), "%s", CFRD_DEFAULT_USER);
	cfg->offload = true;
	cfg->egress_guard = true;
	cfg->fastpath = true;
	cfg->source_check = true;
	cfg->error_mark = CFRD_DEFAULT_ERROR_MARK;
	cfg->busy_poll_us = 0;
	cfg->workers = 0;
	cfg->anon_warn_percent = 50;
	cfr_engine_config_defaults(&cfg->engine);
	cfg->acct.segment_s = CFRD_DEFAULT_SEGMENT_S;
	cfg->acct.retention_s = CFRD_DEFAULT_RETENTION_S;

	ret = check_lines(buf, len, err, &n_lines);
	if (ret < 0)
		return ret;
	ret = ini_parse_stream(read_line, &st, on_key, &st);
	/* inih reports syntax errors by line only; the handler's own come with a message. */
	if (ret > 0 && (err->msg[0] == '\0' || ret < err->line))
		return fail(err, ret, "syntax error: expected [section] or key = value");
	if (ret != 0)
		return -EINVAL;
	if (cfg->engine.n_pool4 + cfg->engine.n_pool6 == 0)
		return fail(err, n_lines,
		            "no alias pool: [pool] needs at least one ipv4 or ipv6 prefix");
	if (cfg->engine.n_subscribers == 0)
		return fail(err, n_lines,
		            "no subscribers: [subscribers] needs at least one prefix");
	/* Half an [accounting] section would look like records are kept when none are. */
	if ((cfg->acct.records[0] == '\0') != (cfg->acct.public_key[0] == '\0'))
		return fail(err, n_lines,
		            "[accounting] needs both records and public-key (or neither, and "
		            "no records are kept)");
	ret = check_xdp_ports(cfg, err, n_lines);
	if (ret < 0)
		return ret;
	/* A line's subscriber-prefix6 holds for its prefixes, wherever they were listed. */
	for (unsigned i = 0; i < cfg->engine.n_subscribers; i++) {
		uint16_t line = cfg->engine.subscriber_ingress[i];

		if (line)
			cfg->engine.subscriber_ident6[i] = cfg->lines[line - 1].ident6;
	}
	ret = check_lines_config(&st);
	if (ret < 0)
		return ret;
	/*
	 * The keys above are checked against the engine's limits (cfr.h) one by
	 * one, with their line; this catches what only the whole can break, so
	 * the operator reads a reason instead of "Invalid argument".
	 */
	if (cfr_engine_config_check(&cfg->engine, &why) != 0)
		return fail(err, n_lines, "the engine refuses this configuration: %s", why);
	return 0;
}

int cfrd_config_load(const char *path, struct cfrd_config *cfg, struct cfrd_config_error *err)
{
	char *buf = NULL;
	size_t len;
	FILE *f;
	int ret;

	memset(err, 0, sizeof(*err));
	f = fopen(path, "re");
	if (f == NULL) {
		ret = -errno;
		fail(err, 0, "cannot open: %s", strerror(-ret));
		return ret;
	}
	buf = malloc(CONFIG_MAX_BYTES + 1);
	if (buf == NULL) {
		ret = -ENOMEM;
		fail(err, 0, "cannot read: %s", strerror(ENOMEM));
		goto out;
	}
	len = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
	if (ferror(f)) {
		ret = -EIO;
		fail(err, 0, "cannot read: %s", strerror(EIO));
		goto out;
	}
	if (len > CONFIG_MAX_BYTES) {
		ret = -EFBIG;
		fail(err, 0, "larger than %u bytes", CONFIG_MAX_BYTES);
		goto out;
	}
	ret = cfrd_config_parse_buffer(buf, len, cfg, err);
out:
	free(buf);
	fclose(f);
	return ret;
}

/* "seconds, 1 to 604800": what <k> takes, for the help. */
static void key_syntax(const struct cfrd_config_key *k, char *out, size_t size)
{
	if (k->type != CFRD_KEY_BOOL && k->max != 0)
		snprintf(out, size, "%s, %u%s%s%s to %u", k->unit, k->min, k->zero ? " (" : "",
		         k->zero ? k->zero : "", k->zero ? ")" : "", k->max);
	else
		snprintf(out, size, "%s", k->unit);
}

void cfrd_config_help(FILE *out)
{
	const char *section = NULL;

	fputs("# cfrd.conf keys by section: KEY = VALUE [default], then what it is.\n"
	      "# cfrd.conf(5) says more.\n",
	      out);
	for (size_t i = 0; i < ARRAY_SIZE(cfrd_config_keys); i++) {
		const struct cfrd_config_key *k = &cfrd_config_keys[i];
		char syntax[96];

		if (section == NULL || strcmp(section, k->section) != 0) {
			section = k->section;
			fprintf(out, "\n[%s%s]\n", section,
			        strcmp(section, "line") == 0 ? " NAME" : "");
		}
		key_syntax(k, syntax, sizeof(syntax));
		if (k->def != NULL)
			fprintf(out, "%s = %s [%s]\n", k->name, syntax, k->def);
		else
			fprintf(out, "%s = %s%s\n", k->name, syntax,
			        k->repeatable ? " [repeatable]" : "");
		fprintf(out, "\t%s\n", k->help);
	}
}
