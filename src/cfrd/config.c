/*
 * cfrd configuration parser. inih does the INI syntax; this file only maps
 * keys to fields and validates values, and reports the first error with
 * its line. Every entry point goes through cfrd_config_parse_buffer() so
 * the fuzz target exercises exactly what the daemon runs.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
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
 * Limits cfr_engine_new() enforces but cfr.h does not export; checked here
 * too so the operator gets a line number instead of "Invalid argument".
 */
#define ENGINE_MAX_FLOWS       (1u << 28)
#define ENGINE_MAX_FRAGS       (1u << 24)
#define ENGINE_POOL6_MAX_BITS  120
#define ENGINE_MAX_SUBSCRIBERS (1u << 26)

struct parse_state;
typedef int (*key_setter)(struct parse_state *st, const char *value);

struct key {
	const char *section;
	const char *name;
	key_setter set;
	bool repeatable;
};

struct parse_state {
	/* reader cursor over the input; <line> is the line inih is working on */
	const char *pos, *end;
	const char *line_start; /* raw text of <line> */
	int line;
	struct cfrd_config *cfg;
	struct cfrd_config_error *err;
	int seen[64];                  /* line where each scalar key was first set, by key index */
	int line_seen[CFRD_MAX_LINES]; /* where each [line NAME] first appeared */
	int line_tun_seen[CFRD_MAX_LINES];
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
__attribute__((format(printf, 2, 3))) static int bad(struct parse_state *st, const char *fmt, ...)
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

/* The kernel's dev_valid_name() rules, checked here to point at the line. */
static bool valid_ifname(const char *value)
{
	size_t len = strlen(value);

	return len > 0 && len < IFNAMSIZ && strcmp(value, ".") != 0 && strcmp(value, "..") != 0 &&
	       strpbrk(value, "/: \t") == NULL;
}

static int set_tun(struct parse_state *st, const char *value)
{
	if (!valid_ifname(value))
		return bad(st, "invalid tun '%s': expected an interface name of 1 to %d characters",
		           value, IFNAMSIZ - 1);
	snprintf(st->cfg->tun, sizeof(st->cfg->tun), "%s", value);
	return 0;
}

static int add_xdp_port(struct parse_state *st, const char *key, const char *value, bool inside,
                        uint16_t ingress)
{
	struct cfrd_config *cfg = st->cfg;

	if (!valid_ifname(value))
		return bad(st, "invalid %s '%s': expected an interface name of 1 to %d characters",
		           key, value, IFNAMSIZ - 1);
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

static int set_xdp_inside(struct parse_state *st, const char *value)
{
	return add_xdp_port(st, "inside", value, true, 0);
}

static int set_xdp_outside(struct parse_state *st, const char *value)
{
	return add_xdp_port(st, "outside", value, false, 0);
}

static int set_mtu(struct parse_state *st, const char *value)
{
	uint32_t v;

	/* 1280 is the IPv6 minimum link MTU (RFC 8200 §5); cfr carries both families. */
	if (parse_u32(value, 1280, 65535, &v) < 0)
		return bad(st, "invalid mtu '%s': expected an integer from 1280 to 65535", value);
	st->cfg->mtu = v;
	return 0;
}

static int set_control(struct parse_state *st, const char *value)
{
	size_t len = strlen(value);

	/* Absolute, because the daemon's working directory means nothing to cfrctl. */
	if (value[0] != '/' || len >= sizeof(st->cfg->control))
		return bad(st, "invalid control '%s': expected an absolute path under %zu bytes",
		           value, sizeof(st->cfg->control));
	memcpy(st->cfg->control, value, len + 1);
	return 0;
}

static int set_log_level(struct parse_state *st, const char *value)
{
	if (cfrd_log_level_parse(value, &st->cfg->log_level) < 0)
		return bad(st, "invalid log-level '%s': expected error, warn, info or debug",
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
static int bad_prefix(struct parse_state *st, const char *value)
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
static int check_overlap(struct parse_state *st, const struct cfr_prefix *p,
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

static int add_prefix(struct parse_state *st, const char *value, int family,
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

static int set_pool4(struct parse_state *st, const char *value)
{
	struct cfr_engine_config *e = &st->cfg->engine;

	uint64_t addresses = 0;

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

static int set_pool6(struct parse_state *st, const char *value)
{
	struct cfr_engine_config *e = &st->cfg->engine;

	if (add_prefix(st, value, CFR_FAMILY_V6, e->pool6, &e->n_pool6, CFR_MAX_POOL_PREFIXES) < 0)
		return -EINVAL;
	if (e->pool6[e->n_pool6 - 1].len > ENGINE_POOL6_MAX_BITS)
		return bad(st, "ipv6 pool %s is too small to hide anyone in (at most /%u)", value,
		           ENGINE_POOL6_MAX_BITS);
	return check_overlap(st, &e->pool6[e->n_pool6 - 1], e->subscribers, e->n_subscribers,
	                     "subscriber");
}

static int set_subscriber(struct parse_state *st, const char *value)
{
	struct cfr_engine_config *e = &st->cfg->engine;
	const struct cfr_prefix *p;

	if (add_prefix(st, value, -1, e->subscribers, &e->n_subscribers,
	               CFR_MAX_SUBSCRIBER_PREFIXES) < 0)
		return -EINVAL;
	p = &e->subscribers[e->n_subscribers - 1];
	if (p->family == CFR_FAMILY_V4)
		return check_overlap(st, p, e->pool4, e->n_pool4, "ipv4 pool");
	return check_overlap(st, p, e->pool6, e->n_pool6, "ipv6 pool");
}

static int set_ports(struct parse_state *st, const char *value)
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
	return bad(st, "invalid ports '%s': expected FIRST-LAST, from 1 to 65535", value);
}

static int set_timeout(struct parse_state *st, enum cfr_timeout which, const char *value)
{
	if (parse_u32(value, 1, TIMEOUT_MAX_S, &st->cfg->engine.timeout[which]) < 0)
		return bad(st, "invalid timeout '%s': expected seconds from 1 to %u", value,
		           TIMEOUT_MAX_S);
	return 0;
}

static int set_tcp_established(struct parse_state *st, const char *value)
{
	return set_timeout(st, CFR_TIMEOUT_TCP_ESTABLISHED, value);
}

static int set_tcp_transitory(struct parse_state *st, const char *value)
{
	return set_timeout(st, CFR_TIMEOUT_TCP_TRANSITORY, value);
}

static int set_udp(struct parse_state *st, const char *value)
{
	return set_timeout(st, CFR_TIMEOUT_UDP, value);
}

static int set_icmp(struct parse_state *st, const char *value)
{
	return set_timeout(st, CFR_TIMEOUT_ICMP, value);
}

static int set_max_flows(struct parse_state *st, const char *value)
{
	if (parse_u32(value, 1, ENGINE_MAX_FLOWS, &st->cfg->engine.max_flows) < 0)
		return bad(st, "invalid max-flows '%s': expected an integer from 1 to %u", value,
		           ENGINE_MAX_FLOWS);
	return 0;
}

static int set_max_fragments(struct parse_state *st, const char *value)
{
	if (parse_u32(value, 1, ENGINE_MAX_FRAGS, &st->cfg->engine.max_frags) < 0)
		return bad(st, "invalid max-fragments '%s': expected an integer from 1 to %u",
		           value, ENGINE_MAX_FRAGS);
	return 0;
}

static int set_policy(struct parse_state *st, enum cfr_family family, const char *value)
{
	for (int p = 0; p < CFR_POLICY__COUNT; p++) {
		if (strcmp(value, cfr_policy_name((enum cfr_policy)p)) == 0) {
			st->cfg->engine.policy[family] = (uint8_t)p;
			return 0;
		}
	}
	return bad(st, "invalid policy '%s': expected per-flow, per-destination or per-subscriber",
	           value);
}

static int set_policy4(struct parse_state *st, const char *value)
{
	return set_policy(st, CFR_FAMILY_V4, value);
}

static int set_policy6(struct parse_state *st, const char *value)
{
	return set_policy(st, CFR_FAMILY_V6, value);
}

static int set_epoch(struct parse_state *st, const char *value)
{
	if (parse_u32(value, 1, TIMEOUT_MAX_S, &st->cfg->engine.epoch_s) < 0)
		return bad(st, "invalid epoch '%s': expected seconds from 1 to %u", value,
		           TIMEOUT_MAX_S);
	return 0;
}

static int set_subscriber_prefix6(struct parse_state *st, const char *value)
{
	uint32_t v;

	if (parse_u32(value, 1, 128, &v) < 0)
		return bad(st, "invalid subscriber-prefix6 '%s': expected a length from 1 to 128",
		           value);
	st->cfg->engine.subscriber_prefix6 = (uint8_t)v;
	return 0;
}

static int set_anonymity_k(struct parse_state *st, const char *value)
{
	if (parse_u32(value, 0, UINT32_MAX, &st->cfg->engine.anon_k) < 0)
		return bad(st, "invalid anonymity-k '%s': expected a non-negative integer", value);
	return 0;
}

static int parse_bool(struct parse_state *st, const char *value, bool *out)
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

static int set_scrub_tcp_timestamp_rate(struct parse_state *st, const char *value)
{
	return parse_bool(st, value, &st->cfg->engine.scrub.tcp_timestamp_rate);
}

static int set_scrub_tcp_timestamps(struct parse_state *st, const char *value)
{
	return parse_bool(st, value, &st->cfg->engine.scrub.tcp_timestamps);
}

static int set_scrub_ip_id(struct parse_state *st, const char *value)
{
	return parse_bool(st, value, &st->cfg->engine.scrub.ip_id);
}

static int set_scrub_flow_label(struct parse_state *st, const char *value)
{
	return parse_bool(st, value, &st->cfg->engine.scrub.flow_label);
}

static int set_scrub_ttl_cap(struct parse_state *st, const char *value)
{
	uint32_t v;

	if (parse_u32(value, 0, 255, &v) < 0)
		return bad(st, "invalid ttl-cap '%s': expected 0 (off) to 255", value);
	st->cfg->engine.scrub.ttl_cap = (uint8_t)v;
	return 0;
}

/* Absolute, because cfrd's working directory is nobody's business in a config file. */
static int set_path(struct parse_state *st, const char *key, const char *value, char *out)
{
	size_t len = strlen(value);

	if (value[0] != '/' || len >= CFRD_PATH_MAX)
		return bad(st, "invalid %s '%s': expected an absolute path under %d bytes", key,
		           value, CFRD_PATH_MAX);
	memcpy(out, value, len + 1);
	return 0;
}

static int set_acct_records(struct parse_state *st, const char *value)
{
	return set_path(st, "records", value, st->cfg->acct.records);
}

static int set_acct_public_key(struct parse_state *st, const char *value)
{
	return set_path(st, "public-key", value, st->cfg->acct.public_key);
}

static int set_acct_segment(struct parse_state *st, const char *value)
{
	/* A segment longer than a week would keep its oldest records a week past retention. */
	if (parse_u32(value, 1, 7 * 86400, &st->cfg->acct.segment_s) < 0)
		return bad(st, "invalid segment '%s': expected seconds from 1 to %u", value,
		           7 * 86400);
	return 0;
}

static int set_acct_retention(struct parse_state *st, const char *value)
{
	if (parse_u32(value, 1, 10 * 366 * 86400, &st->cfg->acct.retention_s) < 0)
		return bad(st, "invalid retention '%s': expected seconds from 1 to %u (ten years)",
		           value, 10 * 366 * 86400);
	return 0;
}

static int set_acct_fsync(struct parse_state *st, const char *value)
{
	if (strcmp(value, "epoch") != 0 && strcmp(value, "segment") != 0)
		return bad(st, "invalid fsync '%s': expected epoch or segment", value);
	st->cfg->acct.fsync_segment = strcmp(value, "segment") == 0;
	return 0;
}

static int set_tcp_embryonic(struct parse_state *st, const char *value)
{
	return set_timeout(st, CFR_TIMEOUT_TCP_EMBRYONIC, value);
}

/* A per-subscriber limit: 0 turns it off, anything above max-flows' ceiling is a typo. */
static int set_limit(struct parse_state *st, const char *key, uint32_t max, uint32_t *out,
                     const char *value)
{
	if (parse_u32(value, 0, max, out) < 0)
		return bad(st, "invalid %s '%s': expected an integer from 0 (no limit) to %u", key,
		           value, max);
	return 0;
}

static int set_tcp_per_subscriber(struct parse_state *st, const char *value)
{
	return set_limit(st, "tcp-per-subscriber", ENGINE_MAX_FLOWS,
	                 &st->cfg->engine.limits.flows_per_subscriber[CFR_PROTO_TCP], value);
}

static int set_udp_per_subscriber(struct parse_state *st, const char *value)
{
	return set_limit(st, "udp-per-subscriber", ENGINE_MAX_FLOWS,
	                 &st->cfg->engine.limits.flows_per_subscriber[CFR_PROTO_UDP], value);
}

static int set_icmp_per_subscriber(struct parse_state *st, const char *value)
{
	return set_limit(st, "icmp-per-subscriber", ENGINE_MAX_FLOWS,
	                 &st->cfg->engine.limits.flows_per_subscriber[CFR_PROTO_ICMP], value);
}

static int set_half_open_per_subscriber(struct parse_state *st, const char *value)
{
	return set_limit(st, "half-open-per-subscriber", ENGINE_MAX_FLOWS,
	                 &st->cfg->engine.limits.half_open_per_subscriber, value);
}

static int set_frags_per_subscriber(struct parse_state *st, const char *value)
{
	return set_limit(st, "fragments-per-subscriber", ENGINE_MAX_FRAGS,
	                 &st->cfg->engine.limits.frags_per_subscriber, value);
}

/*
 * A million new flows per second from one subscriber is far beyond any
 * host; the ceiling also keeps the engine's token arithmetic far from
 * overflow.
 */
#define NEW_FLOWS_MAX 1000000u

static int set_new_flows_per_second(struct parse_state *st, const char *value)
{
	return set_limit(st, "new-flows-per-second", NEW_FLOWS_MAX,
	                 &st->cfg->engine.limits.new_flows_per_s, value);
}

static int set_new_flows_burst(struct parse_state *st, const char *value)
{
	return set_limit(st, "new-flows-burst", NEW_FLOWS_MAX,
	                 &st->cfg->engine.limits.new_flows_burst, value);
}

static int set_max_subscribers(struct parse_state *st, const char *value)
{
	if (parse_u32(value, 1, ENGINE_MAX_SUBSCRIBERS, &st->cfg->engine.max_subscribers) < 0)
		return bad(st, "invalid max-subscribers '%s': expected an integer from 1 to %u",
		           value, ENGINE_MAX_SUBSCRIBERS);
	return 0;
}

static int set_strict_ingress(struct parse_state *st, const char *value)
{
	return parse_bool(st, value, &st->cfg->engine.strict_ingress);
}

static int set_seccomp(struct parse_state *st, const char *value)
{
	bool on = true;

	if (strcmp(value, "log") == 0) {
		st->cfg->seccomp = CFRD_SECCOMP_LOG;
		return 0;
	}
	if (parse_bool(st, value, &on) < 0) {
		/* parse_bool kept its own message; say what else is allowed. */
		st->err->msg[0] = '\0';
		return bad(st, "invalid seccomp '%s': expected yes, no or log", value);
	}
	st->cfg->seccomp = on ? CFRD_SECCOMP_KILL : CFRD_SECCOMP_OFF;
	return 0;
}

/*
 * Only the name's syntax here (the portable set, as useradd takes it):
 * whether the user exists is for cfrd to find out when it starts.
 */
static int set_user(struct parse_state *st, const char *value)
{
	size_t len = strlen(value);

	if (len == 0 || len >= sizeof(st->cfg->user) || value[0] == '-' ||
	    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
	        len)
		return bad(st,
		           "invalid user '%s': expected a user name of letters, digits, '.', "
		           "'_' and '-' (not first), under %zu characters",
		           value, sizeof(st->cfg->user));
	memcpy(st->cfg->user, value, len + 1);
	return 0;
}

static int set_xdp_ignore_forward_rules(struct parse_state *st, const char *value)
{
	return parse_bool(st, value, &st->cfg->xdp_ignore_forward_rules);
}

static int set_egress_guard(struct parse_state *st, const char *value)
{
	return parse_bool(st, value, &st->cfg->egress_guard);
}

static int set_source_check(struct parse_state *st, const char *value)
{
	if (strcmp(value, "kernel") == 0 || strcmp(value, "external") == 0) {
		st->cfg->source_check = strcmp(value, "kernel") == 0;
		return 0;
	}
	return bad(st, "invalid source-check '%s': expected kernel (cfrd binds each subscriber "
	               "address to its access interface) or external (a BNG does)",
	           value);
}

static int set_error_mark(struct parse_state *st, const char *value)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(value, &end, 0);
	if (errno || end == value || *end != '\0' || v == 0 || v > 0xffffffffu)
		return bad(st, "invalid error-mark '%s': expected a non-zero 32-bit firewall mark",
		           value);
	st->cfg->error_mark = (uint32_t)v;
	return 0;
}

static int set_offload(struct parse_state *st, const char *value)
{
	return parse_bool(st, value, &st->cfg->offload);
}

static int set_busy_poll(struct parse_state *st, const char *value)
{
	uint32_t us;

	if (parse_u32(value, 0, 1000000, &us) < 0)
		return bad(st, "invalid busy-poll '%s': expected microseconds, 0 to 1000000",
		           value);
	st->cfg->busy_poll_us = us;
	return 0;
}

static int set_workers(struct parse_state *st, const char *value)
{
	uint32_t n;

	if (strcmp(value, "auto") == 0) {
		st->cfg->workers = 0;
		return 0;
	}
	if (parse_u32(value, 1, CFRD_MAX_WORKERS, &n) < 0)
		return bad(st, "invalid workers '%s': expected auto or 1 to %u", value,
		           CFRD_MAX_WORKERS);
	st->cfg->workers = n;
	return 0;
}

static int set_anon_warn_percent(struct parse_state *st, const char *value)
{
	uint32_t pct;

	if (parse_u32(value, 0, 100, &pct) < 0)
		return bad(st, "invalid anonymity-warn-percent '%s': expected 0 to 100", value);
	st->cfg->anon_warn_percent = pct;
	return 0;
}

static const struct key keys[] = {
    {"cfrd", "tun", set_tun, false},
    {"cfrd", "mtu", set_mtu, false},
    {"cfrd", "offload", set_offload, false},
    {"cfrd", "busy-poll", set_busy_poll, false},
    {"cfrd", "workers", set_workers, false},
    {"cfrd", "control", set_control, false},
    {"cfrd", "log-level", set_log_level, false},
    {"cfrd", "seccomp", set_seccomp, false},
    {"cfrd", "user", set_user, false},
    {"cfrd", "egress-guard", set_egress_guard, false},
    {"cfrd", "source-check", set_source_check, false},
    {"cfrd", "error-mark", set_error_mark, false},
    {"pool", "ipv4", set_pool4, true},
    {"pool", "ipv6", set_pool6, true},
    {"pool", "ports", set_ports, false},
    {"subscribers", "prefix", set_subscriber, true},
    {"subscribers", "strict-ingress", set_strict_ingress, false},
    {"timeouts", "tcp-established", set_tcp_established, false},
    {"timeouts", "tcp-transitory", set_tcp_transitory, false},
    {"timeouts", "udp", set_udp, false},
    {"timeouts", "icmp", set_icmp, false},
    {"timeouts", "tcp-embryonic", set_tcp_embryonic, false},
    {"limits", "max-flows", set_max_flows, false},
    {"limits", "max-fragments", set_max_fragments, false},
    {"limits", "tcp-per-subscriber", set_tcp_per_subscriber, false},
    {"limits", "udp-per-subscriber", set_udp_per_subscriber, false},
    {"limits", "icmp-per-subscriber", set_icmp_per_subscriber, false},
    {"limits", "half-open-per-subscriber", set_half_open_per_subscriber, false},
    {"limits", "fragments-per-subscriber", set_frags_per_subscriber, false},
    {"limits", "new-flows-per-second", set_new_flows_per_second, false},
    {"limits", "new-flows-burst", set_new_flows_burst, false},
    {"limits", "max-subscribers", set_max_subscribers, false},
    {"privacy", "ipv4-policy", set_policy4, false},
    {"privacy", "ipv6-policy", set_policy6, false},
    {"privacy", "epoch", set_epoch, false},
    {"privacy", "subscriber-prefix6", set_subscriber_prefix6, false},
    {"privacy", "anonymity-k", set_anonymity_k, false},
    {"privacy", "anonymity-warn-percent", set_anon_warn_percent, false},
    {"scrub", "tcp-timestamps", set_scrub_tcp_timestamps, false},
    {"scrub", "tcp-timestamp-rate", set_scrub_tcp_timestamp_rate, false},
    {"scrub", "ip-id", set_scrub_ip_id, false},
    {"scrub", "flow-label", set_scrub_flow_label, false},
    {"scrub", "ttl-cap", set_scrub_ttl_cap, false},
    {"accounting", "records", set_acct_records, false},
    {"accounting", "public-key", set_acct_public_key, false},
    {"accounting", "segment", set_acct_segment, false},
    {"accounting", "retention", set_acct_retention, false},
    {"accounting", "fsync", set_acct_fsync, false},
    {"xdp", "inside", set_xdp_inside, true},
    {"xdp", "outside", set_xdp_outside, true},
    {"xdp", "ignore-forward-rules", set_xdp_ignore_forward_rules, false},
};

_Static_assert(ARRAY_SIZE(keys) <= ARRAY_SIZE(((struct parse_state *)0)->seen),
               "parse_state.seen must cover every key");

static bool known_section(const char *section)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (strcmp(keys[i].section, section) == 0)
			return true;
	}
	return false;
}

/*
 * [line NAME]: an access line with its own TUN device. Its prefixes are
 * subscriber prefixes bound to the line's ingress id (index + 1), so that
 * with strict-ingress one line cannot send as another (MISSION R8).
 */
static struct cfrd_line *line_for(struct parse_state *st, const char *name)
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

static int on_line_key(struct parse_state *st, const char *line_name, const char *name,
                       const char *value)
{
	struct cfr_engine_config *e = &st->cfg->engine;
	struct cfrd_line *l = line_for(st, line_name);
	unsigned idx;
	int ret;

	if (l == NULL)
		return -EINVAL;
	idx = (unsigned)(l - st->cfg->lines);
	if (strcmp(name, "tun") == 0) {
		char saved[IFNAMSIZ];

		if (st->line_tun_seen[idx] != 0)
			return bad(st, "duplicate key 'tun' (already set on line %d)",
			           st->line_tun_seen[idx]);
		st->line_tun_seen[idx] = st->line;
		/* set_tun validates into cfg->tun; borrow it and put the main one back. */
		memcpy(saved, st->cfg->tun, sizeof(saved));
		ret = set_tun(st, value);
		memcpy(l->tun, st->cfg->tun, sizeof(l->tun));
		memcpy(st->cfg->tun, saved, sizeof(saved));
		return ret;
	}
	if (strcmp(name, "prefix") == 0) {
		ret = set_subscriber(st, value);
		if (ret < 0)
			return ret;
		e->subscriber_ingress[e->n_subscribers - 1] = (uint16_t)(idx + 1);
		l->n_prefixes++;
		return 0;
	}
	if (strcmp(name, "inside") == 0)
		return add_xdp_port(st, "inside", value, true, (uint16_t)(idx + 1));
	if (strcmp(name, "subscriber-prefix6") == 0) {
		uint8_t global = e->subscriber_prefix6;

		/* set_subscriber_prefix6 validates into the global; borrow it. */
		ret = set_subscriber_prefix6(st, value);
		l->ident6 = e->subscriber_prefix6;
		e->subscriber_prefix6 = global;
		return ret;
	}
	return bad(st,
	           "unknown key '%s' in [line %s]: expected tun, prefix, inside or "
	           "subscriber-prefix6",
	           name, line_name);
}

/* Whole-file rules for [line] sections, checked once every key is known. */
static int check_lines_config(const struct parse_state *st)
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
	struct parse_state *st = user;

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
	if (strncmp(section, "line ", 5) == 0)
		return on_line_key(st, section + 5, name, value) == 0;
	if (!known_section(section))
		return bad(st, "unknown section [%s]", section) == 0;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const struct key *k = &keys[i];

		if (strcmp(k->section, section) != 0 || strcmp(k->name, name) != 0)
			continue;
		if (!k->repeatable && st->seen[i] != 0)
			return bad(st, "duplicate key '%s' (already set on line %d)", name,
			           st->seen[i]) == 0;
		st->seen[i] = st->line;
		return k->set(st, value) == 0;
	}
	return bad(st, "unknown key '%s' in [%s]", name, section) == 0;
}

/*
 * fgets() over the buffer. Lines were checked to fit inih's line buffer,
 * so each call returns exactly one line and <line> stays exact.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
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
	struct parse_state st = {.pos = buf, .end = buf + len, .cfg = cfg, .err = err};
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
	return check_lines_config(&st);
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
